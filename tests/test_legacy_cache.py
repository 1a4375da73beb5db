"""The legacy cache format module: names, checksum, read/write, recognition without unpickling."""
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ptycho_grouping import legacy_cache as lc


@pytest.mark.parametrize("name, ok", [
    ("scan.g2k4.groups_cache.npz", True),
    ("temp_dataset_0123abcd.g3k8.groups_cache.npz", True),
    ("my.scan.v2.g10k12.groups_cache.npz", True),
    ("scan.npz", False),
    ("scan.gXk4.groups_cache.npz", False),
    ("scan.g2k4.groups_cache.npz.bak", False),
    (".g2k4.groups_cache.npz", False),
    ("scan.g2.groups_cache.npz", False),
])
def test_name_pattern(name, ok):
    assert bool(lc.CACHE_NAME_RE.match(name)) is ok


def test_name_pattern_groups():
    m = lc.CACHE_NAME_RE.match("my.scan.g10k12.groups_cache.npz")
    assert (m["stem"], m["gridsize"], m["k"]) == ("my.scan", "10", "12")


@given(stem=st.text("abcXYZ019_-.", min_size=1, max_size=12), g=st.integers(1, 20),
       k=st.integers(1, 200))
def test_cache_path_and_name_pattern_agree(stem, g, k):
    path = lc.cache_path(Path("d") / f"{stem}.npz", g, k, "c")
    m = lc.CACHE_NAME_RE.match(path.name)
    assert path.parent == Path("d")
    assert m and (m["stem"], int(m["gridsize"]), int(m["k"])) == (stem, g, k)


def test_cache_path(tmp_path):
    assert lc.cache_path(tmp_path / "a" / "scan.npz", 2, 7, "c") == tmp_path / "a" / "scan.g2k7.groups_cache.npz"
    assert lc.cache_path(str(tmp_path / "scan.h5"), 2, 7, "c") == tmp_path / "scan.g2k7.groups_cache.npz"
    assert str(lc.cache_path(None, 3, 8, "abc")) == "temp_dataset_abc.g3k8.groups_cache.npz"


def test_round_trip_and_recognition(tmp_path):
    path = tmp_path / "scan.g2k4.groups_cache.npz"
    groups = np.array([[0, 1, 2, 3], [1, 2, 3, 4]])
    lc.write_cache(path, groups, "abc", 2, 4)
    assert lc.is_legacy_cache_file(path)
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(lc.CACHE_KEYS)
        assert str(npz["dataset_checksum"]) == "abc" and int(npz["overlap_factor"]) == 4
    got = lc.read_cache(path, "abc", 2, 4)
    assert got.dtype == np.int64 and np.array_equal(got, groups)
    assert np.array_equal(lc.read_cache(path, ["zzz", "abc"], 2, 4), groups)
    # Other data or parameters: not used, and kept (the next write replaces it).
    assert lc.read_cache(path, "abd", 2, 4) is None and path.exists()
    assert lc.read_cache(path, "abc", 3, 4) is None and path.exists()
    assert lc.read_cache(path, "abc", 2, 5) is None and path.exists()
    assert lc.read_cache(tmp_path / "absent.g2k4.groups_cache.npz", "abc", 2, 4) is None
    assert os.listdir(tmp_path) == [path.name]


def test_rows_of_the_wrong_width_are_removed(tmp_path):
    path = tmp_path / "scan.g2k4.groups_cache.npz"
    lc.write_cache(path, np.zeros((3, 9), np.int64), "abc", 2, 4)
    assert lc.read_cache(path, "abc", 2, 4) is None and not path.exists()


def test_failed_write_leaves_the_old_cache_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "scan.g2k4.groups_cache.npz"
    lc.write_cache(path, np.ones((1, 4)), "old", 2, 4)
    before = path.read_bytes()

    def broken(fh, **arrays):
        fh.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        lc.write_cache(path, np.zeros((5, 4)), "new", 2, 4)
    assert path.read_bytes() == before and os.listdir(tmp_path) == [path.name]


def test_decoys_are_not_caches(tmp_path):
    wrong = tmp_path / "a.g2k4.groups_cache.npz"
    np.savez(wrong, all_groups=np.zeros((1, 4), np.int64), other=np.zeros(1))
    junk = tmp_path / "b.g2k4.groups_cache.npz"
    junk.write_bytes(b"junk")
    real = tmp_path / "c.g2k4.groups_cache.npz"
    lc.write_cache(real, np.zeros((1, 4)), "x", 2, 4)
    link = tmp_path / "d.g2k4.groups_cache.npz"
    link.symlink_to(real)
    misnamed = tmp_path / "c.npz"
    lc.write_cache(misnamed, np.zeros((1, 4)), "x", 2, 4)
    directory = tmp_path / "e.g2k4.groups_cache.npz"
    directory.mkdir()
    pickled = tmp_path / "f.g2k4.groups_cache.npz"
    obj = np.empty(1, dtype=object)
    obj[0] = {"x": 1}
    with open(pickled, "wb") as fh:  # the four members, but one is a pickle
        np.savez(fh, all_groups=obj, dataset_checksum="x", gridsize=2, overlap_factor=4)
    assert [lc.is_legacy_cache_file(p) for p in (wrong, junk, real, link, misnamed, directory,
                                                 tmp_path / "absent.g2k4.groups_cache.npz")] == \
        [False, False, True, False, False, False, False]
    # Recognition reads the member headers (not the data): a pickled member
    # is not a cache. Reading refuses the pickle and removes the file.
    assert not lc.is_legacy_cache_file(pickled)
    with open(pickled, "rb") as fh:
        assert "'all_groups' holds pickled objects" in lc.cache_file_problem(fh)
    assert lc.read_cache(pickled, "x", 2, 4) is None and not pickled.exists()
    # An unreadable/wrong-format file met by read_cache is removed.
    assert lc.read_cache(wrong, "x", 2, 4) is None and not wrong.exists()
    assert lc.read_cache(junk, "x", 2, 4) is None and not junk.exists()


def test_checksum_matches_the_old_definition():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.5])
    expected = hashlib.md5(np.array([1.0, 2.0, 3.0, 4.5, 2, 2]).tobytes()).hexdigest()
    assert lc.dataset_checksum(x, y) == expected
    # float32 input widens exactly to float64: the same digest as the float64 values.
    assert lc.dataset_checksum(x.astype(np.float32), y.astype(np.float32)) == expected
    # Integer input hashes int64 bytes: a different digest.
    xi, yi = np.array([1, 2]), np.array([3, 4])
    assert lc.dataset_checksum(xi, yi) == hashlib.md5(np.array([1, 2, 3, 4, 2, 2]).tobytes()).hexdigest()


def test_candidate_checksums():
    xi, yi = np.array([1, 2, -7]), np.array([3, 4, 0])
    sums = lc.candidate_checksums(xi.astype(float), yi.astype(float))
    assert sums == (lc.dataset_checksum(xi.astype(float), yi.astype(float)),
                    lc.dataset_checksum(xi, yi))
    assert lc.candidate_checksums(np.array([1.5, 2.0]), np.array([3.0, 4.0])) == (
        lc.dataset_checksum(np.array([1.5, 2.0]), np.array([3.0, 4.0])),)


def _npz_bytes(**arrays):
    import io
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    return buf


GOOD = dict(all_groups=np.zeros((2, 4), np.int64), dataset_checksum=np.array("abc"),
            gridsize=np.array(2), overlap_factor=np.array(4))


@pytest.mark.parametrize("key, value, expected", [
    ("all_groups", np.zeros((2, 4), np.int32), "'all_groups' has dtype int32"),
    ("all_groups", np.zeros(8, np.int64), "'all_groups' has dtype int64 and shape (8,)"),
    ("all_groups", np.zeros((2, 2, 2), np.int64), "shape (2, 2, 2)"),
    ("dataset_checksum", np.array([1.0, 2.0]), "'dataset_checksum' has dtype float64"),
    ("gridsize", np.array([2, 2]), "'gridsize' has dtype int64 and shape (2,)"),
    ("overlap_factor", np.array(4.5), "'overlap_factor' has dtype float64"),
    ("gridsize", np.array(["a", None], dtype=object), "'gridsize' holds pickled objects"),
])
def test_member_headers_are_checked(key, value, expected):
    assert lc.cache_file_problem(_npz_bytes(**GOOD)) is None
    problem = lc.cache_file_problem(_npz_bytes(**{**GOOD, key: value}))
    assert problem is not None and expected in problem


def test_garbage_members_under_the_cache_names_are_not_a_cache(tmp_path):
    import zipfile
    path = tmp_path / "x.g2k4.groups_cache.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for key in lc.CACHE_KEYS:
            zf.writestr(f"{key}.npy", b"garbage, not an array")
    assert not lc.is_legacy_cache_file(path)
    with open(path, "rb") as fh:
        assert lc.cache_file_problem(fh).startswith("not a readable NPZ")


def test_metadata_is_compared_before_the_groups_are_checked(tmp_path):
    # An int32 cache for *other* parameters is left alone (the old order);
    # for these parameters it is in the wrong format and removed.
    path = tmp_path / "scan.g2k4.groups_cache.npz"
    np.savez_compressed(path, all_groups=np.zeros((2, 4), np.int32), dataset_checksum="abc",
                        gridsize=2, overlap_factor=4)
    assert lc.read_cache(path, "other", 2, 4) is None and path.exists()
    assert lc.read_cache(path, "abc", 2, 5) is None and path.exists()
    assert lc.read_cache(path, "abc", 2, 4) is None and not path.exists()


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"),
                                   OSError(5, "Input/output error")])
def test_an_unreadable_cache_is_left_alone_and_reported(tmp_path, monkeypatch, error):
    # Forced with monkeypatch so that it also runs as root (who reads anything).
    import builtins
    path = tmp_path / "scan.g2k4.groups_cache.npz"
    lc.write_cache(path, np.ones((1, 4)), "abc", 2, 4)
    before = path.read_bytes()
    real_open = builtins.open

    def failing_open(file, *args, **kwargs):
        if Path(file) == path:
            raise error
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing_open)
    with pytest.raises(OSError) as info:
        lc.read_cache(path, "abc", 2, 4)
    assert info.value is error
    assert not lc.is_legacy_cache_file(path)
    monkeypatch.undo()
    assert path.read_bytes() == before


@given(stem=st.text("abcXYZ019_-.", min_size=1, max_size=12), g=st.integers(1, 20),
       k=st.integers(1, 200), suffix=st.text("abcdefghijklmnopqrstuvwxyz0123456789_",
                                             min_size=1, max_size=10))
def test_temporary_name_pattern_recovers_the_cache_name(stem, g, k, suffix):
    cache = lc.cache_path(Path(f"{stem}.npz"), g, k, "c").name
    m = lc.TEMP_NAME_RE.match(f".{cache}.{suffix}.tmp")
    assert m and m["cache"] == cache
    assert not lc.TEMP_NAME_RE.match(f".{stem}.npz.{suffix}.tmp")  # a dataset's, not a cache's


# -- a well-formed cache with impossible indices -----------------------------------

@given(bad=st.one_of(st.integers(-2**62, -1), st.integers(10, 2**62)), row=st.integers(0, 2),
       col=st.integers(0, 3))
def test_out_of_range_indices_make_a_cache_corrupt(tmp_path_factory, bad, row, col):
    path = tmp_path_factory.mktemp("c") / "scan.g2k4.groups_cache.npz"
    groups = np.arange(12, dtype=np.int64).reshape(3, 4) % 10
    groups[row, col] = bad
    lc.write_cache(path, groups, "abc", 2, 4)
    assert lc.is_legacy_cache_file(path)  # well-formed: only the values are wrong
    assert lc.read_cache(path, "abc", 2, 4, n_points=10) is None
    assert not path.exists()  # removed, so the legacy strategy recomputes and replaces it


def test_in_range_indices_are_used_and_the_range_is_checked_at_the_edges(tmp_path, caplog):
    path = tmp_path / "scan.g2k4.groups_cache.npz"
    groups = np.array([[0, 1, 2, 9]], np.int64)
    lc.write_cache(path, groups, "abc", 2, 4)
    assert np.array_equal(lc.read_cache(path, "abc", 2, 4, n_points=10), groups)
    assert lc.read_cache(path, "abc", 2, 4, n_points=9) is None and not path.exists()
    assert "indices 0 to 9; valid are 0 to 8" in caplog.text
    assert any(r.levelname == "WARNING" for r in caplog.records)


def test_negative_indices_are_refused_even_without_the_point_count(tmp_path):
    path = tmp_path / "scan.g2k4.groups_cache.npz"
    lc.write_cache(path, np.array([[-1, 0, 1, 2]]), "abc", 2, 4)
    assert lc.read_cache(path, "abc", 2, 4) is None and not path.exists()


def legacy_groups_over_a_bad_cache(tmp_path, caplog, bad_groups):
    import warnings
    from ptycho_grouping import GroupingRequest, get_strategy
    rng = np.random.default_rng(3)
    coords = rng.random((40, 2)) * 50
    dataset = tmp_path / "scan.npz"
    checksum = lc.dataset_checksum(coords[:, 0], coords[:, 1])
    path = lc.cache_path(dataset, 2, 6, checksum)
    lc.write_cache(path, np.array(bad_groups), checksum, 2, 6)
    request = GroupingRequest(n_groups=5, group_size=4, neighbors=6, dataset_path=dataset, rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)  # "only 2 groups exist", from a bad cache
        np.random.seed(0)
        with caplog.at_level("WARNING", logger="ptycho_grouping"):
            groups = get_strategy("legacy_group_then_sample").group(coords, request)
    assert f"removing group cache {path}" in caplog.text and "indices" in caplog.text
    assert groups.min() >= 0 and groups.max() < 40
    with np.load(path, allow_pickle=False) as npz:  # replaced by a good cache
        cached = npz["all_groups"]
    assert cached.min() >= 0 and cached.max() < 40 and len(cached) > 2


def test_the_legacy_strategy_recomputes_over_a_negative_index_cache(tmp_path, caplog):
    legacy_groups_over_a_bad_cache(tmp_path, caplog, [[-3, 0, 1, 2], [0, 1, 2, 3]])


def test_the_legacy_strategy_recomputes_over_a_too_large_index_cache(tmp_path, caplog):
    legacy_groups_over_a_bad_cache(tmp_path, caplog, [[0, 1, 2, 3], [0, 1, 2, 400]])


# -- recognition: a zip starting at byte 0, whole names ----------------------------

def test_a_cache_with_leading_bytes_is_not_a_cache(tmp_path):
    path = tmp_path / "scan.g2k4.groups_cache.npz"
    lc.write_cache(path, np.zeros((1, 4)), "abc", 2, 4)
    cache = path.read_bytes()
    for junk in (b"my thesis notes\n", b"PK\x03\x04 my own zip, then a cache"):
        path.write_bytes(junk + cache)  # zipfile still finds the cache; np.load does not
        with open(path, "rb") as fh:
            assert "does not start" in lc.cache_file_problem(fh)
        assert not lc.is_legacy_cache_file(path)
    path.write_bytes(b"my thesis notes\n" + cache)
    with pytest.raises(ValueError, match="allow_pickle"):  # np.load refuses it too
        np.load(path, allow_pickle=False)


@pytest.mark.parametrize("name, ok", [
    ("my\nscan.g2k4.groups_cache.npz", True),
    ("scan.g2k4.groups_cache.npz\n", False),
    ("scan.g\u0662k4.groups_cache.npz", False),  # an Arabic-Indic digit
])
def test_whole_names_match(name, ok):
    assert bool(lc.CACHE_NAME_RE.match(name)) is ok
    assert bool(lc.TEMP_NAME_RE.match(f".{name}.abc123.tmp")) is ok
