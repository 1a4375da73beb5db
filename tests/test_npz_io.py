"""NPZ round trips, defaults for optional keys, refused pickles, atomic writes."""
import os
import stat

import numpy as np
import pytest

from ptycho_data.raw_data import RawData
from ptycho_grouping import npz_io


def sample(m=12, n=4, obj=True, Y=False, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, m).astype(np.float32)
    y = rng.uniform(0, 10, m)
    return RawData(x, y, x + 1, y + 1, rng.random((m, n, n)).astype(np.float32),
                   (rng.random((n, n)) + 1j).astype(np.complex64), np.arange(m, dtype=np.int32),
                   objectGuess=(rng.random((20, 20)) * 1j).astype(np.complex128) if obj else None,
                   Y=(rng.random((m, n, n)) + 1j * rng.random((m, n, n))).astype(np.complex64)
                   if Y else None)


ALL_KEYS = ["xcoords", "ycoords", "xcoords_start", "ycoords_start", "diff3d", "probeGuess",
            "scan_index", "objectGuess", "Y"]


@pytest.mark.parametrize("with_y", [False, True])
def test_round_trip_keeps_values_and_dtypes(tmp_path, with_y):
    rd = sample(Y=with_y)
    rd.to_file(tmp_path / "scan.npz")
    back = RawData.from_file(tmp_path / "scan.npz")
    for key in ALL_KEYS[:-1] + (["Y"] if with_y else []):
        a, b = getattr(rd, key), getattr(back, key)
        assert a.dtype == b.dtype, key
        assert np.array_equal(a, b), key
    if not with_y:
        assert back.Y is None
    with np.load(tmp_path / "scan.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(ALL_KEYS if with_y else ALL_KEYS[:-1])


def test_probe_none_round_trips(tmp_path):
    rd = sample(obj=False)
    rd.probeGuess = None
    rd.to_file(tmp_path / "noprobe.npz")
    back = RawData.from_file(tmp_path / "noprobe.npz")
    assert back.probeGuess is None and back.objectGuess is None
    assert np.array_equal(back.diff3d, rd.diff3d)


@pytest.mark.parametrize("name, written", [
    ("scan", "scan.npz"), ("scan.npz", "scan.npz"), ("scan.h5", "scan.h5.npz"),
    ("scan.NPZ", "scan.NPZ.npz"),
])
def test_to_file_appends_npz_like_np_savez(tmp_path, name, written):
    # The rule np.savez applies to a file name, checked against np.savez itself.
    np.savez(tmp_path / ("ref_" + name), a=np.zeros(1))
    assert (tmp_path / ("ref_" + written)).exists()
    rd = sample(m=3)
    assert rd.to_file(tmp_path / name) == tmp_path / written
    assert sorted(os.listdir(tmp_path)) == sorted([written, "ref_" + written])
    assert np.array_equal(RawData.from_file(tmp_path / written).xcoords, rd.xcoords)
    rd.to_file(str(tmp_path / name))  # a str path too, same file
    assert (tmp_path / written).exists() and len(os.listdir(tmp_path)) == 2


def upstream_to_file(path, rd, objectGuess=None, probeGuess="keep"):
    """What PtychoPINN's RawData.to_file does: np.savez with every key, None included."""
    np.savez(path, xcoords=rd.xcoords, ycoords=rd.ycoords, xcoords_start=rd.xcoords_start,
             ycoords_start=rd.ycoords_start, diff3d=rd.diff3d,
             probeGuess=rd.probeGuess if probeGuess == "keep" else probeGuess,
             objectGuess=objectGuess, scan_index=rd.scan_index)


@pytest.mark.parametrize("mmap", [False, True])
def test_file_written_by_upstream_without_object_loads(tmp_path, mmap, caplog):
    rd = sample(obj=False)
    upstream_to_file(tmp_path / "up.npz", rd)
    with np.load(tmp_path / "up.npz", allow_pickle=False) as npz:  # really a pickled member
        with pytest.raises(ValueError, match="allow_pickle"):
            npz["objectGuess"]
    with caplog.at_level("INFO", logger="ptycho_grouping.npz_io"):
        back = RawData.from_file(tmp_path / "up.npz", mmap=mmap)
    assert back.objectGuess is None
    assert "optional member 'objectGuess' holds a pickled placeholder" in caplog.text
    for key in ALL_KEYS[:7]:
        assert np.array_equal(getattr(back, key), getattr(rd, key)), key


def test_upstream_file_with_no_probe_and_compressed_members(tmp_path):
    rd = sample(obj=False)
    np.savez_compressed(tmp_path / "up.npz", xcoords=rd.xcoords, ycoords=rd.ycoords,
                        diff3d=rd.diff3d, probeGuess=None, objectGuess=None, scan_index=None)
    back = RawData.from_file(tmp_path / "up.npz")
    assert back.probeGuess is None and back.objectGuess is None
    assert np.array_equal(back.scan_index, np.zeros(len(rd))) and back.scan_index.dtype == np.int64


class Evil:
    """Unpickling it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_zero_d_object_in_an_optional_key_is_skipped_unread(tmp_path):
    marker = tmp_path / "executed"
    rd = sample(obj=False)
    upstream_to_file(tmp_path / "up.npz", rd, objectGuess=np.array(Evil(marker), dtype=object))
    assert RawData.from_file(tmp_path / "up.npz").objectGuess is None
    assert not marker.exists()


def test_zero_d_object_in_a_required_key_is_refused(tmp_path):
    np.savez(tmp_path / "bad.npz", xcoords=None, ycoords=np.arange(3.0),
             diff3d=np.ones((3, 4, 4)))
    with pytest.raises(ValueError, match="'xcoords' is a pickled object array"):
        RawData.from_file(tmp_path / "bad.npz")


def test_missing_optional_keys_get_documented_defaults(tmp_path):
    x = np.arange(6.0)
    np.savez(tmp_path / "min.npz", xcoords=x, ycoords=-x, diff3d=np.ones((6, 4, 4)),
             probeGuess=np.ones((4, 4)))
    rd = RawData.from_file(tmp_path / "min.npz")
    assert np.array_equal(rd.xcoords_start, x) and np.array_equal(rd.ycoords_start, -x)
    assert np.array_equal(rd.scan_index, np.zeros(6)) and rd.scan_index.dtype == np.int64
    assert rd.objectGuess is None and rd.Y is None


def test_diffraction_is_accepted_for_diff3d(tmp_path):
    np.savez(tmp_path / "d.npz", xcoords=np.arange(3.0), ycoords=np.arange(3.0),
             diffraction=np.ones((3, 4, 4)), probeGuess=np.ones((4, 4)))
    assert RawData.from_file(tmp_path / "d.npz").diff3d.shape == (3, 4, 4)


def test_missing_required_keys_are_listed(tmp_path):
    np.savez(tmp_path / "bad.npz", xcoords=np.arange(3.0))
    with pytest.raises(ValueError, match=r"lacks required key\(s\) ycoords, diff3d \(found: xcoords\)"):
        RawData.from_file(tmp_path / "bad.npz")


def test_pickled_object_array_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"
    arr = np.empty(1, dtype=object)  # 1-D: not the None placeholder, even in an optional key
    arr[0] = Evil(marker)
    np.savez(tmp_path / "evil.npz", xcoords=np.arange(3.0), ycoords=np.arange(3.0),
             diff3d=np.ones((3, 4, 4)), probeGuess=arr)
    with pytest.raises(ValueError, match="'probeGuess' is a pickled object array"):
        RawData.from_file(tmp_path / "evil.npz")
    assert not marker.exists()


def test_not_an_npz_and_missing_file(tmp_path):
    (tmp_path / "junk.npz").write_text("xcoords,ycoords\n1,2\n")
    np.save(tmp_path / "single.npy", np.ones((3, 4, 4)))
    for name in ("junk.npz", "single.npy"):
        with pytest.raises(ValueError, match=f"^{tmp_path / name} is not an NPZ \\(zip\\) archive$"):
            RawData.from_file(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="no such file"):
        RawData.from_file(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="is not a readable NPZ file: .*Is a directory"):
        npz_io.load_npz(tmp_path)


def test_truncated_zip_is_not_readable(tmp_path):
    sample(m=5).to_file(tmp_path / "scan.npz")
    data = (tmp_path / "scan.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:200] + data[-200:])  # central directory kept
    with pytest.raises(ValueError, match="cut.npz is not a readable NPZ file"):
        RawData.from_file(tmp_path / "cut.npz")


def test_to_file_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "scan.npz"
    sample(m=5).to_file(target)
    before = target.read_bytes()

    def explode(fh, **arrays):
        fh.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(OSError, match="disk full"):
        sample(m=9).to_file(target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["scan.npz"]  # no temporary left behind


def test_object_arrays_are_never_written(tmp_path):
    with pytest.raises(TypeError, match="'a' has dtype object"):
        npz_io.atomic_savez(tmp_path / "x.npz", {"a": np.array([None, 1], dtype=object)})
    assert not (tmp_path / "x.npz").exists()


# -- file modes ------------------------------------------------------------------

@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_files_get_the_mode_open_would_give(tmp_path, umask_027):
    np.savez(tmp_path / "plain.npz", a=np.zeros(1))  # what users compare with
    npz_io.atomic_savez(tmp_path / "atomic.npz", {"a": np.zeros(1)})
    sample(m=3).to_file(tmp_path / "scan.npz")
    assert mode(tmp_path / "plain.npz") == 0o640
    assert mode(tmp_path / "atomic.npz") == mode(tmp_path / "scan.npz") == 0o640


def test_replacing_a_file_keeps_its_mode(tmp_path, umask_027):
    target = tmp_path / "scan.npz"
    sample(m=3).to_file(target)
    os.chmod(target, 0o604)
    sample(m=4).to_file(target)
    assert mode(target) == 0o604 and len(RawData.from_file(target)) == 4


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_set_new_file_mode_follows_the_umask(tmp_path, umask):
    tmp = tmp_path / "tmp"
    tmp.write_bytes(b"")
    os.chmod(tmp, 0o600)
    old = os.umask(umask)
    try:
        assert npz_io.set_new_file_mode(tmp, tmp_path / "new") == 0o666 & ~umask
        assert os.umask(umask) == umask  # the helper left the umask as it was
    finally:
        os.umask(old)
    assert mode(tmp) == 0o666 & ~umask


# -- from_files (PtychoPINN's) and concatenate_files ---------------------------------

def test_from_files_returns_train_and_test(tmp_path):
    a, b = sample(m=5), sample(m=7, obj=False, seed=1)
    a.to_file(tmp_path / "a.npz")
    b.to_file(tmp_path / "b.npz")
    train, test = RawData.from_files(tmp_path / "a.npz", str(tmp_path / "b.npz"))
    assert np.array_equal(train.diff3d, a.diff3d) and np.array_equal(test.diff3d, b.diff3d)
    assert test.objectGuess is None and np.array_equal(train.objectGuess, a.objectGuess)


@pytest.mark.parametrize("args, message", [
    (("a.npz",), "missing 1 required positional argument: 'test_data_file_path'"),
    ((["a.npz", "b.npz"],), "missing 1 required positional argument"),
    ((["a.npz", "b.npz"], "c.npz"), r"train_data_file_path must be one path, got the sequence "
                                    r"\['a.npz', 'b.npz'\]; RawData.concatenate_files"),
    (("a.npz", 3), "test_data_file_path must be a path .*got 3 of type int"),
])
def test_from_files_wrong_arguments(args, message):
    with pytest.raises(TypeError, match=message):
        RawData.from_files(*args)


def test_concatenate_files_keeps_y_when_all_have_it(tmp_path):
    a, b = sample(m=5, Y=True), sample(m=7, obj=False, Y=True, seed=1)
    a.to_file(tmp_path / "a.npz")
    b.to_file(tmp_path / "b.npz")
    both = RawData.concatenate_files([tmp_path / "a.npz", tmp_path / "b.npz"])
    assert len(both) == 12
    for key in ("xcoords", "ycoords", "xcoords_start", "diff3d", "scan_index", "Y"):
        assert np.array_equal(getattr(both, key),
                              np.concatenate([getattr(a, key), getattr(b, key)])), key
    assert np.array_equal(both.probeGuess, a.probeGuess)
    assert np.array_equal(both.objectGuess, a.objectGuess)


def test_concatenate_files_drops_a_partial_y_with_a_warning(tmp_path):
    sample(m=5, Y=True).to_file(tmp_path / "a.npz")
    sample(m=7, seed=1).to_file(tmp_path / "b.npz")
    with pytest.warns(UserWarning, match=r"Y dropped: not every file has it \(missing in .*b.npz\)"):
        both = RawData.concatenate_files([tmp_path / "a.npz", tmp_path / "b.npz"])
    assert both.Y is None and len(both) == 12


def test_concatenate_files_bad_input(tmp_path):
    sample(m=5, n=4).to_file(tmp_path / "a.npz")
    sample(m=5, n=6).to_file(tmp_path / "b.npz")
    with pytest.raises(ValueError, match=r"diff3d patterns of .*b.npz are 6x6 but those of .*a.npz are 4x4"):
        RawData.concatenate_files([tmp_path / "a.npz", tmp_path / "b.npz"])
    with pytest.raises(TypeError, match="paths must be a sequence of paths, got the single path 'a.npz'"):
        RawData.concatenate_files("a.npz")
    with pytest.raises(TypeError, match=r"paths\[1\] must be a path .*got None"):
        RawData.concatenate_files([tmp_path / "a.npz", None])
    with pytest.raises(ValueError, match="at least one file"):
        RawData.concatenate_files([])


def test_memory_error_is_not_disguised_as_an_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "big.npz"
    np.savez(path, a=np.zeros(3))

    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 512. MiB")

    monkeypatch.setattr(np, "load", too_big)
    with pytest.raises(MemoryError, match="Unable to allocate"):
        npz_io.load_npz(path)
