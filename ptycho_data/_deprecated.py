"""The pre-refactor module-level grouping functions, for one transition period.

Importable from :mod:`ptycho.raw_data` as before: ``raw_data`` imports them
from here, and defines ``get_neighbor_diffraction_and_positions`` itself on
top of :func:`legacy_group_coords` and :func:`warn_deprecated` (it needs
``RawData``; this module imports nothing from ``raw_data``, so the imports
stay one-way). ``generate_grouped_data`` never calls any of them. Each call
warns with a ``DeprecationWarning`` naming its replacement and then does
exactly what the old function did, with the old signature and defaults,
drawing from NumPy's global random state as it did. The neighbour query and
the row sampler are those of :mod:`ptycho_grouping.legacy`.

Note that the old ``group_coords`` (and everything built on it) did *not*
use the cached group-then-sample path: for ``C > 1`` it returned
``nsamples`` random ``C``-subsets of *every* point's ``K + 1`` neighbourhood,
``M * nsamples`` groups in all. That is reproduced here. The cached path is
``RawData.generate_grouped_data(..., grouping_strategy="legacy_group_then_sample")``.
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import numpy as np

from ptycho_grouping import legacy
from ptycho_grouping.legacy import REMOVAL_VERSION

from . import params

__all__ = ["group_coords", "get_neighbor_indices", "sample_rows", "get_neighbor_self_indices",
           "calculate_relative_coords", "legacy_group_coords", "warn_deprecated"]


def warn_deprecated(name: str, replacement: str) -> None:
    """The DeprecationWarning of the old function ``name``, pointing at its caller."""
    # stacklevel 3: this helper, the deprecated function, then its caller.
    warnings.warn(f"ptycho.raw_data.{name} is deprecated and will be removed in "
                  f"ptycho-grouping {REMOVAL_VERSION}; use {replacement} instead "
                  "(see MIGRATION.md)", DeprecationWarning, stacklevel=3)


def legacy_group_coords(xcoords, ycoords, K, C, nsamples):
    """The old ``group_coords`` without the warning (shared by the wrappers)."""
    xcoords, ycoords = np.asarray(xcoords), np.asarray(ycoords)
    if C is None:
        C = params.get("gridsize") ** 2
    if C == 1:
        nn_indices = np.arange(len(xcoords)).reshape(-1, 1)
    else:
        nn = legacy.neighbor_table(np.column_stack((xcoords, ycoords)), K)
        nn_indices = legacy.sample_rows(nn, C, nsamples).reshape(-1, C)
    coords_nn = np.transpose(np.array([xcoords[nn_indices], ycoords[nn_indices]]),
                             [1, 0, 2])[:, None, :, :]
    return nn_indices, coords_nn


def _relative(coords_nn):
    # PtychoPINN's sign convention, the same as RawData.generate_grouped_data.
    offsets = np.mean(coords_nn, axis=3)[..., None]
    return offsets, -(coords_nn - offsets)


def get_neighbor_indices(xcoords, ycoords, K=3):
    """Indices of each point's ``K + 1`` nearest neighbours, itself included, ``(M, K+1)``.

    Deprecated: use ``ptycho_grouping.NeighborIndex(coords).neighbors``.
    """
    warn_deprecated("get_neighbor_indices", "ptycho_grouping.NeighborIndex(coords).neighbors")
    return legacy.neighbor_table(np.column_stack((xcoords, ycoords)), K)


def sample_rows(indices, n, m):
    """``m`` random ``n``-subsets of each row of ``indices``, ``(rows, m, n)``.

    Draws from NumPy's global random state. Deprecated: use a grouping strategy.
    """
    warn_deprecated("sample_rows", "a ptycho_grouping strategy")
    return legacy.sample_rows(indices, n, m)


def get_neighbor_self_indices(xcoords, ycoords):
    """Each point as its own one-member group, ``(M, 1)``.

    Deprecated: use ``RawData.generate_grouped_data`` with gridsize 1.
    """
    warn_deprecated("get_neighbor_self_indices", "RawData.generate_grouped_data(gridsize=1)")
    return np.arange(len(xcoords)).reshape(-1, 1)


def group_coords(xcoords: np.ndarray, ycoords: np.ndarray, K: int, C: Optional[int],
                 nsamples: int) -> Tuple[np.ndarray, np.ndarray]:
    """Old grouping: ``(nn_indices, coords_nn)``.

    ``C`` defaults to ``params.get('gridsize') ** 2``. For ``C == 1`` every
    point in order, ``(M, 1)``; otherwise ``nsamples`` random ``C``-subsets of
    every point's ``K + 1`` neighbourhood, ``(M * nsamples, C)``.
    ``coords_nn`` is ``(B, 1, 2, C)``. Deprecated: use
    ``RawData.generate_grouped_data``.
    """
    warn_deprecated("group_coords", "RawData.generate_grouped_data")
    return legacy_group_coords(xcoords, ycoords, K, C, nsamples)


def calculate_relative_coords(xcoords, ycoords, K=4, C=None, nsamples=10):
    """``(coords_offsets, coords_relative, nn_indices)`` of :func:`group_coords` groups.

    Deprecated: use ``RawData.generate_grouped_data`` (keys ``coords_offsets``,
    ``coords_relative``, ``nn_indices``).
    """
    warn_deprecated("calculate_relative_coords", "RawData.generate_grouped_data")
    nn_indices, coords_nn = legacy_group_coords(xcoords, ycoords, K, C, nsamples)
    offsets, relative = _relative(coords_nn)
    return offsets, relative, nn_indices
