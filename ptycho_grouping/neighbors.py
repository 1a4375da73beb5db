"""Validated scan coordinates with a lazily built, reusable neighbour tree."""
from __future__ import annotations

import logging
import threading

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["NeighborIndex", "as_neighbor_index", "validate_coords"]

log = logging.getLogger(__name__)

_PARALLEL_QUERY_MIN = 4096


def validate_coords(coords, name: str = "coords") -> np.ndarray:
    """Return ``coords`` as a C-contiguous float64 ``(M, 2)`` array.

    Raises ``TypeError`` for non-numeric input and ``ValueError`` for a wrong
    shape (including ragged nested lists), no points, or non-finite values
    (naming the first bad row).
    """
    try:
        arr = np.asarray(coords)
    except ValueError as exc:  # ragged nested sequences: NumPy's message names no parameter
        raise ValueError(f"{name} must have shape (M, 2), but its rows differ in length or "
                         f"nesting and do not form an array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   and not np.issubdtype(arr.dtype, np.complexfloating)):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (M, 2), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one point, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():  # fast path; the row search only on failure
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise ValueError(f"{name} must be finite: {bad.size} non-finite point(s), "
                         f"first at index {bad[0]}: {tuple(arr[bad[0]])}")
    return arr


class NeighborIndex:
    """Scan positions frozen together with their k-d tree.

    The coordinates are copied and made read-only, so a tree can never go
    stale: build one index per coordinate set and pass it to any strategy's
    ``group`` as many times as needed.

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
        arr = validate_coords(coords)
        if copy:
            # Always: an array-like can hand out its own buffer, which the
            # identity checks would miss (and then be made read-only here).
            arr = arr.copy()
        else:
            arr = arr.view()  # read-only view; the caller's array stays writeable
        arr.flags.writeable = False
        self._coords = arr
        self._tree = None
        self._tree_lock = threading.Lock()

    @property
    def coords(self) -> np.ndarray:
        """Read-only ``(M, 2)`` float64 positions."""
        return self._coords

    @property
    def n_points(self) -> int:
        return self._coords.shape[0]

    @property
    def tree_built(self) -> bool:
        return self._tree is not None

    @property
    def tree(self) -> cKDTree:
        """The k-d tree, built on first use.

        Unbalanced, uncompacted nodes build about 3x faster on scan grids and
        return the same neighbours.
        """
        if self._tree is None:
            with self._tree_lock:  # threads sharing a fresh index build it once
                if self._tree is None:
                    log.debug("building cKDTree over %d points", self.n_points)
                    self._tree = cKDTree(self._coords, balanced_tree=False,
                                         compact_nodes=False)
        return self._tree

    def neighbors(self, seeds: np.ndarray, k: int) -> np.ndarray:
        """The ``k`` nearest neighbours of each seed, nearest first, seed excluded.

        The seed is removed by index, not by distance, so positions that occur
        several times still count as each other's neighbours.

        Parameters
        ----------
        seeds : ndarray of shape (m,)
            Point indices.
        k : int
            At most ``n_points - 1``.

        Returns
        -------
        ndarray of shape (m, k), dtype intp
        """
        seeds = np.asarray(seeds, dtype=np.intp)
        if not 0 <= k < self.n_points:
            raise ValueError(f"k must be in [0, {self.n_points - 1}], got {k}")
        if k == 0:
            return np.empty((seeds.size, 0), dtype=np.intp)
        # Threads pay off only for large queries (results are identical either way).
        workers = -1 if seeds.size >= _PARALLEL_QUERY_MIN else 1
        _, idx = self.tree.query(self._coords[seeds], k=k + 1, workers=workers)
        idx = idx.astype(np.intp, copy=False)
        drop = idx == seeds[:, None]
        # Among more than k+1 coincident points the seed may not be returned at
        # all; then all k+1 are at distance zero and the farthest one goes.
        drop[~drop.any(axis=1), -1] = True
        return idx[~drop].reshape(seeds.size, k)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_tree_lock"]  # locks do not pickle; the tree does
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._coords.flags.writeable = False  # unpickled arrays come back writeable
        self._tree_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NeighborIndex(n_points={self.n_points}, tree_built={self.tree_built})"


def as_neighbor_index(coords) -> NeighborIndex:
    """``coords`` itself if it is a :class:`NeighborIndex`, else a one-call index."""
    return coords if isinstance(coords, NeighborIndex) else NeighborIndex(coords, copy=False)
