"""Validated scan coordinates and an exact, grid-pruned nearest-neighbour search.

The exactness contract: :meth:`NeighborIndex.neighbors` returns what a
brute-force search would, nearest first, points at equal (squared, float64)
distance ordered by point index, the seed itself excluded by index. Every
internal path obeys that rule, so the answer never depends on which path
produced it.

How the work stays near one pass over the coordinates:

* The points are binned into square cells sized from the point density (one
  vectorised pass). A seed's candidates are the points in the cells around
  it; its K nearest among them are *certified* when the K-th distance is
  strictly smaller than the distance from the seed to the edge of the
  searched window (with a margin far above float rounding), so no point
  outside the window can be nearer or tie.
* When only a few seeds are asked for, only the points in their windows are
  sorted; a full binning is built (and kept) on a second call or for a large
  draw, after which a call costs O(n K).
* Seeds that cannot be certified (sparse regions, crowded or coincident
  positions) go to a k-d tree over the *distinct* positions, whose answers
  are expanded to points and certified the same way.

Distances are computed on the coordinates multiplied by a power of two that
keeps their squares inside float64's range: an exact operation, so huge and
tiny scans group exactly as the same scan at ordinary magnitudes.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from .errors import InvalidParameterError
from .validation import check_coords

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

__all__ = ["NeighborIndex", "as_neighbor_index", "kd_tree"]

log = logging.getLogger(__name__)

# Up to this many points, a tree over all of them is cheaper than binning.
_SMALL = 1 << 13
# Draws of at least this many seeds are searched on every core.
_PARALLEL_QUERY_MIN = 4096
# Points per grid cell aimed at: small enough to keep candidate lists short,
# large enough that a 3x3 window holds the usual K of 4-16.
_OCCUPANCY = 3.0
# A seed whose window holds more candidates than this is left to the tree
# (crowded or coincident positions would make its candidate list long).
_MAX_CANDIDATES = 256
# Safety margin, in cells, between the K-th distance and the window edge;
# float rounding of cell coordinates is many orders of magnitude smaller.
_MARGIN_CELLS = 1e-6
# Seeds processed per block: bounds temporary memory at a few tens of MiB.
_BLOCK = 1 << 13
# Threads for a large draw (blocks of seeds are independent).
_WORKERS = os.cpu_count() or 1
# |coordinate| range in which distances are computed without rescaling: the
# squares of differences then neither overflow nor lose normal precision.
_SAFE_EXPONENTS = (-400, 500)
_TARGET_EXPONENT = 509


def kd_tree(points: np.ndarray, **options) -> "cKDTree":
    """``scipy.spatial.cKDTree(points, **options)``, SciPy imported on first use: its
    import costs about 0.2 s, which every process that never searches (the command's
    other subcommands, the cleaner, measuring children) would otherwise pay at start."""
    from scipy.spatial import cKDTree
    return cKDTree(points, **options)


def distance_exponent(lo, hi) -> int:
    """``e`` such that distances are taken on ``coords * 2**e``.

    ``lo`` and ``hi`` are the per-axis extremes of the coordinates. 0 for
    ordinary magnitudes; otherwise the exponent that brings the largest
    ``|coordinate|`` near ``2**509``, so that squared differences cannot
    overflow (huge scans) or underflow (tiny ones). Multiplying by a power of
    two is exact, so the neighbour order is that of the unscaled scan.
    """
    largest = max(float(np.max(np.abs(lo))), float(np.max(np.abs(hi))))
    if largest == 0.0:
        return 0
    exponent = math.frexp(largest)[1]
    if _SAFE_EXPONENTS[0] <= exponent <= _SAFE_EXPONENTS[1]:
        return 0
    return _TARGET_EXPONENT - exponent


def _column_extremes(arr: np.ndarray):
    """Per-column minimum and maximum (``min(axis=0)`` is many times slower on (M, 2))."""
    lo = np.array([arr[:, 0].min(), arr[:, 1].min()])
    hi = np.array([arr[:, 0].max(), arr[:, 1].max()])
    return lo, hi


def _select(d2: np.ndarray, idx: np.ndarray, k: int):
    """Per row, the ``k`` entries of least (squared distance, point index), in that order.

    ``d2`` and ``idx`` are ``(n, L)``, ``inf`` marking entries that are not
    candidates. Returns the point indices ``(n, k)`` and the k-th squared
    distance (``inf`` where a row has fewer than ``k`` candidates).
    """
    n, width = d2.shape
    if width < k:
        return np.zeros((n, k), np.intp), np.full(n, np.inf)
    part = np.argpartition(d2, k - 1, axis=1)[:, :k]
    near = np.take_along_axis(idx, part, axis=1)
    near_d = np.take_along_axis(d2, part, axis=1)
    kth = near_d.max(axis=1)
    # Rows where a point left out ties the k-th distance: take every point
    # at or below it, so that the index decides among the tied ones.
    tied = np.flatnonzero((d2 <= kth[:, None]).sum(axis=1) > k)
    if tied.size:
        rows, cols = np.nonzero(d2[tied] <= kth[tied, None])
        counts = np.bincount(rows, minlength=tied.size)
        slot = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
        wide = np.full((tied.size, int(counts.max())), np.iinfo(np.intp).max, np.intp)
        wide_d = np.full(wide.shape, np.inf)
        wide[rows, slot] = idx[tied[rows], cols]
        wide_d[rows, slot] = d2[tied[rows], cols]
        wide, wide_d = _order(wide, wide_d)
        near[tied], near_d[tied] = wide[:, :k], wide_d[:, :k]
    near, _ = _order(near, near_d)
    near[~np.isfinite(kth)] = 0
    return near, kth


def _order(near: np.ndarray, dist: np.ndarray):
    """Sort each row by (distance, index)."""
    by = np.lexsort((near, dist), axis=1)
    return np.take_along_axis(near, by, axis=1), np.take_along_axis(dist, by, axis=1)


def _k_nearest(pos: np.ndarray, seeds: np.ndarray, cand: np.ndarray, k: int):
    """:func:`_select` over candidate point indices ``cand`` (``(n, L)``, -1
    padded); the seed is excluded by index."""
    valid = (cand >= 0) & (cand != seeds[:, None])
    safe = np.where(valid, cand, 0)
    d2 = (pos[safe, 0] - pos[seeds, 0][:, None]) ** 2
    d2 += (pos[safe, 1] - pos[seeds, 1][:, None]) ** 2
    d2[~valid] = np.inf
    return _select(d2, cand, k)


def _gather(order: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rows of ``order[start:start+count]`` runs, concatenated per row, padded with -1.

    ``starts`` and ``counts`` are ``(n, w)``: w runs per row.
    """
    n = starts.shape[0]
    per_row = counts.sum(axis=1)
    width = int(per_row.max()) if n else 0
    out = np.full((n, width), -1, dtype=np.intp)
    flat_counts = counts.ravel()
    total = int(flat_counts.sum())
    run_first = np.cumsum(flat_counts) - flat_counts
    src = np.repeat(starts.ravel() - run_first, flat_counts) + np.arange(total)
    rows = np.repeat(np.arange(n), per_row)
    slot = np.arange(total) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    out[rows, slot] = order[src]
    return out


class _Bins:
    """Points sorted by cell number, with their positions in that order.

    A window row (cells ``(cx, cy - r) .. (cx, cy + r)``) has consecutive
    cell numbers, so its points are one contiguous run here. The last
    position is a sentinel at infinity, for padding.
    """

    def __init__(self, pos: np.ndarray, cell_of: np.ndarray, points=None, n_cells=None):
        cells = cell_of if points is None else cell_of[points]
        by_cell = np.argsort(cells, kind="stable")
        self.order = by_cell if points is None else points[by_cell]
        self.sorted_cells = cells[by_cell]
        self.x = np.empty(self.order.size + 1)
        self.y = np.empty(self.order.size + 1)
        np.take(pos[:, 0], self.order, out=self.x[:-1])
        np.take(pos[:, 1], self.order, out=self.y[:-1])
        self.x[-1] = self.y[-1] = np.inf
        # Over all points, a table of where each cell starts beats a search.
        self.cell_start = None
        if n_cells is not None:
            counts = np.bincount(self.sorted_cells, minlength=n_cells)
            self.cell_start = np.concatenate([[0], np.cumsum(counts)])

    def runs(self, first_cell: np.ndarray, last_cell: np.ndarray):
        """Start and end (exclusive) of the points in cells ``first..last``."""
        if self.cell_start is not None:
            return self.cell_start[first_cell], self.cell_start[last_cell + 1]
        return (np.searchsorted(self.sorted_cells, first_cell, side="left"),
                np.searchsorted(self.sorted_cells, last_cell, side="right"))


class _Grid:
    """Square cells over the bounding box, sized from the point density.

    ``cell_of`` (every point's cell) is one vectorised pass per axis; the
    sorted bins cover either all points (``full``, kept) or only the points
    one call needs.
    """

    def __init__(self, pos: np.ndarray, lo: np.ndarray, span: np.ndarray):
        m = pos.shape[0]
        area = float(span[0]) * float(span[1])
        self.h = max(math.sqrt(area * _OCCUPANCY / m), float(span.max()) * _OCCUPANCY / m)
        self.inv_h = 1.0 / self.h
        self.shape = (int(span[0] * self.inv_h) + 1, int(span[1] * self.inv_h) + 1)
        self.lo = lo
        self.cell_of = self.cells(pos)
        self.full = None

    @property
    def n_cells(self) -> int:
        return self.shape[0] * self.shape[1]

    def cell_coords(self, pos: np.ndarray):
        """Positions in cell units from the lower-left corner (>= 0), per axis.

        Points and seeds go through this same formula, so a point's cell and
        a seed's distance to its window edge agree up to rounding far below
        the certification margin.
        """
        return ((pos[:, 0] - self.lo[0]) * self.inv_h,
                (pos[:, 1] - self.lo[1]) * self.inv_h)

    def cells(self, pos: np.ndarray) -> np.ndarray:
        """The cell number of each position (in place where possible: one pass
        over all points is most of a small draw's cost)."""
        u = pos[:, 0] - self.lo[0]
        u *= self.inv_h
        cx = u.astype(np.int64)
        np.minimum(cx, self.shape[0] - 1, out=cx)
        np.subtract(pos[:, 1], self.lo[1], out=u)
        u *= self.inv_h
        cy = u.astype(np.int64)
        np.minimum(cy, self.shape[1] - 1, out=cy)
        cx *= self.shape[1]
        cx += cy
        return cx

    def windows(self, seed_pos: np.ndarray, radius: int):
        """Each seed's window as ``2r + 1`` rows of cells: first and last cell
        number per row (``(n, 2r+1)`` each; an empty range off the grid), the
        cell numbers' x index and the distance (cell units) from the seed to
        the window edge (``inf`` where the window reaches past the grid,
        which holds no points)."""
        ux, uy = self.cell_coords(seed_pos)
        nx, ny = self.shape
        cx = np.minimum(ux.astype(np.int64), nx - 1)
        cy = np.minimum(uy.astype(np.int64), ny - 1)
        wx = cx[:, None] + np.arange(-radius, radius + 1)
        inside = (wx >= 0) & (wx < nx)
        base = np.where(inside, wx, 0) * ny
        first = base + np.maximum(cy - radius, 0)[:, None]
        last = np.where(inside, base + np.minimum(cy + radius, ny - 1)[:, None], first - 1)
        inf = np.inf
        edge = np.minimum.reduce([
            np.where(cx - radius <= 0, inf, ux - (cx - radius)),
            np.where(cx + radius >= nx - 1, inf, (cx + radius + 1) - ux),
            np.where(cy - radius <= 0, inf, uy - (cy - radius)),
            np.where(cy + radius >= ny - 1, inf, (cy + radius + 1) - uy),
        ])
        return first, last, edge


class _DistinctTree:
    """k-d tree over the distinct positions, each with its points in index order."""

    def __init__(self, pos: np.ndarray, all_same: bool):
        m = pos.shape[0]
        if all_same:  # one position: no sort needed
            self.order = np.arange(m)
            self.starts = np.array([0, m])
        else:
            # Complex numbers sort by real then imaginary part: by x, then y,
            # then (stable) index, about twice as fast as a three-key lexsort.
            self.order = np.argsort(pos[:, 0] + 1j * pos[:, 1], kind="stable")
            p = pos[self.order]
            new = np.ones(m, dtype=bool)
            new[1:] = (p[1:] != p[:-1]).any(axis=1)
            self.starts = np.append(np.flatnonzero(new), m)
        self.positions = pos[self.order[self.starts[:-1]]]
        self.size = self.starts[:-1]
        self.mult = np.diff(self.starts)
        self.tree = kd_tree(self.positions)

    def neighbors(self, pos: np.ndarray, seeds: np.ndarray, k: int) -> np.ndarray:
        """Exact (distance, index) order for ``seeds``: query enough distinct
        positions, expand each to its first ``k + 1`` points, certify."""
        out = np.empty((seeds.size, k), dtype=np.intp)
        todo = np.arange(seeds.size)
        n_pos = self.positions.shape[0]
        q = min(n_pos, k + 1)
        while todo.size:
            s = seeds[todo]
            dist, which = self.tree.query(pos[s], k=q)
            dist, which = dist.reshape(s.size, q), which.reshape(s.size, q)
            take = np.minimum(self.mult[which], k + 1)
            cand = _gather(self.order, self.starts[which], take)
            nbrs, kth = _k_nearest(pos, s, cand, k)
            if q == n_pos:
                done = np.ones(s.size, dtype=bool)
            else:
                # Positions not returned lie at least the last returned
                # distance away (the tree's own rounding is covered by the margin).
                done = kth < (dist[:, -1] * (1 - 1e-9)) ** 2
            out[todo[done]] = nbrs[done]
            todo = todo[~done]
            q = min(n_pos, 2 * q)
        return out


class NeighborIndex:
    """Scan positions frozen together with their neighbour-search structures.

    The coordinates are copied and made read-only, so the structures can
    never go stale: build one index per coordinate set and pass it to any
    strategy's ``group`` as many times as needed. The grid bins (and the
    fallback tree, when one was needed) are built on first use and reused.

    Parameters
    ----------
    coords : array_like of shape (M, 2)
        Finite scan positions.
    copy : bool, default True
        Keep a private copy. ``False`` is for an index that lives only as long
        as one call (what ``group`` does with a plain array): it saves the
        copy, but changes to the caller's array would then reach the index.
    """

    def __init__(self, coords, *, copy: bool = True):
        arr = check_coords(coords)
        if copy:
            # Always: an array-like can hand out its own buffer, which the
            # identity checks would miss (and then be made read-only here).
            arr = arr.copy()
        else:
            arr = arr.view()  # read-only view; the caller's array stays writeable
        arr.flags.writeable = False
        self._coords = arr
        self._tree = None
        self._grid = None
        self._fallback = None
        self._point_tree = None
        self._pos = None
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def coords(self) -> np.ndarray:
        """Read-only ``(M, 2)`` float64 positions."""
        return self._coords

    @property
    def n_points(self) -> int:
        return self._coords.shape[0]

    @property
    def built(self) -> bool:
        """Whether a search structure (grid bins or a tree) is built and kept for reuse."""
        return any(x is not None for x in (self._grid, self._fallback, self._tree,
                                             self._point_tree))

    @property
    def tree_built(self) -> bool:
        """Same as :attr:`built` (the name from when the search was a tree only)."""
        return self.built

    @property
    def tree(self) -> cKDTree:
        """A k-d tree over all points, built on first use.

        The neighbour search itself does not need it; it is here for callers
        that want a tree of these coordinates. Unbalanced, uncompacted nodes
        build about 3x faster on scan grids.
        """
        if self._tree is None:
            with self._lock:  # threads sharing a fresh index build it once
                if self._tree is None:
                    log.debug("building cKDTree over %d points", self.n_points)
                    self._tree = kd_tree(self._coords, balanced_tree=False,
                                         compact_nodes=False)
        return self._tree

    def neighbors(self, seeds: np.ndarray, k: int, *, method: str = "auto") -> np.ndarray:
        """The ``k`` nearest neighbours of each seed, nearest first, seed excluded.

        Exact: the order a brute-force search gives, points at equal distance
        by index. The seed is removed by index, not by distance, so positions
        that occur several times still count as each other's neighbours.

        Parameters
        ----------
        seeds : ndarray of shape (m,)
            Point indices.
        k : int
            At most ``n_points - 1``.
        method : {"auto", "grid", "tree"}
            The first search tried: ``"grid"`` the cell bins, ``"tree"`` a
            k-d tree over all points. Seeds it cannot certify go to a tree
            over the distinct positions. The result is the same; ``"auto"``
            chooses by cost.

        Returns
        -------
        ndarray of shape (m, k), dtype intp
        """
        seeds = np.asarray(seeds, dtype=np.intp).ravel()
        if not 0 <= k < self.n_points:
            raise InvalidParameterError("k", k, f"in [0, {self.n_points - 1}]")
        if method not in ("auto", "grid", "tree"):
            raise InvalidParameterError("method", method, "'auto', 'grid' or 'tree'")
        if seeds.size and (seeds.min() < 0 or seeds.max() >= self.n_points):
            raise InvalidParameterError("seeds", seeds, f"point indices in [0, {self.n_points - 1}]",
                                        template="{seeds:name} must be {requirement}")
        out = np.empty((seeds.size, k), dtype=np.intp)
        if k == 0 or seeds.size == 0:
            return out
        self._calls += 1
        pos, lo, span = self._prepared()
        todo = np.arange(seeds.size)
        if method == "auto":  # below some size, a tree is built faster than the bins
            method = "tree" if self.n_points <= _SMALL else "grid"
        if span.max() > 0:  # else all points coincide: the distinct tree has one node
            search = self._grid_search if method == "grid" else self._tree_search
            todo = search(pos, lo, span, seeds, k, out)
        if todo.size:
            log.debug("%d of %d seeds answered by the distinct-position tree",
                      todo.size, seeds.size)
            fallback = self._distinct_tree(pos, span)
            for lo_ in range(0, todo.size, _BLOCK):
                part = todo[lo_:lo_ + _BLOCK]
                out[part] = fallback.neighbors(pos, seeds[part], k)
        return out

    # -- internals -----------------------------------------------------------

    def _prepared(self):
        """Scaled positions, their lower corner and extent (one pass, cached)."""
        if self._pos is None:
            with self._lock:
                if self._pos is None:
                    lo, hi = _column_extremes(self._coords)
                    exponent = distance_exponent(lo, hi)
                    pos = self._coords
                    if exponent:  # ldexp is exact and takes exponents beyond one float's range
                        pos, lo, hi = (np.ldexp(a, exponent) for a in (pos, lo, hi))
                    self._pos = (pos, lo, hi - lo)
        return self._pos

    def _distinct_tree(self, pos, span) -> _DistinctTree:
        if self._fallback is None:
            with self._lock:
                if self._fallback is None:
                    log.debug("building the distinct-position tree over %d points",
                              self.n_points)
                    self._fallback = _DistinctTree(pos, all_same=not span.max() > 0)
        return self._fallback

    def _tree_search(self, pos, lo, span, seeds, k, out) -> np.ndarray:
        """Answer, into ``out``, every seed a tree over all points certifies;
        return the others' rows.

        A few neighbours beyond ``k`` are asked for: the answer is certain
        when the last one returned is strictly farther than the k-th (no
        point left out can tie it).
        """
        if self._point_tree is None:
            if pos is self._coords:
                self._point_tree = self.tree
            else:  # scaled positions: a tree of their own
                with self._lock:
                    if self._point_tree is None:
                        self._point_tree = kd_tree(pos, balanced_tree=False,
                                                   compact_nodes=False)
        q = min(self.n_points, k + 4)
        workers = -1 if seeds.size >= _PARALLEL_QUERY_MIN else 1
        dist, which = self._point_tree.query(pos[seeds], k=q, workers=workers)
        dist, which = dist.reshape(seeds.size, q), which.reshape(seeds.size, q)
        nbrs, kth = _k_nearest(pos, seeds, which, k)
        if q == self.n_points:
            done = np.ones(seeds.size, dtype=bool)
        else:
            done = kth < (dist[:, -1] * (1 - 1e-9)) ** 2
        out[done] = nbrs[done]
        return np.flatnonzero(~done)

    def _grid_search(self, pos, lo, span, seeds, k, out) -> np.ndarray:
        """Answer, into ``out``, every seed the grid certifies; return the others' rows.

        Seeds not certified in their window try a window twice as wide, as
        long as it stays uncrowded and smaller than the grid.
        """
        with self._lock:
            if self._grid is None:
                self._grid = _Grid(pos, lo, span)
        grid = self._grid
        radius = max(1, math.ceil(math.sqrt((k + 1) / (math.pi * _OCCUPANCY))))
        # A first draw whose windows hold a small part of the points sorts only those.
        few = seeds.size * (2 * radius + 1) ** 2 * _OCCUPANCY * 2 < self.n_points
        if grid.full is None and not (few and self._calls == 1):
            with self._lock:
                if grid.full is None:
                    grid.full = _Bins(pos, grid.cell_of, n_cells=grid.n_cells)
        rows = np.arange(seeds.size)
        if grid.full is not None and seeds.size >= _BLOCK // 4:
            rows = np.argsort(grid.cell_of[seeds], kind="stable")  # cache-friendly order
        left = []
        while rows.size:
            parallel = rows.size >= _PARALLEL_QUERY_MIN and _WORKERS > 1
            step = min(_BLOCK, -(-rows.size // _WORKERS)) if parallel else _BLOCK
            blocks = [rows[i:i + step] for i in range(0, rows.size, step)]
            search = functools.partial(self._certify, grid, pos, seeds, k=k, radius=radius,
                                       out=out)
            if parallel:
                # NumPy releases the GIL in the gathers and sorts; blocks write
                # disjoint rows of ``out``.
                with ThreadPoolExecutor(min(_WORKERS, len(blocks))) as pool:
                    results = list(pool.map(search, blocks))
            else:
                results = [search(part) for part in blocks]
            left += [crowded for crowded, _ in results]
            rows = np.concatenate([uncertified for _, uncertified in results])
            radius *= 2
            if (2 * radius + 1) ** 2 > _MAX_CANDIDATES or radius > max(grid.shape):
                left.append(rows)
                break
        return np.sort(np.concatenate(left)) if left else rows[:0]

    def _certify(self, grid, pos, seeds, part, *, k, radius, out):
        """Search the windows of radius ``radius`` around ``seeds[part]``; write the
        certified answers to ``out``; return the crowded and the uncertified rows."""
        s = seeds[part]
        first, last, edge = grid.windows(pos[s], radius)
        bins = grid.full
        if bins is None:  # a first, small call: bin only the points it needs
            # Cells first..last of every window row, marked through a difference array.
            size = grid.n_cells + 1
            needed = np.cumsum(np.bincount(first.ravel(), minlength=size)
                               - np.bincount((last + 1).ravel(), minlength=size)) > 0
            bins = _Bins(pos, grid.cell_of, np.flatnonzero(needed[:-1][grid.cell_of]))
        start, end = bins.runs(first, last)
        length = end - start
        crowded = length.sum(axis=1) > _MAX_CANDIDATES
        ok = ~crowded
        if not ok.any():
            return part, part[:0]
        s, start, length = s[ok], start[ok], length[ok]
        width = int(length.max()) if length.size else 0
        slots = start[:, :, None] + np.arange(width)
        slots = np.where(np.arange(width) < length[:, :, None], slots, bins.x.size - 1)
        slots = slots.reshape(s.size, -1)
        d2 = (bins.x[slots] - pos[s, 0][:, None]) ** 2
        d2 += (bins.y[slots] - pos[s, 1][:, None]) ** 2
        idx = bins.order[np.minimum(slots, bins.order.size - 1)]
        d2[idx == s[:, None]] = np.inf  # the seed, by index
        nbrs, kth = _select(d2, idx, k)
        reach = (edge[ok] - _MARGIN_CELLS) * grid.h
        certified = kth < reach * reach
        out[part[ok][certified]] = nbrs[certified]
        return part[crowded], part[ok][~certified]

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]  # locks do not pickle; the structures do
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._coords.flags.writeable = False  # unpickled arrays come back writeable
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NeighborIndex(n_points={self.n_points}, built={self.built})"


def as_neighbor_index(coords) -> NeighborIndex:
    """``coords`` itself if it is a :class:`NeighborIndex`, else a one-call index."""
    return coords if isinstance(coords, NeighborIndex) else NeighborIndex(coords, copy=False)
