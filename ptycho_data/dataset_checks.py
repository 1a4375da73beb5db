"""The checks a dataset's arrays pass when they are assigned to a ``RawData``.

Kept apart from :mod:`ptycho.raw_data` so that what a valid array is can be read
in one place: each ``check_*`` function takes ``(name, value, owner)`` and
returns the array to store, and :class:`CheckedAttribute` runs one of them on
every assignment, in the constructor or later.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from .pattern_store import check_store

__all__ = ["check_dtype", "check_coordinates", "check_patterns", "check_patches", "check_image",
           "check_scan_index", "CheckedAttribute", "usable_patches", "check_path",
           "REQUIRED_KEYS", "with_required_members"]

#: Members a dataset file must have (``diffraction`` is accepted for ``diff3d``).
REQUIRED_KEYS = ("xcoords", "ycoords", "diff3d")


def with_required_members(source, data: dict) -> dict:
    """A file's members by name (NPZ or Zarr), ``diffraction`` renamed ``diff3d``, all required ones there.

    Raises ``ValueError`` naming ``source``, the missing members and those found.
    """
    if "diff3d" not in data and "diffraction" in data:
        data["diff3d"] = data.pop("diffraction")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{source} lacks required key(s) {', '.join(missing)} "
                         f"(found: {', '.join(sorted(data)) or 'none'})")
    return data


def check_dtype(name: str, dtype, real: bool = False) -> None:
    """Refuse a dtype other than integer, float and (unless ``real``) complex.

    Booleans, strings and objects are refused: they would fail later, far
    from the cause, or silently give nonsense.
    """
    dtype = np.dtype(dtype)
    kinds = (np.integer, np.floating) if real else (np.integer, np.floating, np.complexfloating)
    if not any(np.issubdtype(dtype, kind) for kind in kinds):
        what = "real numbers (integer or float)" if real else "numbers"
        raise TypeError(f"{name} must hold {what}, got dtype {dtype}")


def check_coordinates(name: str, value, owner) -> np.ndarray:
    """A private, read-only copy of a 1-D array of finite real numbers.

    Read-only so that an in-place edit (``raw.xcoords[0] = ...``) raises
    instead of silently leaving the cached neighbour index stale; assigning
    a new array is the way to change positions. The caller's array is not
    touched.
    """
    arr = np.array(value, copy=True)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr))
        raise ValueError(f"{name} must be finite: {bad.size} non-finite value(s), "
                         f"first at index {bad[0]}: {arr[bad[0]]}")
    arr.flags.writeable = False
    return arr


def check_patterns(name: str, value, owner):
    """A pattern stack ``(M, N, N)`` of real numbers, or None; checked from shape and dtype only."""
    if value is None:
        return None
    store = check_store(name, value)
    check_dtype(name, store.dtype, real=True)  # from the dtype: lazy stores stay unread
    if store.shape[1] != store.shape[2]:
        raise ValueError(f"{name} patterns must be square, got {store.shape[1]}x{store.shape[2]}")
    return store


def check_patches(name: str, value, owner):
    """Ground-truth patches ``(M, N, N)`` of numbers (complex allowed), or None."""
    if value is None:
        return None
    store = check_store(name, value)
    check_dtype(name, store.dtype)
    return store


def check_image(name: str, value, owner) -> Optional[np.ndarray]:
    """A 2-D real or complex array, or None."""
    if value is None:
        return None
    arr = np.asarray(value)
    check_dtype(name, arr.dtype)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    return arr


def check_scan_index(name: str, value, owner) -> np.ndarray:
    """A 1-D array; None gives ``zeros(M, int64)``, as PtychoPINN's ``from_file`` does."""
    if value is None:
        return np.zeros(len(owner.xcoords), dtype=np.int64)
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


class CheckedAttribute:
    """An attribute checked by ``check(name, value, owner)`` each time it is assigned.

    The checked value is stored in the owner's ``__dict__`` under ``"_" + name``.
    ``clears`` names a cache attribute of the owner (a dict) that an
    assignment empties: the scan positions clear the cached neighbour indexes.
    """

    def __init__(self, check, *, clears: Optional[str] = None):
        self.check, self.clears = check, clears

    def __set_name__(self, owner, name):
        self.name, self.slot = name, "_" + name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return obj.__dict__[self.slot]

    def __set__(self, obj, value):
        obj.__dict__[self.slot] = self.check(self.name, value, obj)
        if self.clears is not None:
            obj.__dict__[self.clears] = {}


def usable_patches(path, Y, m_shape, diff3d):
    """A file's ``Y`` as ``(M, N, N)``, or None with a warning when it does not fit.

    PtychoPINN's ``from_file`` never reads ``Y``, so a file whose ``Y`` does
    not match its patterns (a singleton ``(1, N, N, 1)`` placeholder, say)
    loads there; here it loads too, without ``Y``. A trailing channel axis of
    1 is dropped (a view: memory-mapped stores stay unread). The warning
    points at the caller of the loader that calls this.
    """
    if Y is None:
        return None
    if Y.ndim == 4 and Y.shape[-1] == 1:
        Y = Y[..., 0]
    expected = tuple(m_shape) + tuple(np.shape(diff3d)[1:])
    if tuple(Y.shape) != expected:
        warnings.warn(f"{path}: Y has shape {tuple(Y.shape)}, not {expected} like the "
                      "patterns; Y ignored (PtychoPINN's from_file does not read it either)",
                      UserWarning, stacklevel=3)
        return None
    return Y


def check_path(name: str, value) -> Path:
    """``value`` as a ``Path``; a ``TypeError`` naming ``name`` unless a str or os.PathLike."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {value!r} "
                        f"of type {type(value).__name__}")
    return Path(value)
