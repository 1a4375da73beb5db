"""Atomic NPZ writing and safe NPZ reading, shared by every file this project writes."""
from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import zipfile
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


def _memmap_member(path: Path, info: zipfile.ZipInfo) -> np.memmap:
    """A read-only memory map of one uncompressed ``.npy`` member of a zip."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{path}: member {info.filename!r} is compressed and cannot be "
                         "memory-mapped; write the file with np.savez (not savez_compressed)")
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)  # the zip local file header precedes the member's bytes
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: member {info.filename[:-4]!r} is a pickled object array, "
                         "which is refused for safety")
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset,
                     order="F" if fortran else "C")


def load_npz(path, mmap_keys=()) -> dict:
    """All arrays of an NPZ file, loaded with ``allow_pickle=False``.

    Members named in ``mmap_keys`` are memory-mapped read-only instead of
    loaded (the NPZ must store them uncompressed). Raises ``ValueError``
    naming the file and member when it holds a pickled object array
    (refused, never unpickled) and when it is not a readable NPZ.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {}
            mapped = [k for k in npz.files if k in mmap_keys]
            if mapped:
                with zipfile.ZipFile(path) as zf:
                    for key in mapped:
                        out[key] = _memmap_member(path, zf.getinfo(key + ".npy"))
            for key in npz.files:
                if key in out:
                    continue
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
