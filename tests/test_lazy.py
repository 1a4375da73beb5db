"""generate_grouped_data(..., lazy=True): Dask arrays equal to the eager path."""
import sys

import numpy as np
import pytest

from ptycho.raw_data import RawData

da = pytest.importorskip("dask.array")

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

    def __getitem__(self, key):
        self.reads += 1
        return self._data[key]


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


def test_nothing_is_read_until_computed():
    xy, diff, _ = scan()
    store = ReadCounter(diff)
    out = raw(xy, store).generate_grouped_data(N, K=6, nsamples=100, gridsize=2, seed=0, lazy=True)
    assert store.reads == 0
    assert np.array_equal(out["diffraction"].compute(), diff[out["nn_indices"]].transpose(0, 2, 3, 1))
    assert store.reads > 0


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


def test_runs_on_a_local_cluster_with_two_worker_processes():
    distributed = pytest.importorskip("dask.distributed")
    xy, diff, obj = scan(7)
    store = da.from_array(diff, chunks=(64, N, N))
    args = dict(K=7, nsamples=400, gridsize=2, seed=11)
    lazy = raw(xy, store, objectGuess=obj).generate_grouped_data(N, lazy=True, **args)
    eager = raw(xy, diff, objectGuess=obj).generate_grouped_data(N, **args)
    # Worker processes: the graph must survive pickling to run there.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        x_full, y, diffraction = client.gather(
            client.compute([lazy["X_full"], lazy["Y"], lazy["diffraction"]]))
    assert np.array_equal(x_full, eager["X_full"]) and x_full.dtype == eager["X_full"].dtype
    assert np.array_equal(y, eager["Y"]) and np.array_equal(diffraction, eager["diffraction"])
