"""The pre-refactor module-level grouping functions, for one transition period.

Importable from :mod:`ptycho.raw_data` as before; each call warns with a
``DeprecationWarning`` naming its replacement and forwards to the legacy
strategy, so results (and NumPy global random-state use) match the old code.
Nothing on the default code path imports this module.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial import cKDTree

from ptycho_grouping import GroupingRequest, get_strategy
from ptycho_grouping.legacy import REMOVAL_VERSION

from . import params

LEGACY = "legacy_group_then_sample"


def _deprecated(name: str, replacement: str) -> None:
    warnings.warn(f"ptycho.raw_data.{name} is deprecated and will be removed in "
                  f"ptycho-grouping {REMOVAL_VERSION}; use {replacement} instead "
                  "(see MIGRATION.md)", DeprecationWarning, stacklevel=3)


def _legacy_groups(xcoords, ycoords, K, C, nsamples, dataset_path=None) -> np.ndarray:
    with warnings.catch_warnings():
        # One deprecation warning per call is enough: the caller got it already.
        warnings.simplefilter("ignore", DeprecationWarning)
        return get_strategy(LEGACY).group(
            np.column_stack([xcoords, ycoords]),
            GroupingRequest(n_groups=nsamples, group_size=C, neighbors=K,
                            dataset_path=dataset_path))


def _coords_nn(xcoords, ycoords, nn_indices):
    return np.stack([np.asarray(xcoords)[nn_indices], np.asarray(ycoords)[nn_indices]],
                    axis=1)[:, None]


def get_neighbor_indices(xcoords, ycoords, K=3):
    """Indices of each point's ``K + 1`` nearest neighbours (itself included)."""
    _deprecated("get_neighbor_indices", "ptycho_grouping.NeighborIndex(coords).neighbors")
    points = np.column_stack([xcoords, ycoords])
    return cKDTree(points).query(points, k=K + 1)[1]


def sample_rows(indices, n, m):
    """``m`` random ``n``-subsets of each row of ``indices`` (global random state)."""
    _deprecated("sample_rows", "a GroupingStrategy")
    indices = np.asarray(indices)
    out = np.zeros((indices.shape[0], m, n), dtype=int)
    for i in range(indices.shape[0]):
        out[i] = np.array([np.random.choice(indices[i], size=n, replace=False)
                           for _ in range(m)])
    return out


def get_neighbor_self_indices(xcoords, ycoords):
    """Each point as its own one-member group, ``(M, 1)``."""
    _deprecated("get_neighbor_self_indices", "RawData.generate_grouped_data(gridsize=1)")
    return np.arange(len(xcoords))[:, None]


def group_coords(xcoords, ycoords, K, C, nsamples, dataset_path=None):
    """Legacy groups and their coordinates: ``(nn_indices, coords_nn)``."""
    _deprecated("group_coords", "RawData.generate_grouped_data")
    nn_indices = _legacy_groups(xcoords, ycoords, K, C, nsamples, dataset_path)
    return nn_indices, _coords_nn(xcoords, ycoords, nn_indices)


def calculate_relative_coords(xcoords, ycoords, K=6, C=None, nsamples=10):
    """``(coords_offsets, coords_relative, nn_indices)`` of legacy groups."""
    _deprecated("calculate_relative_coords", "RawData.generate_grouped_data")
    if C is None:
        C = params.cfg.get("gridsize", 1) ** 2
    nn_indices = _legacy_groups(xcoords, ycoords, K, C, nsamples)
    coords_nn = _coords_nn(xcoords, ycoords, nn_indices)
    offsets = coords_nn.mean(axis=3, keepdims=True)
    return offsets, -(coords_nn - offsets), nn_indices


def get_neighbor_diffraction_and_positions(ptycho_data, N, K=6, C=None, nsamples=10):
    """The grouped-data dictionary of ``ptycho_data`` with the legacy strategy."""
    _deprecated("get_neighbor_diffraction_and_positions", "RawData.generate_grouped_data")
    gridsize = params.cfg.get("gridsize", 1) if C is None else int(round(np.sqrt(C)))
    if gridsize * gridsize != (C if C is not None else gridsize * gridsize):
        raise ValueError(f"C={C} must be a perfect square")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ptycho_data.generate_grouped_data(N, K=K, nsamples=nsamples, gridsize=gridsize,
                                                 grouping_strategy=LEGACY)
