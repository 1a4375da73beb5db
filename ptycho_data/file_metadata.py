"""The ``_metadata`` member of a dataset NPZ: reading it, writing it, comparing it with a config.

PtychoPINN's ``MetadataManager`` stores a dataset's metadata as JSON text in
that member; this module is the one place that knows its encoding, so that
``RawData.from_file`` and ``RawData.to_file`` stay symmetric.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from typing import Optional

import numpy as np

__all__ = ["METADATA_KEY", "metadata_from_member", "metadata_member", "metadata_mismatches"]

#: NPZ member holding the dataset's metadata as JSON text (PtychoPINN's ``MetadataManager``).
METADATA_KEY = "_metadata"


def metadata_from_member(path, member) -> Optional[dict]:
    """The JSON object in a ``_metadata`` member, or None with a warning naming the file.

    The warning points at the caller of the loader that calls this.
    """
    if member is None:
        return None
    arr = np.asarray(member)
    text = arr.item() if arr.ndim == 0 and arr.dtype.kind in "US" else None
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        metadata = json.loads(text) if text is not None else None
    except json.JSONDecodeError as exc:
        warnings.warn(f"{path}: {METADATA_KEY} is not valid JSON ({exc}); metadata ignored",
                      UserWarning, stacklevel=3)
        return None
    if not isinstance(metadata, dict):
        warnings.warn(f"{path}: {METADATA_KEY} does not hold a JSON object (got "
                      f"{type(metadata).__name__}, dtype {arr.dtype}, shape {arr.shape}); "
                      "metadata ignored", UserWarning, stacklevel=3)
        return None
    return metadata


def _json_default(value):
    """NumPy scalars and arrays as JSON numbers and lists (as PtychoPINN's encoder does)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"metadata holds {value!r} of type {type(value).__name__}, "
                    "which cannot be written as JSON")


def metadata_member(metadata: dict) -> np.ndarray:
    """``metadata`` as the ``_metadata`` member: its JSON text in a 0-d unicode array, no pickle."""
    return np.array(json.dumps(metadata, default=_json_default))


def metadata_mismatches(metadata: Optional[dict], config) -> list:
    """Messages for the physics parameters a file's metadata and ``config`` disagree on.

    Compares ``physics_parameters`` ``nphotons``, ``N`` and ``gridsize`` of
    the metadata with ``config.nphotons``, ``config.model.N`` and
    ``config.model.gridsize`` (a config lacking one is not compared on it).
    """
    physics = (metadata or {}).get("physics_parameters") or {}
    model = getattr(config, "model", None)
    current = {"nphotons": getattr(config, "nphotons", None),
               "N": getattr(model, "N", None), "gridsize": getattr(model, "gridsize", None)}
    out = []
    for key, now in current.items():
        stored = physics.get(key)
        if stored is None or now is None:
            continue
        same = (math.isclose(stored, now, rel_tol=0, abs_tol=1e-9) if key == "nphotons"
                else stored == now)
        if not same:
            out.append(f"{key} mismatch: dataset={stored}, config={now}")
    return out
