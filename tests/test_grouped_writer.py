"""Streaming output: identical to generate_grouped_data, bounded memory, never half-written."""
import json
import os

import numpy as np
import pytest
from hypothesis import given, strategies as st

from grouped_outputs import N, scan
from ptycho_data import grouped_writer
from ptycho_data.provenance import array_sha256


def assert_same(path, expected, loader):
    got = loader(path)
    # The record of how the output was made names the groups it holds.
    record = json.loads(str(got.pop("provenance")))
    assert record["groups"] == list(expected["nn_indices"].shape)
    assert record["groups_sha256"] == array_sha256(expected["nn_indices"])
    assert set(got) == {k for k, v in expected.items() if v is not None}
    for key, value in got.items():
        assert value.dtype == expected[key].dtype, key
        assert np.array_equal(value, expected[key]), key


def load_npz(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_npz_stream_equals_the_in_memory_result(tmp_path, chunk):
    rd = scan()
    kw = dict(K=6, nsamples=100, gridsize=2, seed=4)
    expected = rd.generate_grouped_data(N, **kw)
    seen = []
    nn = grouped_writer.write_grouped(rd, tmp_path / "g.npz", N, chunk_groups=chunk,
                                      progress=lambda done, total: seen.append((done, total)), **kw)
    assert np.array_equal(nn, expected["nn_indices"])
    assert_same(tmp_path / "g.npz", expected, load_npz)
    # Progress counts bytes: it ends at the size of everything written.
    total = sum(v.nbytes for v in expected.values() if v is not None)
    assert seen[-1] == (total, total)
    assert all(a[0] < b[0] for a, b in zip(seen, seen[1:]))
    assert os.listdir(tmp_path) == ["g.npz"]


def test_streamed_npz_can_be_memory_mapped(tmp_path):
    rd = scan(obj=False)
    grouped_writer.write_grouped(rd, tmp_path / "g.npz", N, chunk_groups=16, K=6, nsamples=50,
                                 gridsize=2, seed=0)
    from ptycho_grouping.npz_io import load_npz as load
    mapped = load(tmp_path / "g.npz", mmap_keys=("X_full",))
    assert isinstance(mapped["X_full"], np.memmap) and mapped["X_full"].shape == (50, N, N, 4)


def test_hdf5_stream_equals_the_in_memory_result(tmp_path):
    h5py = pytest.importorskip("h5py")
    rd = scan()
    kw = dict(K=6, nsamples=60, gridsize=2, seed=1)
    expected = rd.generate_grouped_data(N, **kw)
    grouped_writer.write_grouped(rd, tmp_path / "g.h5", N, out_format="hdf5", chunk_groups=9, **kw)

    def load(path):
        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in f} | {"provenance": f.attrs["provenance"]}

    assert_same(tmp_path / "g.h5", expected, load)
    assert os.listdir(tmp_path) == ["g.h5"]
    # No more than the data and HDF5's own overhead.
    data = sum(v.nbytes for v in expected.values() if v is not None)
    assert os.path.getsize(tmp_path / "g.h5") < data + (1 << 20)


@pytest.mark.parametrize("out_format", ["npz", "hdf5"])
def test_interrupted_write_leaves_no_complete_looking_file(tmp_path, monkeypatch, out_format):
    if out_format == "hdf5":
        pytest.importorskip("h5py")
    rd = scan()
    target = tmp_path / "g.out"
    target.write_bytes(b"previous result")
    sink = grouped_writer.NpzSink if out_format == "npz" else grouped_writer.Hdf5Sink
    calls = []
    real = sink.write

    def failing(self, key, span, value):
        calls.append(key)
        assert target.read_bytes() == b"previous result"  # nothing visible while writing
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, key, span, value)

    monkeypatch.setattr(sink, "write", failing)
    with pytest.raises(KeyboardInterrupt):
        grouped_writer.write_grouped(rd, target, N, out_format=out_format, chunk_groups=10,
                                     K=6, nsamples=100, gridsize=2, seed=0)
    assert target.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["g.out"]


def test_bad_arguments(tmp_path):
    rd = scan(m=20, obj=False)
    with pytest.raises(ValueError, match="out_format must be one of npz, hdf5, zarr, got 'tiff'"):
        grouped_writer.write_grouped(rd, tmp_path / "g", N, out_format="tiff", nsamples=3)
    with pytest.raises(ValueError, match="chunk_groups must be a positive integer, got 0"):
        grouped_writer.write_grouped(rd, tmp_path / "g", N, chunk_groups=0, nsamples=3)
    with pytest.raises(TypeError, match="chunk_groups must be a positive integer, got 2.0"):
        grouped_writer.write_grouped(rd, tmp_path / "g", N, chunk_groups=2.0, nsamples=3)
    with pytest.raises(ValueError, match="chunk_mib must be a positive integer, got -1"):
        grouped_writer.write_grouped(rd, tmp_path / "g", N, chunk_mib=-1, nsamples=3)
    with pytest.raises(ValueError, match=r"chunk_groups or chunk_mib, not both \(got "
                                         r"chunk_groups=5, chunk_mib=1\)"):
        grouped_writer.write_grouped(rd, tmp_path / "g", N, chunk_groups=5, chunk_mib=1,
                                     nsamples=3)
    assert os.listdir(tmp_path) == []


def gathers(monkeypatch):
    """Record how many frames each gather of the writer reads."""
    seen = []
    real = grouped_writer.gather_frames

    def spy(store, indices, *args, **kwargs):
        seen.append(len(indices))
        return real(store, indices, *args, **kwargs)

    monkeypatch.setattr(grouped_writer, "gather_frames", spy)
    return seen


def test_default_chunks_are_bounded_by_bytes_not_groups(tmp_path, monkeypatch):
    # 64x64 float32 patterns, C=4: 64 KiB of diffraction per group, so a
    # 1 MiB budget allows 16 groups per chunk (a fixed group count would not).
    n, budget = 64, 1
    rd = scan(m=200, n=n)
    kw = dict(K=6, nsamples=100, gridsize=2, seed=3)
    seen = gathers(monkeypatch)
    grouped_writer.write_grouped(rd, tmp_path / "g.npz", n, chunk_mib=budget, **kw)
    assert max(seen) * n * n * 4 <= budget << 20
    assert seen == [64] * 6 + [16]  # 16 groups of 4 per chunk
    assert_same(tmp_path / "g.npz", rd.generate_grouped_data(n, **kw), load_npz)


def test_default_chunk_is_the_module_budget(tmp_path, monkeypatch):
    # chunk_groups and chunk_mib both omitted: DEFAULT_CHUNK_MIB decides.
    monkeypatch.setattr(grouped_writer, "DEFAULT_CHUNK_MIB", 1)
    seen = gathers(monkeypatch)
    grouped_writer.write_grouped(scan(m=200, n=64, obj=False), tmp_path / "g.npz", 64, K=6,
                                 nsamples=40, gridsize=2, seed=0)
    assert seen == [64, 64, 32]


@given(n=st.integers(1, 4096), c=st.integers(1, 64), itemsize=st.sampled_from([1, 2, 4, 8]),
       mib=st.integers(1, 4096))
def test_chunk_groups_for_is_the_largest_count_within_the_budget(n, c, itemsize, mib):
    groups = grouped_writer.chunk_groups_for(n, c, itemsize, mib)
    group_bytes = c * n * n * itemsize
    assert groups >= 1
    if groups > 1:
        assert groups * group_bytes <= mib << 20
    assert (groups + 1) * group_bytes > mib << 20


def test_hdf5_storage_chunks_stay_small_whatever_the_write_chunk(tmp_path):
    h5py = pytest.importorskip("h5py")
    rd = scan(m=200, n=64)
    grouped_writer.write_grouped(rd, tmp_path / "g.h5", 64, out_format="hdf5",
                                 chunk_groups=10_000, K=6, nsamples=100, gridsize=2, seed=0)
    with h5py.File(tmp_path / "g.h5", "r") as f:
        for key in ("diffraction", "X_full", "nn_indices"):
            rows = f[key].chunks[0]
            assert f[key].chunks[1:] == f[key].shape[1:]
            assert rows * f[key][:1].nbytes <= 1 << 20 or rows == 1, key
            assert rows == min(100, (1 << 20) // f[key][:1].nbytes), key


def test_hdf5_open_failure_leaves_no_temporary_file(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    target = tmp_path / "g.h5"
    target.write_bytes(b"previous result")

    def broken(*args, **kwargs):
        raise OSError("unable to create file (disk full)")

    monkeypatch.setattr(h5py, "File", broken)
    with pytest.raises(OSError, match="disk full"):
        grouped_writer.write_grouped(scan(), target, N, out_format="hdf5", K=6, nsamples=20,
                                     gridsize=2, seed=0)
    assert os.listdir(tmp_path) == ["g.h5"] and target.read_bytes() == b"previous result"


def test_progress_true_shows_a_bar_of_bytes_on_stderr(tmp_path, capsys):
    grouped_writer.write_grouped(scan(), tmp_path / "g.npz", N, K=6, nsamples=30, gridsize=2,
                                 seed=0, progress=True)
    err = capsys.readouterr().err
    assert "writing" in err and "100%" in err
    grouped_writer.write_grouped(scan(), tmp_path / "h.npz", N, K=6, nsamples=30, gridsize=2,
                                 seed=0)
    assert capsys.readouterr().err == ""
