"""PtychoPINN's ``ptycho.raw_data``, on the sample-then-group data layer.

This file is what the refactor changes in PtychoPINN: ``ptycho-group adopt
PATH`` copies it over a PtychoPINN checkout's ``ptycho/raw_data.py``, where
it reads PtychoPINN's own ``ptycho.params``; without PtychoPINN it reads the
standalone ``ptycho.params`` beside it (``ptycho-group adopt --standalone``).
The implementation is :mod:`ptycho_data.raw_data`; this module adds only
what PtychoPINN's callers expect of it (see :class:`RawData`).
"""
import numpy as np

from ptycho import params
from ptycho_data import raw_data as data_layer
from ptycho_data.raw_data import (  # noqa: F401 - PtychoPINN's module-level names
    METADATA_KEY, OPTIONAL_KEYS, REQUIRED_KEYS, calculate_relative_coords,
    get_neighbor_diffraction_and_positions, get_neighbor_indices, get_neighbor_self_indices,
    get_relative_coords, group_coords, key_coords_offsets, key_coords_relative,
    local_offset_sign, metadata_mismatches, normalize_data, sample_rows)

__all__ = data_layer.__all__


def get_image_patches(gt_image, global_offsets, local_offsets, N=None, gridsize=None):
    """Object patches, ``(B, N, N, C)`` complex64; ``N`` and ``gridsize`` default to ``params``."""
    return data_layer.get_image_patches(
        gt_image, global_offsets, local_offsets,
        N=params.get("N") if N is None else N,
        gridsize=params.get("gridsize") if gridsize is None else gridsize)


class RawData(data_layer.RawData):
    """PtychoPINN's ``RawData``: :class:`ptycho_data.raw_data.RawData` configured by ``params.cfg``.

    ``gridsize`` and ``grouping_strategy`` default to ``ptycho.params``
    (PtychoPINN's own inside PtychoPINN), and ``seed=None`` takes one draw
    from NumPy's global generator, so that scripts calling
    ``np.random.seed(s)`` get the same groups on every run.
    """

    params_module = params
    seed_from_global_state = True

    @classmethod
    def from_simulation(cls, xcoords, ycoords, probeGuess, objectGuess, scan_index=None):
        """Simulated diffraction at gridsize 1, with PtychoPINN's own simulator.

        Object patches are cut at the positions (``params.get('N')``), lit by
        the probe and diffracted by PtychoPINN's
        ``ptycho.diffsim.illuminate_and_diffract`` (TensorFlow), as
        PtychoPINN does; ``norm_Y_I`` is its ``scale_nphotons``. Needs
        PtychoPINN; raises ``NotImplementedError`` for ``gridsize > 1`` as
        PtychoPINN does.
        """
        try:
            from ptycho import diffsim  # PtychoPINN's simulator (TensorFlow)
        except ImportError as exc:
            raise ImportError("RawData.from_simulation needs PtychoPINN's ptycho.diffsim "
                              f"(TensorFlow): {exc}") from exc
        if (params.get("gridsize", 1) or 1) != 1:
            raise NotImplementedError("from_simulation supports gridsize=1 only; use "
                                      "generate_grouped_data for larger groups")
        xcoords, ycoords = np.asarray(xcoords), np.asarray(ycoords)
        coords_nn = np.stack([xcoords, ycoords], axis=1)[:, None, :, None].astype(np.float64)
        offsets, relative = get_relative_coords(coords_nn)
        patches = get_image_patches(objectGuess, offsets, relative, gridsize=1)
        X, _, _, _ = diffsim.illuminate_and_diffract(np.abs(patches), np.angle(patches),
                                                     probeGuess)
        norm_Y_I = diffsim.scale_nphotons(X)
        return cls(xcoords, ycoords, xcoords, ycoords, np.asarray(X)[..., 0], probeGuess,
                   scan_index, objectGuess, Y=patches[..., 0], norm_Y_I=norm_Y_I)
