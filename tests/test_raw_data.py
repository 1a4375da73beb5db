"""RawData.generate_grouped_data: the dictionary PtychoPINN consumers read."""
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ptycho_data import params
from ptycho_data.raw_data import RawData

N = 8


@pytest.fixture(autouse=True)
def clean_params(monkeypatch):
    """Every test starts from the default legacy dict and leaves it so."""
    monkeypatch.setattr(params, "cfg", dict(params.cfg))


def make_raw(xy, n=N, seed=0, obj=None, Y=None):
    rng = np.random.default_rng(seed)
    m = len(xy)
    diff = rng.random((m, n, n)).astype(np.float32)
    return RawData(xy[:, 0], xy[:, 1], xy[:, 0] + 0.5, xy[:, 1] - 0.25, diff,
                   np.ones((n, n), np.complex64), np.arange(m), objectGuess=obj, Y=Y)


def raster(side):
    yy, xx = np.divmod(np.arange(side * side), side)
    return np.column_stack([xx, yy]).astype(float)


DATASETS = {
    "raster_100x100": lambda: raster(100),
    "random_200_field": lambda: np.random.default_rng(3).uniform(0, 200, (2000, 2)),
    "line_5": lambda: np.column_stack([np.arange(5.0), np.zeros(5)]),
    "two_points": lambda: np.array([[0.0, 0.0], [1.0, 0.0]]),
}


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("gridsize", [1, 2, 3])
def test_shapes_and_consistency_on_user_datasets(name, gridsize):
    xy = DATASETS[name]()
    rd = make_raw(xy)
    m, c = len(xy), gridsize * gridsize
    nsamples = min(512, m)
    if c > m:
        with pytest.raises(ValueError, match=rf"gridsize={gridsize} needs C={c} distinct positions per group, more than the {m} scan points"):
            rd.generate_grouped_data(N, K=max(c, 4), nsamples=nsamples, gridsize=gridsize, seed=0)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # K clamped on the 5-point line
        out = rd.generate_grouped_data(N, K=max(c, 4), nsamples=nsamples, gridsize=gridsize, seed=0)
    b = nsamples
    assert out["nn_indices"].shape == (b, c)
    assert out["diffraction"].shape == out["X_full"].shape == (b, N, N, c)
    for key in ("coords_nn", "coords_relative", "coords_start_nn", "coords_start_relative"):
        assert out[key].shape == (b, 1, 2, c)
    assert out["coords_offsets"].shape == out["coords_start_offsets"].shape == (b, 1, 2, 1)
    nn = out["nn_indices"]
    assert np.array_equal(out["diffraction"], np.moveaxis(rd.diff3d[nn], 1, 3))
    assert out["diffraction"].dtype == np.float32
    assert np.array_equal(out["coords_nn"][:, 0, 0], xy[nn, 0])
    assert np.array_equal(out["coords_nn"][:, 0, 1], xy[nn, 1])
    assert np.array_equal(out["coords_start_nn"][:, 0, 0], xy[nn, 0] + 0.5)
    assert np.allclose(out["coords_offsets"][:, 0, :, 0], xy[nn].mean(axis=1))
    assert np.allclose(out["coords_relative"], -(out["coords_nn"] - out["coords_offsets"]))
    assert out["Y"] is None


def test_x_full_normalisation_matches_an_independent_computation():
    rd = make_raw(np.random.default_rng(1).uniform(0, 50, (300, 2)))
    out = rd.generate_grouped_data(N, K=6, nsamples=64, gridsize=2, seed=4)
    d = out["diffraction"].astype(np.float64)
    scale = np.sqrt((N / 2) ** 2 / np.mean(np.sum(d ** 2, axis=(1, 2))))
    assert out["X_full"].dtype == np.float32
    np.testing.assert_allclose(out["X_full"], d * scale, rtol=1e-6)
    # The normalised patterns have mean energy (N/2)^2 per pattern.
    energy = np.sum(out["X_full"].astype(np.float64) ** 2, axis=(1, 2)).mean()
    assert energy == pytest.approx((N / 2) ** 2, rel=1e-5)


def test_exactly_nsamples_groups_for_every_gridsize():
    rd = make_raw(raster(40))
    for g in (1, 2, 3):
        out = rd.generate_grouped_data(N, K=9, nsamples=512, gridsize=g, seed=0)
        assert out["nn_indices"].shape == (512, g * g)
        assert len(np.unique(out["nn_indices"][:, 0])) == 512


def test_params_gridsize_is_honoured_and_the_argument_wins():
    rd = make_raw(raster(20))
    params.set("gridsize", 2)
    assert rd.generate_grouped_data(N, K=4, nsamples=10, seed=0)["nn_indices"].shape == (10, 4)
    assert rd.generate_grouped_data(N, K=9, nsamples=10, seed=0, gridsize=3)["nn_indices"].shape == (10, 9)
    params.cfg.pop("gridsize")
    assert rd.generate_grouped_data(N, nsamples=10, seed=0)["nn_indices"].shape == (10, 1)


def test_strategy_from_params_and_unknown_name():
    rd = make_raw(raster(10))
    params.set("grouping_strategy", "no_such_strategy")
    with pytest.raises(ValueError, match="unknown grouping_strategy 'no_such_strategy'.*sample_then_group"):
        rd.generate_grouped_data(N, nsamples=5, seed=0)
    out = rd.generate_grouped_data(N, nsamples=5, seed=0, grouping_strategy="sample_then_group")
    assert out["nn_indices"].shape == (5, 1)


def test_same_seed_same_groups_and_global_state_untouched():
    rd = make_raw(raster(30))
    state = np.random.get_state()[1].copy()
    a = rd.generate_grouped_data(N, K=7, nsamples=50, gridsize=2, seed=11)
    b = rd.generate_grouped_data(N, K=7, nsamples=50, gridsize=2, seed=11)
    assert np.array_equal(a["nn_indices"], b["nn_indices"])
    assert np.array_equal(np.random.get_state()[1], state)


def test_y_taken_from_y_when_present():
    xy = raster(10)
    Y = (np.arange(100 * N * N).reshape(100, N, N) * (1 + 1j)).astype(np.complex64)
    rd = make_raw(xy, Y=Y, obj=np.ones((20, 20), complex))
    out = rd.generate_grouped_data(N, K=4, nsamples=7, gridsize=2, seed=0)
    assert np.array_equal(out["Y"], np.moveaxis(Y[out["nn_indices"]], 1, 3))


def test_y_from_object_patches_integer_and_half_pixel():
    # A linear object: bilinear interpolation reproduces it exactly.
    rows, cols = np.mgrid[0:40, 0:40]
    obj = (rows + 1j * cols).astype(np.complex64)
    xy = np.array([[10.0, 12.0], [20.5, 15.0], [30.0, 30.0]])
    rd = make_raw(xy, obj=obj)
    out = rd.generate_grouped_data(N, nsamples=3, gridsize=1, sequential_sampling=True)
    Y = out["Y"]
    assert Y.shape == (3, N, N, 1) and Y.dtype == np.complex64
    i, j = np.mgrid[0:N, 0:N]
    half = N // 2
    # gridsize 1: the window is centred on the position, (row, col) = (y, x).
    np.testing.assert_allclose(Y[0, ..., 0], (12 - half + i) + 1j * (10 - half + j))
    np.testing.assert_allclose(Y[1, ..., 0], (15 - half + i) + 1j * (20.5 - half + j), atol=1e-5)
    # Half-pixel: the mean of the two neighbouring pixels.
    padded = np.pad(obj, half)
    np.testing.assert_allclose(Y[1, 2, 3, 0], (padded[15 + 2, 20 + 3] + padded[15 + 2, 21 + 3]) / 2)


def test_object_patches_follow_the_upstream_sign_for_groups():
    rows, cols = np.mgrid[0:60, 0:60]
    obj = (rows + 1j * cols).astype(np.complex64)
    xy = np.array([[20.0, 20.0], [22.0, 20.0], [20.0, 23.0], [22.0, 23.0]])
    rd = make_raw(xy, obj=obj)
    with pytest.warns(UserWarning, match="K=4 exceeds the 3 other"):
        out = rd.generate_grouped_data(N, K=4, nsamples=1, gridsize=2, sequential_sampling=True)
    sx, sy = (out["coords_offsets"] + out["coords_relative"])[0, 0]  # (C,) each
    i, j = np.mgrid[0:N, 0:N]
    for ch in range(4):
        expect = (sy[ch] - N // 2 + i) + 1j * (sx[ch] - N // 2 + j)
        np.testing.assert_allclose(out["Y"][0, ..., ch], expect, atol=1e-4)


def test_no_file_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rd = make_raw(raster(20))
    rd.to_file(data_dir / "scan.npz")
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(data_dir))
    rd.generate_grouped_data(N, K=7, nsamples=30, gridsize=2, seed=0,
                             dataset_path=str(data_dir / "scan.npz"))
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(data_dir))) == before


# -- tree reuse --------------------------------------------------------------

def test_tree_is_reused_and_never_stale():
    rd = make_raw(raster(20))
    rd.generate_grouped_data(N, K=4, nsamples=20, gridsize=2, seed=0)
    first = rd._neighbor_index(None)
    rd.generate_grouped_data(N, K=4, nsamples=20, gridsize=2, seed=1)
    assert rd._neighbor_index(None) is first and first.tree_built

    # In-place edits cannot make the index stale: the positions are read-only.
    with pytest.raises(ValueError, match="read-only"):
        rd.xcoords[0] = 1e6
    # Reassignment drops the index; point 0 moved far away is nobody's neighbour.
    moved = rd.xcoords.copy()
    moved[0] = 1e6
    rd.xcoords = moved
    out = rd.generate_grouped_data(N, K=4, nsamples=400, gridsize=2, seed=0)
    assert rd._neighbor_index(None) is not first
    assert not (out["nn_indices"][:, 1:] == 0).any()


def test_positions_are_private_read_only_copies():
    x = np.arange(5.0)
    rd = RawData(**(base_args() | dict(xcoords=x)))
    x[0] = 99.0  # the caller's array stays theirs and writable
    assert rd.xcoords[0] == 0.0 and not rd.xcoords.flags.writeable
    for name in ("xcoords", "ycoords", "xcoords_start", "ycoords_start"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(rd, name)[1] = np.nan


def test_pickled_rawdata_groups_the_same_and_keeps_positions_read_only():
    import pickle
    rd = make_raw(raster(10))
    want = rd.generate_grouped_data(N, K=4, nsamples=20, gridsize=2, seed=4)
    back = pickle.loads(pickle.dumps(rd))  # after an index was built and cached
    got = back.generate_grouped_data(N, K=4, nsamples=20, gridsize=2, seed=4)
    assert all(np.array_equal(got[k], want[k]) for k in ("nn_indices", "X_full", "coords_nn"))
    with pytest.raises(ValueError, match="read-only"):
        back.ycoords[0] = 3.0


def test_second_call_does_not_revalidate_or_rebuild(monkeypatch):
    """Validation runs on assignment; a second call touches no O(M) check."""
    import ptycho_data.raw_data as module
    rd = make_raw(raster(30))
    rd.generate_grouped_data(N, K=4, nsamples=10, gridsize=2, seed=0)
    calls = []
    for name in ("xcoords", "ycoords", "xcoords_start", "ycoords_start"):
        # The descriptor holds its check: patch it there, where a call would go.
        monkeypatch.setattr(getattr(RawData, name), "check", lambda *a: calls.append(a) or 1 / 0)
    monkeypatch.setattr(module, "NeighborIndex", lambda *a, **k: calls.append(a) or 1 / 0)
    again = rd.generate_grouped_data(N, K=4, nsamples=10, gridsize=2, seed=1)
    assert again["nn_indices"].shape == (10, 4) and calls == []


# -- properties ---------------------------------------------------------------

@given(m=st.integers(10, 120), gridsize=st.integers(1, 3), data=st.data())
def test_output_is_consistent_with_the_groups(m, gridsize, data):
    xy = np.random.default_rng(m).uniform(0, 30, (m, 2))
    c = gridsize * gridsize
    nsamples = data.draw(st.integers(1, m))
    rd = make_raw(xy, n=4)
    out = rd.generate_grouped_data(4, K=max(4, c), nsamples=nsamples, gridsize=gridsize,
                                   seed=data.draw(st.integers(0, 99)))
    nn = out["nn_indices"]
    assert nn.shape == (nsamples, c)
    assert np.array_equal(out["diffraction"][..., 0], rd.diff3d[nn[:, 0]])
    assert np.array_equal(out["coords_nn"][:, 0, :, :], np.stack([xy[nn, 0], xy[nn, 1]], axis=1))
    assert np.allclose(out["coords_relative"].sum(axis=3), 0, atol=1e-9)


# -- bad input ------------------------------------------------------------------

def base_args(m=5, n=4):
    x = np.arange(m, dtype=float)
    return dict(xcoords=x, ycoords=x.copy(), xcoords_start=x.copy(), ycoords_start=x.copy(),
                diff3d=np.zeros((m, n, n), np.float32), probeGuess=np.ones((n, n)),
                scan_index=np.zeros(m, int))


@pytest.mark.parametrize("change, exc, message", [
    (dict(ycoords=np.arange(4.0)), ValueError, "ycoords has 4 entries but xcoords has 5"),
    (dict(xcoords=np.zeros((5, 1))), ValueError, r"xcoords must be 1-D, got shape \(5, 1\)"),
    (dict(diff3d=np.zeros((5, 4))), ValueError, r"diff3d must be 3-D \(M, N, N\), got shape \(5, 4\)"),
    (dict(diff3d=np.zeros((6, 4, 4))), ValueError, "diff3d has 6 patterns but xcoords has 5 positions"),
    (dict(diff3d=np.zeros((5, 4, 3))), ValueError, "diff3d patterns must be square, got 4x3"),
    (dict(xcoords=np.array([0, 1, np.nan, 3, 4.0])), ValueError, "xcoords must be finite.*index 2"),
    (dict(ycoords_start=np.array([0, 1, 2, np.inf, 4.0])), ValueError, "ycoords_start must be finite"),
    (dict(xcoords=np.array(list("abcde"))), TypeError, "xcoords must be real numbers"),
    (dict(scan_index=np.zeros(3)), ValueError, r"scan_index must have shape \(5,\)"),
    (dict(diff3d=np.zeros((5, 4, 4), np.complex64)), TypeError,
     "diff3d must hold real numbers .*got dtype complex64"),
    (dict(diff3d=np.zeros((5, 4, 4), object)), TypeError, "diff3d must hold real numbers .*got dtype object"),
    (dict(diff3d=np.full((5, 4, 4), "a")), TypeError, "diff3d must hold real numbers .*got dtype <U1"),
    (dict(diff3d=np.zeros((5, 4, 4), bool)), TypeError, "diff3d must hold real numbers .*got dtype bool"),
    (dict(Y=np.zeros((5, 6, 6), np.complex64)), ValueError, "Y patches are 6x6 but diff3d patterns are 4x4"),
    (dict(Y=np.zeros((4, 4, 4), np.complex64)), ValueError, "Y has 4 patches but xcoords has 5 positions"),
    (dict(Y=np.full((5, 4, 4), "a")), TypeError, "Y must hold numbers, got dtype <U1"),
    (dict(probeGuess=np.ones((2, 4, 4))), ValueError, r"probeGuess must be 2-D, got shape \(2, 4, 4\)"),
    (dict(probeGuess=np.ones(4)), ValueError, r"probeGuess must be 2-D, got shape \(4,\)"),
    (dict(objectGuess="object.png"), TypeError, "objectGuess must hold numbers, got dtype <U10"),
    (dict(objectGuess=np.ones((3, 3), object)), TypeError, "objectGuess must hold numbers, got dtype object"),
    (dict(objectGuess=np.ones(9)), ValueError, r"objectGuess must be 2-D, got shape \(9,\)"),
])
def test_bad_construction(change, exc, message):
    args = base_args()
    args.update(change)
    with pytest.raises(exc, match=message):
        RawData(**args)


class DtypeOnlyStore:
    """A lazy store that fails the test if anything reads it."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype, self.ndim = shape, np.dtype(dtype), len(shape)

    def __getitem__(self, key):
        raise AssertionError("the store was read")


def test_lazy_store_dtype_is_checked_without_reading():
    args = base_args()
    args["diff3d"] = DtypeOnlyStore((5, 4, 4), np.complex128)
    with pytest.raises(TypeError, match="diff3d must hold real numbers .*got dtype complex128"):
        RawData(**args)
    args["diff3d"] = DtypeOnlyStore((5, 4, 4), np.uint16)
    assert RawData(**args).diff3d is args["diff3d"]


def test_scan_index_none_defaults_to_zeros():
    args = base_args()
    args["scan_index"] = None
    rd = RawData(**args)
    assert np.array_equal(rd.scan_index, np.zeros(5)) and rd.scan_index.dtype == np.int64


def test_probe_may_be_none():
    args = base_args()
    args["probeGuess"] = None
    rd = RawData(**args)
    rd.diff3d[:] = 1
    assert rd.probeGuess is None
    assert rd.generate_grouped_data(4, nsamples=3, seed=0)["nn_indices"].shape == (3, 1)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(nsamples=0), ValueError, "nsamples must be a positive integer, got 0"),
    (dict(nsamples=2.5), TypeError, "nsamples must be a positive integer, got 2.5"),
    (dict(K=0), ValueError, "K must be a positive integer, got 0"),
    (dict(K="4"), TypeError, "K must be a positive integer, got '4'"),
    (dict(seed=-1), ValueError, "seed must be a non-negative int seed, got -1"),
    (dict(seed=1.5), TypeError, "seed must be None, a non-negative int or a numpy.random.Generator, got 1.5"),
    (dict(sequential_sampling="yes"), TypeError, "sequential_sampling must be True or False, got 'yes'"),
    (dict(enable_oversampling=1), TypeError, "enable_oversampling must be True or False, got 1"),
    (dict(neighbor_pool_size=0), ValueError, "neighbor_pool_size must be a positive integer, got 0"),
    (dict(gridsize=0), ValueError, "gridsize must be a positive integer, got 0"),
    (dict(gridsize=2.0), TypeError, "gridsize must be a positive integer, got 2.0"),
])
def test_grouping_errors_name_the_callers_argument(kwargs, exc, message):
    rd = RawData(**base_args())
    args = dict(nsamples=2) | kwargs
    with pytest.raises(exc, match="^" + message):
        rd.generate_grouped_data(4, **args)
    with pytest.raises(exc, match="^" + message):
        rd.group_indices(4, **args)


def test_bad_grouping_arguments():
    rd = RawData(**base_args())
    with pytest.raises(ValueError, match=r"N=8 does not match the diffraction patterns' size 4x4"):
        rd.generate_grouped_data(8, nsamples=2)
    with pytest.raises(ValueError, match="N must be a positive integer, got 0"):
        rd.generate_grouped_data(0, nsamples=2)
    with pytest.raises(ValueError, match=r"K=3 must be at least 4 for gridsize=2 \(C=4\)"):
        rd.generate_grouped_data(4, K=3, nsamples=2, gridsize=2)
    bad = rd.xcoords.copy()
    bad[1] = np.nan
    with pytest.raises(ValueError, match="xcoords must be finite"):
        rd.xcoords = bad


# -- arrays reassigned after construction: checked on assignment, lengths on use --

@pytest.mark.parametrize("name, value, exc, message", [
    ("xcoords_start", np.arange(4.0), ValueError, "xcoords_start has 4 entries but xcoords has 5"),
    ("ycoords_start", np.arange(6.0), ValueError, "ycoords_start has 6 entries but xcoords has 5"),
    ("xcoords", np.arange(6.0), ValueError, "ycoords has 5 entries but xcoords has 6"),
    ("diff3d", np.ones((6, 4, 4)), ValueError, "diff3d has 6 patterns but xcoords has 5 positions"),
    ("diff3d", np.ones((5, 4, 4), complex), TypeError, "diff3d must hold real numbers"),
    ("Y", np.ones((4, 4, 4)), ValueError, "Y has 4 patches but xcoords has 5 positions"),
    ("Y", np.ones((5, 2, 2)), ValueError, "Y patches are 2x2 but diff3d patterns are 4x4"),
])
def test_reassigned_arrays_are_checked_before_grouping(name, value, exc, message):
    rd = RawData(**base_args())
    rd.diff3d[:] = 1
    with pytest.raises(exc, match=message):  # on assignment, or (lengths) on use
        setattr(rd, name, value)
        rd.generate_grouped_data(4, nsamples=2, seed=0)


def test_nan_assigned_to_start_coordinates_is_caught():
    rd = RawData(**base_args())
    bad = np.arange(5.0)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="xcoords_start must be finite: 1 non-finite value.*index 3"):
        rd.xcoords_start = bad
    assert np.array_equal(rd.xcoords_start, np.arange(5.0))  # the old value is kept


def test_coordinates_reassigned_as_lists_work():
    xy = raster(6)
    rd, ref = make_raw(xy), make_raw(xy)
    rd.xcoords, rd.ycoords_start = list(xy[:, 0]), list(xy[:, 1] - 0.25)
    got = rd.generate_grouped_data(N, K=4, nsamples=10, gridsize=2, seed=3)
    want = ref.generate_grouped_data(N, K=4, nsamples=10, gridsize=2, seed=3)
    for key in ("nn_indices", "coords_nn", "coords_relative", "coords_start_nn",
                "coords_start_relative"):
        assert np.array_equal(got[key], want[key]), key


# -- X_full normalisation of blank patterns ------------------------------------

def test_all_zero_drawn_patterns_are_an_error_not_nan():
    rd = make_raw(raster(6))
    rd.diff3d[:] = 0
    with pytest.raises(ValueError, match="drawn diffraction patterns have zero total energy, so "
                                         "X_full's normalisation .* is undefined"):
        rd.generate_grouped_data(N, K=4, nsamples=10, gridsize=2, seed=0)


def test_only_the_drawn_patterns_matter():
    rd = make_raw(raster(6))
    rd.diff3d[:2] = 0  # the first two positions are blank, the others are not
    with pytest.raises(ValueError, match="zero total energy"):
        rd.generate_grouped_data(N, nsamples=2, gridsize=1, sequential_sampling=True)
    out = rd.generate_grouped_data(N, nsamples=3, gridsize=1, sequential_sampling=True)
    assert np.isfinite(out["X_full"]).all() and out["X_full"][2].any()


def test_zero_energy_in_the_lazy_and_streaming_paths(tmp_path):
    pytest.importorskip("dask")
    from ptycho_data.grouped_writer import write_grouped
    rd = make_raw(raster(6))
    rd.diff3d[:] = 0
    out = rd.generate_grouped_data(N, K=4, nsamples=10, gridsize=2, seed=0, lazy=True)
    with pytest.raises(ValueError, match="zero total energy"):
        out["X_full"].compute()
    with pytest.raises(ValueError, match="zero total energy"):
        write_grouped(rd, tmp_path / "g.npz", N, K=4, nsamples=10, gridsize=2, seed=0)
    assert os.listdir(tmp_path) == []


def test_nan_patterns_are_an_error_not_nan():
    rd = make_raw(raster(6))
    rd.diff3d[:, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"non-finite mean energy \(nan\)"):
        rd.generate_grouped_data(N, nsamples=5, seed=0)


def test_warnings_point_at_the_callers_line():
    rd = make_raw(DATASETS["line_5"]())
    with pytest.warns(UserWarning, match="K=7 exceeds the 4 other scan points") as record:
        rd.generate_grouped_data(N, K=7, nsamples=3, gridsize=2, seed=0)
    assert record[0].filename == __file__
