"""CoverScan: groups chosen so that every scan position is used.

The default strategy draws seeds at random, so with ``M / C`` groups about a
third of the positions are never seen (and still a tenth at twice that);
for inference and evaluation sets, where the reconstruction is stitched from
every group, each unused position is a hole. This strategy builds groups
with the default's rules (a seed in column 0, then ``C - 1`` distinct
members among the seed's exact ``K`` nearest neighbours) but chooses them
greedily to cover the scan:

* The positions are visited in a boustrophedon sweep of strips :data:`STRIP`
  mean spacings high. Each group holds the first uncovered position ``u``: it
  is seeded at one of the :data:`CANDIDATES` positions among the next ``C``
  nearest to a spot a little way from ``u`` towards the uncovered ones (if
  its ``K`` nearest hold ``u``) or at ``u``, whichever brings the most new
  positions, ties going to the group that leaves fewest of the next ``C - 4``
  positions of the sweep uncovered (a look-ahead: those become holes that later
  groups fill with fewer new points; a candidate is not searched once one brings
  ``C`` and leaves none); its members are ``u``, then the seed's *uncovered* neighbours
  earliest in the sweep (fewer holes left behind; its farthest last, so the
  group stays compact), then its nearest covered ones.
* The sweep is cut into tiles of :data:`TILE` consecutive positions that each
  place one group per step, all at once (vectorised). A position claimed by
  two groups of a step goes to the lower tile; the other group is retried.
  Neighbours are searched only for the candidate seeds (about two a group).
* Afterwards, pairs of groups that alone cover few positions (at most
  :data:`_SMALL` x ``C`` each) are merged into one group, seeded at a point whose
  neighbour list, already searched, holds every position only the pair covers.
* The groups come out most new positions first, so a prefix of ``n`` groups
  covers at least the ``n`` largest counts.

About ``ceil(M / C)`` groups cover a scan (:meth:`CoverScan.min_groups_for_cover`
says how many exactly). Asked for fewer, the groups that bring the most new
positions are kept; asked for more, the extra groups are drawn as the default
strategy draws them. The rng only shifts the sweep's strips (and draws the
extra groups); ``sequential=True`` uses no randomness for the cover.
"""
from __future__ import annotations

import dataclasses
import logging
import weakref
from typing import Optional

import numpy as np

from ._warnings import warn
from .hookspecs import hookimpl
from .neighbors import NeighborIndex, as_neighbor_index
from .sample_then_group import SampleThenGroup
from .strategy import GroupingRequest, GroupingStrategy, Resolution, clamp_to_other_points
from .validation import check_oversampling_request

__all__ = ["CoverScan", "TILE", "STRIP", "CANDIDATES", "min_groups_for_cover"]

log = logging.getLogger(__name__)

#: Positions per tile of the sweep. Larger tiles pack a little tighter (fewer
#: tile borders) at more Python-level steps (about TILE / C).
TILE = 256
#: Height of the sweep's strips, in mean point spacings.
STRIP = 3.0
#: Candidate seeds searched besides the first uncovered point itself.
CANDIDATES = 2
# How far the candidate seeds are looked for from the first uncovered position towards the
# uncovered ones among the next C: this share of the distance to the (C-1)-th nearest of them.
_RIM = 0.35
# Look-ahead window: the next C - _LOOK_BACK positions of the sweep (none at gridsize 2,
# where it gained under 1% for 9% more searches).
_LOOK_BACK = 4
# Groups merged in pairs afterwards: those alone covering at most this share of C points.
_SMALL = 0.7


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
        rng = None if request.sequential else request.make_rng()
        return len(_cover(index, plan.neighbors, request.group_size, None, _shift(rng)))

    def _group(self, index: NeighborIndex, request: GroupingRequest) -> np.ndarray:
        n, c = request.n_groups, request.group_size
        if c == 1:
            return SampleThenGroup().group(index, request)
        rng = request.make_rng()
        plan = self._resolve_checked(request, index.n_points)  # group() emitted its notes
        groups = _cover(index, plan.neighbors, c, n, 0.0 if request.sequential else _shift(rng))
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


def _unit_positions(coords: np.ndarray) -> np.ndarray:
    """Positions moved to the origin and scaled by a power of two into ``[0, 1)``
    (exact, so the sweep and its geometry do not depend on the scan's scale)."""
    rel = coords / 2 - coords.min(axis=0) / 2  # halved: no overflow near float64's limit
    return np.ldexp(rel, -np.frexp(rel.max())[1]) if rel.max() > 0 else rel


def _shift(rng: Optional[np.random.Generator]) -> float:
    """Where the sweep's strips start (a fraction of a strip): the cover's one random draw."""
    return rng.uniform(0, 1) if rng is not None else 0.0


def _sweep_order(pos: np.ndarray, shift: float) -> np.ndarray:
    """Point indices in a boustrophedon sweep of strips :data:`STRIP` mean spacings high."""
    m = pos.shape[0]
    span = pos.max(axis=0)
    step = max(np.sqrt(span[0] * span[1] / m), span.max() / m)
    row = np.floor(pos[:, 1] / (STRIP * step) + shift) if step > 0 else np.zeros(m)
    return np.argsort(2 * row + np.where(row % 2 == 1, 1 - pos[:, 0], pos[:, 0]), kind="stable")


def _cover(index: NeighborIndex, k: int, c: int, limit: Optional[int],
           shift: float) -> np.ndarray:
    """The greedy cover (module docstring): all of it, or its ``limit`` groups that bring
    the most new points."""
    # The command asks for the cover's size (suggested_groups) and then for the cover:
    # the last cover of each index is kept, so that the second ask costs nothing.
    key = (k, c, shift)
    kept = _LAST_COVER.get(index)
    if kept is None or kept[0] != key:
        kept = _LAST_COVER[index] = (key, _full_cover(index, k, c, shift))
    return kept[1][:limit].copy()


#: Per neighbour index (dropped with it), its last cover: ``((K, C, shift), groups)``.
_LAST_COVER = weakref.WeakKeyDictionary()


def _full_cover(index: NeighborIndex, k: int, c: int, shift: float) -> np.ndarray:
    """Every group of the cover, most new points first, read-only (kept in ``_LAST_COVER``)."""
    m = index.n_points
    pos = _unit_positions(index.coords)
    queue = _sweep_order(pos, shift)
    at = np.arange(0, m, TILE)
    end, live = np.minimum(at + TILE, m), np.arange(at.size)
    state = _State(index, pos, k, c)
    state.rank[queue] = np.arange(m)
    while True:
        while live.size and state.covered[queue[at[live]]].any():  # to each tile's first
            at[live[state.covered[queue[at[live]]]]] += 1          # uncovered position
            live = live[at[live] < end[live]]
        if not live.size:
            break
        first = queue[at[live]]
        ahead = queue[np.minimum(at[live][:, None] + np.arange(1, c + 1), m - 1)]
        groups = state.best_groups(first, ahead)
        new = ~state.covered[groups]
        won = _resolve(groups, new)
        state.add(groups[won], new[won].sum(axis=1))
    groups = np.concatenate(state.out or [np.empty((0, c), np.intp)])
    n_new = np.concatenate(state.n_new or [np.empty(0, np.intp)])
    if len(groups):
        n_new[_merge_small(state, groups, n_new)] = -1  # merged away
    # Most new points first: a prefix of n groups covers at least their n largest counts.
    groups = groups[np.argsort(-n_new, kind="stable")[:np.count_nonzero(n_new >= 0)]]
    groups.flags.writeable = False  # kept in _LAST_COVER; callers get copies
    return groups


class _State:
    """Coverage so far, the neighbour lists searched so far and the groups chosen."""

    def __init__(self, index: NeighborIndex, pos: np.ndarray, k: int, c: int):
        self.index, self.pos, self.k, self.c = index, pos, k, c
        self.covered = np.zeros(len(pos), bool)
        self.known = np.zeros(len(pos), bool)
        self.nbrs, self.rank = np.empty((len(pos), k), np.intp), np.empty(len(pos), np.intp)
        self.out, self.n_new = [], []

    def neighbors(self, points: np.ndarray) -> np.ndarray:
        """``(..., K)`` neighbour lists of ``points``, searched once per point."""
        todo = points[~self.known[points]]
        if todo.size:
            todo = np.unique(todo)
            self.nbrs[todo] = self.index.neighbors(todo, self.k)
            self.known[todo] = True
        return self.nbrs[points]

    def best_groups(self, first: np.ndarray, ahead: np.ndarray) -> np.ndarray:
        """The groups holding each ``first`` (module docstring), the candidate seeds taken
        from the positions ``ahead`` of it in the sweep."""
        c = self.c
        rel = self.pos[ahead] - self.pos[first][:, None]
        free = ~self.covered[ahead]
        free[~free.any(axis=1)] = True  # none uncovered: towards all
        away = (rel * free[..., None]).sum(axis=1) / free.sum(axis=1)[:, None]
        norm = np.sqrt((away ** 2).sum(axis=1))
        # The spot: _RIM times the distance to the (C-1)-th nearest ahead, towards them.
        rim = _RIM * np.sqrt(np.partition((rel ** 2).sum(axis=2), c - 2, axis=1)[:, c - 2])
        rel -= (away * (rim / np.where(norm > 0, norm, 1))[:, None])[:, None]
        near = np.argsort((rel ** 2).sum(axis=2), axis=1, kind="stable")[:, :CANDIDATES]
        tries = np.column_stack([np.take_along_axis(ahead, near, axis=1), first])
        # Look-ahead: the next positions of the sweep a group leaves uncovered become holes
        # that later groups fill with fewer new points; they break ties in the new count.
        behind = ahead[:, :max(0, c - _LOOK_BACK)]
        seeds, rows = first.copy(), np.empty((first.size, self.k), np.intp)
        score, done = np.full(first.size, -1), np.zeros(first.size, bool)
        for col in range(tries.shape[1]):
            ask = np.flatnonzero(~done)
            p = tries[ask, col]
            r = self.neighbors(p)
            holds = (p == first[ask]) | (r == first[ask, None]).any(axis=1)
            new = ~self.covered[p] + np.minimum(c - 1, (~self.covered[r]).sum(axis=1))
            left = np.zeros_like(new)
            if behind.shape[1]:
                g = np.column_stack([p, self.members(r, first[ask])])
                left = (~self.covered[behind[ask]]
                        & ~(behind[ask][:, :, None] == g[:, None, :]).any(axis=2)).sum(axis=1)
            s = np.where(holds, new * (behind.shape[1] + 1) - left, -1)
            up = s > score[ask]
            ask = ask[up]
            score[ask], seeds[ask], rows[ask] = s[up], p[up], r[up]
            done[ask] = (new[up] == c) & (left[up] == 0)  # nothing better to find
        return np.column_stack([seeds, self.members(rows, first)])

    def members(self, rows: np.ndarray, first: np.ndarray) -> np.ndarray:
        """``C - 1`` of each row: ``first`` (if there), its uncovered points earliest in the
        sweep (the farthest last), then covered ones nearest first."""
        m, k = self.rank.size, self.k
        key = np.where(self.covered[rows], 2 * m + np.arange(k),
                       self.rank[rows] + m * (np.arange(k) == k - 1))
        key[rows == first[:, None]] = -1
        pick = np.argsort(key, axis=1, kind="stable")[:, :self.c - 1]
        return np.take_along_axis(rows, pick, axis=1)

    def add(self, groups: np.ndarray, n_new: np.ndarray) -> None:
        self.covered[groups] = True
        self.out.append(groups)
        self.n_new.append(n_new)


def _merge_small(state: "_State", groups: np.ndarray, n_new: np.ndarray) -> np.ndarray:
    """Merge pairs of groups that alone cover few points (at most :data:`_SMALL` x C each):
    one of them becomes a group seeded where an already searched neighbour list holds
    the points only the pair covers, the other goes. Returns the indices that go."""
    m, c = state.rank.size, state.c
    cnt = np.bincount(groups.ravel(), minlength=m)
    priv = cnt[groups] == 1
    npriv = priv.sum(axis=1)
    small = np.flatnonzero((npriv > 0) & (npriv <= c * _SMALL))
    own = np.full(m, -1)
    own[groups[small][priv[small]]] = np.repeat(small, npriv[small])
    # Candidate seeds: searched points in or next to the small groups, two of them in the hood.
    near = np.zeros(m, bool)
    near[groups[small]] = True
    near[state.nbrs[groups[small, 0]]] = True
    cand = np.flatnonzero(near & state.known)
    o = np.column_stack([own[cand], own[state.nbrs[cand]]])  # owners in the seed's hood
    two = (o >= 0).sum(axis=1) >= 2
    cand, o = cand[two], np.sort(o[two], axis=1)
    # Each group's count in each hood (runs of the sorted rows); it fits if all its points are.
    run = np.ones(o.shape, bool)
    run[:, 1:] = o[:, 1:] != o[:, :-1]
    at = np.flatnonzero(run)
    row, who = at // o.shape[1], o.ravel()[at]
    fit = (who >= 0) & (np.diff(np.append(at, o.size)) == npriv[who])
    row, who = row[fit], who[fit]
    at = np.flatnonzero(row[1:] == row[:-1]) + 1  # two groups fitting one hood
    i, j, seed = who[at - 1], who[at], cand[row[at]]
    # The points covered by no other group must all fit the new group (the seed and C - 1).
    pts = np.concatenate([groups[i], groups[j]], axis=1)
    in_i = (pts[:, :, None] == groups[i][:, None, :]).any(axis=2)
    in_j = (pts[:, :, None] == groups[j][:, None, :]).any(axis=2)
    once = np.ones_like(in_i)
    once[:, c:] = ~in_i[:, c:]  # a point of both counted once
    orphan = (cnt[pts] == in_i.astype(int) + in_j) & once
    nb = state.nbrs[seed]
    inside = (pts[:, :, None] == nb[:, None, :]).any(axis=2) | (pts == seed[:, None])
    ok = ~(orphan & ~inside).any(axis=1) & ((orphan & (pts != seed[:, None])).sum(axis=1) < c)
    won = np.flatnonzero(ok)[_resolve(pts[ok], once[ok])]  # pairs sharing no point
    i, j, seed, pts, orphan, nb = (x[won] for x in (i, j, seed, pts, orphan, nb))
    take = (nb[:, :, None] == np.where(orphan, pts, -1)[:, None, :]).any(axis=2)
    pick = np.argsort(~take, axis=1, kind="stable")[:, :c - 1]  # those, then nearest first
    groups[i] = np.column_stack([seed, np.take_along_axis(nb, pick, axis=1)])
    n_new[i] = orphan.sum(axis=1)
    log.debug("%d pairs of groups merged", len(i))
    return j


def _resolve(groups: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Which groups win: those that own every uncovered point they claim. A point
    claimed by several groups of a step goes to the first (the lowest tile), so the
    first group of every conflict wins and each step makes progress."""
    who = np.broadcast_to(np.arange(len(groups))[:, None], groups.shape)[new]
    pts = groups[new]
    by = np.lexsort((who, pts))
    pts, who = pts[by], who[by]
    won = np.ones(len(groups), bool)
    won[who[1:][pts[1:] == pts[:-1]]] = False
    return won


@hookimpl
def ptycho_grouping_strategies():
    return [CoverScan]
