"""Pattern stores larger than memory: memory maps and other array-likes, read lazily."""
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ptycho_data import pattern_store
from ptycho_data.raw_data import RawData

N = 8


class RecordingStore:
    """A minimal array-like that refuses to be loaded whole and records its reads."""

    def __init__(self, data):
        self._data = data
        self.shape, self.dtype = data.shape, data.dtype
        self.reads = []

    def __getitem__(self, rows):
        rows = np.asarray(rows)
        self.reads.append(rows.copy())
        return self._data[rows]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole store was loaded")


def dataset(m=400, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 60, (m, 2))
    diff = rng.random((m, N, N)).astype(np.float32)
    return xy, diff


def raw(xy, diff, **kw):
    return RawData.from_coords_without_pc(xy[:, 0], xy[:, 1], diff, np.ones((N, N)),
                                          np.arange(len(xy)), **kw)


def same_outputs(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if a[key] is None:
            assert b[key] is None
        else:
            assert np.array_equal(a[key], b[key]), key
            assert a[key].dtype == b[key].dtype, key


@given(m=st.integers(1, 300), n=st.integers(1, 500), chunk=st.integers(1, 64),
       seed=st.integers(0, 1000))
def test_gather_equals_fancy_indexing_and_reads_each_frame_once_in_order(m, n, chunk, seed):
    rng = np.random.default_rng(seed)
    data = rng.random((m, 3, 3)).astype(np.float32)
    idx = rng.integers(0, m, n)
    store = RecordingStore(data)
    out = pattern_store.gather_frames(store, idx, chunk_frames=chunk)
    assert np.array_equal(out, data[idx]) and out.dtype == data.dtype
    read = np.concatenate(store.reads)
    assert np.array_equal(read, np.unique(idx))  # each needed frame once, increasing
    assert max(len(r) for r in store.reads) <= chunk


def test_lazy_store_gives_the_same_groups_and_arrays():
    xy, diff = dataset()
    store = RecordingStore(diff)
    expected = raw(xy, diff).generate_grouped_data(N, K=6, nsamples=50, gridsize=2, seed=3)
    got = raw(xy, store).generate_grouped_data(N, K=6, nsamples=50, gridsize=2, seed=3)
    same_outputs(expected, got)
    assert np.concatenate(store.reads).size == np.unique(expected["nn_indices"]).size


def test_memmap_npy_store(tmp_path):
    xy, diff = dataset()
    mm = np.lib.format.open_memmap(tmp_path / "diff.npy", mode="w+", dtype=diff.dtype,
                                   shape=diff.shape)
    mm[:] = diff
    mm.flush()
    store = np.load(tmp_path / "diff.npy", mmap_mode="r")
    same_outputs(raw(xy, diff).generate_grouped_data(N, K=5, nsamples=80, gridsize=2, seed=0),
                 raw(xy, store).generate_grouped_data(N, K=5, nsamples=80, gridsize=2, seed=0))


def test_from_file_mmap_maps_the_patterns(tmp_path):
    xy, diff = dataset()
    rows, cols = np.mgrid[0:90, 0:90]
    r = raw(xy, diff, objectGuess=(rows + 1j * cols).astype(np.complex64))
    r.to_file(tmp_path / "scan.npz")
    mapped = RawData.from_file(tmp_path / "scan.npz", mmap=True)
    assert isinstance(mapped.diff3d, np.memmap) and not mapped.diff3d.flags.writeable
    assert np.array_equal(mapped.diff3d, diff)
    same_outputs(r.generate_grouped_data(N, K=6, nsamples=64, gridsize=2, seed=9),
                 mapped.generate_grouped_data(N, K=6, nsamples=64, gridsize=2, seed=9))


def test_mmap_of_a_compressed_npz_is_a_clear_error(tmp_path):
    xy, diff = dataset(m=10)
    np.savez_compressed(tmp_path / "c.npz", xcoords=xy[:, 0], ycoords=xy[:, 1], diff3d=diff,
                        probeGuess=np.ones((N, N)))
    with pytest.raises(ValueError, match=r"member 'diff3d.npy' is compressed .* np.savez"):
        RawData.from_file(tmp_path / "c.npz", mmap=True)
    assert RawData.from_file(tmp_path / "c.npz").diff3d.shape == (10, N, N)


def test_store_shape_is_checked_without_reading():
    xy, diff = dataset(m=10)
    with pytest.raises(ValueError, match=r"diff3d must be 3-D \(M, N, N\), got shape \(10, 64\)"):
        raw(xy, RecordingStore(diff.reshape(10, 64)))
    with pytest.raises(ValueError, match="diff3d has 9 patterns but xcoords has 10"):
        raw(xy, RecordingStore(diff[:9]))


def test_hdf5_dataset(tmp_path):
    h5py = pytest.importorskip("h5py")
    xy, diff = dataset()
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["data"] = diff
    with h5py.File(tmp_path / "d.h5", "r") as f:
        got = raw(xy, f["data"]).generate_grouped_data(N, K=6, nsamples=40, gridsize=2, seed=1)
    same_outputs(raw(xy, diff).generate_grouped_data(N, K=6, nsamples=40, gridsize=2, seed=1), got)


def test_zarr_array():
    zarr = pytest.importorskip("zarr")
    xy, diff = dataset()
    z = zarr.array(diff, chunks=(16, N, N))
    same_outputs(raw(xy, diff).generate_grouped_data(N, K=6, nsamples=40, gridsize=2, seed=2),
                 raw(xy, z).generate_grouped_data(N, K=6, nsamples=40, gridsize=2, seed=2))


def test_dask_array():
    da = pytest.importorskip("dask.array")
    xy, diff = dataset()
    d = da.from_array(diff, chunks=(32, N, N))
    same_outputs(raw(xy, diff).generate_grouped_data(N, K=6, nsamples=40, gridsize=2, seed=4),
                 raw(xy, d).generate_grouped_data(N, K=6, nsamples=40, gridsize=2, seed=4))


def test_cxi_file_loads_lazily_with_positions_in_pixels(tmp_path):
    h5py = pytest.importorskip("h5py")
    xy, diff = dataset()
    energy = 1.6e-16  # J (about 1 keV)
    distance, det_pixel = 2.0, 75e-6
    pixel = 6.62607015e-34 * 299792458.0 / energy * distance / (N * det_pixel)
    with h5py.File(tmp_path / "scan.cxi", "w") as f:
        f["entry_1/data_1/data"] = diff
        f["entry_1/sample_1/geometry_1/translation"] = np.column_stack(
            [xy * pixel, np.zeros(len(xy))])
        f["entry_1/instrument_1/source_1/energy"] = energy
        f["entry_1/instrument_1/detector_1/distance"] = distance
        f["entry_1/instrument_1/detector_1/x_pixel_size"] = det_pixel
    cxi = RawData.from_cxi(tmp_path / "scan.cxi")
    assert isinstance(cxi.diff3d, h5py.Dataset)
    assert np.allclose(cxi.xcoords, xy[:, 0] - xy[:, 0].min())
    shifted = xy - xy.min(axis=0)
    expected = raw(shifted, diff).generate_grouped_data(N, K=6, nsamples=30, gridsize=2, seed=5)
    got = cxi.generate_grouped_data(N, K=6, nsamples=30, gridsize=2, seed=5)
    assert np.array_equal(expected["nn_indices"], got["nn_indices"])
    assert np.array_equal(expected["diffraction"], got["diffraction"])
    with pytest.raises(ValueError, match="lacks entry_1/instrument_1/source_1/energy"):
        with h5py.File(tmp_path / "bare.cxi", "w") as f:
            f["entry_1/data_1/data"] = diff
            f["entry_1/sample_1/geometry_1/translation"] = np.zeros((len(xy), 3))
        RawData.from_cxi(tmp_path / "bare.cxi")


def write_cxi(path, xy, diff, scalar_shape=(), probe=None, **geometry):
    """A CXI file with the given geometry values stored with shape ``scalar_shape``."""
    import h5py
    keys = {"energy": "entry_1/instrument_1/source_1/energy",
            "distance": "entry_1/instrument_1/detector_1/distance",
            "det_pixel": "entry_1/instrument_1/detector_1/x_pixel_size"}
    with h5py.File(path, "w") as f:
        f["entry_1/data_1/data"] = diff
        f["entry_1/sample_1/geometry_1/translation"] = np.column_stack([xy, np.zeros(len(xy))])
        for name, value in geometry.items():
            f[keys[name]] = np.full(scalar_shape, value)
        if probe is not None:
            f["entry_1/instrument_1/source_1/probe"] = probe


@pytest.mark.parametrize("scalar_shape", [(), (1,), (1, 1)])
def test_cxi_geometry_stored_as_one_element_arrays(tmp_path, scalar_shape):
    pytest.importorskip("h5py")
    xy, diff = dataset(m=50)
    energy, distance, det_pixel = 1.6e-16, 2.0, 75e-6
    pixel = 6.62607015e-34 * 299792458.0 / energy * distance / (N * det_pixel)
    write_cxi(tmp_path / "s.cxi", xy * pixel, diff, scalar_shape, energy=energy,
              distance=distance, det_pixel=det_pixel)
    cxi = RawData.from_cxi(tmp_path / "s.cxi")
    assert np.allclose(cxi.xcoords, xy[:, 0] - xy[:, 0].min())
    assert np.allclose(cxi.ycoords, xy[:, 1] - xy[:, 1].min())


def test_cxi_geometry_with_several_values_or_bad_values_is_refused(tmp_path):
    pytest.importorskip("h5py")
    xy, diff = dataset(m=20)
    write_cxi(tmp_path / "two.cxi", xy, diff, (2,), energy=1e-16, distance=2.0, det_pixel=7e-5)
    with pytest.raises(ValueError,
                       match=r"source_1/energy must hold a single value, got shape \(2,\)"):
        RawData.from_cxi(tmp_path / "two.cxi")
    write_cxi(tmp_path / "zero.cxi", xy, diff, energy=1e-16, distance=0.0, det_pixel=7e-5)
    with pytest.raises(ValueError,
                       match="detector_1/distance must be a positive finite number, got 0.0"):
        RawData.from_cxi(tmp_path / "zero.cxi")


@pytest.mark.parametrize("pixel_size, error, message", [
    (0, ValueError, "pixel_size must be a positive finite number, got 0"),
    (-1.0, ValueError, "pixel_size must be a positive finite number, got -1.0"),
    (float("inf"), ValueError, "pixel_size must be a positive finite number, got inf"),
    (float("nan"), ValueError, "pixel_size must be a positive finite number, got nan"),
    ("x", TypeError, "pixel_size must be a positive real number, got 'x' of type str"),
    (True, TypeError, "pixel_size must be a positive real number, got True of type bool"),
])
def test_cxi_pixel_size_must_be_a_positive_finite_real(tmp_path, pixel_size, error, message):
    pytest.importorskip("h5py")
    xy, diff = dataset(m=20)
    write_cxi(tmp_path / "s.cxi", xy, diff)
    with pytest.raises(error, match=message):
        RawData.from_cxi(tmp_path / "s.cxi", pixel_size=pixel_size)


@settings(max_examples=20, deadline=None)
@given(pixel=st.one_of(st.floats(1e-9, 1e-3), st.floats(1e-9, 1e-3).map(np.float32)))
def test_cxi_explicit_pixel_size_divides_the_positions(tmp_path_factory, pixel):
    pytest.importorskip("h5py")
    path = tmp_path_factory.getbasetemp() / "pixel.cxi"
    xy, diff = dataset(m=20)
    write_cxi(path, xy * 1e-6, diff)
    cxi = RawData.from_cxi(path, pixel_size=pixel)
    try:
        expected = xy * 1e-6 / float(pixel)
        assert np.allclose(cxi.xcoords, expected[:, 0] - expected[:, 0].min())
        assert np.allclose(cxi.ycoords, expected[:, 1] - expected[:, 1].min())
    finally:
        cxi._source_file.close()


def test_cxi_multi_mode_probe_keeps_the_strongest_mode_with_a_warning(tmp_path):
    pytest.importorskip("h5py")
    xy, diff = dataset(m=30)
    rng = np.random.default_rng(1)
    modes = (rng.random((3, N, N)) + 1j * rng.random((3, N, N))).astype(np.complex64)
    modes[1] *= 5  # the dominant mode is not necessarily stored first
    write_cxi(tmp_path / "modes.cxi", xy, diff, probe=modes)
    with pytest.warns(UserWarning, match=r"holds 3 probe modes .* keeping mode 1, the strongest"):
        cxi = RawData.from_cxi(tmp_path / "modes.cxi", pixel_size=1.0)
    assert np.array_equal(cxi.probeGuess, modes[1])
    plain = raw(xy - xy.min(axis=0), diff).generate_grouped_data(N, K=6, nsamples=10, gridsize=2,
                                                                  seed=0)
    got = cxi.generate_grouped_data(N, K=6, nsamples=10, gridsize=2, seed=0)
    assert np.array_equal(got["diffraction"], plain["diffraction"])
    write_cxi(tmp_path / "one.cxi", xy, diff, probe=modes[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a single mode loses nothing: no warning
        one = RawData.from_cxi(tmp_path / "one.cxi", pixel_size=1.0)
    assert np.array_equal(one.probeGuess, modes[0])


@pytest.mark.parametrize("mode", ["r", "c"])
def test_gathering_from_a_memory_map_keeps_its_contents(tmp_path, mode):
    # Read-only maps release the pages a chunk faulted in; a copy-on-write map
    # must not, or its in-memory edits would be thrown away.
    xy, diff = dataset(m=300)
    np.save(tmp_path / "d.npy", diff)
    store = np.load(tmp_path / "d.npy", mmap_mode=mode)
    expected = diff.copy()
    if mode == "c":
        store[5] = expected[5] = -1.0
    idx = np.random.default_rng(0).integers(0, 300, 900)
    for _ in range(2):
        got = pattern_store.gather_frames(store, idx, chunk_frames=32)
        assert np.array_equal(got, expected[idx])
    assert np.array_equal(store[5], expected[5])


#: Views of a memory map: the frames keep their place in the file, the rows step over it.
VIEWS = {
    "whole": lambda a: a,
    "from row 3": lambda a: a[3:],
    "every 3rd row": lambda a: a[::3],
    "reversed": lambda a: a[::-1],
    "strided frames": lambda a: a[:, :, ::2],  # frames not contiguous: indexed through the map
}


@settings(max_examples=60, deadline=None)
@given(m=st.integers(4, 200), n=st.integers(0, 400), chunk=st.sampled_from([None, 1, 7, 64]),
       runs=st.booleans(), view=st.sampled_from(sorted(VIEWS)), seed=st.integers(0, 1000))
def test_read_only_maps_are_gathered_exactly(tmp_path_factory, m, n, chunk, runs, view, seed):
    rng = np.random.default_rng(seed)
    data = rng.random((m, 3, 5)).astype(np.float32)
    path = tmp_path_factory.mktemp("pread") / "d.npy"
    np.save(path, data)  # the frames start after the .npy header: an offset
    store, data = VIEWS[view](np.load(path, mmap_mode="r")), VIEWS[view](data)
    m = len(data)
    if runs:  # long runs of consecutive frames, as sorted groups give
        starts = rng.integers(0, m, max(1, n // 10))
        idx = np.concatenate([np.arange(s, min(m, s + 12)) for s in starts])[:n]
    else:
        idx = rng.integers(0, m, n)
    got = pattern_store.gather_frames(store, idx, chunk_frames=chunk)
    assert got.dtype == data.dtype and np.array_equal(got, data[idx])


def test_a_map_is_read_from_its_own_file_after_its_path_is_replaced(tmp_path):
    # Frames come from the file the map holds, as indexing the map gives, not from
    # whatever now has its name (a dataset regenerated while a long run reads it).
    mapped, newer = (np.random.default_rng(s).random((50, 4, 4)) for s in (1, 2))
    np.save(tmp_path / "d.npy", mapped)
    store = np.load(tmp_path / "d.npy", mmap_mode="r")
    np.save(tmp_path / "new.npy", newer)
    os.replace(tmp_path / "new.npy", tmp_path / "d.npy")
    idx = np.array([7, 3, 3, 49, 0])
    assert np.array_equal(pattern_store.gather_frames(store, idx), mapped[idx])


def test_a_map_whose_file_was_removed_is_still_gathered_from_the_map(tmp_path):
    # The name opens nothing; the map still holds the file's pages.
    mapped = np.random.default_rng(3).random((50, 4, 4))
    np.save(tmp_path / "d.npy", mapped)
    store = np.load(tmp_path / "d.npy", mmap_mode="r")
    os.unlink(tmp_path / "d.npy")
    idx = np.array([49, 0, 0, 12])
    assert pattern_store._open_mapped_file(store) is None
    assert np.array_equal(pattern_store.gather_frames(store, idx), mapped[idx])


def test_an_address_nothing_maps_has_no_inode():
    assert pattern_store._mapped_inode(0) is None


def test_a_file_truncated_under_its_map_is_an_error_naming_it(tmp_path):
    # Through the map, the same read is a SIGBUS that kills the process.
    np.save(tmp_path / "d.npy", np.ones((100, 8, 8)))
    store = np.load(tmp_path / "d.npy", mmap_mode="r")
    os.truncate(tmp_path / "d.npy", 4096)
    with pytest.raises(OSError, match=r"d\.npy ended before row 90 of the patterns it maps"):
        pattern_store.gather_frames(store, [2, 90])


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # VmHWM := VmRSS
        return True
    except OSError:
        return False


def test_a_scattered_gather_does_not_map_the_file_into_memory(tmp_path):
    # Through the map, Linux 6 faulted in whole read-around windows: 128 scattered
    # 16 KiB frames of this 256 MiB file raised the peak resident set by ~145 MiB
    # (which Dask's nanny counts against a worker's limit). The result is 2 MiB.
    from ptycho_cli.memory import status_kib
    frames = 16384
    store = np.lib.format.open_memmap(tmp_path / "d.npy", mode="w+", dtype=np.float32,
                                      shape=(frames, 64, 64))
    for start in range(0, frames, 1024):
        store[start:start + 1024] = start
    store.flush()
    del store
    store = np.load(tmp_path / "d.npy", mmap_mode="r")
    idx = np.random.default_rng(0).choice(frames, 128, replace=False)
    if not _reset_peak_rss():
        pytest.skip("needs a writable /proc/self/clear_refs to measure the peak")
    before = status_kib("VmRSS")["VmRSS"]
    got = pattern_store.gather_frames(store, idx)
    grew_mib = (status_kib("VmHWM")["VmHWM"] - before) / 1024
    assert np.array_equal(got[:, 0, 0], idx // 1024 * 1024)
    assert grew_mib < 24
