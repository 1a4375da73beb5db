"""Oversampling against an independent brute-force answer, on tiny inputs.

For every request the brute force decides whether ``n`` distinct groups exist
with every point a seed ``floor(n/M)`` or ``ceil(n/M)`` times (trying every
choice of the points seeded once more, and every assignment of sets to seeds).
The strategy must deliver exactly when they exist, and otherwise refuse with
the true maximum and the true number of distinct sets.
"""
import functools
import itertools
import math
import re

import numpy as np
from hypothesis import given, strategies as st

from ptycho_grouping import GroupingRequest, NeighborIndex
from ptycho_grouping.sample_then_group import SampleThenGroup

STG = SampleThenGroup()


def candidate_sets(xy, pool, c):
    """Per seed, every set {seed} + (c-1 of its pool nearest neighbours)."""
    nbrs = NeighborIndex(xy).neighbors(np.arange(len(xy)), pool)
    return [frozenset(frozenset((s, *m)) for m in itertools.combinations(row, c - 1))
            for s, row in enumerate(nbrs.tolist())]


def assignable(cands, demand):
    """Can seed s get demand[s] sets of cands[s], no set twice? Exhaustive search."""
    m = len(cands)
    later = [frozenset().union(*cands[i:]) for i in range(m)] + [frozenset()]

    @functools.lru_cache(maxsize=None)
    def search(i, used):  # used: taken sets that later seeds could still want
        if i == m:
            return True
        free = sorted(cands[i] - used, key=sorted)
        return any(search(i + 1, (used | frozenset(pick)) & later[i + 1])
                   for pick in itertools.combinations(free, demand[i]))

    return search(0, frozenset())


def feasible(cands, n):
    m = len(cands)
    q, r = divmod(n, m)
    return any(assignable(cands, [q + (s in once_more) for s in range(m)])
               for once_more in itertools.combinations(range(m), r))


@st.composite
def tiny_cases(draw):
    m = draw(st.integers(4, 6))
    c = draw(st.integers(2, 3))
    pool = draw(st.integers(c, min(4, m - 1)))
    # A 3 x 3 grid of positions: coincident points and distance ties are common.
    cells = draw(st.lists(st.integers(0, 8), min_size=m, max_size=m))
    xy = np.array([divmod(cell, 3) for cell in cells], dtype=float)
    return xy, c, pool, draw(st.integers(0, 2**32 - 1))


@given(tiny_cases())
def test_every_satisfiable_request_succeeds_and_every_other_is_refused_truthfully(case):
    xy, c, pool, seed = case
    m = len(xy)
    cands = candidate_sets(xy, pool, c)
    n_distinct = len(frozenset().union(*cands))
    largest = m * math.comb(pool, c - 1) + 1  # one beyond the per-seed bound
    possible = {n: feasible(cands, n) for n in range(1, largest + 1)}
    for n in range(m + 1, largest + 1):
        for sequential in (False, True):
            req = GroupingRequest(n_groups=n, group_size=c, neighbors=pool, rng=seed,
                                  sequential=sequential, enable_oversampling=True)
            if possible[n]:
                state = np.random.get_state()[1].copy()
                groups = STG.group(xy, req)
                assert np.array_equal(np.random.get_state()[1], state)
                assert groups.shape == (n, c)
                use = np.bincount(groups[:, 0], minlength=m)
                assert use.min() == n // m and use.max() == -(-n // m)
                sets = [frozenset(row) for row in groups.tolist()]
                assert len(set(sets)) == n
                assert all(g in cands[row[0]] for g, row in zip(sets, groups.tolist()))
                assert np.array_equal(STG.group(xy, req), groups)
            else:
                try:
                    STG.group(xy, req)
                except ValueError as exc:
                    msg = str(exc)
                else:
                    raise AssertionError(f"n_groups={n} is impossible but was served")
                best = max(k for k in range(1, n) if possible[k])
                assert f"at most {best} groups are possible" in msg, msg
                stated = re.search(r"offer (?:only )?(\d+) distinct groups in all", msg)
                assert stated and int(stated.group(1)) == n_distinct, msg
