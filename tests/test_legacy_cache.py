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
    # Recognition only reads names; reading refuses the pickle and removes the file.
    assert lc.is_legacy_cache_file(pickled)
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
