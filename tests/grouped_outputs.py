"""Reading grouped outputs (NPZ, Zarr) back as dicts of arrays, for comparing them."""
import json

import numpy as np

from ptycho_data.raw_data import RawData

N = 8


def scan(m=300, obj=True, seed=0, n=N):
    """A small random scan with ``n x n`` patterns and, by default, an object to cut ``Y`` from."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 50, (m, 2))
    rows, cols = np.mgrid[0:50 + 2 * n, 0:50 + 2 * n]
    return RawData.from_coords_without_pc(
        xy[:, 0], xy[:, 1], rng.random((m, n, n)).astype(np.float32), np.ones((n, n)),
        np.arange(m), objectGuess=(rows + 1j * cols).astype(np.complex64) if obj else None)


#: JSON text members (NPZ) or attributes (Zarr, HDF5) beside the arrays.
RECORD_KEYS = ("provenance", "grouping_metrics")


def npz_arrays(path):
    with np.load(path, allow_pickle=False) as npz:
        record = json.loads(str(npz["provenance"])) if "provenance" in npz.files else None
        return {k: npz[k] for k in npz.files if k not in RECORD_KEYS}, record


def zarr_arrays(path):
    import zarr
    group = zarr.open_group(str(path), mode="r")
    record = group.attrs.get("provenance")
    return {k: group[k][...] for k in group.array_keys()}, (dict(record) if record else None)


def assert_same_arrays(got, expected):
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape, key
        assert np.array_equal(got[key], value), key
