"""LegacyGroupThenSample: the pre-refactor grouping, kept for one transition period.

Deprecated. It reproduces the old code exactly, including its use of NumPy's
*global* random state and its cache files, so that ``np.random.seed(s)``
followed by this strategy gives the groups the old code gave:

1. ``gridsize == 1``: every point, in order; the requested count is ignored.
2. Otherwise a cache file beside the dataset (see :mod:`.legacy_cache`) holds
   every group; it is computed on first use: the ``K + 1`` nearest neighbours
   of each point (itself included), ``min(50, (K+1)//C + 1)`` sorted random
   ``C``-subsets per point, de-duplicated with ``np.unique``.
3. ``n_groups`` rows are drawn from all groups without replacement; if there
   are not more groups than that, all of them are returned in order (with a
   warning when there are fewer).

Randomness: with ``rng=None`` (the default) every draw comes from NumPy's
global state, as in the old code. An int ``rng=s`` draws from a private
``numpy.random.RandomState(s)`` instead, which gives exactly what
``np.random.seed(s)`` followed by the old code gave, without touching the
global state. A ``Generator`` or ``SeedSequence`` seeds such a RandomState:
reproducible, but not a pattern the old code could produce.

Slow on many coincident positions, as the old code was: a k-d tree cannot
split coincident points, so each query scans all of them and the time grows
with the square of their number (0.7 s of queries for 20,000 coincident
points, about half an hour extrapolated to a million). The default strategy
answers such scans in about the time of distinct points.

The module-level :func:`neighbor_table` and :func:`sample_rows` are the old
neighbour query and per-row sampler; the deprecated ``ptycho.raw_data``
functions forward to them.
"""
from __future__ import annotations

import logging
import math
import sys
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from . import legacy_cache
from ._warnings import warn
from .errors import ParameterDeprecationWarning, ParameterWarning
from .hookspecs import hookimpl
from .neighbors import NeighborIndex, kd_tree
from .strategy import GroupingRequest, GroupingStrategy, Resolution
from .validation import check_legacy_request

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

__all__ = ["LegacyGroupThenSample", "REMOVAL_VERSION", "neighbor_table", "sample_rows"]

log = logging.getLogger(__name__)

#: The release that drops this strategy and the deprecated functions.
REMOVAL_VERSION = "0.3"



def _deprecation() -> ParameterDeprecationWarning:
    """The warning every use of this strategy gives (a parameter's value is deprecated)."""
    return ParameterDeprecationWarning(
        "grouping_strategy", "legacy_group_then_sample", "a strategy that is not deprecated",
        template="{grouping_strategy:name} {grouping_strategy:value} is deprecated and will be "
                 f"removed in ptycho-grouping {REMOVAL_VERSION}; 'sample_then_group' (the "
                 "default) replaces it. The default samples seed points uniformly, returns "
                 "exactly the requested number of groups (gridsize 1 included) and writes no "
                 "cache files, so the same seed gives different groups than this strategy. "
                 "MIGRATION.md explains the switch.")


#: The deprecation warning's text in the engine's names.
DEPRECATION_MESSAGE = str(_deprecation())


def _build_tree(points: np.ndarray) -> "cKDTree":
    """The old code's tree: balanced, built over every point (ties resolve as before)."""
    return kd_tree(points)


def neighbor_table(points, k: int) -> np.ndarray:
    """Indices of each point's ``k + 1`` nearest points, itself included.

    One query of a default (balanced) cKDTree over all points, as the old
    ``get_neighbor_indices`` did, so equidistant neighbours come in the old
    order (a differently built tree may order ties differently).

    Parameters
    ----------
    points : array_like of shape (M, 2)
    k : int
        Neighbours besides the point itself.

    Returns
    -------
    ndarray of shape (M, k + 1), dtype intp
    """
    points = np.asarray(points)
    return _build_tree(points).query(points, k=k + 1)[1]


def sample_rows(indices, n: int, m: int, random=np.random) -> np.ndarray:
    """``m`` random ``n``-subsets (unsorted) of every row of ``indices``.

    The old ``sample_rows``: row by row, ``random.choice(row, n, replace=False)``.

    Parameters
    ----------
    indices : array_like of shape (R, L)
    n : int
        Members per subset, at most ``L``.
    m : int
        Subsets per row.
    random : numpy.random.RandomState or the numpy.random module
        Source of the draws; by default NumPy's global state, as before.

    Returns
    -------
    ndarray of shape (R, m, n), dtype int64
    """
    indices = np.asarray(indices)
    out = np.zeros((indices.shape[0], m, n), dtype=np.int64)
    for i in range(indices.shape[0]):
        for j in range(m):
            out[i, j] = random.choice(indices[i], size=n, replace=False)
    return out


def _random_source(rng):
    """NumPy's global state for ``rng=None``, else a private RandomState."""
    if rng is None:
        return np.random
    if isinstance(rng, np.random.Generator):
        return np.random.RandomState(int(rng.integers(2 ** 32)))
    if isinstance(rng, np.random.SeedSequence):
        return np.random.RandomState(np.random.MT19937(rng))
    return np.random.RandomState(rng)  # an int below 2**32 (check_legacy_request)


#: Request fields the old code had no equivalent of, with their defaults.
_IGNORED_DEFAULTS = {"sequential": False, "enable_oversampling": False,
                     "neighbor_pool_size": None}


def _warn_ignored(request: GroupingRequest) -> None:
    """Warn, naming them, about requested options this strategy cannot honour."""
    ignored = {name: getattr(request, name) for name, default in _IGNORED_DEFAULTS.items()
               if getattr(request, name) != default}
    if ignored:
        first = next(iter(ignored))
        fields = ", ".join(f"{{{name}}}" for name in ignored)
        warn(ParameterWarning(
            first, ignored[first], "its default for the legacy strategy", related=ignored,
            template=f"the legacy strategy ignores {fields}: the old code had no such "
                     "option, so its groups are drawn at random as before; use the default "
                     "strategy 'sample_then_group' to honour them"))


class LegacyGroupThenSample(GroupingStrategy):
    """Group every point, cache the groups next to the dataset, then sample (deprecated).

    ``request.dataset_path`` places the cache file; ``request.progress``
    shows a tqdm bar on stderr while every point's groups are enumerated (a
    first run without a cache). ``sequential``, ``enable_oversampling`` and
    ``neighbor_pool_size`` are ignored, as the old code had no such options,
    with a ``UserWarning`` naming those set to anything but their defaults.

    Every use warns with a ``DeprecationWarning`` attributed to the caller's
    line, and only that: no log record repeats it. Python's default filters
    show it when that line is in ``__main__`` (a script, the ``ptycho-group``
    command) and hide it in an imported module unless warnings are enabled
    (``python -W default``, pytest); that is Python's policy for deprecations.
    """

    name = "legacy_group_then_sample"
    deprecated = True
    uses_global_random_state = True
    summary = (f"pre-refactor group-then-sample with cache files; deprecated, removed in "
               f"{REMOVAL_VERSION}")

    def min_neighbors(self, group_size: int) -> int:
        # The old rule counts the point itself among its K+1 neighbours.
        return group_size - 1

    def check_request(self, request: GroupingRequest, n_points: int) -> None:
        super().check_request(request, n_points)
        check_legacy_request(request, n_points)

    def max_groups(self, request: GroupingRequest, n_points: int) -> int:
        # Gridsize 1 returns every point whatever was asked, as the old code did.
        return n_points if request.group_size == 1 else request.n_groups

    def _resolve_checked(self, request: GroupingRequest, n_points: int) -> Resolution:
        n, k = request.n_groups, request.neighbors
        if request.group_size != 1 or n == n_points:
            return Resolution(n, k)
        # The old code ignored the count at gridsize 1; say so rather than surprise.
        return Resolution(n_points, k, notes=(ParameterWarning(
            "n_groups", n, "ignored by the legacy strategy at group_size 1",
            related={"group_size": 1}, facts={"n_points": n_points},
            template="{n_groups} is ignored by the legacy strategy at {group_size}: it returns "
                     "every scan point in order ({n_points} groups), as the old code did"),))

    def group(self, coords, request: GroupingRequest) -> np.ndarray:
        """As :meth:`GroupingStrategy.group`, after a ``DeprecationWarning``.

        The warning comes first, so that even a request this strategy refuses
        says that the strategy is going away.
        """
        warn(_deprecation())
        return super().group(coords, request)

    def _group(self, index: NeighborIndex, request: GroupingRequest) -> np.ndarray:
        _warn_ignored(request)
        n_points, c, k = index.n_points, request.group_size, request.neighbors
        if c == 1:
            log.info("legacy grouping, gridsize 1: all %d points in order; n_groups=%d "
                     "is ignored, as in the old code", n_points, request.n_groups)
            return np.arange(n_points)[:, None]

        random = _random_source(request.rng)
        all_groups = _cached_groups(index.coords, math.isqrt(c), k, request.dataset_path,
                                    random, request.progress)
        n, available = request.n_groups, len(all_groups)
        if available < n:
            warn(ParameterWarning(
                "n_groups", n, "at most the {available} groups that exist",
                facts={"available": available},
                template="only {available} groups exist but {n_groups} were requested; "
                         "using all of them"))
        if n >= available:
            # The old code took every group in order here, drawing nothing.
            return all_groups
        log.info("sampling %d of %d groups", n, available)
        return all_groups[random.choice(available, size=n, replace=False)]


def _cached_groups(points, gridsize: int, k: int, dataset_path, random,
                   progress: bool = False) -> np.ndarray:
    """All groups, from the cache file when a valid one exists, else computed and cached.

    A cache file that exists but cannot be read (another user's, on a shared
    disk) is neither used, removed nor replaced: the groups are computed
    without writing, so its owner's experiment keeps its groups.
    """
    x, y = points[:, 0], points[:, 1]
    checksums = legacy_cache.candidate_checksums(x, y)
    # Without a dataset path the file name holds the checksum, so an old cache
    # written for integer coordinates has the integer checksum in its name.
    names = [checksums[0]] if dataset_path is not None else list(checksums)
    unreadable = None
    for checksum in names:
        path = legacy_cache.cache_path(dataset_path, gridsize, k, checksum)
        try:
            all_groups = legacy_cache.read_cache(path, checksums, gridsize, k, len(points))
        except OSError as exc:
            log.warning("cannot read group cache %s (%s); computing the groups without "
                        "touching it", path, exc.strerror or exc)
            unreadable = path
            continue
        if all_groups is not None:
            return all_groups
    path = legacy_cache.cache_path(dataset_path, gridsize, k, checksums[0])
    log.info("no usable group cache at %s; enumerating all groups", path)
    all_groups = _all_groups(points, gridsize * gridsize, k, random, progress)
    if path == unreadable:
        return all_groups
    try:
        legacy_cache.write_cache(path, all_groups, checksums[0], gridsize, k)
    except OSError as exc:
        # The old code carried on without a cache when it could not write one.
        log.warning("could not write group cache %s (%s); continuing without it", path, exc)
    else:
        log.info("wrote group cache %s (%d groups)", path, len(all_groups))
    return all_groups


def _all_groups(points: np.ndarray, c: int, k: int, random=np.random,
                progress: bool = False) -> np.ndarray:
    """Every point's random C-subsets of its K+1 neighbourhood, as the old code drew them.

    The caller has checked that there are at least ``k + 1`` points. With
    ``progress`` a tqdm bar on stderr counts the points: this loop is what
    made the old first run take minutes at 10^6 points.
    """
    n_points = len(points)
    nn = neighbor_table(points, k)
    per_point = min(50, (k + 1) // c + 1)
    log.info("enumerating groups for %d points (%d per point)", n_points, per_point)
    choice = random.choice
    groups = []
    # This per-point loop over one random state is the old algorithm; its
    # order of draws is what makes a seed reproduce the old groups.
    for row in tqdm(nn, desc="legacy grouping", unit="point", disable=not progress,
                    file=sys.stderr):
        for _ in range(per_point):
            groups.append(sorted(choice(row, size=c, replace=False)))
    all_groups = np.unique(np.array(groups, dtype=np.int64), axis=0)
    log.info("found %d unique groups from %d points", len(all_groups), n_points)
    return all_groups


@hookimpl
def ptycho_grouping_strategies():
    return [LegacyGroupThenSample]
