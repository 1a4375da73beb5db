"""NeighborIndex against a brute-force oracle: the exactness contract on every path.

The contract: the ``k`` nearest other points of each seed, nearest first,
points at equal squared distance ordered by index, the seed excluded by
index; the same answer whichever internal path (grid, tree) gives it, and
at any magnitude of the coordinates.
"""
import math
import pickle

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ptycho_grouping import NeighborIndex
from ptycho_grouping.neighbors import distance_exponent

METHODS = ("auto", "grid", "tree")
SHAPES = ("raster", "jittered_raster", "fermat_spiral", "rings", "line", "clusters",
          "duplicated", "uniform")


def brute_neighbors(xy, seeds, k):
    """The oracle: per seed, every point's squared distance, sorted by (distance, index)."""
    xy = np.asarray(xy, dtype=np.float64)
    out = np.empty((len(seeds), k), dtype=np.intp)
    for row, s in enumerate(np.asarray(seeds).tolist()):
        d2 = (xy[:, 0] - xy[s, 0]) ** 2 + (xy[:, 1] - xy[s, 1]) ** 2
        d2[s] = np.inf
        out[row] = np.lexsort((np.arange(len(xy)), d2))[:k]
    return out


def scan(shape: str, m: int, rng) -> np.ndarray:
    """``m`` positions of a scan family, at unit-ish spacing."""
    if shape in ("raster", "jittered_raster"):
        side = max(1, math.ceil(math.sqrt(m)))
        yy, xx = np.divmod(np.arange(m), side)
        xy = np.column_stack([xx, yy]).astype(float)
        if shape == "jittered_raster":
            xy += rng.normal(0, 0.1, xy.shape)
        return xy
    if shape == "fermat_spiral":
        i = np.arange(m)
        r, theta = np.sqrt(i), i * np.pi * (3 - np.sqrt(5))
        return np.column_stack([r * np.cos(theta), r * np.sin(theta)])
    if shape == "rings":  # concentric rings around one centre: many equal distances
        ring = np.arange(m) // 8
        theta = (np.arange(m) % 8) * (np.pi / 4)
        return np.column_stack([ring * np.cos(theta), ring * np.sin(theta)])
    if shape == "line":
        return np.column_stack([np.arange(m) * 0.5, np.zeros(m)])
    if shape == "clusters":
        centres = rng.uniform(0, 200, (max(1, m // 25), 2))
        return centres[rng.integers(0, len(centres), m)] + rng.normal(0, 0.5, (m, 2))
    if shape == "duplicated":
        base = rng.uniform(0, 10, (max(1, m // 4), 2))
        return base[rng.integers(0, len(base), m)]
    return rng.uniform(0, 30, (m, 2))


@st.composite
def cases(draw, max_m=400):
    shape = draw(st.sampled_from(SHAPES))
    m = draw(st.integers(1, max_m))
    xy = scan(shape, m, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    k = draw(st.integers(0, min(m - 1, 40)))
    n = draw(st.integers(1, m))
    seeds = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).choice(m, n, replace=False)
    return xy, seeds, k


@given(cases(), st.sampled_from(METHODS))
def test_every_path_matches_the_brute_force_oracle(case, method):
    xy, seeds, k = case
    got = NeighborIndex(xy).neighbors(seeds, k, method=method)
    assert got.dtype == np.intp and got.shape == (seeds.size, k)
    assert np.array_equal(got, brute_neighbors(xy, seeds, k))


def exact_power_of_two_range(xy):
    """Exponents ``e`` for which ``xy * 2**e`` is exact (no overflow, no subnormal)."""
    mags = np.abs(xy[xy != 0])
    if mags.size == 0:
        return -1000, 1000
    return -1021 - math.frexp(float(mags.min()))[1] + 1, 1023 - math.frexp(float(mags.max()))[1]


@given(cases(max_m=200), st.sampled_from(["huge", "tiny"]), st.floats(0, 1))
def test_huge_and_tiny_scales_group_as_the_same_scan_at_ordinary_magnitude(case, which, where):
    xy, seeds, k = case
    lo, hi = exact_power_of_two_range(xy)
    # huge: |x| of 1e150 and up (squares overflow); tiny: 1e-150 and down (they underflow)
    span = (max(lo, 500), hi) if which == "huge" else (lo, min(hi, -500))
    assume(span[0] <= span[1])
    e = round(span[0] + where * (span[1] - span[0]))
    scaled = np.ldexp(xy, e)
    assert np.array_equal(np.ldexp(scaled, -e), xy)  # the scaling itself was exact
    expected = brute_neighbors(xy, seeds, k)
    for method in METHODS:
        assert np.array_equal(NeighborIndex(scaled).neighbors(seeds, k, method=method), expected)


@given(cases(max_m=150), st.sampled_from([1e155, 1e300, -1e300, 1e-300, 1e-160]))
def test_any_finite_coordinates_are_answered_exactly(case, factor):
    # Multiplying by a non power of two rounds: the reference is brute force on
    # an exactly rescaled copy (power of two), in which squares stay finite.
    xy, seeds, k = case
    xy = xy * factor
    safe = np.ldexp(xy, distance_exponent(xy.min(axis=0), xy.max(axis=0)))
    got = NeighborIndex(xy).neighbors(seeds, k)
    assert np.array_equal(got, brute_neighbors(safe, seeds, k))


@given(cases(max_m=150), st.sampled_from([1e300, -1e300, 1.7e308]))
def test_one_far_outlier_among_ordinary_points(case, outlier):
    xy, seeds, k = case
    xy = np.vstack([xy, [[outlier, 0.0]]])
    all_seeds = np.append(seeds, len(xy) - 1)
    e = distance_exponent(xy.min(axis=0), xy.max(axis=0))
    assert e < 0
    for method in METHODS:
        got = NeighborIndex(xy).neighbors(all_seeds, k, method=method)
        assert np.array_equal(got, brute_neighbors(np.ldexp(xy, e), all_seeds, k))
        # The outlier is everyone's farthest point.
        assert (got[:-1] == len(xy) - 1).any() == (k > len(xy) - 2 and seeds.size > 0)


def test_an_outlier_crowding_every_window_hands_all_seeds_to_the_tree():
    # 2000 ordinary points and one at 1e300: the cells are so large that the
    # ordinary points share one, too many for any window; the tree answers.
    xy = np.vstack([scan("jittered_raster", 2000, np.random.default_rng(8)), [[1e300, 0.0]]])
    seeds = np.arange(0, 2001, 97)
    e = distance_exponent(xy.min(axis=0), xy.max(axis=0))
    assert np.array_equal(NeighborIndex(xy).neighbors(seeds, 7, method="grid"),
                          brute_neighbors(np.ldexp(xy, e), seeds, 7))


@pytest.mark.parametrize("shape", ["raster", "rings", "line"])
def test_ties_at_the_window_edge_are_resolved_by_index(shape):
    # Perfect lattices: the k-th neighbour ties with points in the next ring of
    # cells for many k. Every k from 1 to 60, every seed, on the grid path.
    xy = scan(shape, 300, np.random.default_rng(0))
    seeds = np.arange(300)
    for k in range(1, 61):
        assert np.array_equal(NeighborIndex(xy).neighbors(seeds, k, method="grid"),
                              brute_neighbors(xy, seeds, k)), k


def test_coincident_positions_are_each_others_neighbours_in_index_order():
    xy = np.zeros((50, 2))
    got = NeighborIndex(xy).neighbors(np.array([0, 3, 49]), 4)
    assert got.tolist() == [[1, 2, 3, 4], [0, 1, 2, 4], [0, 1, 2, 3]]
    # Coincident clumps next to ordinary points: the clump comes first, by index.
    xy = np.vstack([np.zeros((20, 2)), [[1.0, 0.0], [0.0, 1.0]], np.zeros((5, 2))])
    got = NeighborIndex(xy).neighbors(np.array([21, 22]), 3)
    assert got.tolist() == [[0, 1, 2], [0, 1, 2]]


def test_a_second_draw_reuses_the_structures():
    xy = scan("jittered_raster", 5000, np.random.default_rng(1))
    index = NeighborIndex(xy)
    assert not index.built
    first = index.neighbors(np.arange(10), 6)
    assert index.built
    again = index.neighbors(np.arange(10), 6)
    assert np.array_equal(first, again)
    assert np.array_equal(index.neighbors(np.arange(5000), 6),
                          brute_neighbors(xy, np.arange(5000), 6))


@pytest.mark.parametrize("shape", ["jittered_raster", "clusters", "duplicated", "line"])
def test_a_first_small_draw_on_many_points_matches_the_oracle(shape):
    # Few seeds among many points: the first call bins only the points in the
    # seeds' windows; the second bins them all. Same answers, the oracle's.
    xy = scan(shape, 20_000, np.random.default_rng(5))
    seeds = np.random.default_rng(6).choice(len(xy), 40, replace=False)
    for k in (1, 7, 30):
        index = NeighborIndex(xy)
        expected = brute_neighbors(xy, seeds, k)
        for call in range(2):
            assert np.array_equal(index.neighbors(seeds, k), expected), (k, call)


def test_windows_with_fewer_points_than_k_are_widened_or_handed_on():
    # Tight clumps of 5 far apart: no 3 x 3 window around a seed holds k = 7
    # other points, so its window is widened until the tree takes over.
    rng = np.random.default_rng(3)
    centres = rng.uniform(0, 1e4, (40, 2))
    xy = np.repeat(centres, 5, axis=0) + rng.normal(0, 0.01, (200, 2))
    seeds = np.arange(0, 200, 7)
    for method in METHODS:
        assert np.array_equal(NeighborIndex(xy).neighbors(seeds, 7, method=method),
                              brute_neighbors(xy, seeds, 7))
    far = np.repeat([[0.0, 0.0], [1e4, 0.0], [0.0, 1e4], [1e4, 1e4]], 5, axis=0)
    far += rng.normal(0, 0.01, far.shape)
    for seed in range(0, 20, 3):  # one seed at a time: no other window pads its row
        assert np.array_equal(NeighborIndex(far).neighbors([seed], 7, method="grid"),
                              brute_neighbors(far, [seed], 7))


def test_an_index_pickles_with_its_structures():
    xy = scan("jittered_raster", 3000, np.random.default_rng(2))
    index = NeighborIndex(xy)
    first = index.neighbors(np.arange(0, 3000, 11), 6)
    clone = pickle.loads(pickle.dumps(index))
    assert repr(clone) == "NeighborIndex(n_points=3000, built=True)"
    assert not clone.coords.flags.writeable
    assert np.array_equal(clone.neighbors(np.arange(0, 3000, 11), 6), first)


def test_bad_arguments_are_named():
    index = NeighborIndex(np.arange(20.0).reshape(10, 2))
    with pytest.raises(ValueError, match=r"k must be in \[0, 9\], got 10"):
        index.neighbors([0], 10)
    with pytest.raises(ValueError, match=r"method must be .* got 'kd'"):
        index.neighbors([0], 2, method="kd")
    with pytest.raises(ValueError, match=r"seeds must be point indices in \[0, 9\]"):
        index.neighbors([10], 2)
    assert index.neighbors([], 3).shape == (0, 3)
    assert index.neighbors([1, 2], 0).shape == (2, 0)


# A grouped request's share of the points (n_groups = M * num // den), as in the
# million-point case that once took more than 30 s: coincident and spread out.
WORK_CASES = [dict(share=(3, 100)), dict(share=(3, 10)), dict(share=(3, 100), sequential=True),
              dict(share=(2, 1), enable_oversampling=True)]
#: Candidate distances examined per seed, at most: a constant times K + 1, whatever M is.
#: Measured: K + 1 exactly for coincident points (the distinct-position tree), about
#: 10 (K + 1) for spread-out ones (the padded 3x3 cell windows).
WORK_PER_SEED = 16


@pytest.mark.parametrize("m", [100_000, pytest.param(1_000_000, marks=pytest.mark.slow)])
@pytest.mark.parametrize("spread", ["coincident", "distinct"])
def test_work_per_seed_is_bounded_by_k_not_by_the_points(monkeypatch, m, spread):
    """O(n K) work for n seeds, not O(M) per seed, even when every position coincides.

    The figure in seconds is ``ptycho-group bench``'s "all positions coincident"
    line; here the work is counted: the candidate distances handed to the
    selection, against the seeds searched.
    """
    from ptycho_grouping import GroupingRequest, get_strategy
    from ptycho_grouping import neighbors as nb

    work = {"examined": 0, "seeds": 0}
    select, search = nb._select, nb.NeighborIndex.neighbors

    def counting_select(d2, idx, k):
        work["examined"] += d2.size
        return select(d2, idx, k)

    def counting_search(self, seeds, k, **kwargs):
        work["seeds"] += np.asarray(seeds).size
        return search(self, seeds, k, **kwargs)

    monkeypatch.setattr(nb, "_select", counting_select)
    monkeypatch.setattr(nb.NeighborIndex, "neighbors", counting_search)
    xy = (np.zeros((m, 2)) if spread == "coincident"
          else np.random.default_rng(0).uniform(0, 1000, (m, 2)))
    stg, k = get_strategy("sample_then_group"), 7
    for case in WORK_CASES:
        kw = {key: value for key, value in case.items() if key != "share"}
        n_groups = m * case["share"][0] // case["share"][1]
        work.update(examined=0, seeds=0)
        groups = stg.group(xy, GroupingRequest(n_groups=n_groups, group_size=4, neighbors=k,
                                               rng=0, **kw))
        assert groups.shape == (n_groups, 4)
        ordered = np.sort(groups, axis=1)
        assert (ordered[:, 1:] != ordered[:, :-1]).all()  # distinct members in every group
        assert 0 < work["seeds"] <= m
        assert 0 < work["examined"] <= WORK_PER_SEED * (k + 1) * work["seeds"], (case, work)
