"""Streaming output: identical to generate_grouped_data, bounded memory, never half-written."""
import os

import numpy as np
import pytest

from ptycho import grouped_writer
from ptycho.raw_data import RawData

N = 8


def scan(m=300, obj=True, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 50, (m, 2))
    rows, cols = np.mgrid[0:70, 0:70]
    return RawData.from_coords_without_pc(
        xy[:, 0], xy[:, 1], rng.random((m, N, N)).astype(np.float32), np.ones((N, N)),
        np.arange(m), objectGuess=(rows + 1j * cols).astype(np.complex64) if obj else None)


def assert_same(path, expected, loader):
    got = loader(path)
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
    assert seen[-1] == (100, 100) and len(seen) == -(-100 // chunk)
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
            return {k: f[k][()] for k in f}

    assert_same(tmp_path / "g.h5", expected, load)
    assert os.listdir(tmp_path) == ["g.h5"]


@pytest.mark.parametrize("out_format", ["npz", "hdf5"])
def test_interrupted_write_leaves_no_complete_looking_file(tmp_path, monkeypatch, out_format):
    if out_format == "hdf5":
        pytest.importorskip("h5py")
    rd = scan()
    target = tmp_path / "g.out"
    target.write_bytes(b"previous result")
    calls = []
    real = rd._grouped

    def failing(nn, N, scale=None):
        calls.append(len(nn))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(nn, N, scale=scale)

    monkeypatch.setattr(rd, "_grouped", failing)
    with pytest.raises(KeyboardInterrupt):
        grouped_writer.write_grouped(rd, target, N, out_format=out_format, chunk_groups=10,
                                     K=6, nsamples=100, gridsize=2, seed=0)
    assert target.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["g.out"]


def test_bad_arguments(tmp_path):
    rd = scan(m=20, obj=False)
    with pytest.raises(ValueError, match="out_format must be one of npz, hdf5, got 'zarr'"):
        grouped_writer.write_grouped(rd, tmp_path / "g", N, out_format="zarr", nsamples=3)
    with pytest.raises(ValueError, match="chunk_groups must be a positive integer, got 0"):
        grouped_writer.write_grouped(rd, tmp_path / "g", N, chunk_groups=0, nsamples=3)
    assert os.listdir(tmp_path) == []
