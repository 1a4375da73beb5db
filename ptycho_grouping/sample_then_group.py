"""SampleThenGroup: draw the seed points first, then find neighbours for them only.

This is the default strategy. Its cost is one neighbour query per *seed*
(plus building the tree once per coordinate set), instead of a group
enumeration over every scan point as the legacy code did.
"""
from __future__ import annotations

import itertools
import logging
import math

import numpy as np

from ._warnings import warn
from .hookspecs import hookimpl
from .neighbors import NeighborIndex
from .strategy import GroupingRequest, GroupingStrategy

__all__ = ["SampleThenGroup"]

log = logging.getLogger(__name__)

# Largest per-seed number of member combinations that is enumerated as a
# table when oversampling; beyond it combinations are drawn at random.
_MAX_COMBINATION_TABLE = 1 << 14


class SampleThenGroup(GroupingStrategy):
    """Uniform seeds without replacement, members from the seed's K nearest neighbours.

    * ``group_size == 1``: the groups are ``min(n_groups, M)`` seeds.
    * ``group_size == C > 1``: column 0 is the seed, followed by ``C - 1``
      distinct points drawn uniformly from its ``K`` nearest neighbours (the
      seed excluded by index). With ``sequential=True`` the seeds are the first
      points and the members their ``C - 1`` nearest neighbours.
    * ``n_groups > M`` with ``C > 1`` requires ``enable_oversampling=True``:
      every point is a seed ``floor(n/M)`` or ``ceil(n/M)`` times, members come
      from a pool of ``neighbor_pool_size`` neighbours, and no two groups are
      the same set of indices.

    The work is vectorised over seeds; NumPy's global random state is never
    read or written.
    """

    name = "sample_then_group"
    summary = "sample seed points first, then group their nearest neighbours (default)"

    def _group(self, index: NeighborIndex, request: GroupingRequest) -> np.ndarray:
        n_points = index.n_points
        n, c = request.n_groups, request.group_size
        rng = request.make_rng()

        if c == 1:
            if n > n_points:
                warn(f"n_groups={n} exceeds the number of scan points ({n_points}) "
                     f"for group_size=1; returning {n_points} groups")
                n = n_points
            return self._seeds(rng, n_points, n, request.sequential)[:, None]

        if n > n_points:
            return self._oversample(index, request, rng)

        k = _effective_k(request.neighbors, n_points, "neighbors")
        seeds = self._seeds(rng, n_points, n, request.sequential)
        nbrs = index.neighbors(seeds, k)
        if request.sequential:
            members = nbrs[:, :c - 1]
        else:
            members = np.take_along_axis(nbrs, _random_columns(rng, n, k, c - 1), axis=1)
        return np.column_stack([seeds, members])

    @staticmethod
    def _seeds(rng, n_points: int, n: int, sequential: bool) -> np.ndarray:
        if sequential:
            return np.arange(n, dtype=np.intp)
        return rng.choice(n_points, size=n, replace=False).astype(np.intp, copy=False)

    def _oversample(self, index: NeighborIndex, request: GroupingRequest, rng) -> np.ndarray:
        n_points = index.n_points
        n, c = request.n_groups, request.group_size
        if not request.enable_oversampling:
            raise ValueError(
                f"n_groups={n} is larger than the number of scan points ({n_points}); "
                "set enable_oversampling=True to draw several groups per seed point")
        pool_name = "neighbor_pool_size" if request.neighbor_pool_size else "neighbors"
        pool = _effective_k(request.neighbor_pool_size or request.neighbors, n_points, pool_name)
        if pool < c:
            raise ValueError(f"{pool_name}={pool} must be at least group_size={c} "
                             "when oversampling")
        per_seed = math.comb(pool, c - 1)
        if n > n_points * per_seed:
            raise ValueError(
                f"n_groups={n} exceeds the {n_points * per_seed} distinct groups available "
                f"({n_points} seeds x C({pool}, {c - 1}) member choices); lower n_groups "
                f"or raise {pool_name}")

        # Balanced seed use: everyone q times, r points once more.
        q, r = divmod(n, n_points)
        counts = np.full(n_points, q, dtype=np.intp)
        extra = (np.arange(r) if request.sequential
                 else rng.choice(n_points, size=r, replace=False))
        counts[extra] += 1
        seeds = np.repeat(np.arange(n_points, dtype=np.intp), counts)
        pool_idx = index.neighbors(np.arange(n_points), pool)

        if per_seed <= _MAX_COMBINATION_TABLE:
            table = np.array(list(itertools.combinations(range(pool), c - 1)), dtype=np.intp)
            choice = _distinct_choices(rng, counts, per_seed, request.sequential)
            cols = table[choice]
        else:
            cols = _distinct_random_subsets(rng, counts, pool, c - 1)
        members = np.take_along_axis(pool_idx[seeds], cols, axis=1)
        if not request.sequential:
            members = np.take_along_axis(members, _random_columns(rng, n, c - 1, c - 1), axis=1)
        groups = np.column_stack([seeds, members])
        groups = _replace_duplicate_sets(groups, pool_idx, rng, request.sequential)
        if not request.sequential:
            groups = groups[rng.permutation(n)]
        return groups


def _effective_k(k: int, n_points: int, name: str) -> int:
    """Clamp a neighbour count to the ``n_points - 1`` other points there are."""
    if k > n_points - 1:
        warn(f"{name}={k} exceeds the {n_points - 1} other scan points; using {n_points - 1}")
        return n_points - 1
    return k


def _random_columns(rng, n_rows: int, n_cols: int, take: int) -> np.ndarray:
    """Per row, ``take`` distinct column indices in uniformly random order."""
    return np.argsort(rng.random((n_rows, n_cols)), axis=1)[:, :take]


def _distinct_choices(rng, counts: np.ndarray, n_options: int, sequential: bool) -> np.ndarray:
    """Per seed, ``counts[s]`` distinct option numbers in ``[0, n_options)``.

    Returned flat, in seed order. Counts take at most two values (q, q+1), so
    Floyd's sampling runs once per count value, vectorised over seeds.
    """
    out = np.empty(counts.sum(), dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for k in np.unique(counts):
        if k == 0:
            continue
        rows = np.flatnonzero(counts == k)
        if sequential:
            chosen = np.broadcast_to(np.arange(k), (rows.size, k))
        else:
            chosen = np.empty((rows.size, k), dtype=np.intp)
            for i, j in enumerate(range(n_options - k, n_options)):
                t = rng.integers(0, j + 1, size=rows.size)
                taken = (chosen[:, :i] == t[:, None]).any(axis=1)
                chosen[:, i] = np.where(taken, j, t)
        out[(starts[rows][:, None] + np.arange(k)).ravel()] = chosen.ravel()
    return out


def _distinct_random_subsets(rng, counts: np.ndarray, pool: int, size: int) -> np.ndarray:
    """Random ``size``-subsets of ``range(pool)``, distinct within each seed.

    Used when there are too many combinations to tabulate, so collisions are
    rare and are simply redrawn.
    """
    owner = np.repeat(np.arange(counts.size), counts)
    cols = np.sort(_random_columns(rng, owner.size, pool, size), axis=1)
    while True:
        keyed = np.column_stack([owner, cols])
        _, first = np.unique(keyed, axis=0, return_index=True)
        dup = np.setdiff1d(np.arange(owner.size), first)
        if dup.size == 0:
            return cols
        cols[dup] = np.sort(_random_columns(rng, dup.size, pool, size), axis=1)


def _replace_duplicate_sets(groups, pool_idx, rng, sequential: bool) -> np.ndarray:
    """Make every group a distinct set of indices, keeping each group's seed.

    Two different seeds can draw the same set ({a, b, ...} from a and from b).
    That is rare, so the repairs run in Python over the duplicates only.
    """
    keys = np.sort(groups, axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    dup = np.setdiff1d(np.arange(len(groups)), first)
    if dup.size == 0:
        return groups
    log.debug("replacing %d groups that repeat another group's set", dup.size)
    c = groups.shape[1]
    pool = pool_idx.shape[1]
    seen = {tuple(row) for row in keys[first]}
    groups = groups.copy()
    all_combos = np.array(list(itertools.combinations(range(pool), c - 1)), dtype=np.intp)
    for g in dup:
        seed = groups[g, 0]
        combos = all_combos if sequential else all_combos[rng.permutation(len(all_combos))]
        for combo in combos:
            row = np.concatenate([[seed], pool_idx[seed, combo]])
            key = tuple(np.sort(row))
            if key not in seen:
                seen.add(key)
                groups[g] = row
                break
        else:
            use = np.bincount(groups[:, 0])
            raise ValueError(
                f"could not draw n_groups={len(groups)} distinct groups with every point "
                f"a seed {use.min()} or {use.max()} times: these points offer "
                f"{_count_distinct_sets(pool_idx, c)} distinct groups in all with a pool "
                f"of {pool} neighbours; lower n_groups or raise neighbor_pool_size")
    return groups


def _count_distinct_sets(pool_idx: np.ndarray, c: int) -> int:
    """Number of distinct index sets {seed} + (c-1 of its pool) over all seeds."""
    n_points, pool = pool_idx.shape
    table = np.array(list(itertools.combinations(range(pool), c - 1)), dtype=np.intp)
    seeds = np.repeat(np.arange(n_points), len(table))
    members = pool_idx[seeds, np.tile(table, (n_points, 1)).T].T
    rows = np.sort(np.column_stack([seeds, members]), axis=1)
    return len(np.unique(rows, axis=0))


@hookimpl
def ptycho_grouping_strategies():
    return [SampleThenGroup]
