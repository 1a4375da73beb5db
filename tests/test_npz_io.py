"""NPZ round trips, defaults for optional keys, refused pickles, atomic writes."""
import os

import numpy as np
import pytest

from ptycho.raw_data import RawData
from ptycho_grouping import npz_io


def sample(m=12, n=4, obj=True):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, m).astype(np.float32)
    y = rng.uniform(0, 10, m)
    return RawData(x, y, x + 1, y + 1, rng.random((m, n, n)).astype(np.float32),
                   (rng.random((n, n)) + 1j).astype(np.complex64), np.arange(m, dtype=np.int32),
                   objectGuess=(rng.random((20, 20)) * 1j).astype(np.complex128) if obj else None)


def test_round_trip_keeps_values_and_dtypes(tmp_path):
    rd = sample()
    rd.to_file(tmp_path / "scan.npz")
    back = RawData.from_file(tmp_path / "scan.npz")
    for key in ("xcoords", "ycoords", "xcoords_start", "ycoords_start", "diff3d",
                "probeGuess", "scan_index", "objectGuess"):
        a, b = getattr(rd, key), getattr(back, key)
        assert a.dtype == b.dtype, key
        assert np.array_equal(a, b), key
    assert back.Y is None
    with np.load(tmp_path / "scan.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(["xcoords", "ycoords", "xcoords_start", "ycoords_start",
                                            "diff3d", "probeGuess", "scan_index", "objectGuess"])


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
    with pytest.raises(ValueError, match=r"lacks required key\(s\) ycoords, diff3d, probeGuess"):
        RawData.from_file(tmp_path / "bad.npz")


def test_pickled_object_array_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arr = np.empty(1, dtype=object)
    arr[0] = Evil()
    np.savez(tmp_path / "evil.npz", xcoords=np.arange(3.0), ycoords=np.arange(3.0),
             diff3d=np.ones((3, 4, 4)), probeGuess=arr)
    with pytest.raises(ValueError, match="'probeGuess' is a pickled object array"):
        RawData.from_file(tmp_path / "evil.npz")
    assert not marker.exists()


def test_not_an_npz_and_missing_file(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="junk.npz is not a readable NPZ file"):
        RawData.from_file(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="no such file"):
        RawData.from_file(tmp_path / "absent.npz")


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


def test_from_files_concatenates(tmp_path):
    a, b = sample(m=5), sample(m=7, obj=False)
    a.to_file(tmp_path / "a.npz")
    b.to_file(tmp_path / "b.npz")
    both = RawData.from_files([tmp_path / "a.npz", tmp_path / "b.npz"])
    assert len(both) == 12
    assert np.array_equal(both.diff3d, np.concatenate([a.diff3d, b.diff3d]))
    assert np.array_equal(both.probeGuess, a.probeGuess)
    with pytest.raises(ValueError, match="at least one file"):
        RawData.from_files([])
