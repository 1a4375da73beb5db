"""PtychoPINN's ``ptycho.raw_data``, on the sample-then-group data layer.

This file is what the refactor changes in PtychoPINN: ``ptycho-group adopt
PATH`` copies it over a PtychoPINN checkout's ``ptycho/raw_data.py``, where
it reads PtychoPINN's own ``ptycho.params``; without PtychoPINN it reads the
standalone ``ptycho.params`` beside it. The implementation is
:mod:`ptycho_data.raw_data`; this module adds only what PtychoPINN's callers
expect of it (see :class:`RawData`).
"""
from ptycho import params
from ptycho_data import raw_data as _impl
from ptycho_data.raw_data import (  # noqa: F401 - PtychoPINN's module-level names
    METADATA_KEY, OPTIONAL_KEYS, REQUIRED_KEYS, calculate_relative_coords,
    get_image_patches, get_neighbor_diffraction_and_positions, get_neighbor_indices,
    get_neighbor_self_indices, get_relative_coords, group_coords, key_coords_offsets,
    key_coords_relative, local_offset_sign, metadata_mismatches, normalize_data, sample_rows)

__all__ = _impl.__all__


class RawData(_impl.RawData):
    """PtychoPINN's ``RawData``: :class:`ptycho_data.raw_data.RawData` configured by ``params.cfg``.

    ``gridsize`` and ``grouping_strategy`` default to ``ptycho.params``
    (PtychoPINN's own inside PtychoPINN), and ``seed=None`` takes one draw
    from NumPy's global generator, so that scripts calling
    ``np.random.seed(s)`` get the same groups on every run.
    """

    params_module = params
    seed_from_global_state = True

