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
import pytest
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


def _request(n, c, k, sequential=False):
    return GroupingRequest(n_groups=n, group_size=c, neighbors=k, rng=0, sequential=sequential,
                           enable_oversampling=True)


def test_every_choice_of_every_seed_is_served_without_hanging():
    # 18 coincident points, C=9: C(17, 8) = 24310 choices per seed (too many to
    # tabulate by default) but only C(18, 9) = 48620 distinct sets. Drawing
    # nearly every choice at random used to redraw collisions for minutes.
    xy = np.zeros((18, 2))
    groups = SampleThenGroup().group(xy, _request(48620, 9, 17))
    assert len(np.unique(np.sort(groups, axis=1), axis=0)) == 48620
    assert set(np.bincount(groups[:, 0], minlength=18)) <= {2701, 2702}
    with pytest.raises(ValueError, match="these points offer only 48620 distinct groups"):
        SampleThenGroup().group(xy, _request(437580, 9, 17))


def test_sequential_repair_resumes_instead_of_rescanning():
    # 40 points, pool 39, C=4: each seed needs every one of its 9139 choices;
    # rescanning from the first one for each repeated set was quadratic.
    xy = np.random.default_rng(1).uniform(0, 10, (40, 2))
    groups = SampleThenGroup().group(xy, _request(91390, 4, 39, sequential=True))
    assert len(np.unique(np.sort(groups, axis=1), axis=0)) == 91390
    assert np.array_equal(groups, SampleThenGroup().group(xy, _request(91390, 4, 39, True)))


def test_no_advice_to_raise_a_pool_that_already_holds_every_point():
    with pytest.raises(ValueError) as info:
        SampleThenGroup().group(np.zeros((18, 2)), _request(48621, 9, 17))
    assert "raise neighbors" not in str(info.value) and "lower n_groups" in str(info.value)
