"""LegacyGroupThenSample is exact to the pre-refactor algorithm and its cache files."""
import hashlib
import os
import warnings

import numpy as np
import pytest
from scipy.spatial import cKDTree

from ptycho import params
from ptycho.config import ModelConfig, TrainingConfig, update_legacy_dict
from ptycho.raw_data import RawData
from ptycho_grouping import GroupingRequest, get_strategy, legacy, list_strategies

from scan_patterns import make_coords

LEGACY = "legacy_group_then_sample"


def reference_groups(x, y, gridsize, K, nsamples):
    """The old algorithm, written plainly from DESIGN.md's steps (no cache)."""
    C = gridsize ** 2
    if C == 1:
        return np.arange(len(x))[:, None]
    points = np.column_stack((x, y))
    _, nn = cKDTree(points).query(points, k=K + 1)
    per_point = min(50, (K + 1) // C + 1)
    groups = []
    for i in range(len(points)):
        for _ in range(per_point):
            groups.append(sorted(np.random.choice(nn[i], size=C, replace=False)))
    all_groups = np.unique(np.array(groups), axis=0)
    if len(all_groups) < nsamples:
        return all_groups
    return all_groups[np.random.choice(len(all_groups), size=nsamples, replace=False)]


def legacy_group(xy, gridsize, K, nsamples, dataset_path):
    with pytest.warns(DeprecationWarning):
        return get_strategy(LEGACY).group(xy, GroupingRequest(
            n_groups=nsamples, group_size=gridsize ** 2, neighbors=K, dataset_path=dataset_path))


@pytest.fixture(autouse=True)
def clean_params(monkeypatch):
    monkeypatch.setattr(params, "cfg", dict(params.cfg))


@pytest.mark.parametrize("gridsize, K", [(2, k) for k in range(4, 9)] + [(3, 8)])
@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_groups_equal_the_old_algorithm(tmp_path, gridsize, K, seed):
    xy = make_coords("jittered_raster", 150, seed=seed)
    np.random.seed(seed)
    expected = reference_groups(xy[:, 0], xy[:, 1], gridsize, K, 40)
    np.random.seed(seed)
    got = legacy_group(xy, gridsize, K, 40, str(tmp_path / "scan.npz"))
    assert np.array_equal(got, expected)
    # A second run reads the cache: only the sampling step draws from the state.
    np.random.seed(seed)
    all_groups = np.load(tmp_path / f"scan.g{gridsize}k{K}.groups_cache.npz")["all_groups"]
    expected_cached = all_groups[np.random.choice(len(all_groups), 40, replace=False)]
    np.random.seed(seed)
    assert np.array_equal(legacy_group(xy, gridsize, K, 40, str(tmp_path / "scan.npz")),
                          expected_cached)


@pytest.mark.parametrize("K", [4, 5, 6, 7])
def test_gridsize_3_needs_k_at_least_8(K):
    with pytest.raises(ValueError, match=rf"neighbors \(K={K}\) must be at least 8 for group_size \(C=9\)"):
        get_strategy(LEGACY).group(make_coords("raster", 50), GroupingRequest(
            n_groups=5, group_size=9, neighbors=K))


def test_fewer_groups_than_requested_warns_and_returns_all_in_order(tmp_path):
    xy = make_coords("uniform", 12, seed=1)
    np.random.seed(3)
    expected = reference_groups(xy[:, 0], xy[:, 1], 2, 4, 10_000)
    np.random.seed(3)
    with pytest.warns(UserWarning, match=r"only \d+ groups exist but n_groups=10000"):
        got = legacy_group(xy, 2, 4, 10_000, str(tmp_path / "d.npz"))
    assert np.array_equal(got, expected)
    assert (np.diff(got[:, 0]) >= 0).all()  # np.unique order


def test_gridsize_1_returns_all_points_in_order_ignoring_the_count(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got = legacy_group(make_coords("uniform", 30), 1, 4, 5, None)
    assert np.array_equal(got, np.arange(30)[:, None])
    assert os.listdir(tmp_path) == []


def test_too_few_points_for_k():
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=r"K=6\) needs at least K\+1=7 scan points, got 5"):
        get_strategy(LEGACY).group(make_coords("uniform", 5), GroupingRequest(
            n_groups=2, group_size=4, neighbors=6))


# -- cache files ------------------------------------------------------------

def count_tree_builds(monkeypatch):
    calls = []
    real = legacy._build_tree

    def counting(points):
        calls.append(len(points))
        return real(points)

    monkeypatch.setattr(legacy, "_build_tree", counting)
    return calls


def test_cache_written_beside_the_dataset_then_reused(tmp_path, monkeypatch):
    xy = make_coords("jittered_raster", 200)
    dataset = tmp_path / "run1" / "scan.npz"
    dataset.parent.mkdir()
    dataset.write_bytes(b"the dataset itself")
    mtime = dataset.stat().st_mtime_ns
    builds = count_tree_builds(monkeypatch)
    legacy_group(xy, 2, 5, 20, str(dataset))
    cache = tmp_path / "run1" / "scan.g2k5.groups_cache.npz"
    assert cache.is_file() and builds == [200]
    with np.load(cache, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["all_groups", "dataset_checksum", "gridsize", "overlap_factor"]
        assert npz["all_groups"].dtype == np.int64
        payload = np.concatenate([xy[:, 0], xy[:, 1], np.array([200, 200])]).tobytes()
        assert str(npz["dataset_checksum"]) == hashlib.md5(payload).hexdigest()
        assert int(npz["gridsize"]) == 2 and int(npz["overlap_factor"]) == 5
    legacy_group(xy, 2, 5, 20, str(dataset))
    assert builds == [200]  # second call read the cache
    assert dataset.read_bytes() == b"the dataset itself" and dataset.stat().st_mtime_ns == mtime
    assert sorted(os.listdir(dataset.parent)) == ["scan.g2k5.groups_cache.npz", "scan.npz"]


def test_cache_without_dataset_path_goes_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    xy = make_coords("uniform", 60)
    legacy_group(xy, 2, 4, 10, None)
    checksum = hashlib.md5(np.concatenate([xy[:, 0], xy[:, 1], np.array([60, 60])]).tobytes()).hexdigest()
    assert os.listdir(tmp_path) == [f"temp_dataset_{checksum}.g2k4.groups_cache.npz"]


def test_mismatching_cache_is_not_used(tmp_path, monkeypatch):
    xy = make_coords("jittered_raster", 100)
    path = str(tmp_path / "scan.npz")
    legacy_group(xy, 2, 5, 10, path)
    builds = count_tree_builds(monkeypatch)
    moved = xy.copy()
    moved[0, 0] += 0.5  # other coordinates, same file name: checksum differs
    legacy_group(moved, 2, 5, 10, path)
    assert builds == [100]
    legacy_group(xy, 2, 6, 10, path)  # other K: another file
    assert builds == [100, 100]
    assert (tmp_path / "scan.g2k6.groups_cache.npz").is_file()
    # A cache written for gridsize 3 under the gridsize-2 name is not used.
    from ptycho_grouping import legacy_cache
    cache = tmp_path / "scan.g2k5.groups_cache.npz"
    checksum = legacy_cache.dataset_checksum(xy[:, 0], xy[:, 1])
    legacy_cache.write_cache(cache, np.zeros((3, 4), np.int64), checksum, 3, 5)
    got = legacy_group(xy, 2, 5, 10, path)
    assert builds == [100, 100, 100]
    assert not (got == 0).all()


@pytest.mark.parametrize("content", ["garbage", "pickle", "wrong_dtype"])
def test_corrupt_cache_is_replaced(tmp_path, monkeypatch, content):
    xy = make_coords("uniform", 80)
    cache = tmp_path / "scan.g2k4.groups_cache.npz"
    if content == "garbage":
        cache.write_bytes(b"\x00not a zip")
    elif content == "pickle":
        arr = np.empty(1, dtype=object)
        arr[0] = {"evil": 1}
        np.savez(cache, all_groups=arr, dataset_checksum="x", gridsize=2, overlap_factor=4)
    else:
        from ptycho_grouping import legacy_cache
        checksum = legacy_cache.dataset_checksum(xy[:, 0], xy[:, 1])
        np.savez_compressed(cache, all_groups=np.zeros((2, 4), np.float64),
                            dataset_checksum=checksum, gridsize=2, overlap_factor=4)
    builds = count_tree_builds(monkeypatch)
    legacy_group(xy, 2, 4, 10, str(tmp_path / "scan.npz"))
    assert builds == [80]
    with np.load(cache, allow_pickle=False) as npz:
        assert npz["all_groups"].dtype == np.int64 and npz["all_groups"].shape[1] == 4


# -- deprecation and selection ------------------------------------------------

def test_deprecation_warning_points_at_the_caller_and_explains(tmp_path):
    with pytest.warns(DeprecationWarning) as record:
        get_strategy(LEGACY).group(make_coords("uniform", 40), GroupingRequest(
            n_groups=5, group_size=4, neighbors=4, dataset_path=str(tmp_path / "d.npz")))
    message = str(record[0].message)
    assert record[0].filename == __file__
    for phrase in ("sample_then_group", "will be removed", "MIGRATION.md", "exactly the requested"):
        assert phrase in message


def test_listed_as_deprecated():
    info = {i.name: i for i in list_strategies()}[LEGACY]
    assert info.deprecated and info.source == "built-in"


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

    os.unlink(tmp_path / "scan.g2k4.groups_cache.npz")
    params.set("grouping_strategy", LEGACY)
    np.random.seed(5)
    with pytest.warns(DeprecationWarning):
        out = rd.generate_grouped_data(4, K=4, nsamples=16, gridsize=2, dataset_path=path)
    assert np.array_equal(out["nn_indices"], expected)

    params.set("grouping_strategy", "sample_then_group")
    update_legacy_dict(params.cfg, TrainingConfig(model=ModelConfig(N=4, gridsize=2),
                                                  grouping_strategy=LEGACY))
    os.unlink(tmp_path / "scan.g2k4.groups_cache.npz")
    np.random.seed(5)
    with pytest.warns(DeprecationWarning):
        out = rd.generate_grouped_data(4, K=4, nsamples=16, dataset_path=path)
    assert np.array_equal(out["nn_indices"], expected)


def test_default_path_does_not_warn():
    rd = make_raw()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        rd.generate_grouped_data(4, K=4, nsamples=8, gridsize=2, seed=0)
