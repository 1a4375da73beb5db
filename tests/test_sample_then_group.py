"""Properties of the default strategy, SampleThenGroup."""
import itertools
import logging
import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy.spatial.distance import cdist
from scipy.stats import chisquare

from ptycho_grouping import GroupingRequest, NeighborIndex
from ptycho_grouping.sample_then_group import SampleThenGroup

from scan_patterns import FAMILIES, make_coords
from test_neighbors import brute_neighbors

STG = SampleThenGroup()


def kth_other_distance(xy, seeds, k):
    """Distance from each seed to its k-th nearest *other* point (by index)."""
    d = cdist(xy[seeds], xy)
    d[np.arange(len(seeds)), seeds] = np.inf
    return np.sort(d, axis=1)[:, k - 1]


@st.composite
def grouping_cases(draw):
    family = draw(st.sampled_from(FAMILIES))
    m = draw(st.integers(10, 300))
    gridsize = draw(st.integers(1, 3))
    c = gridsize * gridsize
    k = draw(st.integers(max(c, 1), max(c, 1) + 6))
    n = draw(st.integers(1, m))
    seed = draw(st.integers(0, 2**32 - 1))
    sequential = draw(st.booleans())
    return make_coords(family, m, seed % 1000), n, c, k, seed, sequential


def group_quietly(xy, req):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # K clamped on tiny sets
        return STG.group(xy, req)


@given(grouping_cases())
def test_groups_are_valid_compact_and_reproducible(case):
    xy, n, c, k, seed, sequential = case
    m = len(xy)
    req = GroupingRequest(n_groups=n, group_size=c, neighbors=k, rng=seed, sequential=sequential)
    state = np.random.get_state()
    groups = group_quietly(xy, req)

    # NumPy's global random state is neither read nor advanced.
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]

    assert groups.shape == (n, c)
    assert groups.dtype == np.intp
    assert groups.min() >= 0 and groups.max() < m
    # No index twice within a group; seeds distinct across groups.
    assert all(len(set(row)) == c for row in groups.tolist())
    assert len(np.unique(groups[:, 0])) == n
    if c > 1:
        k_eff = min(k, m - 1)
        limit = kth_other_distance(xy, groups[:, 0], k_eff)
        member_d = np.linalg.norm(xy[groups[:, 1:]] - xy[groups[:, :1]], axis=2)
        assert (member_d <= limit[:, None] + 1e-9).all()
    if sequential:
        assert np.array_equal(groups[:, 0], np.arange(n))
    # Same inputs and seed: the same groups.
    assert np.array_equal(group_quietly(xy, req), groups)


@pytest.mark.parametrize("family", FAMILIES)
def test_different_seeds_give_different_groups(family):
    xy = make_coords(family, 400, seed=1)
    a = STG.group(xy, GroupingRequest(n_groups=50, group_size=4, neighbors=7, rng=1))
    b = STG.group(xy, GroupingRequest(n_groups=50, group_size=4, neighbors=7, rng=2))
    assert not np.array_equal(a, b)


def test_generator_rng_is_advanced_and_int_seed_is_not_stateful():
    xy = make_coords("uniform", 500)
    gen = np.random.default_rng(5)
    req = GroupingRequest(n_groups=20, group_size=4, neighbors=6, rng=gen)
    first, second = STG.group(xy, req), STG.group(xy, req)
    assert not np.array_equal(first, second)
    fresh = STG.group(xy, GroupingRequest(n_groups=20, group_size=4, neighbors=6,
                                          rng=np.random.default_rng(5)))
    assert np.array_equal(fresh, first)


def test_sequential_members_are_the_nearest_neighbours():
    xy = make_coords("fermat_spiral", 200)
    req = GroupingRequest(n_groups=30, group_size=4, neighbors=8, sequential=True)
    groups = STG.group(xy, req)
    d = cdist(xy[:30], xy)
    d[np.arange(30), np.arange(30)] = np.inf
    nearest3 = np.argsort(d, axis=1, kind="stable")[:, :3]
    assert np.array_equal(np.sort(groups[:, 1:], axis=1), np.sort(nearest3, axis=1))
    other = STG.group(xy, GroupingRequest(n_groups=30, group_size=4, neighbors=8,
                                          sequential=True, rng=99))
    assert np.array_equal(groups, other)


def test_duplicated_positions_exclude_the_seed_by_index():
    # Five points at one position, five at another far away.
    xy = np.repeat([[0.0, 0.0], [100.0, 0.0]], 5, axis=0)
    groups = STG.group(xy, GroupingRequest(n_groups=10, group_size=4, neighbors=4, rng=0))
    for row in groups:
        assert row[0] not in row[1:]
        # All members share the seed's position: they are its 4 exact duplicates.
        assert (xy[row] == xy[row[0]]).all()


def test_more_coincident_points_than_k_still_excludes_the_seed():
    xy = np.zeros((12, 2))
    groups = STG.group(xy, GroupingRequest(n_groups=12, group_size=3, neighbors=4, rng=3))
    assert all(row[0] not in row[1:] and len(set(row)) == 3 for row in groups.tolist())


def test_seed_frequency_is_uniform_chi_square():
    # Over many draws every scan point is a seed equally often: the property
    # the old group-then-sample code could not offer.
    xy = make_coords("clustered", 60, seed=4)
    gen = np.random.default_rng(20261124)
    counts = np.zeros(60)
    for _ in range(3000):
        g = STG.group(xy, GroupingRequest(n_groups=10, group_size=4, neighbors=6, rng=gen))
        counts += np.bincount(g[:, 0], minlength=60)
    assert counts.sum() == 30000
    assert chisquare(counts).pvalue > 1e-3


def test_members_are_uniform_over_the_k_neighbours():
    xy = make_coords("jittered_raster", 100, seed=2)
    k = 6
    index = NeighborIndex(xy)
    nbrs = index.neighbors(np.arange(100), k)
    gen = np.random.default_rng(7)
    rank_counts = np.zeros(k)
    for _ in range(200):
        g = STG.group(index, GroupingRequest(n_groups=100, group_size=2, neighbors=k, rng=gen))
        order = np.argsort(g[:, 0])
        rank = (nbrs[g[order, 0]] == g[order, 1][:, None]).argmax(axis=1)
        rank_counts += np.bincount(rank, minlength=k)
    assert rank_counts.sum() == 20000
    assert chisquare(rank_counts).pvalue > 1e-3


def test_gridsize_one_caps_at_m_with_warning():
    xy = make_coords("uniform", 25)
    with pytest.warns(UserWarning, match=r"n_groups=40 exceeds .* \(25\)"):
        groups = STG.group(xy, GroupingRequest(n_groups=40, group_size=1, rng=0))
    assert groups.shape == (25, 1)
    assert np.array_equal(np.sort(groups[:, 0]), np.arange(25))


def test_neighbors_larger_than_the_point_set_is_clamped_with_warning():
    xy = make_coords("line", 5)
    with pytest.warns(UserWarning, match=r"neighbors=7 exceeds the 4 other scan points"):
        groups = STG.group(xy, GroupingRequest(n_groups=5, group_size=4, neighbors=7, rng=0))
    assert groups.shape == (5, 4)
    assert all(len(set(r)) == 4 for r in groups.tolist())


def test_search_structures_are_built_once_per_index_and_reused():
    xy = make_coords("jittered_raster", 1000)
    index = NeighborIndex(xy)
    assert not index.built
    STG.group(index, GroupingRequest(n_groups=10, group_size=4, neighbors=7, rng=0))
    assert index.built
    tree = index.tree
    STG.group(index, GroupingRequest(n_groups=10, group_size=4, neighbors=7, rng=1))
    assert index.tree is tree
    # The index froze a copy: changing the caller's array cannot make it stale.
    xy[:] = 0
    assert index.coords[:, 0].max() > 0
    with pytest.raises(ValueError):
        index.coords[0, 0] = 1.0


# -- oversampling ----------------------------------------------------------

# Every family, coincident positions included: several seeds then share one
# small neighbourhood and the fast draw can run out of unused sets, which the
# exact assignment resolves (every request in this range is satisfiable).
@given(m=st.integers(8, 60), factor=st.floats(1.01, 4.0), seed=st.integers(0, 10**6),
       sequential=st.booleans(), family=st.sampled_from(FAMILIES))
def test_oversampling_is_balanced_exact_and_distinct(m, factor, seed, sequential, family):
    xy = make_coords(family, m, seed % 100)
    n = m + max(1, int(m * (factor - 1)))  # strictly more groups than points
    req = GroupingRequest(n_groups=n, group_size=4, neighbors=6, rng=seed,
                          sequential=sequential, enable_oversampling=True)
    groups = STG.group(xy, req)
    assert groups.shape == (n, 4)
    use = np.bincount(groups[:, 0], minlength=m)
    assert use.min() == n // m and use.max() == math.ceil(n / m)
    assert len(np.unique(np.sort(groups, axis=1), axis=0)) == n
    assert all(len(set(r)) == 4 for r in groups.tolist())
    limit = kth_other_distance(xy, groups[:, 0], 6)
    member_d = np.linalg.norm(xy[groups[:, 1:]] - xy[groups[:, :1]], axis=2)
    assert (member_d <= limit[:, None] + 1e-9).all()
    assert np.array_equal(STG.group(xy, req), groups)


def test_oversampling_needs_the_flag():
    xy = make_coords("raster", 50)
    with pytest.raises(ValueError, match=r"n_groups=60 .*\(50\).*enable_oversampling=True"):
        STG.group(xy, GroupingRequest(n_groups=60, group_size=4, neighbors=7))


def test_oversampling_pool_must_hold_a_group():
    xy = make_coords("raster", 50)
    with pytest.raises(ValueError, match=r"neighbor_pool_size=3 must be at least C=4 \(the group size\) when oversampling"):
        STG.group(xy, GroupingRequest(n_groups=60, group_size=4, neighbors=7,
                                      enable_oversampling=True, neighbor_pool_size=3))


def test_oversampling_uses_the_pool_size():
    xy = make_coords("jittered_raster", 100)
    req = GroupingRequest(n_groups=300, group_size=4, neighbors=4, rng=0,
                          enable_oversampling=True, neighbor_pool_size=10)
    groups = STG.group(xy, req)
    limit = kth_other_distance(xy, groups[:, 0], 10)
    member_d = np.linalg.norm(xy[groups[:, 1:]] - xy[groups[:, :1]], axis=2)
    assert (member_d <= limit[:, None] + 1e-9).all()
    # With K=4 alone only C(4,3)=4 member sets exist per seed; 10 give more variety.
    assert (member_d > kth_other_distance(xy, groups[:, 0], 4)[:, None] + 1e-9).any()


def distinct_candidate_sets(xy, pool, c):
    """Every set {seed} + (c-1 of its pool nearest neighbours), by brute force."""
    nbrs = brute_neighbors(xy, np.arange(len(xy)), pool)
    return {frozenset((s, *m)) for s, row in enumerate(nbrs.tolist())
            for m in itertools.combinations(row, c - 1)}


def test_oversampling_beyond_per_seed_capacity_states_the_true_numbers():
    xy = make_coords("uniform", 20)
    # 20 seeds x C(4, 3) member choices bound the count at 80, but different
    # seeds can draw the same set: there are fewer distinct sets than that.
    distinct = len(distinct_candidate_sets(xy, 4, 4))
    assert distinct == 55
    with pytest.raises(ValueError) as err:
        STG.group(xy, GroupingRequest(n_groups=81, group_size=4, neighbors=4,
                                      enable_oversampling=True))
    msg = str(err.value)
    assert "n_groups=81" in msg and "80 distinct" not in msg
    assert "these points offer only 55 distinct groups" in msg
    # The balanced seed rule allows fewer still; the number stated is exact.
    best = int(re.search(r"at most (\d+) groups are possible", msg).group(1))
    assert best == 37
    for n in (best, best + 1):
        req = GroupingRequest(n_groups=n, group_size=4, neighbors=4, rng=0,
                              enable_oversampling=True)
        if n == best:
            assert len(np.unique(np.sort(STG.group(xy, req), axis=1), axis=0)) == best
        else:
            with pytest.raises(ValueError, match=rf"n_groups={n} .* at most 37 groups"):
                STG.group(xy, req)


def test_oversampling_beyond_distinct_sets_states_the_exact_number():
    # Ten points at one position: every 4-subset is a group whichever member
    # is its seed, so there are C(10, 4) = 210 distinct sets although the
    # per-seed bound 10 * C(9, 3) = 840 is larger.
    xy = np.zeros((10, 2))
    for n in (150, 210):  # 210: every set, each point the seed of exactly 21
        ok = STG.group(xy, GroupingRequest(n_groups=n, group_size=4, neighbors=9,
                                           enable_oversampling=True, rng=0))
        assert len(np.unique(np.sort(ok, axis=1), axis=0)) == n
        assert set(np.bincount(ok[:, 0]).tolist()) == {n // 10, math.ceil(n / 10)}
    with pytest.raises(ValueError, match=r"n_groups=211 .* offer only 210 distinct groups in all; "
                                         r"at most 210 groups are possible"):
        STG.group(xy, GroupingRequest(n_groups=211, group_size=4, neighbors=9,
                                      enable_oversampling=True, rng=0))


def test_balanced_rule_message_says_how_often_each_point_must_be_a_seed():
    # A jittered 4 x 4 raster with a pool of 4 offers 53 distinct sets, but the
    # corner and edge points share most of theirs: not every point can seed 3.
    xy = make_coords("jittered_raster", 16, seed=1)
    assert len(distinct_candidate_sets(xy, 4, 4)) == 53
    for n, use in [(48, "exactly 3 times"), (47, "2 or 3 times")]:
        with pytest.raises(ValueError) as err:
            STG.group(xy, GroupingRequest(n_groups=n, group_size=4, neighbors=4,
                                          enable_oversampling=True, rng=0))
        msg = str(err.value)
        assert f"no choice of distinct groups uses every point as a seed {use}" in msg
        assert "offer 53 distinct groups in all" in msg
        assert "at most 46 groups are possible" in msg
        assert " 3 or 3 " not in msg


def test_clamped_pool_is_reported_as_clamped():
    xy = make_coords("uniform", 4)
    with pytest.raises(ValueError, match=r"neighbors=4 was clamped to 3 because only 3 other "
                                         r"scan points exist.*at least C=4: the 4 points form a single group"):
        STG.group(xy, GroupingRequest(n_groups=5, group_size=4, neighbors=4,
                                      enable_oversampling=True))


def test_exact_assignment_serves_near_capacity_requests(caplog):
    # A raster with a pool of 4: C(4, 3) = 4 sets per seed, most of them shared
    # with a neighbour. Asking for the most the balanced rule allows makes the
    # fast draw run out; the exact assignment must still deliver.
    xy = make_coords("raster", 100)
    with pytest.raises(ValueError) as err:
        STG.group(xy, GroupingRequest(n_groups=400, group_size=4, neighbors=4,
                                      enable_oversampling=True, rng=0))
    best = int(re.search(r"at most (\d+) groups are possible", str(err.value)).group(1))
    assert 100 < best < 400
    for sequential in (False, True):
        req = GroupingRequest(n_groups=best, group_size=4, neighbors=4, rng=3,
                              sequential=sequential, enable_oversampling=True)
        with caplog.at_level(logging.DEBUG, logger="ptycho_grouping.sample_then_group"):
            caplog.clear()
            groups = STG.group(xy, req)
        assert "solving the assignment exactly" in caplog.text
        assert len(np.unique(np.sort(groups, axis=1), axis=0)) == best
        use = np.bincount(groups[:, 0], minlength=100)
        assert use.min() == best // 100 and use.max() == math.ceil(best / 100)
        assert np.array_equal(STG.group(xy, req), groups)
        other_seed = GroupingRequest(n_groups=best, group_size=4, neighbors=4, rng=4,
                                     sequential=sequential, enable_oversampling=True)
        # Sequential mode is deterministic; otherwise the seed matters.
        assert np.array_equal(STG.group(xy, other_seed), groups) == sequential
    with pytest.raises(ValueError, match=rf"n_groups={best + 1} .* at most {best} groups"):
        STG.group(xy, GroupingRequest(n_groups=best + 1, group_size=4, neighbors=4,
                                      enable_oversampling=True, rng=0))


def test_a_request_beyond_an_uncountable_bound_states_the_bound():
    # 300 points x C(30, 3) = 4060 choices: too many candidate sets to count
    # exactly, so the message gives the per-seed bound and says so.
    xy = make_coords("uniform", 300)
    bound = 300 * math.comb(30, 3)
    with pytest.raises(ValueError) as err:
        STG.group(xy, GroupingRequest(n_groups=bound + 1, group_size=4, neighbors=4,
                                      neighbor_pool_size=30, enable_oversampling=True))
    msg = str(err.value)
    assert f"n_groups={bound + 1}" in msg
    assert f"that exceeds {bound} = 300 seeds x C(30, 3) member choices" in msg
    assert f"offer at most {bound} distinct groups (too many candidates to count" in msg
    assert msg.endswith("lower n_groups, or raise neighbor_pool_size")


@given(grouping_cases(), st.sampled_from([2.0**600, 2.0**-900, 2.0**1000]),
       st.booleans())
def test_huge_and_tiny_scans_give_the_groups_of_the_same_scan_at_ordinary_scale(
        case, scale, oversample):
    # Squared distances would overflow (or underflow) at these magnitudes; the
    # engine rescales exactly, so the groups are those of the ordinary scan.
    xy, n, c, k, seed, sequential = case
    m = len(xy)
    if oversample:
        if c == 1 or m < c + 1:
            return
        n = m + n
    req = GroupingRequest(n_groups=n, group_size=c, neighbors=k, rng=seed,
                          sequential=sequential, enable_oversampling=oversample)
    try:
        expected = group_quietly(xy, req)
    except ValueError as exc:  # a request these points cannot meet: the same refusal
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            group_quietly(xy * scale, req)
        return
    assert np.array_equal(group_quietly(xy * scale, req), expected)


def test_an_outlier_at_1e300_leaves_the_other_groups_alone():
    xy = make_coords("jittered_raster", 100, seed=4)
    far = np.vstack([xy, [[1e300, -1e300]]])
    for kw in (dict(n_groups=100), dict(n_groups=300, enable_oversampling=True)):
        groups = STG.group(far, GroupingRequest(group_size=4, neighbors=7, rng=0, **kw))
        assert groups.shape == (kw["n_groups"], 4)
        assert all(len(set(row)) == 4 for row in groups.tolist())
        members = groups[groups[:, 0] != 100, 1:]
        assert not (members == 100).any()  # everyone's farthest point
