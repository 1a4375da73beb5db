"""Atomic NPZ writing and safe NPZ reading, shared by every file this project writes."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_savez", "load_npz"]


def atomic_savez(path, arrays: dict, *, compressed: bool = False) -> Path:
    """Write ``arrays`` to ``path`` as NPZ, all or nothing.

    The data go to a temporary file in the target directory, are flushed to
    disk, and only then renamed over ``path``: an interrupted or failing
    write leaves any existing file untouched and no partial file behind.
    Object arrays are refused, so every file reloads with ``allow_pickle=False``.
    """
    path = Path(path)
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"array {key!r} has dtype object and cannot be saved without pickle")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def load_npz(path) -> dict:
    """All arrays of an NPZ file, loaded with ``allow_pickle=False``.

    Raises ``ValueError`` naming the file and member when it holds a pickled
    object array (refused, never unpickled) and when it is not a readable NPZ.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {}
            for key in npz.files:
                try:
                    out[key] = npz[key]
                except ValueError as exc:
                    raise ValueError(f"{path}: member {key!r} is a pickled object array, "
                                     "which is refused for safety") from exc
            return out
    except (OSError, EOFError) as exc:
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}") from None
        raise ValueError(f"{path} is not a readable NPZ file: {exc}") from exc
    except Exception as exc:  # zipfile.BadZipFile and friends
        if isinstance(exc, ValueError) and str(path) in str(exc):
            raise
        raise ValueError(f"{path} is not a readable NPZ file: {exc}") from exc
