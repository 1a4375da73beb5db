"""The legacy cache format module: names, checksum, recognition without unpickling."""
import numpy as np
import pytest

from ptycho_grouping import legacy_cache as lc


@pytest.mark.parametrize("name, ok", [
    ("scan.g2k4.groups_cache.npz", True),
    ("temp_dataset_0123abcd.g3k8.groups_cache.npz", True),
    ("my.scan.v2.g10k12.groups_cache.npz", True),
    ("scan.npz", False),
    ("scan.gXk4.groups_cache.npz", False),
    ("scan.g2k4.groups_cache.npz.bak", False),
    (".g2k4.groups_cache.npz", False),
])
def test_name_pattern(name, ok):
    assert bool(lc.CACHE_NAME_RE.match(name)) is ok


def test_cache_path(tmp_path):
    assert lc.cache_path(tmp_path / "a" / "scan.npz", 2, 7, "c") == tmp_path / "a" / "scan.g2k7.groups_cache.npz"
    assert str(lc.cache_path(None, 3, 8, "abc")) == "temp_dataset_abc.g3k8.groups_cache.npz"


def test_round_trip_and_recognition(tmp_path):
    path = tmp_path / "scan.g2k4.groups_cache.npz"
    groups = np.array([[0, 1, 2, 3], [1, 2, 3, 4]])
    lc.write_cache(path, groups, "abc", 2, 4)
    assert lc.is_legacy_cache_file(path)
    got = lc.read_cache(path, "abc", 2, 4)
    assert got.dtype == np.int64 and np.array_equal(got, groups)
    assert lc.read_cache(path, "abd", 2, 4) is None and path.exists()  # other data: kept
    assert lc.read_cache(tmp_path / "absent.g2k4.groups_cache.npz", "abc", 2, 4) is None


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
    assert [lc.is_legacy_cache_file(p) for p in (wrong, junk, real, link, misnamed)] == \
        [False, False, True, False, False]
    # An unreadable/wrong-format file met by read_cache is removed.
    assert lc.read_cache(wrong, "x", 2, 4) is None and not wrong.exists()


def test_checksum_matches_the_old_definition():
    import hashlib
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.5])
    expected = hashlib.md5(np.array([1.0, 2.0, 3.0, 4.5, 2, 2]).tobytes()).hexdigest()
    assert lc.dataset_checksum(x, y) == expected
