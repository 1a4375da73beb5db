"""LegacyGroupThenSample is exact to the pre-refactor algorithm and its cache files."""
import hashlib
import itertools
import logging
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy.spatial import cKDTree

from ptycho_data import params
from ptycho_data.config import ModelConfig, TrainingConfig, update_legacy_dict
from ptycho_data.raw_data import RawData
from ptycho_grouping import GroupingRequest, get_strategy, legacy, legacy_cache, list_strategies
from ptycho_grouping.errors import ParameterDeprecationWarning, ParameterWarning

from scan_patterns import make_coords

LEGACY = "legacy_group_then_sample"


def old_checksum(x, y):
    """The old ``_compute_dataset_checksum``, on the arrays as the user gave them."""
    payload = np.concatenate([x.flatten(), y.flatten(), np.array([len(x), len(y)])])
    return hashlib.md5(payload.tobytes()).hexdigest()


def old_all_groups(x, y, K, C):
    """The old ``_find_all_valid_groups``, written plainly from DESIGN.md step 4."""
    points = np.column_stack((x, y))
    _, nn = cKDTree(points).query(points, k=K + 1)
    per_point = min(50, len(nn[0]) // C + 1)
    groups = []
    for i in range(len(points)):
        for _ in range(per_point):
            groups.append(sorted(np.random.choice(nn[i], size=C, replace=False)))
    return np.unique(np.array(groups), axis=0)


def old_sample(all_groups, nsamples):
    """The old sampling step (DESIGN.md step 5): all groups in order unless more exist."""
    if len(all_groups) <= nsamples:
        return all_groups
    return all_groups[np.random.choice(len(all_groups), size=nsamples, replace=False)]


def reference_groups(x, y, gridsize, K, nsamples):
    """The old algorithm without the cache (the first, cache-writing call)."""
    C = gridsize ** 2
    if C == 1:
        return np.arange(len(x))[:, None]
    return old_sample(old_all_groups(x, y, K, C), nsamples)


def legacy_group(xy, gridsize, K, nsamples, dataset_path, rng=None):
    with pytest.warns(DeprecationWarning):
        return get_strategy(LEGACY).group(xy, GroupingRequest(
            n_groups=nsamples, group_size=gridsize ** 2, neighbors=K, rng=rng,
            dataset_path=dataset_path))


def count_tree_builds(monkeypatch):
    calls = []
    real = legacy._build_tree

    def counting(points):
        calls.append(len(points))
        return real(points)

    monkeypatch.setattr(legacy, "_build_tree", counting)
    return calls


@pytest.fixture(autouse=True)
def clean_params(monkeypatch):
    monkeypatch.setattr(params, "cfg", dict(params.cfg))


# -- the algorithm -------------------------------------------------------------

@pytest.mark.parametrize("gridsize, K", [(2, k) for k in range(4, 9)] + [(3, 8)])
@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_groups_equal_the_old_algorithm(tmp_path, gridsize, K, seed):
    xy = make_coords("jittered_raster", 150, seed=seed)
    np.random.seed(seed)
    expected = reference_groups(xy[:, 0], xy[:, 1], gridsize, K, 40)
    np.random.seed(seed)
    got = legacy_group(xy, gridsize, K, 40, str(tmp_path / "scan.npz"))
    assert got.shape == (40, gridsize ** 2)
    assert np.array_equal(got, expected)
    # A second run reads the cache: only the sampling step draws from the state.
    all_groups = np.load(tmp_path / f"scan.g{gridsize}k{K}.groups_cache.npz")["all_groups"]
    np.random.seed(seed)
    expected_cached = old_sample(all_groups, 40)
    np.random.seed(seed)
    assert np.array_equal(legacy_group(xy, gridsize, K, 40, str(tmp_path / "scan.npz")),
                          expected_cached)


@pytest.mark.parametrize("family", ["raster", "duplicated", "fermat_spiral", "line"])
def test_tie_heavy_scans_resolve_ties_as_the_old_tree(tmp_path, family):
    # Exact rasters, repeated positions and lines are full of equidistant
    # neighbours: the old balanced tree's tie order must be kept.
    xy = make_coords(family, 120, seed=3)
    np.random.seed(11)
    expected = reference_groups(xy[:, 0], xy[:, 1], 2, 6, 60)
    np.random.seed(11)
    assert np.array_equal(legacy_group(xy, 2, 6, 60, str(tmp_path / "s.npz")), expected)


_example = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(10, 60), K=st.integers(3, 8), nsamples=st.integers(1, 200),
       seed=st.integers(0, 2 ** 32 - 1), family=st.sampled_from(["uniform", "jittered_raster",
                                                                  "duplicated", "clustered"]))
def test_property_equal_to_the_old_algorithm(tmp_path, m, K, nsamples, seed, family):
    K = min(K, m - 1)
    xy = make_coords(family, m, seed=seed % 1000)
    path = tmp_path / f"ex{next(_example)}" / "scan.npz"
    path.parent.mkdir()
    np.random.seed(seed)
    expected = reference_groups(xy[:, 0], xy[:, 1], 2, K, nsamples)
    np.random.seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation and "only n groups" warnings
        got = get_strategy(LEGACY).group(xy, GroupingRequest(
            n_groups=nsamples, group_size=4, neighbors=K, dataset_path=str(path)))
    assert np.array_equal(got, expected)
    assert len(got) <= nsamples and (np.diff(got, axis=1) > 0).all()  # sorted, distinct members


@pytest.mark.parametrize("K", [4, 5, 6, 7])
def test_gridsize_3_needs_k_at_least_8(K):
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=rf"neighbors={K} must be at least 8 for group_size=9"):
        get_strategy(LEGACY).group(make_coords("raster", 50), GroupingRequest(
            n_groups=5, group_size=9, neighbors=K))


def test_group_size_must_be_a_square(tmp_path):
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="group_size=3 must be a perfect square"):
        get_strategy(LEGACY).group(make_coords("uniform", 30), GroupingRequest(
            n_groups=5, group_size=3, neighbors=4, dataset_path=str(tmp_path / "d.npz")))


def test_fewer_groups_than_requested_warns_and_returns_all_in_order(tmp_path):
    xy = make_coords("uniform", 12, seed=1)
    np.random.seed(3)
    expected = reference_groups(xy[:, 0], xy[:, 1], 2, 4, 10_000)
    np.random.seed(3)
    with pytest.warns(UserWarning, match=r"only \d+ groups exist but n_groups=10000") as record:
        got = legacy_group(xy, 2, 4, 10_000, str(tmp_path / "d.npz"))
    assert np.array_equal(got, expected)
    assert np.array_equal(got, np.unique(got, axis=0))  # every group, in np.unique order
    assert [w.filename for w in record if w.category is ParameterWarning] == [__file__]


def test_exactly_as_many_groups_as_exist_returns_all_in_order_without_drawing(tmp_path):
    xy = make_coords("jittered_raster", 40, seed=2)
    np.random.seed(4)
    n_all = len(old_all_groups(xy[:, 0], xy[:, 1], 5, 4))
    np.random.seed(4)
    all_groups = old_all_groups(xy[:, 0], xy[:, 1], 5, 4)
    state_after_enumeration = np.random.get_state()[1].copy()
    np.random.seed(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "fewer groups" warning here
        got = legacy_group(xy, 2, 5, n_all, str(tmp_path / "d.npz"))
    assert np.array_equal(got, all_groups)
    # The old code drew nothing for the sampling step in this case.
    assert np.array_equal(np.random.get_state()[1], state_after_enumeration)


def test_gridsize_1_returns_all_points_in_order_ignoring_the_count(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = np.random.get_state()[1].copy()
    with pytest.warns(UserWarning, match=r"n_groups=5 is ignored .* \(30 groups\)"):
        got = legacy_group(make_coords("uniform", 30), 1, 4, 5, None)
    assert np.array_equal(got, np.arange(30)[:, None])
    assert os.listdir(tmp_path) == []  # no cache for gridsize 1
    assert np.array_equal(np.random.get_state()[1], state)


def test_too_few_points_for_k(tmp_path):
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=r"neighbors=6 needs at least K\+1=7 scan points, got 5"):
        get_strategy(LEGACY).group(make_coords("uniform", 5), GroupingRequest(
            n_groups=2, group_size=4, neighbors=6, dataset_path=str(tmp_path / "d.npz")))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("seed", [0, 99, 2 ** 32 - 1])
def test_int_rng_equals_global_seed_without_touching_the_global_state(tmp_path, seed):
    xy = make_coords("jittered_raster", 80, seed=5)
    np.random.seed(seed)
    expected = reference_groups(xy[:, 0], xy[:, 1], 2, 6, 30)
    np.random.seed(12)
    before = np.random.get_state()[1].copy()
    got = legacy_group(xy, 2, 6, 30, str(tmp_path / "d.npz"), rng=seed)
    assert np.array_equal(got, expected)
    assert np.array_equal(np.random.get_state()[1], before)
    # A Generator is reproducible too (not an old pattern: the old code had no seed).
    a = legacy_group(xy, 2, 6, 30, str(tmp_path / "d.npz"), rng=np.random.default_rng(1))
    b = legacy_group(xy, 2, 6, 30, str(tmp_path / "d.npz"), rng=np.random.default_rng(1))
    assert np.array_equal(a, b)
    # So is a SeedSequence, which seeds the RandomState's bit generator.
    c = legacy_group(xy, 2, 6, 30, str(tmp_path / "d.npz"), rng=np.random.SeedSequence(7))
    d = legacy_group(xy, 2, 6, 30, str(tmp_path / "d.npz"), rng=np.random.SeedSequence(7))
    assert np.array_equal(c, d) and not np.array_equal(c, a)
    assert np.array_equal(np.random.get_state()[1], before)


def test_rng_seed_beyond_randomstate_range_is_a_clear_error(tmp_path):
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=r"rng=4294967296 .*2\*\*32"):
        get_strategy(LEGACY).group(make_coords("uniform", 30), GroupingRequest(
            n_groups=5, group_size=4, neighbors=4, rng=2 ** 32,
            dataset_path=str(tmp_path / "d.npz")))


# -- cache files ------------------------------------------------------------

def test_cache_written_beside_the_dataset_then_reused(tmp_path, monkeypatch):
    xy = make_coords("jittered_raster", 200)
    dataset = tmp_path / "run1" / "scan.npz"
    dataset.parent.mkdir()
    dataset.write_bytes(b"the dataset itself")
    mtime = dataset.stat().st_mtime_ns
    builds = count_tree_builds(monkeypatch)
    np.random.seed(8)
    first = legacy_group(xy, 2, 5, 20, str(dataset))
    cache = tmp_path / "run1" / "scan.g2k5.groups_cache.npz"
    assert cache.is_file() and builds == [200]
    with np.load(cache, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["all_groups", "dataset_checksum", "gridsize", "overlap_factor"]
        assert npz["all_groups"].dtype == np.int64
        np.random.seed(8)
        assert np.array_equal(npz["all_groups"], old_all_groups(xy[:, 0], xy[:, 1], 5, 4))
        assert str(npz["dataset_checksum"]) == old_checksum(xy[:, 0], xy[:, 1])
        assert int(npz["gridsize"]) == 2 and int(npz["overlap_factor"]) == 5
    assert legacy_cache.is_legacy_cache_file(cache)
    second = legacy_group(xy, 2, 5, 20, str(dataset))
    assert builds == [200]  # second call read the cache
    assert second.shape == first.shape
    assert dataset.read_bytes() == b"the dataset itself" and dataset.stat().st_mtime_ns == mtime
    assert sorted(os.listdir(dataset.parent)) == ["scan.g2k5.groups_cache.npz", "scan.npz"]


def test_cache_without_dataset_path_goes_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    xy = make_coords("uniform", 60)
    builds = count_tree_builds(monkeypatch)
    legacy_group(xy, 2, 4, 10, None)
    assert os.listdir(tmp_path) == [f"temp_dataset_{old_checksum(xy[:, 0], xy[:, 1])}.g2k4.groups_cache.npz"]
    legacy_group(xy, 2, 4, 10, None)
    assert builds == [60]


def test_mismatching_cache_is_not_used(tmp_path, monkeypatch):
    xy = make_coords("jittered_raster", 100)
    path = str(tmp_path / "scan.npz")
    legacy_group(xy, 2, 5, 10, path)
    builds = count_tree_builds(monkeypatch)
    moved = xy.copy()
    moved[0, 0] += 0.5  # other coordinates, same file name: checksum differs
    legacy_group(moved, 2, 5, 10, path)
    assert builds == [100]
    cache = tmp_path / "scan.g2k5.groups_cache.npz"
    with np.load(cache) as npz:  # overwritten for the new coordinates, as the old code did
        assert str(npz["dataset_checksum"]) == old_checksum(moved[:, 0], moved[:, 1])
    legacy_group(xy, 2, 6, 10, path)  # other K: another file
    assert builds == [100, 100]
    assert (tmp_path / "scan.g2k6.groups_cache.npz").is_file()
    # Caches recording another gridsize or K under this name are not used either.
    checksum = old_checksum(xy[:, 0], xy[:, 1])
    for gridsize, k in [(3, 5), (2, 4)]:
        legacy_cache.write_cache(cache, np.zeros((3, 4), np.int64), checksum, gridsize, k)
        got = legacy_group(xy, 2, 5, 10, path)
        assert not (got == 0).all()
    assert builds == [100, 100, 100, 100]


@pytest.mark.parametrize("content", ["garbage", "pickle", "wrong_dtype", "wrong_members", "empty"])
def test_corrupt_cache_is_replaced(tmp_path, monkeypatch, content):
    xy = make_coords("uniform", 80)
    cache = tmp_path / "scan.g2k4.groups_cache.npz"
    checksum = old_checksum(xy[:, 0], xy[:, 1])
    if content == "garbage":
        cache.write_bytes(b"\x00not a zip")
    elif content == "empty":
        cache.write_bytes(b"")
    elif content == "pickle":
        arr = np.empty(1, dtype=object)
        arr[0] = {"evil": 1}
        np.savez(cache, all_groups=arr, dataset_checksum=checksum, gridsize=2, overlap_factor=4)
    elif content == "wrong_dtype":
        np.savez_compressed(cache, all_groups=np.zeros((2, 4), np.float64),
                            dataset_checksum=checksum, gridsize=2, overlap_factor=4)
    else:
        np.savez_compressed(cache, all_groups=np.zeros((2, 4), np.int64), dataset_checksum=checksum)
    builds = count_tree_builds(monkeypatch)
    np.random.seed(1)
    legacy_group(xy, 2, 4, 10, str(tmp_path / "scan.npz"))
    assert builds == [80]
    np.random.seed(1)
    with np.load(cache, allow_pickle=False) as npz:
        assert np.array_equal(npz["all_groups"], old_all_groups(xy[:, 0], xy[:, 1], 4, 4))
    assert os.listdir(tmp_path) == [cache.name]  # no temporary files left


def test_cache_written_by_the_old_code_is_read(tmp_path, monkeypatch):
    # A cache file exactly as the old code wrote it (np.savez_compressed, plain str checksum).
    xy = make_coords("jittered_raster", 90, seed=4)
    np.random.seed(6)
    old = old_all_groups(xy[:, 0], xy[:, 1], 6, 4)
    np.savez_compressed(tmp_path / "scan.g2k6.groups_cache.npz", all_groups=old,
                        dataset_checksum=old_checksum(xy[:, 0], xy[:, 1]), gridsize=2,
                        overlap_factor=6)
    builds = count_tree_builds(monkeypatch)
    np.random.seed(21)
    got = legacy_group(xy, 2, 6, 25, str(tmp_path / "scan.npz"))
    np.random.seed(21)
    assert np.array_equal(got, old_sample(old, 25)) and builds == []


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("with_path", [True, False])
def test_old_caches_for_float32_and_integer_coordinates_are_found(tmp_path, monkeypatch, dtype, with_path):
    # The old checksum hashed the user's arrays: float32 values are widened to
    # float64 (same digest as ours), integers hash as int64 (a different digest).
    monkeypatch.chdir(tmp_path)
    xy = make_coords("raster", 64).astype(dtype)
    x, y = xy[:, 0], xy[:, 1]
    checksum = old_checksum(x, y)
    np.random.seed(2)
    old = old_all_groups(x, y, 4, 4)
    dataset = str(tmp_path / "scan.npz") if with_path else f"temp_dataset_{checksum}.npz"
    legacy_cache.write_cache(legacy_cache.cache_path(dataset, 2, 4, checksum), old, checksum, 2, 4)
    builds = count_tree_builds(monkeypatch)
    rd = RawData.from_coords_without_pc(x, y, np.ones((64, 2, 2)), np.ones((2, 2)), np.zeros(64))
    np.random.seed(9)
    with pytest.warns(DeprecationWarning):
        out = rd.generate_grouped_data(2, K=4, nsamples=12, gridsize=2, grouping_strategy=LEGACY,
                                       dataset_path=str(tmp_path / "scan.npz") if with_path else None)
    np.random.seed(9)
    assert builds == [] and np.array_equal(out["nn_indices"], old_sample(old, 12))
    assert len(os.listdir(tmp_path)) == 1  # read, not rewritten beside it


def test_unwritable_cache_location_still_groups(tmp_path, caplog):
    # The old code logged a failed cache write and carried on.
    xy = make_coords("uniform", 50)
    missing_dir = tmp_path / "no" / "such" / "dir"
    np.random.seed(5)
    expected = reference_groups(xy[:, 0], xy[:, 1], 2, 4, 15)
    np.random.seed(5)
    with caplog.at_level(logging.WARNING, logger="ptycho_grouping.legacy"):
        got = legacy_group(xy, 2, 4, 15, str(missing_dir / "scan.npz"))
    assert np.array_equal(got, expected)
    assert "could not write group cache" in caplog.text
    assert os.listdir(tmp_path) == []


def test_logs_cache_hits_and_misses(tmp_path, caplog):
    xy = make_coords("uniform", 50)
    with caplog.at_level(logging.INFO, logger="ptycho_grouping"):
        legacy_group(xy, 2, 4, 5, str(tmp_path / "scan.npz"))
        assert "no usable group cache" in caplog.text
        assert "enumerating groups for 50 points (2 per point)" in caplog.text
        caplog.clear()
        legacy_group(xy, 2, 4, 5, str(tmp_path / "scan.npz"))
        assert "using group cache" in caplog.text and "no usable" not in caplog.text


def test_progress_bar_on_stderr_only_when_asked(tmp_path, capfd):
    xy = make_coords("uniform", 50)
    runs = {}
    for progress in (False, True):
        with pytest.warns(DeprecationWarning):
            runs[progress] = get_strategy(LEGACY).group(xy, GroupingRequest(
                n_groups=20, group_size=4, neighbors=4, rng=3, progress=progress,
                dataset_path=str(tmp_path / f"scan{progress}.npz")))
        runs[progress, "out"] = capfd.readouterr()
    assert runs[False, "out"].err == "" and runs[False, "out"].out == ""
    bar = runs[True, "out"].err
    assert "legacy grouping" in bar and "50/50" in bar and "100%" in bar
    assert runs[True, "out"].out == ""
    assert np.array_equal(runs[False], runs[True])  # the bar draws no random numbers
    # A cache hit enumerates nothing, so there is no bar.
    with pytest.warns(DeprecationWarning):
        get_strategy(LEGACY).group(xy, GroupingRequest(
            n_groups=20, group_size=4, neighbors=4, rng=3, progress=True,
            dataset_path=str(tmp_path / "scanTrue.npz")))
    assert capfd.readouterr().err == ""


def test_raw_data_passes_progress_to_the_strategy(tmp_path, capfd):
    xy = make_coords("uniform", 50)
    raw = RawData.from_coords_without_pc(xy[:, 0], xy[:, 1], np.ones((50, 2, 2)), None, None)
    with pytest.warns(DeprecationWarning):
        groups = raw.group_indices(2, K=4, nsamples=20, gridsize=2, seed=3, progress=True,
                                   grouping_strategy=LEGACY,
                                   dataset_path=str(tmp_path / "scan.npz"))
    err = capfd.readouterr().err
    assert groups.shape == (20, 4) and "legacy grouping" in err and "50/50" in err
    with pytest.raises(TypeError, match="progress must be True or False, got 'yes'"):
        raw.group_indices(2, K=4, nsamples=20, gridsize=2, progress="yes")


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_progress_must_be_a_bool(value):
    with pytest.raises(TypeError, match=rf"progress must be True or False, got {value!r}"):
        GroupingRequest(n_groups=3, progress=value)


# -- deprecation and selection ------------------------------------------------

def test_deprecation_warning_points_at_the_caller_and_explains(tmp_path):
    with pytest.warns(DeprecationWarning) as record:
        get_strategy(LEGACY).group(make_coords("uniform", 40), GroupingRequest(
            n_groups=5, group_size=4, neighbors=4, dataset_path=str(tmp_path / "d.npz")))
    assert len(record) == 1
    message = str(record[0].message)
    assert record[0].category is ParameterDeprecationWarning
    assert record[0].filename == __file__
    for phrase in ("sample_then_group", "will be removed", "0.3", "MIGRATION.md",
                   "exactly the requested", "gridsize 1", "no cache files"):
        assert phrase in message


def test_listed_as_deprecated():
    info = {i.name: i for i in list_strategies()}[LEGACY]
    assert info.deprecated and info.source == "built-in"
    assert info.cls is legacy.LegacyGroupThenSample
    assert not {i.name: i for i in list_strategies()}["sample_then_group"].deprecated


def make_raw(m=64):
    xy = make_coords("jittered_raster", m)
    return RawData.from_coords_without_pc(xy[:, 0], xy[:, 1], np.ones((m, 4, 4), np.float32),
                                          np.ones((4, 4)), np.zeros(m, int))


def test_selected_by_argument_params_and_config(tmp_path):
    rd = make_raw()
    path = str(tmp_path / "scan.npz")
    np.random.seed(5)
    expected = reference_groups(rd.xcoords, rd.ycoords, 2, 4, 16)

    np.random.seed(5)
    with pytest.warns(DeprecationWarning) as record:
        out = rd.generate_grouped_data(4, K=4, nsamples=16, gridsize=2, dataset_path=path,
                                       grouping_strategy=LEGACY)
    assert record[0].filename == __file__
    assert np.array_equal(out["nn_indices"], expected)
    assert out["diffraction"].shape == (16, 4, 4, 4)
    assert np.array_equal(out["coords_nn"][:, 0, 0], rd.xcoords[expected])

    os.unlink(tmp_path / "scan.g2k4.groups_cache.npz")
    params.set("grouping_strategy", LEGACY)
    params.set("gridsize", 2)
    np.random.seed(5)
    with pytest.warns(DeprecationWarning) as record:
        out = rd.generate_grouped_data(4, K=4, nsamples=16, dataset_path=path)
    assert record[0].filename == __file__
    assert np.array_equal(out["nn_indices"], expected)

    params.set("grouping_strategy", "sample_then_group")
    params.set("gridsize", 1)
    update_legacy_dict(params.cfg, TrainingConfig(model=ModelConfig(N=4, gridsize=2),
                                                  grouping_strategy=LEGACY))
    os.unlink(tmp_path / "scan.g2k4.groups_cache.npz")
    np.random.seed(5)
    with pytest.warns(DeprecationWarning):
        out = rd.generate_grouped_data(4, K=4, nsamples=16, dataset_path=path)
    assert np.array_equal(out["nn_indices"], expected)

    # The explicit argument wins over params.cfg.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        out = rd.generate_grouped_data(4, K=4, nsamples=16, dataset_path=path, seed=0,
                                       grouping_strategy="sample_then_group")
    assert out["nn_indices"].shape == (16, 4)


def test_data_layer_gridsize_1_gives_every_position(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rd = make_raw(30)
    with pytest.warns(DeprecationWarning), pytest.warns(UserWarning) as caught:
        out = rd.generate_grouped_data(4, K=4, nsamples=5, gridsize=1, grouping_strategy=LEGACY)
    assert np.array_equal(out["nn_indices"], np.arange(30)[:, None])
    # The ignored count is said, in the caller's names.
    notes = [w.message for w in caught if not issubclass(w.category, DeprecationWarning)]
    assert [(n.param, n.value) for n in notes] == [("nsamples", 5)]
    assert str(notes[0]).startswith("nsamples=5 is ignored by the legacy strategy at "
                                    "gridsize=1 (C=1): it returns every scan point in order "
                                    "(30 groups)")
    assert out["diffraction"].shape == (30, 4, 4, 1)
    assert os.listdir(tmp_path) == []


def test_default_path_does_not_warn():
    rd = make_raw()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        rd.generate_grouped_data(4, K=4, nsamples=8, gridsize=2, seed=0)


def test_unreadable_cache_is_neither_removed_nor_replaced(tmp_path, monkeypatch, caplog):
    # Another user's cache on a shared disk: we cannot read it, so we compute
    # the groups and leave the file exactly as it was (forced with
    # monkeypatch so that it also runs as root).
    xy = make_coords("uniform", 50)
    cache = tmp_path / "scan.g2k4.groups_cache.npz"
    legacy_cache.write_cache(cache, np.zeros((3, 4), np.int64), "theirs", 2, 4)
    before = (cache.read_bytes(), cache.stat().st_mtime_ns, cache.stat().st_ino)

    def read_cache(path, *args):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(legacy_cache, "read_cache", read_cache)
    np.random.seed(5)
    expected = reference_groups(xy[:, 0], xy[:, 1], 2, 4, 15)
    np.random.seed(5)
    with caplog.at_level(logging.WARNING, logger="ptycho_grouping.legacy"):
        got = legacy_group(xy, 2, 4, 15, str(tmp_path / "scan.npz"))
    assert np.array_equal(got, expected)
    assert f"cannot read group cache {cache} (Permission denied)" in caplog.text
    assert (cache.read_bytes(), cache.stat().st_mtime_ns, cache.stat().st_ino) == before
    assert os.listdir(tmp_path) == [cache.name]


@pytest.mark.parametrize("options, named", [
    (dict(sequential=True), ["sequential=True"]),
    (dict(enable_oversampling=True, neighbor_pool_size=6),
     ["enable_oversampling=True", "neighbor_pool_size=6"]),
])
def test_ignored_options_are_named_in_a_warning(tmp_path, options, named):
    xy = make_coords("uniform", 40)
    np.random.seed(2)
    expected = reference_groups(xy[:, 0], xy[:, 1], 2, 4, 8)
    np.random.seed(2)
    with pytest.warns(DeprecationWarning), pytest.warns(UserWarning, match="ignores") as record:
        got = get_strategy(LEGACY).group(xy, GroupingRequest(
            n_groups=8, group_size=4, neighbors=4, dataset_path=str(tmp_path / "d.npz"),
            **options))
    assert np.array_equal(got, expected)  # ignored indeed: the old random groups
    ignored = [w for w in record if w.category is ParameterWarning]
    assert len(ignored) == 1 and ignored[0].filename == __file__
    for text in named:
        assert text in str(ignored[0].message)


def test_default_options_do_not_warn_about_being_ignored(tmp_path):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        get_strategy(LEGACY).group(make_coords("uniform", 40), GroupingRequest(
            n_groups=8, group_size=4, neighbors=4, dataset_path=str(tmp_path / "d.npz")))
    assert [w.category for w in record] == [ParameterDeprecationWarning]


def test_deprecation_is_a_warning_on_every_use_and_never_a_log_record(tmp_path, caplog):
    with caplog.at_level(logging.DEBUG, logger="ptycho_grouping"), \
            warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            get_strategy(LEGACY).group(make_coords("uniform", 40), GroupingRequest(
                n_groups=5, group_size=4, neighbors=4, dataset_path=str(tmp_path / "d.npz")))
    deprecations = [w for w in record if w.category is ParameterDeprecationWarning]
    assert [str(w.message) for w in deprecations] == [legacy.DEPRECATION_MESSAGE] * 3
    assert all(w.filename == __file__ for w in deprecations)
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]


@pytest.mark.real_process  # a fresh interpreter (imports, limits, filters) is what is tested
def test_deprecation_shown_once_to_a_script_and_not_logged(tmp_path):
    # Python's default filters: shown once per calling line in __main__, hidden
    # when the calling line is in an imported module. Never a log line as well.
    import subprocess
    import sys
    (tmp_path / "userlib.py").write_text(
        "from ptycho_grouping import GroupingRequest, get_strategy\n"
        "def run(xy, path):\n"
        "    return get_strategy('legacy_group_then_sample').group(xy, GroupingRequest(\n"
        "        n_groups=5, group_size=4, neighbors=4, dataset_path=path))\n")
    script = ("import logging, numpy as np, userlib\n"
              "from ptycho_grouping import GroupingRequest, get_strategy\n"
              "logging.basicConfig(level=logging.DEBUG)\n"
              "xy = np.random.default_rng(0).uniform(0, 9, (40, 2))\n"
              "userlib.run(xy, 'd.npz'); userlib.run(xy, 'd.npz')\n"
              "for _ in range(2):\n"
              "    get_strategy('legacy_group_then_sample').group(\n"
              "        xy, GroupingRequest(n_groups=5, group_size=4, neighbors=4, dataset_path='d.npz'))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("is deprecated") == 1
    assert ("<string>:7: ParameterDeprecationWarning: grouping_strategy 'legacy_group_then_sample' "
            "is deprecated") in proc.stderr
