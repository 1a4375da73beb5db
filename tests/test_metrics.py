"""Grouping metrics against a brute-force reference written from PtychoPINN's spec formulas."""
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptycho_grouping.metrics import disc_overlap_fraction, grouping_metrics


# -- brute force, one pair at a time, straight from specs/overlap_metrics.md --

def f_ref(d, D):
    if d >= D:
        return 0.0
    r = D / 2
    area = 2 * r * r * math.acos(d / (2 * r)) - (d / 2) * math.sqrt(4 * r * r - d * d)
    return area / (math.pi * r * r)


def dist(a, b):
    return math.sqrt((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2)


def reference(coords, groups, D, k):
    pts = [tuple(map(float, p)) for p in coords]
    rows = [list(map(int, g)) for g in groups]
    m1 = None
    if len(rows[0]) > 1:
        m1 = np.mean([np.mean([f_ref(dist(pts[g[0]], pts[j]), D) for j in g[1:]]) for g in rows])
    unique = sorted({(x + 0.0, y + 0.0) for x, y in pts})
    if len(unique) < 2:
        m2 = 0.0
    else:
        per = []
        for i, p in enumerate(unique):
            ds = sorted(dist(p, q) for j, q in enumerate(unique) if j != i)
            per.append(np.mean([f_ref(d, D) for d in ds[:min(k, len(unique) - 1)]]))
        m2 = np.mean(per)
    coms = [(np.mean([pts[j][0] for j in g]), np.mean([pts[j][1] for j in g])) for g in rows]
    per = []
    for i, a in enumerate(coms):
        fs = [f_ref(dist(a, b), D) for j, b in enumerate(coms) if j != i and dist(a, b) < D]
        per.append(np.mean(fs) if fs else 0.0)
    m3 = np.mean(per)
    use = [sum(r.count(i) for r in rows) for i in range(len(pts))]
    return m1, m2, m3, use


scans = st.integers(2, 60).flatmap(lambda m: st.tuples(
    st.just(m), st.integers(1, 5), st.integers(1, 40), st.integers(0, 2**31),
    st.sampled_from(["uniform", "lattice"])))


@given(scans, st.floats(0.5, 30.0), st.integers(1, 8))
def test_metrics_equal_brute_force(scan, D, k):
    m, c, b, seed, kind = scan
    c = min(c, m)
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        coords = rng.uniform(0, 20, (m, 2))
    else:  # a coarse lattice: repeated positions and exact ties
        coords = rng.integers(0, 4, (m, 2)).astype(float) * 3.0
    groups = np.array([rng.choice(m, c, replace=False) for _ in range(b)])
    got = grouping_metrics(coords, groups, probe_diameter=D, neighbor_count=k)
    m1, m2, m3, use = reference(coords, groups, D, k)
    if c == 1:
        assert got.metric_1_group_based_avg is None
    else:
        assert got.metric_1_group_based_avg == pytest.approx(m1, abs=1e-9)
    assert got.metric_2_image_based_avg == pytest.approx(m2, abs=1e-9)
    assert got.metric_3_group_to_group_avg == pytest.approx(m3, abs=1e-9)
    assert got.n_used == sum(u > 0 for u in use)
    assert got.use_count_max == max(use) and got.use_count_min == min(use)
    assert list(got.use_count_histogram) == [use.count(i) for i in range(max(use) + 1)]
    assert got.use_count_cv == pytest.approx(np.std(use) / np.mean(use), abs=1e-12)


def test_disc_overlap_hand_checked_values():
    D = 10.0
    assert disc_overlap_fraction(0.0, D) == pytest.approx(1.0, abs=1e-15)
    assert disc_overlap_fraction(D, D) == 0.0
    assert disc_overlap_fraction(2.5 * D, D) == 0.0
    # d = R: 2/3 - sqrt(3)/(2 pi) = 0.39100...
    assert disc_overlap_fraction(D / 2, D) == pytest.approx(2 / 3 - math.sqrt(3) / (2 * math.pi),
                                                            abs=1e-15)
    # The distance at which half of a disc is shared, found by bisection on the formula.
    lo, hi = 0.0, D
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f_ref(mid, D) > 0.5 else (lo, mid)
    assert disc_overlap_fraction(lo, D) == pytest.approx(0.5, abs=1e-12)
    assert lo == pytest.approx(0.403973 * D, abs=1e-5)  # d/R = 0.80795, the known half-overlap spacing


def test_two_positions_hand_checked():
    coords = np.array([[0.0, 0.0], [5.0, 0.0], [100.0, 0.0], [103.0, 4.0]])
    groups = np.array([[0, 1], [2, 3]])
    got = grouping_metrics(coords, groups, probe_diameter=10.0, neighbor_count=1)
    f5, f_far = f_ref(5.0, 10.0), f_ref(5.0, 10.0)  # both pairs are 5 apart (3-4-5)
    assert got.metric_1_group_based_avg == pytest.approx((f5 + f_far) / 2, abs=1e-15)
    assert got.metric_3_group_to_group_avg == 0.0  # centres 99 apart
    assert got.used_fraction == 1.0 and got.use_count_cv == 0.0
    assert got.seed_distance_mean == pytest.approx(5.0)
    assert got.centre_distance_max == pytest.approx(2.5)


def test_coincident_group_centres_overlap_fully():
    coords = np.array([[0.0, 0.0], [2.0, 0.0], [20.0, 0.0]])
    groups = np.array([[0, 1], [1, 0], [2, 2]])
    got = grouping_metrics(coords, groups[:2], probe_diameter=4.0)
    assert got.metric_3_group_to_group_avg == 1.0
    assert got.n_used == 2 and got.used_fraction == pytest.approx(2 / 3)
    assert got.use_count_histogram == (1, 0, 2)


def test_single_position_and_no_diameter():
    got = grouping_metrics(np.zeros((3, 2)), np.array([[0], [1]]), probe_diameter=1.0)
    assert got.metric_2_image_based_avg == 0.0  # one unique position
    assert got.metric_1_group_based_avg is None and got.seed_distance_mean is None
    bare = grouping_metrics(np.eye(2), np.array([[0, 1]]))
    assert bare.metric_2_image_based_avg is None and bare.probe_diameter is None


def test_to_dict_is_json():
    rng = np.random.default_rng(1)
    coords = rng.uniform(0, 10, (50, 2))
    got = grouping_metrics(coords, rng.integers(0, 50, (20, 1)), probe_diameter=3.0)
    text = json.dumps(got.to_dict())
    back = json.loads(text)
    assert back["metric_2_image_based_avg"] == got.metric_2_image_based_avg
    assert sum(back["use_count_histogram"]) == 50


def test_metric_3_blocks_give_the_same_answer(monkeypatch):
    import ptycho_grouping.metrics as mod
    rng = np.random.default_rng(2)
    coords = rng.uniform(0, 30, (400, 2))
    groups = rng.integers(0, 400, (300, 4))
    whole = grouping_metrics(coords, groups, probe_diameter=6.0)
    monkeypatch.setattr(mod, "_PAIR_BLOCK", 7)
    blocked = grouping_metrics(coords, groups, probe_diameter=6.0)
    assert blocked.metric_3_group_to_group_avg == pytest.approx(
        whole.metric_3_group_to_group_avg, abs=1e-12)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_diameter_named(bad):
    with pytest.raises(ValueError, match="probe_diameter"):
        grouping_metrics(np.eye(2), np.array([[0, 1]]), probe_diameter=bad)


def test_bad_groups_named():
    with pytest.raises(ValueError, match="groups"):
        grouping_metrics(np.eye(2), np.array([[0, 2]]))
    with pytest.raises(TypeError, match="groups"):
        grouping_metrics(np.eye(2), np.array([[0.0, 1.0]]))
