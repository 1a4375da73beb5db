"""LegacyGroupThenSample: the pre-refactor grouping, kept for one transition period.

Deprecated. It reproduces the old code exactly, including its use of NumPy's
*global* random state and its cache files, so that ``np.random.seed(s)``
followed by this strategy gives the groups the old code gave:

1. ``gridsize == 1``: every point, in order; the requested count is ignored.
2. Otherwise a cache file beside the dataset (see :mod:`.legacy_cache`) holds
   every group; it is computed on first use: the ``K + 1`` nearest neighbours
   of each point (itself included), ``min(50, (K+1)//C + 1)`` sorted random
   ``C``-subsets per point, de-duplicated.
3. ``n_groups`` rows are drawn from all groups without replacement; if there
   are fewer, all of them are returned in order with a warning.
"""
from __future__ import annotations

import logging
import math

import numpy as np
from scipy.spatial import cKDTree

from . import legacy_cache
from ._warnings import warn
from .hookspecs import hookimpl
from .neighbors import NeighborIndex
from .strategy import GroupingRequest, GroupingStrategy

__all__ = ["LegacyGroupThenSample", "REMOVAL_VERSION"]

log = logging.getLogger(__name__)

#: The release that drops this strategy and the deprecated functions.
REMOVAL_VERSION = "0.3"

DEPRECATION_MESSAGE = (
    "grouping_strategy 'legacy_group_then_sample' is deprecated and will be removed in "
    f"ptycho-grouping {REMOVAL_VERSION}; 'sample_then_group' (the default) replaces it. "
    "The default samples seed points uniformly, returns exactly the requested number of "
    "groups (gridsize 1 included) and writes no cache files, so the same seed gives "
    "different groups than this strategy. MIGRATION.md explains the switch."
)

_PROGRESS_EVERY = 100_000


def _build_tree(points: np.ndarray) -> cKDTree:
    """The old code's tree: balanced, built over every point (ties resolve as before)."""
    return cKDTree(points)


class LegacyGroupThenSample(GroupingStrategy):
    """Group every point, cache the groups next to the dataset, then sample (deprecated)."""

    name = "legacy_group_then_sample"
    deprecated = True
    summary = (f"pre-refactor group-then-sample with cache files; deprecated, removed in "
               f"{REMOVAL_VERSION}")

    def min_neighbors(self, group_size: int) -> int:
        # The old rule counts the point itself among its K+1 neighbours.
        return group_size - 1

    def _group(self, index: NeighborIndex, request: GroupingRequest) -> np.ndarray:
        warn(DEPRECATION_MESSAGE, DeprecationWarning)
        n_points, c, k = index.n_points, request.group_size, request.neighbors
        gridsize = math.isqrt(c)
        if gridsize * gridsize != c:
            raise ValueError(f"group_size={c} must be a perfect square (gridsize**2) for "
                             "the legacy strategy")
        if c == 1:
            return np.arange(n_points)[:, None]

        x, y = index.coords[:, 0], index.coords[:, 1]
        checksum = legacy_cache.dataset_checksum(x, y)
        path = legacy_cache.cache_path(request.dataset_path, gridsize, k, checksum)
        all_groups = legacy_cache.read_cache(path, checksum, gridsize, k)
        if all_groups is None:
            all_groups = _all_groups(index.coords, c, k)
            legacy_cache.write_cache(path, all_groups, checksum, gridsize, k)
            log.info("wrote group cache %s (%d groups)", path, len(all_groups))

        n = request.n_groups
        if len(all_groups) < n:
            warn(f"only {len(all_groups)} groups exist but n_groups={n} were requested; "
                 "using all of them")
            return all_groups
        return all_groups[np.random.choice(len(all_groups), size=n, replace=False)]


def _all_groups(points: np.ndarray, c: int, k: int) -> np.ndarray:
    """Every point's random C-subsets of its K+1 neighbourhood, as the old code drew them."""
    n_points = len(points)
    if n_points < k + 1:
        raise ValueError(f"neighbors (K={k}) needs at least K+1={k + 1} scan points, "
                         f"got {n_points}")
    _, nn = _build_tree(points).query(points, k=k + 1)
    per_point = min(50, (k + 1) // c + 1)
    log.info("enumerating groups for %d points (%d per point)", n_points, per_point)
    groups = []
    # This per-point loop over the global random state is the old algorithm;
    # its order of draws is what makes a seed reproduce the old groups.
    for i in range(n_points):
        for _ in range(per_point):
            groups.append(sorted(np.random.choice(nn[i], size=c, replace=False)))
        if (i + 1) % _PROGRESS_EVERY == 0:
            log.info("legacy grouping: %d of %d points", i + 1, n_points)
    return np.unique(np.array(groups, dtype=np.int64), axis=0)


@hookimpl
def ptycho_grouping_strategies():
    return [LegacyGroupThenSample]
