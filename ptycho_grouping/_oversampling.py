"""Oversampling for SampleThenGroup: more groups than points, balanced and distinct.

Every point is a seed ``floor(n/M)`` or ``ceil(n/M)`` times and no two groups
are the same set of indices. A fast random draw with lazy repair handles
almost every request; when a seed runs out of unused sets, the constrained
seeds are assigned exactly by a maximum flow. Kept apart from the strategy
module so that one reads as the strategy.
"""
from __future__ import annotations

import itertools
import logging
import math

import numpy as np

from .errors import InvalidParameterError
from .neighbors import NeighborIndex

__all__ = ["OversamplingPlan", "random_columns"]

log = logging.getLogger(__name__)

# Largest per-seed number of member combinations that is enumerated as a
# table when oversampling; beyond it combinations are drawn at random.
_MAX_COMBINATION_TABLE = 1 << 14
# Rounds of vectorised uniform redraws for the groups that repeat a set,
# before the few left scan their seed's choices one by one.
_REDRAW_ROUNDS = 8
# Error messages count the distinct groups exactly only when that enumerates
# at most this many indices (points x member choices x group size).
_COUNT_LIMIT = 1 << 22


def random_columns(rng, n_rows: int, n_cols: int, take: int) -> np.ndarray:
    """Per row, ``take`` distinct column indices in uniformly random order."""
    return np.argsort(rng.random((n_rows, n_cols)), axis=1)[:, :take]


def _combinations(pool: int, size: int, limit=None) -> np.ndarray:
    """The first ``limit`` (default all) ``size``-combinations of ``range(pool)``,
    lexicographic, as rows."""
    combos = itertools.combinations(range(pool), size)
    if limit is not None:
        combos = itertools.islice(combos, limit)
    return np.array(list(combos), dtype=np.intp).reshape(-1, size)


def _distinct_choices(rng, counts: np.ndarray, n_options: int) -> np.ndarray:
    """Per seed, ``counts[s]`` distinct option numbers in ``[0, n_options)``.

    Returned flat, in seed order. Counts take at most two values (q, q+1), so
    Floyd's sampling runs once per count value, vectorised over seeds.
    """
    out = np.empty(counts.sum(), dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for k in np.unique(counts):  # every seed is used at least once when oversampling
        rows = np.flatnonzero(counts == k)
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
    cols = np.sort(random_columns(rng, owner.size, pool, size), axis=1)
    while True:
        _, first = _equal_rows(np.column_stack([owner, cols]), max(counts.size, pool))
        if first.size == owner.size:
            return cols
        dup = np.ones(owner.size, dtype=bool)
        dup[first] = False
        cols[dup] = np.sort(random_columns(rng, int(dup.sum()), pool, size), axis=1)


def _equal_rows(keys: np.ndarray, n_values: int):
    """Group equal rows of a non-negative integer array (values < ``n_values``).

    Returns ``(row_id, first)``: per row the number of its distinct row (in
    lexicographic order), and per distinct row the index of its first
    occurrence. Columns are packed several to an int64 and sorted with a
    stable lexsort, much faster than ``np.unique(axis=0)``.
    """
    bits = max(1, (n_values - 1).bit_length())
    per_key = max(1, 63 // bits)
    packed = []
    for start in range(0, keys.shape[1], per_key):
        block = keys[:, start:start + per_key].astype(np.int64)
        word = block[:, 0].copy()
        for j in range(1, block.shape[1]):
            word = (word << bits) | block[:, j]
        packed.append(word)
    order = np.lexsort(packed[::-1])  # stable: the first of equal rows comes first
    new = np.ones(len(keys), dtype=bool)
    for word in packed:
        w = word[order]
        new[1:] &= w[1:] == w[:-1]
    new[1:] = ~new[1:]
    row_id = np.empty(len(keys), dtype=np.intp)
    row_id[order] = np.cumsum(new) - 1
    return row_id, order[new]


class OversamplingPlan:
    """Distinct groups, several per seed, from each seed's pool of neighbours.

    A *candidate* of seed ``s`` is the index set ``{s} + (C-1 of pool(s))``;
    there are ``per_seed = C(pool, C-1)`` of them. Member choices are kept as
    ``cols``: sorted column numbers into ``pool_idx[s]``.

    Why the exact solution can stay small: a set that is a candidate of two
    seeds ``s`` and ``t`` contains both, so ``t`` is in ``pool(s)`` and ``s``
    in ``pool(t)`` (*mutual* neighbours). If every point is a seed at most
    ``q + 1`` times, the groups of other seeds can take at most
    ``(q + 1) * deg(s)`` of ``s``'s candidates (``deg``: its number of mutual
    neighbours), and its own other groups ``q``. So a seed with
    ``per_seed >= (q + 1) * (1 + deg(s))`` always finds an unused candidate,
    whatever the others chose: it is *free*. Only the remaining *constrained*
    seeds need the exact assignment, and each of them has fewer than
    ``(q + 1) * (pool + 1)`` candidates.
    """

    def __init__(self, index: NeighborIndex, pool: int, c: int, rng, sequential: bool,
                 n_groups: int):
        self.index, self.pool, self.c = index, pool, c
        self.rng, self.sequential = rng, sequential
        self.n_points = index.n_points
        self.per_seed = math.comb(pool, c - 1)
        self._pool_idx = self._degree = self._table = self._cand = None
        # Member choices come from the table of all of them when it is small,
        # or when a seed needs more than half of its choices (random subsets
        # would then collide endlessly, and the table is smaller than the output).
        most = -(-n_groups // self.n_points)
        self._tabulate = self.per_seed <= _MAX_COMBINATION_TABLE or 2 * most > self.per_seed
        self._scans = {}  # each seed's scan of unused choices resumes where it stopped

    @property
    def pool_idx(self) -> np.ndarray:
        """``(M, pool)`` nearest neighbours of every point, seed excluded."""
        if self._pool_idx is None:
            self._pool_idx = self.index.neighbors(np.arange(self.n_points), self.pool)
        return self._pool_idx

    def table(self) -> np.ndarray:
        """Every member choice, ``(per_seed, C-1)``, lexicographic.

        Built only when ``per_seed <= _MAX_COMBINATION_TABLE`` or when a seed
        is constrained, and then ``per_seed < (q + 1) * (pool + 1)``.
        """
        if self._table is None:
            self._table = _combinations(self.pool, self.c - 1)
        return self._table

    def keys(self, seeds: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Each group as its sorted index set, one row per group."""
        return np.sort(np.column_stack([seeds, self.pool_idx[seeds[:, None], cols]]), axis=1)

    # -- fast path ---------------------------------------------------------

    def first_draw(self, counts: np.ndarray) -> np.ndarray:
        """Per seed ``counts[s]`` distinct member choices (sequential: the first ones)."""
        if self.sequential:
            prefix = _combinations(self.pool, self.c - 1, limit=int(counts.max()))
            starts = np.cumsum(counts) - counts
            return prefix[np.arange(counts.sum()) - np.repeat(starts, counts)]
        if self._tabulate:
            return self.table()[_distinct_choices(self.rng, counts, self.per_seed)]
        return _distinct_random_subsets(self.rng, counts, self.pool, self.c - 1)

    def _choices(self, seed: int):
        """Member choices to try for a group of ``seed``, lazily: the seed's own
        scan of every choice, in random (or, when sequential or too many to
        tabulate, lexicographic) order. The scan resumes where the seed's last
        repair stopped: a choice found taken stays taken, so repairs cost
        O(choices) per seed in all."""
        scan = self._scans.get(seed)
        if scan is None:
            scan = self._scans[seed] = self._scan()
        for choice in scan:  # not 'yield from': closing this must not close the scan
            yield choice

    def _scan(self):
        if self._tabulate and not self.sequential:
            for i in self.rng.permutation(self.per_seed):
                yield self.table()[i].tolist()
        else:
            yield from itertools.combinations(range(self.pool), self.c - 1)

    def _repeats(self, seeds: np.ndarray, cols: np.ndarray):
        """Sorted index sets of the groups, and the rows repeating an earlier row's set."""
        keys = self.keys(seeds, cols)
        _, first = _equal_rows(keys, self.n_points)
        is_dup = np.ones(len(keys), dtype=bool)
        is_dup[first] = False
        return keys, first, np.flatnonzero(is_dup)

    def _holds(self, keys: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Rows of ``keys`` that contain any of ``points`` (a lookup table, not a sort)."""
        wanted = np.zeros(self.n_points, dtype=bool)
        wanted[points] = True
        return wanted[keys].any(axis=1)

    def _redraw(self, n: int) -> np.ndarray:
        """``n`` uniform member choices (sorted column numbers)."""
        if self._tabulate:
            return self.table()[self.rng.integers(self.per_seed, size=n)]
        return np.sort(random_columns(self.rng, n, self.pool, self.c - 1), axis=1)

    def repair(self, seeds: np.ndarray, cols: np.ndarray) -> bool:
        """Redraw, in place, every group whose set an earlier row already has.

        Unless sequential, all repeating groups are first redrawn together at
        random, a few rounds; each one still repeating then keeps its seed and
        takes the first unused set its seed offers. Returns False, leaving
        ``cols`` partly repaired, as soon as a seed has no unused set left.
        """
        keys, first, dup = self._repeats(seeds, cols)
        if not dup.size:
            return True
        # A redrawn set contains its seed, so only kept sets with a redrawn
        # seed in them can collide with it: the rounds compare against those.
        kept = keys[first]
        taken = kept[self._holds(kept, seeds[dup])]
        for _ in range(0 if self.sequential else _REDRAW_ROUNDS):
            cols[dup] = self._redraw(dup.size)
            new = self.keys(seeds[dup], cols[dup])
            row_id, first = _equal_rows(np.concatenate([taken, new]), self.n_points)
            here = taken.shape[0] + np.arange(dup.size)
            fresh = first[row_id[here]] == here  # neither taken nor drawn earlier this round
            taken = np.concatenate([taken, new[fresh]])
            dup = dup[~fresh]
            if not dup.size:
                return True
        log.debug("scanning the choices of %d groups that repeat another group's set", dup.size)
        seen = set(map(tuple, taken[self._holds(taken, seeds[dup])].tolist()))
        for g in dup.tolist():
            seed = int(seeds[g])
            pool_row = self.pool_idx[seed].tolist()
            for choice in self._choices(seed):
                key = tuple(sorted([seed] + [pool_row[j] for j in choice]))
                if key not in seen:
                    seen.add(key)
                    cols[g] = choice
                    break
            else:
                return False
        return True

    # -- exact assignment --------------------------------------------------

    def degree(self) -> np.ndarray:
        """Number of mutual neighbours of every point."""
        if self._degree is None:
            m, pool = self.pool_idx.shape
            self._degree = np.empty(m, dtype=np.intp)
            step = max(1, _COUNT_LIMIT // (pool * pool))  # bounded memory per chunk
            for lo in range(0, m, step):
                s = np.arange(lo, min(lo + step, m))
                back = self.pool_idx[self.pool_idx[s]]  # pool of each of s's neighbours
                self._degree[s] = (back == s[:, None, None]).any(axis=2).sum(axis=1)
        return self._degree

    def constrained(self, q: int) -> np.ndarray:
        """Mask of the seeds that are not free when every point is a seed
        at most ``q + 1`` times (see the class docstring)."""
        return self.per_seed < (q + 1) * (1 + self.degree())

    def _candidates(self, seeds: np.ndarray):
        """Every candidate of ``seeds`` (sorted point numbers): local seed
        number, choice number, and set id (equal sets, equal ids).

        The first call enumerates; later calls with a subset of its seeds (as
        when the error path searches lower levels) select from it.
        """
        if self._cand is None or not np.isin(seeds, self._cand[0]).all():
            table = self.table()
            local = np.repeat(np.arange(seeds.size), len(table))
            choice = np.tile(np.arange(len(table)), seeds.size)
            set_id, _ = _equal_rows(self.keys(seeds[local], table[choice]), self.n_points)
            self._cand = (seeds, local, choice, set_id)
            return local, choice, set_id
        known, local, choice, set_id = self._cand
        rows = np.isin(known, seeds)[local]
        local = np.searchsorted(seeds, known[local[rows]])
        set_id = set_id[rows]
        used = np.zeros(int(set_id.max()) + 1 if set_id.size else 0, dtype=bool)
        used[set_id] = True
        return local, choice[rows], (np.cumsum(used) - 1)[set_id]  # ids 0.. again

    def _max_flow(self, con: np.ndarray, q: int, n_extra: int):
        """Maximum flow that tries to give every seed in ``con`` exactly ``q``
        distinct sets, and ``n_extra`` of them one more.

        Network: source -> seed (capacity q), source -> hub (n_extra),
        hub -> seed (1), seed -> each candidate set (1), set -> sink (1). The
        value reaches ``q * len(con) + n_extra`` exactly when such an
        assignment exists. Returns the value and a function that reads the
        assignment, ``(seeds, cols)``, off the flow.
        """
        k = con.size
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import maximum_flow

        local, choice, set_id = self._candidates(con)
        n_sets = int(set_id.max()) + 1
        if not self.sequential:  # random tie-breaking among equally good assignments
            set_id = self.rng.permutation(n_sets)[set_id]
        src, sink, hub, first_seed = 0, 1, 2, 3
        first_set = first_seed + k
        n_nodes = first_set + n_sets
        seed_node = first_seed + np.arange(k)
        # Edges in order of their tail node, so the CSR arrays are these lists.
        tails = [[src], np.full(k, src), np.full(k, hub), first_seed + local,
                 first_set + np.arange(n_sets)]
        heads = [[hub], seed_node, seed_node, first_set + set_id, np.full(n_sets, sink)]
        caps = [[n_extra], np.full(k, q), np.ones(k), np.ones(local.size), np.ones(n_sets)]
        indptr = np.zeros(n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(np.concatenate(tails), minlength=n_nodes), out=indptr[1:])
        graph = csr_matrix((np.concatenate(caps).astype(np.int32),
                            np.concatenate(heads).astype(np.int32), indptr),
                           shape=(n_nodes, n_nodes))
        graph.sort_indices()
        result = maximum_flow(graph, src, sink)

        def assignment():
            flow = result.flow.tocoo()
            used = ((flow.data > 0) & (flow.row >= first_seed) & (flow.row < first_set)
                    & (flow.col >= first_set))
            pair = ((flow.row[used] - first_seed).astype(np.int64) * n_sets
                    + (flow.col[used] - first_set))
            cand = local.astype(np.int64) * n_sets + set_id
            order = np.argsort(cand)
            rows = order[np.searchsorted(cand, pair, sorter=order)]
            return con[local[rows]].astype(np.intp), self.table()[choice[rows]]

        return int(result.flow_value), assignment

    def feasible(self, con: np.ndarray, q: int, n_extra: int) -> bool:
        """Can every seed in ``con`` get ``q`` distinct sets, ``n_extra`` of them one more?"""
        return self._max_flow(con, q, n_extra)[0] == q * con.size + n_extra

    def exact(self, seeds, cols, counts, q: int, r: int):
        """Groups meeting the balanced-seed rule, all distinct, or None if
        none exist. The constrained seeds are assigned by a maximum flow; the
        free seeds keep their greedy groups, repaired around those."""
        con_mask = self.constrained(q)
        con, free = np.flatnonzero(con_mask), np.flatnonzero(~con_mask)
        # Free seeds can each take one extra group whatever happens, so the
        # constrained seeds take only the extras the free ones cannot.
        n_extra = max(0, r - free.size)
        value, assignment = self._max_flow(con, q, n_extra)
        if value < q * con.size + n_extra:
            return None
        fixed_seeds, fixed_cols = assignment()

        # Free seeds: adjust who is used q + 1 times so that r in all are.
        have = np.flatnonzero(counts[free] > q)
        want = r - n_extra
        starts = np.cumsum(counts) - counts
        keep = ~con_mask[seeds]
        # Never too many: only r points were drawn to seed once more, and the
        # constrained ones take at most the extras the free ones cannot.
        lacking = np.setdiff1d(np.arange(free.size), have)
        add = free[self._pick(lacking, want - have.size)]
        # An added group starts as a copy of its seed's first one; repair redraws it.
        all_seeds = np.concatenate([fixed_seeds, seeds[keep], add])
        all_cols = np.concatenate([fixed_cols, cols[keep], cols[starts[add]]])
        repaired = self.repair(all_seeds, all_cols)  # first rows (the flow's) are kept
        assert repaired, "a free seed always has an unused set (class docstring)"
        order = np.argsort(all_seeds, kind="stable")
        return all_seeds[order], all_cols[order]

    def _pick(self, options: np.ndarray, k: int) -> np.ndarray:
        if self.sequential:
            return options[:k]
        return self.rng.choice(options, size=k, replace=False)

    # -- when the request cannot be met --------------------------------------

    def max_balanced(self, q_hi: int) -> int:
        """Most groups possible with every point a seed floor/ceil(n/M) times.

        Feasibility falls with n, so: the highest level q at which every
        point can be a seed q times (binary search, q <= q_hi), then the most
        points that can be a seed once more at that level.
        """
        hi = min(q_hi, self.per_seed)
        # Below the first level with a constrained seed every level is feasible.
        lo = min(hi, max(0, self.per_seed // (1 + int(self.degree().max())) - 1))
        self._candidates(np.flatnonzero(self.constrained(hi)))  # the most seeds any level needs
        while lo < hi:
            mid = (lo + hi + 1) // 2
            con = np.flatnonzero(self.constrained(mid))
            if self.feasible(con, mid, 0):
                lo = mid
            else:
                hi = mid - 1
        con_mask = self.constrained(lo)
        con = np.flatnonzero(con_mask)
        extra = self._max_flow(con, lo, con.size)[0] - lo * con.size
        return lo * self.n_points + int((~con_mask).sum()) + extra

    def count_distinct(self):
        """Number of distinct candidate sets over all seeds, or None when
        counting them would enumerate more than ``_COUNT_LIMIT`` indices (and
        the exact assignment has not enumerated them already)."""
        every = np.arange(self.n_points)
        enumerated = self._cand is not None and self._cand[0].size == self.n_points
        if not enumerated and self.n_points * self.per_seed * self.c > _COUNT_LIMIT:
            return None
        return int(self._candidates(every)[2].max()) + 1

    def capacity_error(self, n: int, pool_name: str, *,
                       attempted: bool) -> InvalidParameterError:
        """The error for a request that cannot be met, with the true numbers.

        ``attempted``: the exact assignment was tried (so its cost is already
        paid and the balanced maximum costs at most a few times more). The
        error is about ``n_groups`` and relates ``group_size`` and the pool's
        parameter (``pool_name``, with the pool size used).
        """
        m, c, pool, per_seed = self.n_points, self.c, self.pool, self.per_seed
        bound = m * per_seed
        small = bound * c <= _COUNT_LIMIT
        q, r = divmod(n, m)
        best = self.max_balanced(q) if (attempted or small) else None
        distinct = self.count_distinct()
        head = (f"cannot draw {{n_groups}} distinct groups of {{group_size}} from {m} scan "
                f"points with a pool of {pool} neighbours")
        facts = []
        if distinct is not None and n > distinct:
            why = f"these points offer only {distinct} distinct groups in all"
        else:
            if n > bound:
                why = (f"that exceeds {bound} = {m} seeds x C({pool}, {c - 1}) member "
                       "choices, an upper bound (different seeds can draw the same set)")
            else:
                use = f"exactly {q} times" if r == 0 else f"{q} or {q + 1} times"
                why = (f"no choice of distinct groups uses every point as a seed {use}, "
                       "as balanced oversampling requires")
            facts.append(f"these points offer {distinct} distinct groups in all"
                         if distinct is not None else
                         f"these points offer at most {bound} distinct groups (too many "
                         "candidates to count them exactly)")
        if best is not None:
            facts.append(f"at most {best} groups are possible when every point must be a "
                         f"seed floor({{n_groups:name}}/{m}) or ceil({{n_groups:name}}/{m}) "
                         "times")
            fix = f"lower {{n_groups:name}} to {best} or less"
        else:
            fix = "lower {n_groups:name}"
        if pool < m - 1:  # a larger pool helps only while there are more points to add
            fix += f", or raise {{{pool_name}:name}}"
        requirement = (f"at most {best}" if best is not None else
                       f"at most {distinct}" if distinct is not None else f"at most {bound}")
        return InvalidParameterError(
            "n_groups", n, requirement, related={"group_size": c, pool_name: pool},
            template="; ".join([f"{head}: {why}", *facts, fix]), code="too_many_groups")
