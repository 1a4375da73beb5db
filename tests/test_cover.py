"""The covering strategy: every position used, the default's group contract, few groups."""
import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptycho_grouping import GroupingRequest, NeighborIndex, get_strategy
from ptycho_grouping.cover import CoverScan, min_groups_for_cover
from ptycho_grouping.metrics import grouping_metrics
from scan_patterns import make_coords

FAMILIES = ("jittered_raster", "fermat_spiral", "uniform", "clustered", "line", "duplicated")


def brute_knn(coords, seed, k):
    """The seed's k nearest by (squared distance, index), seed excluded."""
    d2 = ((coords - coords[seed]) ** 2).sum(axis=1)
    order = np.lexsort((np.arange(len(coords)), d2))
    return [int(i) for i in order if i != seed][:k]


@given(st.sampled_from(FAMILIES), st.integers(2, 300), st.sampled_from([(2, 4), (2, 7), (3, 9),
                                                                          (3, 12)]),
       st.integers(0, 2**16))
def test_cover_uses_every_position_within_the_seed_neighbourhood(family, m, gk, seed):
    g, k = gk
    c = g * g
    coords = make_coords(family, m, seed)
    if m < c:
        return
    req = GroupingRequest(n_groups=1, group_size=c, neighbors=k, rng=seed)
    with pytest.warns(UserWarning) if k > m - 1 else _nothing():
        need = min_groups_for_cover(coords, req)
    req = GroupingRequest(n_groups=need, group_size=c, neighbors=k, rng=seed)
    with pytest.warns(UserWarning) if k > m - 1 else _nothing():
        groups = get_strategy("cover_scan").group(coords, req)
    assert groups.shape == (need, c)
    assert np.array_equal(np.unique(groups), np.arange(m))  # every position used
    assert need >= math.ceil(m / c)
    kk = min(k, m - 1)
    for row in groups[:: max(1, len(groups) // 25)]:
        assert len(set(row.tolist())) == c
        assert set(row[1:].tolist()) <= set(brute_knn(coords, row[0], kk))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@given(st.sampled_from(FAMILIES), st.integers(0, 2**16))
def test_deterministic_for_a_seed(family, seed):
    coords = make_coords(family, 400, seed)
    req = GroupingRequest(n_groups=150, group_size=4, neighbors=7, rng=seed)
    a = CoverScan().group(coords, req)
    b = CoverScan().group(NeighborIndex(coords), req)
    assert np.array_equal(a, b)
    seq = GroupingRequest(n_groups=150, group_size=4, neighbors=7, rng=seed, sequential=True)
    other = GroupingRequest(n_groups=150, group_size=4, neighbors=7, rng=seed + 1,
                            sequential=True)
    assert np.array_equal(CoverScan().group(coords, seq), CoverScan().group(coords, other))


@pytest.mark.parametrize("pattern", ["raster", "spiral", "random"])
@pytest.mark.parametrize("g,k", [(2, 7), (2, 9), (3, 9)])
def test_half_the_cover_count_covers_nearly_as_many_as_it_could(pattern, g, k):
    from ptycho_cli.demo import scan_positions
    m, c = 10_000, g * g
    coords = scan_positions(m, pattern, step=1.0, rng=0)
    n = math.ceil(m / c) // 2
    groups = CoverScan().group(coords, GroupingRequest(n_groups=n, group_size=c, neighbors=k,
                                                       rng=0))
    assert len(np.unique(groups)) >= 0.95 * min(m, n * c)
    default = get_strategy().group(coords, GroupingRequest(n_groups=n, group_size=c,
                                                           neighbors=k, rng=0))
    ours, theirs = grouping_metrics(coords, groups), grouping_metrics(coords, default)
    assert ours.seed_distance_mean <= 1.3 * theirs.seed_distance_mean  # compact groups
    assert ours.n_used > theirs.n_used


@pytest.mark.parametrize("pattern", ["raster", "spiral", "random"])
@pytest.mark.parametrize("k", [7, 9])
def test_gridsize_2_cover_needs_at_most_1_2_times_m_over_c(pattern, k):
    from ptycho_cli.demo import scan_positions
    m, c = 10_000, 4
    coords = scan_positions(m, pattern, step=1.0, rng=0)
    need = min_groups_for_cover(coords, GroupingRequest(n_groups=1, group_size=c, neighbors=k,
                                                        rng=0))
    assert math.ceil(m / c) <= need <= 1.1 * math.ceil(m / c)  # bar 1.2; measured 1.01-1.07


@pytest.mark.parametrize("pattern, most", [("raster", 1.1), ("spiral", 1.26), ("random", 1.3)])
def test_gridsize_3_cover_size(pattern, most):
    # Measured 1.057 / 1.252 / 1.287 x ceil(M/C): the raster within the bar (1.2), spiral
    # and random not (docs/strategies.md, "Bars not met"). Without the look-ahead tie-break
    # the three took 1.113 / 1.282 / 1.344, without the merging of small pairs 1.063 /
    # 1.269 / 1.330, above these limits.
    from ptycho_cli.demo import scan_positions
    m, c = 10_000, 9
    coords = scan_positions(m, pattern, step=1.0, rng=0)
    need = min_groups_for_cover(coords, GroupingRequest(n_groups=1, group_size=c, neighbors=9,
                                                        rng=0))
    assert math.ceil(m / c) <= need <= most * math.ceil(m / c)


def test_more_than_the_cover_adds_default_draws():
    coords = make_coords("jittered_raster", 300, 3)
    req = GroupingRequest(n_groups=1, group_size=4, neighbors=7, rng=5)
    need = min_groups_for_cover(coords, req)
    more = CoverScan().group(coords, GroupingRequest(n_groups=need + 40, group_size=4,
                                                     neighbors=7, rng=5))
    cover = CoverScan().group(coords, GroupingRequest(n_groups=need, group_size=4,
                                                      neighbors=7, rng=5))
    assert more.shape == (need + 40, 4)
    assert np.array_equal(more[:need], cover)
    index = NeighborIndex(coords)
    for row in more[need:]:
        assert set(row[1:].tolist()) <= set(index.neighbors(row[:1], 7)[0].tolist())


def test_fewer_groups_than_points_cover_disjointly_first():
    coords = make_coords("uniform", 2000, 1)
    groups = CoverScan().group(coords, GroupingRequest(n_groups=100, group_size=4,
                                                       neighbors=7, rng=2))
    assert len(np.unique(groups)) == 400  # the first groups bring C new points each


def test_gridsize_1_and_validation():
    coords = make_coords("uniform", 50, 0)
    one = CoverScan().group(coords, GroupingRequest(n_groups=50, group_size=1, rng=0))
    assert sorted(one[:, 0].tolist()) == list(range(50))
    assert min_groups_for_cover(coords, GroupingRequest(n_groups=1, group_size=1)) == 50
    with pytest.raises(ValueError, match=r"neighbors=3 must be at least 4 .*'cover_scan'"):
        CoverScan().group(coords, GroupingRequest(n_groups=5, group_size=4, neighbors=3))
    with pytest.raises(ValueError, match="enable_oversampling"):
        CoverScan().group(coords, GroupingRequest(n_groups=60, group_size=4, neighbors=7))
    over = CoverScan().group(coords, GroupingRequest(n_groups=60, group_size=4, neighbors=7,
                                                     enable_oversampling=True, rng=0))
    assert over.shape == (60, 4) and len(np.unique(over)) == 50


def test_global_random_state_untouched():
    state = np.random.get_state()
    CoverScan().group(make_coords("uniform", 500, 0),
                      GroupingRequest(n_groups=200, group_size=4, neighbors=7, rng=None))
    assert np.array_equal(np.random.get_state()[1], state[1])


def test_huge_coordinates_group_as_ordinary_ones():
    coords = make_coords("jittered_raster", 400, 0)
    req = GroupingRequest(n_groups=1, group_size=4, neighbors=7, rng=0)
    assert (min_groups_for_cover(coords * 2.0**1000, req)
            == min_groups_for_cover(coords, req))


def test_clamped_k_is_one_parameter_warning_in_the_callers_names():
    from ptycho_grouping.errors import Names, ParameterWarning, warning_names
    coords = make_coords("uniform", 6, 0)
    req = GroupingRequest(n_groups=4, group_size=4, neighbors=9, rng=0)
    plan = CoverScan().resolve(req, 6)
    assert (plan.n_groups, plan.neighbors) == (4, 5)
    assert [str(n) for n in plan.notes] == ["neighbors=9 exceeds the 5 other scan points; using 5"]
    with pytest.warns(ParameterWarning) as record:
        groups = CoverScan().group(coords, req)  # the cover, then extras drawn by the default
    assert [(w.message.param, w.message.value) for w in record] == [("neighbors", 9)]
    assert record[0].filename == __file__
    assert groups.shape == (4, 4) and len(np.unique(groups)) == 6
    with warning_names(Names({"neighbors": "K"})), pytest.warns(ParameterWarning) as record:
        min_groups_for_cover(coords, req)
    assert [str(w.message) for w in record] == ["K=9 exceeds the 5 other scan points; using 5"]


def test_count_then_groups_computes_the_cover_once(monkeypatch):
    """The command asks for the cover's size, then for the cover, on one index: the second
    ask reuses the first cover, and gives what a fresh index gives."""
    from ptycho_grouping import cover

    coords = make_coords("uniform", 2000, 5)
    calls = []
    full = cover._full_cover
    monkeypatch.setattr(cover, "_full_cover", lambda *a: calls.append(a[1:]) or full(*a))
    index = NeighborIndex(coords)
    req = GroupingRequest(n_groups=1, group_size=9, neighbors=9, rng=3)
    need = CoverScan().suggested_groups(index, req)
    req = GroupingRequest(n_groups=need, group_size=9, neighbors=9, rng=3)
    groups = get_strategy("cover_scan").group(index, req)
    assert len(calls) == 1
    groups[:] = 0  # the caller's copy: the kept cover is not changed through it
    again = get_strategy("cover_scan").group(index, req)
    fresh = get_strategy("cover_scan").group(NeighborIndex(coords), req)
    assert len(calls) == 2  # the fresh index only
    assert np.array_equal(again, fresh) and np.unique(fresh).size == 2000
    other_seed = get_strategy("cover_scan").group(index, dataclasses.replace(req, rng=4))
    assert len(calls) == 3 and not np.array_equal(other_seed, fresh)
