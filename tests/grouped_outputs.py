"""Reading grouped outputs (NPZ, Zarr) back as dicts of arrays, for comparing them."""
import json

import numpy as np


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
