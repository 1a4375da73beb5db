"""CoverScan: groups chosen so that every scan position is used.

The default strategy draws seeds at random, so with ``M / C`` groups about a
third of the positions are never seen (and still a tenth at twice that);
for inference and evaluation sets, where the reconstruction is stitched from
every group, each unused position is a hole. This strategy builds groups
with the default's rules (a seed in column 0, then ``C - 1`` distinct
members among the seed's exact ``K`` nearest neighbours) but chooses them
greedily to cover the scan:

* Passes with a decreasing threshold ``t = C, C - 1, ..., 1``. In a pass,
  an uncovered position ``s`` becomes a seed when ``s`` plus the uncovered
  points among its ``K`` nearest neighbours number at least ``t``; its members
  are its nearest *uncovered* neighbours first, then its nearest covered
  ones. The last pass makes every remaining position a seed, so the scan is
  covered; the first passes pick groups that bring ``C`` new positions each.
* The positions are visited in a Z-order (Morton) sweep, which packs groups
  tightly. So that the work is vectorised, the sweep is cut into tiles of
  :data:`TILE` consecutive positions and every tile advances one position per
  step, all tiles at once. Two candidates of one step that claim the same
  uncovered position are resolved in favour of the lower tile; the other is
  retried in the next step against what is then covered. Neighbours are
  searched only for positions still uncovered when visited.

About ``ceil(M / C)`` groups cover a scan (:meth:`CoverScan.min_groups_for_cover`
says how many exactly). Asked for fewer, the groups that bring the most new
positions come first and the call stops there; asked for more, the extra
groups are drawn as the default strategy draws them. The rng only shifts the
sweep's grid (and draws the extra groups); ``sequential=True`` uses no
randomness for the cover.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import numpy as np

from ._warnings import warn
from .hookspecs import hookimpl
from .neighbors import NeighborIndex, as_neighbor_index
from .sample_then_group import SampleThenGroup
from .strategy import GroupingRequest, GroupingStrategy, Resolution, clamp_to_other_points
from .validation import check_oversampling_request

__all__ = ["CoverScan", "TILE", "min_groups_for_cover"]

log = logging.getLogger(__name__)

#: Positions per tile of the sweep: the number of steps per pass. Larger tiles
#: pack a little tighter (fewer tile borders) at more Python-level steps.
TILE = 64
# Bits per axis of the Morton key (two axes fit an int64 comfortably).
_BITS = 15


class CoverScan(GroupingStrategy):
    """Greedy groups that use every scan position; seed first, members among its K nearest.

    ``n_groups`` at least :meth:`min_groups_for_cover` (about ``ceil(M/C)``):
    every position is in a group, the extra groups drawn as
    :class:`~ptycho_grouping.sample_then_group.SampleThenGroup` draws them.
    Fewer: the groups that add the most new positions, so that ``n`` groups
    cover close to ``n * C`` positions. ``group_size == 1``: as the default
    (every position once when ``n_groups >= M``).
    """

    name = "cover_scan"
    summary = "greedy groups that use every scan position (about M/C groups cover a scan)"

    def check_request(self, request: GroupingRequest, n_points: int) -> None:
        super().check_request(request, n_points)
        if request.group_size > 1 and request.n_groups > n_points:
            check_oversampling_request(request, n_points)

    def _resolve_checked(self, request: GroupingRequest, n_points: int) -> Resolution:
        # The cover searches K neighbours whatever n_groups is; the extra
        # groups beyond a cover are the default's, which clamps its pool too.
        if request.group_size == 1:
            return SampleThenGroup().resolve(request, n_points)
        notes = []
        k = clamp_to_other_points(request.neighbors, "neighbors", n_points, notes)
        pool = None
        if request.n_groups > n_points:
            pool = (clamp_to_other_points(request.neighbor_pool_size, "neighbor_pool_size",
                                          n_points, notes)
                    if request.neighbor_pool_size else k)
        return Resolution(request.n_groups, k, pool, tuple(notes))

    def suggested_groups(self, coords, request: GroupingRequest) -> Optional[int]:
        """:meth:`min_groups_for_cover`: with no count given, use every position once over."""
        return self._cover_size(as_neighbor_index(coords), request, emit=False)

    def min_groups_for_cover(self, coords, request: GroupingRequest) -> int:
        """Groups needed to use every position, for these points, ``K``, ``C`` and rng.

        ``request.n_groups`` is ignored. With an int rng (or ``sequential``),
        asking :meth:`group` for this many groups with the same request
        covers every position.
        """
        return self._cover_size(as_neighbor_index(coords), request, emit=True)

    def _cover_size(self, index: NeighborIndex, request: GroupingRequest, emit: bool) -> int:
        plan = self.resolve(dataclasses.replace(request, n_groups=1), index.n_points)
        if request.group_size == 1:
            return index.n_points
        for note in plan.notes if emit else ():
            warn(note)
        return len(_cover(index, plan.neighbors, request.group_size, None, _sweep_rng(request)))

    def _group(self, index: NeighborIndex, request: GroupingRequest) -> np.ndarray:
        n, c = request.n_groups, request.group_size
        if c == 1:
            return SampleThenGroup().group(index, request)
        rng = request.make_rng()
        plan = self._resolve_checked(request, index.n_points)  # group() emitted its notes
        groups = _cover(index, plan.neighbors, c, n, None if request.sequential else rng)
        if len(groups) < n:
            log.debug("%d groups cover the scan; %d more drawn as the default does",
                      len(groups), n - len(groups))
            # Already-clamped values, so the default does not note the clamp
            # again (unless M == C, where the clamped K is below its minimum).
            k = plan.neighbors if plan.neighbors >= self.min_neighbors(c) else request.neighbors
            extra = SampleThenGroup().group(index, dataclasses.replace(
                request, n_groups=n - len(groups), rng=rng, neighbors=k,
                neighbor_pool_size=plan.pool if request.neighbor_pool_size else None))
            groups = np.concatenate([groups, extra])
        return groups


def min_groups_for_cover(coords, request: GroupingRequest) -> int:
    """Groups :class:`CoverScan` needs to use every position (see its method)."""
    return CoverScan().min_groups_for_cover(coords, request)


def _sweep_rng(request: GroupingRequest) -> Optional[np.random.Generator]:
    return None if request.sequential else request.make_rng()


def _morton_order(pos: np.ndarray, rng: Optional[np.random.Generator]) -> np.ndarray:
    """Point indices in Z-order of a grid shifted by a random offset (none without rng)."""
    # Halved first so that the extent of coordinates near float64's limit cannot overflow.
    rel = pos / 2 - pos.min(axis=0) / 2
    span = float(rel.max())
    half = 1 << (_BITS - 1)
    scale = (half - 1) / span if span > 0 else 0.0
    shift = rng.uniform(0, half, 2) if rng is not None else np.zeros(2)
    q = (rel * scale + shift).astype(np.int64)
    key = _spread_bits(q[:, 0]) | (_spread_bits(q[:, 1]) << 1)
    return np.argsort(key, kind="stable")


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Insert a zero bit after each of the low 16 bits (Morton interleave)."""
    v = v & 0xFFFF
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    return (v | (v << 1)) & 0x55555555


def _cover(index: NeighborIndex, k: int, c: int, limit: Optional[int],
           rng: Optional[np.random.Generator]) -> np.ndarray:
    """The greedy cover (module docstring), stopped after ``limit`` groups if given."""
    m = index.n_points
    order = _morton_order(index.coords, rng)
    tile = np.empty(m, np.intp)
    tile[order] = np.arange(m) // TILE
    state = _State(index, k, c, m)
    for threshold in range(c, 0, -1):
        queue = order[~state.covered[order]]
        if queue.size == 0:
            break
        tiles, starts, counts = np.unique(tile[queue], return_index=True, return_counts=True)
        ptr = np.zeros(tiles.size, np.intp)
        live = np.arange(tiles.size)
        while live.size:
            seeds = queue[starts[live] + ptr[live]]
            free = ~state.covered[seeds]
            ptr[live[~free]] += 1
            live_f, seeds = live[free], seeds[free]
            ok, seeds, members, new = state.seeded(seeds, threshold)
            ptr[live_f[~ok]] += 1
            live_f = live_f[ok]
            won = _resolve(seeds, members, new)
            groups = np.column_stack([seeds[won], members[won]])
            ptr[live_f[won]] += 1
            if limit is not None and state.n_out + len(groups) >= limit:
                return state.finish(groups, limit, rng)
            state.add(groups)
            live = live[ptr[live] < counts[live]]
    return state.finish(None, None, rng)


class _State:
    """Coverage so far, the neighbour lists searched so far and the groups chosen."""

    def __init__(self, index: NeighborIndex, k: int, c: int, m: int):
        self.index, self.k, self.c = index, k, c
        self.covered = np.zeros(m, bool)
        self.nbrs = np.empty((m, k), np.intp)
        self.known = np.zeros(m, bool)
        self.out, self.n_out = [], 0

    def neighbors(self, points: np.ndarray) -> np.ndarray:
        """``(..., K)`` neighbour lists of ``points``, searched once per point."""
        todo = points[~self.known[points]]
        if todo.size:
            todo = np.unique(todo)
            self.nbrs[todo] = self.index.neighbors(todo, self.k)
            self.known[todo] = True
        return self.nbrs[points]

    def _members(self, rows: np.ndarray):
        """``C - 1`` of each row: its uncovered points, then covered ones, nearest first."""
        k = self.k
        taken = self.covered[rows]
        key = taken * k + np.arange(k)
        pick = np.argsort(key, axis=1)[:, :self.c - 1]
        return (np.take_along_axis(rows, pick, axis=1),
                ~np.take_along_axis(taken, pick, axis=1))

    def seeded(self, seeds: np.ndarray, threshold: int):
        """Groups seeded at uncovered ``seeds`` bringing at least ``threshold`` new points."""
        rows = self.neighbors(seeds)
        free = self.k - self.covered[rows].sum(axis=1)
        ok = 1 + np.minimum(self.c - 1, free) >= threshold
        members, new = self._members(rows[ok])
        return ok, seeds[ok], members, new

    def add(self, groups: np.ndarray) -> None:
        self.covered[groups] = True
        self.out.append(groups)
        self.n_out += len(groups)

    def finish(self, last, limit, rng) -> np.ndarray:
        if last is not None:
            keep = limit - self.n_out
            if rng is not None and keep < len(last):
                last = last[np.sort(rng.choice(len(last), keep, replace=False))]
            self.out.append(last[:keep])
        return np.concatenate(self.out) if self.out else np.empty((0, self.c), np.intp)


def _resolve(seeds: np.ndarray, members: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Which candidates win: those that own every uncovered point they claim.

    A point claimed by several candidates of a step goes to the first (the
    lowest tile); the first candidate of every conflict owns all its points,
    so each step makes progress.
    """
    n = seeds.size
    cand = np.arange(n)
    pts = np.concatenate([seeds, members[new]])
    who = np.concatenate([cand, np.broadcast_to(cand[:, None], members.shape)[new]])
    by = np.lexsort((who, pts))
    pts, who = pts[by], who[by]
    first = np.ones(pts.size, bool)
    first[1:] = pts[1:] != pts[:-1]
    won = np.ones(n, bool)
    won[who[~first]] = False
    return won


@hookimpl
def ptycho_grouping_strategies():
    return [CoverScan]
