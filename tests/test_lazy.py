"""generate_grouped_data(..., lazy=True): Dask arrays equal to the eager path."""
import sys

import numpy as np
import pytest

from ptycho_data import dask_arrays as lazy_module
from ptycho_data.raw_data import RawData

da = pytest.importorskip("dask.array")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    # About 24 groups of 4 patterns of 8x8 float32 per block: several blocks.
    monkeypatch.setattr(lazy_module, "BLOCK_BYTES", 24 * 4 * N * N * 4)

N = 8
M = 500


def scan(seed=0, m=M):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 80, (m, 2))
    diff = rng.random((m, N, N)).astype(np.float32)
    rows, cols = np.mgrid[0:100, 0:100]
    obj = (np.sin(rows / 7) + 1j * np.cos(cols / 5)).astype(np.complex64)
    return xy, diff, obj


def raw(xy, store, **kw):
    return RawData.from_coords_without_pc(xy[:, 0], xy[:, 1], store, np.ones((N, N)),
                                          np.arange(len(xy)), **kw)


def assert_same(eager, lazy, lazy_keys=("diffraction", "X_full", "Y")):
    assert eager.keys() == lazy.keys()
    for key, want in eager.items():
        got = lazy[key]
        if want is None:
            assert got is None, key
            continue
        assert isinstance(got, da.Array) == (key in lazy_keys), key
        got = np.asarray(got)
        assert got.dtype == want.dtype and got.shape == want.shape, key
        assert np.array_equal(got, want), key  # bit for bit, X_full included


class ReadCounter:
    """An array-like store that records every read."""

    def __init__(self, data):
        self._data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads = 0
        self.frames = 0

    def __getitem__(self, key):
        self.reads += 1
        out = self._data[key]
        self.frames += len(out)
        return out


@pytest.mark.parametrize("gridsize", [1, 2, 3])
@pytest.mark.parametrize("store_kind", ["numpy", "dask"])
@pytest.mark.parametrize("source_of_y", ["none", "object", "Y"])
def test_lazy_equals_eager(gridsize, store_kind, source_of_y):
    xy, diff, obj = scan(gridsize)
    kw = {"objectGuess": obj} if source_of_y == "object" else {}
    store = diff if store_kind == "numpy" else da.from_array(diff, chunks=(64, N, N))
    eager_raw, lazy_raw = raw(xy, diff, **kw), raw(xy, store, **kw)
    if source_of_y == "Y":
        eager_raw.Y = lazy_raw.Y = diff[:, ::-1]  # any per-position stack
    # More groups than one Dask block, so the energies span several blocks.
    args = dict(K=9, nsamples=300 if gridsize == 1 else 1500, gridsize=gridsize, seed=gridsize,
                enable_oversampling=True, neighbor_pool_size=12)
    lazy = lazy_raw.generate_grouped_data(N, lazy=True, **args)
    assert lazy["diffraction"].numblocks[0] > 1 or gridsize == 1
    assert_same(eager_raw.generate_grouped_data(N, **args), lazy)


def test_nothing_is_read_until_computed_then_only_what_each_block_uses():
    xy, diff, _ = scan()
    store = ReadCounter(diff)
    out = raw(xy, store).generate_grouped_data(N, K=6, nsamples=100, gridsize=2, seed=0, lazy=True)
    assert store.reads == 0
    nn = out["nn_indices"]
    assert np.array_equal(out["diffraction"].compute(), diff[nn].transpose(0, 2, 3, 1))
    # Each block reads its own distinct frames once: never whole store chunks.
    blocks = np.split(nn, np.cumsum(out["diffraction"].chunks[0])[:-1])
    assert store.frames == sum(len(np.unique(b)) for b in blocks) < len(diff)


def test_x_full_shares_no_task_with_diffraction():
    # Shared blocks would wait in memory until the scale (from every block) is known.
    xy, diff, _ = scan()
    out = raw(xy, diff).generate_grouped_data(N, K=6, nsamples=200, gridsize=2, seed=0, lazy=True)
    shared = set(out["X_full"].__dask_graph__()) & set(out["diffraction"].__dask_graph__())
    assert all(str(key).startswith(("ptycho-store-", "ptycho-groups-")) or
               (isinstance(key, tuple) and str(key[0]).startswith("ptycho-groups-"))
               for key in shared), shared


def test_a_memory_map_is_neither_copied_nor_put_into_the_graph(tmp_path):
    cloudpickle = pytest.importorskip("cloudpickle")
    xy, diff, _ = scan(m=4000)
    np.save(tmp_path / "d.npy", diff)
    store = np.load(tmp_path / "d.npy", mmap_mode="r")
    out = raw(xy, store).generate_grouped_data(N, K=6, nsamples=100, gridsize=2, seed=0, lazy=True)
    graph_bytes = len(cloudpickle.dumps(dict(out["X_full"].__dask_graph__())))
    assert graph_bytes < diff.nbytes / 10, graph_bytes  # the store travels as its file name
    eager = raw(xy, diff).generate_grouped_data(N, K=6, nsamples=100, gridsize=2, seed=0)
    assert np.array_equal(out["X_full"].compute(), eager["X_full"])


def test_lazy_must_be_a_bool():
    xy, diff, _ = scan()
    with pytest.raises(TypeError, match="lazy must be True or False, got 'yes'"):
        raw(xy, diff).generate_grouped_data(N, K=6, nsamples=10, gridsize=2, lazy="yes")


def test_lazy_without_dask_says_which_extra(monkeypatch):
    xy, diff, _ = scan()
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"lazy=True needs dask: pip install 'ptycho-grouping\[dask\]'"):
        raw(xy, diff).generate_grouped_data(N, K=6, nsamples=10, gridsize=2, lazy=True)


def test_runs_on_a_local_cluster_with_two_worker_processes(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    h5py = pytest.importorskip("h5py")
    xy, diff, obj = scan(7)
    np.save(tmp_path / "d.npy", diff)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["data"] = diff
    args = dict(K=7, nsamples=400, gridsize=2, seed=11)
    eager = raw(xy, diff, objectGuess=obj).generate_grouped_data(N, **args)
    with h5py.File(tmp_path / "d.h5", "r") as h5:
        stores = {"dask": da.from_array(diff, chunks=(64, N, N)),
                  "memmap": np.load(tmp_path / "d.npy", mmap_mode="r"), "hdf5": h5["data"]}
        lazy = {kind: raw(xy, store, objectGuess=obj).generate_grouped_data(N, lazy=True, **args)
                for kind, store in stores.items()}
        # Worker processes: the graph must survive pickling to run there.
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as cluster, \
                distributed.Client(cluster) as client:
            assert len(client.scheduler_info()["workers"]) == 2
            results = client.gather(client.compute(
                {kind: [out["X_full"], out["Y"], out["diffraction"]] for kind, out in lazy.items()}))
    for kind, (x_full, y, diffraction) in results.items():
        assert np.array_equal(x_full, eager["X_full"]) and x_full.dtype == eager["X_full"].dtype, kind
        assert np.array_equal(y, eager["Y"]) and np.array_equal(diffraction, eager["diffraction"]), kind


def test_compute_with_a_progress_bar_gives_the_eager_arrays(capsys):
    from ptycho_data.dask_arrays import compute

    rd = RawData.from_coords_without_pc(*np.random.default_rng(0).uniform(0, 30, (2, 60)),
                                        np.random.default_rng(1).random((60, 8, 8)), None, None)
    kw = dict(K=4, nsamples=40, gridsize=2, seed=0)
    lazy = rd.generate_grouped_data(8, lazy=True, **kw)
    eager = rd.generate_grouped_data(8, **kw)
    diffraction, x_full = compute(lazy["diffraction"], lazy["X_full"], progress=True,
                                  scheduler="sync")
    assert np.array_equal(diffraction, eager["diffraction"])
    assert np.array_equal(x_full, eager["X_full"])
    err = capsys.readouterr().err
    assert "computing" in err and "task" in err
    compute(lazy["X_full"], scheduler="sync")
    assert capsys.readouterr().err == ""
