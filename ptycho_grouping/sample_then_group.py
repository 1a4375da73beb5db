"""SampleThenGroup: draw the seed points first, then find neighbours for them only.

This is the default strategy. Its cost is one pass over the coordinates
(binning them, see :mod:`~ptycho_grouping.neighbors`) plus an exact
neighbour search around each *seed*, instead of a group enumeration over
every scan point as the legacy code did. A second draw on the same
:class:`~ptycho_grouping.neighbors.NeighborIndex` reuses the bins.
"""
from __future__ import annotations

import logging

import numpy as np

from ._oversampling import OversamplingPlan, random_columns
from .errors import ParameterWarning
from .hookspecs import hookimpl
from .neighbors import NeighborIndex
from .strategy import GroupingRequest, GroupingStrategy, Resolution, clamp_to_other_points
from .validation import check_oversampling_request

__all__ = ["SampleThenGroup"]

log = logging.getLogger(__name__)


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
      the same set of indices. Exactly ``n_groups`` groups come back whenever
      such groups exist (a fast random draw, and a maximum-flow assignment
      when that runs out); otherwise a ``ValueError`` states how many
      distinct groups there are and how many the balanced seed use allows.

    The work is vectorised over seeds; NumPy's global random state is never
    read or written.
    """

    name = "sample_then_group"
    summary = "sample seed points first, then group their nearest neighbours (default)"

    def check_request(self, request: GroupingRequest, n_points: int) -> None:
        super().check_request(request, n_points)
        if request.group_size > 1 and request.n_groups > n_points:
            check_oversampling_request(request, n_points)

    def _resolve_checked(self, request: GroupingRequest, n_points: int) -> Resolution:
        # Gridsize 1 gives at most M groups; K and the pool are clamped to the
        # M - 1 other points; each change comes with a note.
        n, c, k = request.n_groups, request.group_size, request.neighbors
        if c == 1:
            if n <= n_points:
                return Resolution(n, k)
            return Resolution(n_points, k, notes=(ParameterWarning(
                "n_groups", n, "at most the number of scan points ({n_points})",
                related={"group_size": c}, facts={"n_points": n_points},
                template="{n_groups} exceeds the number of scan points ({n_points}) for "
                         "{group_size}; returning {n_points} groups"),))
        notes = []
        if n > n_points:  # oversampling: members come from the pool, K only sizes it by default
            pool_name = "neighbor_pool_size" if request.neighbor_pool_size else "neighbors"
            pool = clamp_to_other_points(request.neighbor_pool_size or k, pool_name, n_points, notes)
            return Resolution(n, min(k, n_points - 1), pool, tuple(notes))
        return Resolution(n, clamp_to_other_points(k, "neighbors", n_points, notes), None, tuple(notes))

    def _group(self, index: NeighborIndex, request: GroupingRequest) -> np.ndarray:
        n_points = index.n_points
        c = request.group_size
        rng = request.make_rng()
        plan = self._resolve_checked(request, n_points)  # group() checked it, emitted the notes
        n, k = plan.n_groups, plan.neighbors

        if c == 1:
            return self._seeds(rng, n_points, n, request.sequential)[:, None]

        if n > n_points:
            return self._oversample(index, request, rng, plan.pool)

        seeds = self._seeds(rng, n_points, n, request.sequential)
        nbrs = index.neighbors(seeds, k)
        if request.sequential:
            members = nbrs[:, :c - 1]
        else:
            members = np.take_along_axis(nbrs, random_columns(rng, n, k, c - 1), axis=1)
        return np.column_stack([seeds, members])

    @staticmethod
    def _seeds(rng, n_points: int, n: int, sequential: bool) -> np.ndarray:
        if sequential:
            return np.arange(n, dtype=np.intp)
        return rng.choice(n_points, size=n, replace=False).astype(np.intp, copy=False)

    def _oversample(self, index: NeighborIndex, request: GroupingRequest, rng,
                    pool: int) -> np.ndarray:
        n_points = index.n_points
        n, c = request.n_groups, request.group_size
        pool_name = "neighbor_pool_size" if request.neighbor_pool_size else "neighbors"
        plan = OversamplingPlan(index, pool, c, rng, request.sequential, n)
        if n > n_points * plan.per_seed:
            raise plan.capacity_error(n, pool_name, attempted=False)
        if 2 * n > n_points * plan.per_seed:
            # Near the per-seed bound, sets shared between seeds may make the
            # request impossible; count them (when cheap) before drawing.
            distinct = plan.count_distinct()
            if distinct is not None and n > distinct:
                raise plan.capacity_error(n, pool_name, attempted=False)

        # Balanced seed use: everyone q times, r points once more.
        q, r = divmod(n, n_points)
        counts = np.full(n_points, q, dtype=np.intp)
        extra = (np.arange(r) if request.sequential
                 else rng.choice(n_points, size=r, replace=False))
        counts[extra] += 1
        seeds = np.repeat(np.arange(n_points, dtype=np.intp), counts)
        cols = plan.first_draw(counts)
        # Fast path: per-seed draws, then the rare repeated sets redrawn one by
        # one. Only when a seed runs out of unused sets is the assignment
        # solved exactly, as a flow problem.
        if not plan.repair(seeds, cols):
            log.debug("greedy oversampling ran out of sets; solving the assignment exactly")
            exact = plan.exact(seeds, cols, counts, q, r)
            if exact is None:
                raise plan.capacity_error(n, pool_name, attempted=True)
            seeds, cols = exact
        members = plan.pool_idx[seeds[:, None], cols]
        if not request.sequential:
            members = np.take_along_axis(members, random_columns(rng, n, c - 1, c - 1), axis=1)
        groups = np.column_stack([seeds, members])
        if not request.sequential:
            groups = groups[rng.permutation(n)]
        return groups


@hookimpl
def ptycho_grouping_strategies():
    return [SampleThenGroup]
