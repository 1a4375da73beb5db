"""What a grouped output records about how it was made, so that it can be made again.

Every grouped output (NPZ member ``provenance``, an HDF5 or Zarr attribute
of the same name) carries one JSON object: the package version, the
grouping parameters as resolved (strategy, seed, gridsize, K, ...), the
pattern size, and a fingerprint of the input: its file's size and
modification time when there is a file, and always a SHA-256 of the scan
coordinates and of the groups written. Running the same command on an input
with the same coordinate hash gives the same ``groups_sha256``.
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
from pathlib import Path
from typing import Optional

import numpy as np

from ptycho_grouping import __version__
from ptycho_grouping.registry import DEFAULT_STRATEGY

__all__ = ["KEY", "grouping_provenance", "output_records", "file_fingerprint", "array_sha256", "to_json",
           "read_provenance", "read_record"]

#: The NPZ member / HDF5 and Zarr attribute holding the record.
KEY = "provenance"


def array_sha256(*arrays) -> str:
    """SHA-256 of the arrays' values (as C-ordered little-endian float64/int64 bytes)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        kind = "<i8" if a.dtype.kind in "iub" else "<f8"
        h.update(np.ascontiguousarray(a, dtype=kind).tobytes())
    return h.hexdigest()


def file_fingerprint(path) -> dict:
    """Name, size and modification time of ``path`` (a directory: of all its files)."""
    path = Path(path)
    if path.is_dir():
        size, mtime = 0, 0
        for root, _, files in os.walk(path):
            for name in files:
                st = os.stat(os.path.join(root, name))
                size, mtime = size + st.st_size, max(mtime, st.st_mtime_ns)
    else:
        st = path.stat()
        size, mtime = st.st_size, st.st_mtime_ns
    return {"path": str(path), "bytes": size, "mtime_ns": mtime}


def _jsonable(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)  # e.g. a numpy Generator as seed: recorded, but not reproducible


def grouping_provenance(raw, nn: np.ndarray, N: int, grouping: dict,
                        input_path=None, extra: Optional[dict] = None) -> dict:
    """The record of a grouping of ``raw`` into ``nn`` with the keyword arguments ``grouping``."""
    params = {k: _jsonable(v) for k, v in sorted(grouping.items())}
    if params.get("grouping_strategy") is None:
        params["grouping_strategy"] = (raw.params_module.cfg.get("grouping_strategy")
                                       or DEFAULT_STRATEGY)
    if params.get("gridsize") is None:
        params["gridsize"] = int(round(np.sqrt(nn.shape[1])))
    store = raw.diff3d
    source = {"points": len(raw),
              "coordinates_sha256": array_sha256(raw.xcoords, raw.ycoords,
                                                 raw.xcoords_start, raw.ycoords_start)}
    if store is not None:
        source.update(pattern_shape=list(store.shape[1:]), pattern_dtype=np.dtype(store.dtype).str)
    if input_path is not None:
        source.update(file_fingerprint(input_path))
    record = {"producer": f"ptycho-grouping {__version__}", "N": int(N), "grouping": params,
              "groups": list(nn.shape), "groups_sha256": array_sha256(nn), "input": source}
    record.update(extra or {})
    return record


def to_json(record: dict) -> str:
    return json.dumps(record, sort_keys=True)


def read_record(path, key: str = KEY) -> Optional[dict]:
    """The JSON record ``key`` of a grouped output (NPZ, HDF5 or Zarr), or None when absent.

    ``provenance`` (:data:`KEY`) or another record :func:`output_records` wrote,
    such as the command's ``grouping_metrics``. Nothing is unpickled.
    """
    path = Path(path)
    if path.is_dir():
        import zarr
        value = zarr.open_group(str(path), mode="r").attrs.get(key)
        return dict(value) if value is not None else None
    if path.suffix.lower() in (".h5", ".hdf5"):
        import h5py
        with h5py.File(path, "r") as f:
            value = f.attrs.get(key)
        return json.loads(value) if value is not None else None
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(str(npz[key])) if key in npz.files else None


def read_provenance(path) -> Optional[dict]:
    """The record of a grouped output (NPZ, HDF5 or Zarr), or None when it has none."""
    return read_record(path, KEY)


def output_records(raw, nn: np.ndarray, N: int, grouping: dict, input_path=None,
                   provenance=True, metadata=None) -> dict:
    """The JSON records a grouped output carries, ``{name: record}``.

    ``provenance`` first (:func:`grouping_provenance`; a dict adds its entries,
    False leaves it out), then what ``metadata(nn)`` returns (the command's
    grouping metrics, say). Every writer stores each the same way: an NPZ
    member of JSON text, an HDF5 or Zarr attribute.
    """
    records = {}
    if provenance is not False:
        records[KEY] = grouping_provenance(raw, nn, N, grouping, input_path,
                                           extra=provenance if isinstance(provenance, dict)
                                           else None)
    records.update(metadata(nn) if metadata else {})
    return records
