"""Grouped output on odd data and real disks: finite X_full or a clear error, any store."""
import os
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ptycho_data import grouped_writer
from ptycho_data.grouped_arrays import X_FULL_DTYPE, normalisation_scale, scale_dtype
from ptycho_data.raw_data import RawData
from ptycho_grouping.npz_io import load_npz

N = 8


def raw_with(diff3d, m=None, obj=False, seed=0):
    m = len(diff3d) if m is None else m
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 40, (m, 2))
    side = 40 + 2 * N
    return RawData.from_coords_without_pc(
        xy[:, 0], xy[:, 1], diff3d, None, None,
        objectGuess=rng.random((side, side)).astype(np.complex64) if obj else None)


def npz_arrays(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "provenance"}


# -- X_full from tiny, huge and integer patterns --------------------------------------

@st.composite
def tiny_patterns(draw):
    """Patterns whose values are near the bottom of their dtype's range."""
    dtype = draw(st.sampled_from([np.float32, np.float16]))
    # float32: subnormals around 1e-41..1e-39; float16: around 1e-7..1e-5.
    exponent = draw(st.floats(-41, -39) if dtype == np.float32 else st.floats(-7, -5))
    m = draw(st.integers(8, 30))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    values = rng.random((m, N, N)) * 10.0 ** exponent
    return values.astype(dtype), seed


@settings(max_examples=25, deadline=None)
@given(case=tiny_patterns())
def test_tiny_patterns_give_a_finite_float32_x_full_on_every_path(tmp_path_factory, case):
    diff3d, seed = case
    rd = raw_with(diff3d, seed=seed)
    kw = dict(K=4, nsamples=len(diff3d), gridsize=2, seed=seed)
    eager = rd.generate_grouped_data(N, **kw)
    x_full = eager["X_full"]
    assert x_full.dtype == X_FULL_DTYPE and np.isfinite(x_full).all()
    # What float64 arithmetic gives, rounded once to float32.
    d = eager["diffraction"].astype(np.float64)
    want = d * np.sqrt((N / 2) ** 2 / np.mean(np.sum(d ** 2, axis=(1, 2))))
    np.testing.assert_allclose(x_full, want.astype(np.float32), rtol=1e-6)
    out = tmp_path_factory.mktemp("tiny") / "g.npz"
    grouped_writer.write_grouped(rd, out, N, chunk_groups=3, **kw)
    assert np.array_equal(npz_arrays(out)["X_full"], x_full)
    pytest.importorskip("dask")
    lazy = rd.generate_grouped_data(N, lazy=True, **kw)
    assert np.array_equal(lazy["X_full"].compute(), x_full)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float16, np.float32, np.float64])
def test_x_full_is_float32_whatever_the_pattern_dtype(dtype):
    rng = np.random.default_rng(1)
    diff3d = (rng.random((20, N, N)) * 100).astype(dtype)
    out = raw_with(diff3d).generate_grouped_data(N, K=4, nsamples=10, gridsize=2, seed=0)
    assert out["diffraction"].dtype == dtype and out["X_full"].dtype == np.float32
    d = out["diffraction"].astype(np.float64)
    scale = np.sqrt((N / 2) ** 2 / np.mean(np.sum(d ** 2, axis=(1, 2))))
    np.testing.assert_allclose(out["X_full"], d * scale, rtol=1e-6)


def test_energies_that_overflow_float64_are_named_as_such():
    diff3d = np.full((12, N, N), 1e200)
    with pytest.raises(ValueError, match=r"overflows float64.*range from 1e\+200 to 1e\+200"
                                         r"\); rescale diff3d") as info:
        raw_with(diff3d).generate_grouped_data(N, nsamples=5, seed=0)
    assert "NaN or inf" not in str(info.value)


def test_squares_that_underflow_are_an_error_naming_the_range():
    diff3d = np.full((12, N, N), 1e-170)
    with pytest.raises(ValueError, match=r"zero total energy.*range from 1e-170 to 1e-170"):
        raw_with(diff3d).generate_grouped_data(N, nsamples=5, seed=0)


def test_nan_patterns_are_named_as_nan_with_the_range(tmp_path):
    diff3d = np.ones((12, N, N), np.float32)
    diff3d[:, 0, 0] = np.nan
    rd = raw_with(diff3d)
    with pytest.raises(ValueError, match=r"diff3d holds NaN or inf.*range from 1 to 1 and "
                                         r"include NaN or inf"):
        rd.generate_grouped_data(N, nsamples=5, seed=0)
    with pytest.raises(ValueError, match="diff3d holds NaN or inf"):
        grouped_writer.write_grouped(rd, tmp_path / "g.npz", N, nsamples=5, seed=0)
    assert os.listdir(tmp_path) == []


@given(mean=st.floats(1e-300, 1e300), n=st.integers(1, 10**6), N_=st.integers(1, 512))
def test_a_returned_scale_gives_finite_float32_output(mean, n, N_):
    # Patterns whose energies all equal `mean`: the largest value is at most sqrt(mean).
    scale = normalisation_scale(np.full(3, mean), N_)
    assert np.isfinite(scale) and scale > 0
    peak = np.sqrt(mean)
    for dtype in (np.float32, np.float64):
        if peak > np.finfo(dtype).max:
            continue
        work = scale_dtype(dtype, scale)
        x = np.asarray(peak, dtype=dtype)
        assert np.isfinite(np.float32(x.astype(work) * work.type(scale)))


# -- full disks --------------------------------------------------------------------------

FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    import numpy as np
    from ptycho_data import grouped_writer
    from ptycho_data.raw_data import RawData
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    out_format, target = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    m = 2000
    xy = rng.uniform(0, 100, (m, 2))
    rd = RawData.from_coords_without_pc(xy[:, 0], xy[:, 1],
                                        rng.random((m, 32, 32), dtype=np.float32), None, None)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    try:
        grouped_writer.write_grouped(rd, target, 32, out_format=out_format, K=6, nsamples=500,
                                     gridsize=2, seed=0, chunk_groups=20)
    except OSError as exc:
        print("OSError", exc.errno)
        sys.exit(2)
""")


@pytest.mark.real_process  # a fresh interpreter (imports, limits, filters) is what is tested
@pytest.mark.parametrize("out_format", ["npz", "hdf5"])
def test_a_full_disk_is_a_clean_error(tmp_path, out_format):
    if out_format == "hdf5":
        pytest.importorskip("h5py")
    target = tmp_path / "out.data"
    target.write_bytes(b"previous result")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, out_format, str(target)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr  # not 139 (segmentation fault)
    assert proc.stdout.split() == ["OSError", "27"]  # EFBIG: the write limit, as ENOSPC
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert target.read_bytes() == b"previous result"
    assert sorted(os.listdir(tmp_path)) == ["out.data"]


def test_too_little_free_space_fails_before_writing(tmp_path, monkeypatch):
    target = tmp_path / "g.npz"
    target.write_bytes(b"previous result")

    class Tiny:
        f_bavail, f_frsize = 10, 4096

    monkeypatch.setattr(grouped_writer.os, "statvfs", lambda path: Tiny)
    with pytest.raises(OSError, match=r"needs about \d+ MiB, 0 MiB are free") as info:
        grouped_writer.write_grouped(raw_with(np.ones((50, N, N), np.float32)), target, N,
                                     K=4, nsamples=20, gridsize=2, seed=0)
    assert info.value.errno == 28
    assert target.read_bytes() == b"previous result" and os.listdir(tmp_path) == ["g.npz"]


# -- every kind of store, bounded memory, a normal zip -------------------------------------

def stores(diff3d, tmp_path):
    """The same patterns as an array, a memory map, an HDF5 dataset, a Zarr and a Dask array."""
    yield "array", diff3d
    path = tmp_path / "scan.npz"
    raw_with(diff3d).to_file(path)
    yield "memmap", RawData.from_file(path, mmap=True).diff3d
    try:
        import h5py
        f = h5py.File(tmp_path / "scan.h5", "w")
        f["d"] = diff3d
        yield "hdf5", f["d"]
    except ImportError:
        pass
    try:
        import zarr
        z = zarr.open(str(tmp_path / "scan.zarr"), mode="w", shape=diff3d.shape,
                      chunks=(7, N, N), dtype=diff3d.dtype)
        z[:] = diff3d
        yield "zarr", z
    except ImportError:
        pass
    try:
        import dask.array as da
        yield "dask", da.from_array(diff3d, chunks=(11, N, N))
    except ImportError:
        pass


def test_every_store_kind_streams_to_the_eager_result(tmp_path):
    rng = np.random.default_rng(5)
    diff3d = rng.random((150, N, N)).astype(np.float32)
    kw = dict(K=6, nsamples=120, gridsize=2, seed=2)
    expected = raw_with(diff3d, obj=True).generate_grouped_data(N, **kw)
    kinds = []
    for kind, store in stores(diff3d, tmp_path):
        rd = raw_with(store, m=150, obj=True)
        out = tmp_path / f"{kind}.npz"
        grouped_writer.write_grouped(rd, out, N, chunk_groups=13, **kw)
        got = npz_arrays(out)
        assert set(got) == {k for k, v in expected.items() if v is not None}, kind
        for key, value in got.items():
            assert value.dtype == expected[key].dtype and np.array_equal(value, expected[key]), \
                (kind, key)
        kinds.append(kind)
    assert {"array", "memmap"} <= set(kinds)


def test_the_npz_is_an_ordinary_zip_with_memory_mappable_members(tmp_path):
    rd = raw_with(np.random.default_rng(0).random((80, N, N)).astype(np.float32), obj=True)
    kw = dict(K=6, nsamples=60, gridsize=2, seed=0)
    out = tmp_path / "g.npz"
    grouped_writer.write_grouped(rd, out, N, chunk_groups=7, **kw)
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None  # every member's CRC checks out
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    expected = rd.generate_grouped_data(N, **kw)
    keys = ("diffraction", "X_full", "Y", "coords_nn", "nn_indices")
    mapped = load_npz(out, mmap_keys=keys)
    for key in keys:
        assert isinstance(mapped[key], np.memmap)
        assert np.array_equal(mapped[key], expected[key]), key


def test_memory_stays_within_the_chunk_whatever_the_output_size(tmp_path, monkeypatch):
    # 4,000 groups of 4 16x16 float32 patterns: 16 MiB of diffraction, as much
    # X_full and 32 MiB of Y; the chunk is 1 MiB and blocks 256 KiB.
    n, m = 16, 3000
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (m, 2))
    rd = RawData.from_coords_without_pc(xy[:, 0], xy[:, 1],
                                        rng.random((m, n, n), dtype=np.float32), None, None,
                                        objectGuess=np.ones((240, 240), np.complex64))
    monkeypatch.setattr(grouped_writer, "BLOCK_BYTES", 256 << 10)
    tracemalloc.start()
    try:
        grouped_writer.write_grouped(rd, tmp_path / "g.npz", n, chunk_mib=1, K=6, nsamples=4000,
                                     gridsize=2, seed=0, enable_oversampling=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    output = (tmp_path / "g.npz").stat().st_size
    assert output > 64 << 20
    # One chunk, a few blocks, the padded object, the groups and their
    # bookkeeping: a few MiB, whatever the output size.
    assert peak < 6 << 20, peak
