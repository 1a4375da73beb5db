"""Atomic NPZ writing and safe NPZ reading, shared by every file this project writes."""
from __future__ import annotations

import logging
import struct
import zipfile
from pathlib import Path

import numpy as np

from .atomic_write import atomic_write, set_new_file_mode

__all__ = ["atomic_savez", "load_npz", "read_npy_header", "set_new_file_mode"]

log = logging.getLogger(__name__)


def atomic_savez(path, arrays: dict, *, compressed: bool = False) -> Path:
    """Write ``arrays`` to ``path`` as NPZ, all or nothing.

    The data go to a temporary file in the target directory, are flushed to
    disk, get the mode a plain ``np.savez`` would have given the file (see
    :func:`set_new_file_mode`), and only then are renamed over ``path``: an
    interrupted or failing write leaves any existing file untouched and no
    partial file behind. ``path`` is used as given (no ``.npz`` is added).
    Object arrays are refused, so every file reloads with ``allow_pickle=False``.
    """
    path = Path(path)
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"array {key!r} has dtype object and cannot be saved without pickle")
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return path


def read_npy_header(fh):
    """``(shape, fortran_order, dtype)`` of the ``.npy`` stream at ``fh``; never unpickles.

    Only the magic string and the header are read, leaving ``fh`` at the
    first data byte. NumPy's own size limit on headers applies.

    Raises
    ------
    ValueError
        When the stream is not a ``.npy`` array (bad magic, bad header).
    """
    version = np.lib.format.read_magic(fh)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    return read_header(fh)


def _member_name(zf: zipfile.ZipFile, key: str) -> str:
    """The zip member behind NpzFile key ``key`` (which drops a ``.npy`` suffix)."""
    return key + ".npy" if key + ".npy" in zf.namelist() else key


def _is_pickled_scalar(zf: zipfile.ZipFile, key: str) -> bool:
    """True when member ``key`` is a 0-d object array, as ``np.savez(..., k=None)`` writes.

    Only the ``.npy`` header is read (decompressing a few bytes if needed).
    """
    with zf.open(_member_name(zf, key)) as fh:
        shape, _, dtype = read_npy_header(fh)
    return dtype.hasobject and shape == ()


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
        shape, fortran, dtype = read_npy_header(fh)
        offset = fh.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: member {info.filename[:-4]!r} is a pickled object array, "
                         "which is refused for safety")
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset,
                     order="F" if fortran else "C")


def load_npz(path, mmap_keys=(), optional_keys=()) -> dict:
    """All arrays of an NPZ file, loaded with ``allow_pickle=False``.

    Parameters
    ----------
    path : str or os.PathLike
    mmap_keys : iterable of str
        Members memory-mapped read-only instead of loaded (the NPZ must store
        them uncompressed).
    optional_keys : iterable of str
        Members that may hold the pickled 0-d placeholder ``np.savez`` writes
        for ``None`` (as PtychoPINN's ``to_file`` does for a missing object).
        Such a member is recognised from its header, never unpickled, and
        left out of the result as if absent.

    Returns
    -------
    dict
        Member name to array.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        Naming the file when it is not an NPZ (zip) archive or not readable,
        and naming the member when it holds any other pickled object array
        (refused, never unpickled).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            is_zip = zipfile.is_zipfile(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ValueError(f"{path} is not a readable NPZ file: {exc}") from exc
    # np.load would take a .npy file or a text file for a pickle and fail obscurely.
    if not is_zip:
        raise ValueError(f"{path} is not an NPZ (zip) archive")
    try:
        with zipfile.ZipFile(path) as zf, np.load(path, allow_pickle=False) as npz:
            out, skipped = {}, set()
            for key in npz.files:
                if key in optional_keys and _is_pickled_scalar(zf, key):
                    log.info("%s: optional member %r holds a pickled placeholder "
                             "(None); treated as absent", path, key)
                    skipped.add(key)
                elif key in mmap_keys:
                    out[key] = _memmap_member(path, zf.getinfo(_member_name(zf, key)))
            for key in npz.files:
                if key in out or key in skipped:
                    continue
                try:
                    out[key] = npz[key]
                except ValueError as exc:
                    raise ValueError(f"{path}: member {key!r} is a pickled object array, "
                                     "which is refused for safety") from exc
            return out
    except MemoryError:
        raise  # a file too large to load is readable: say what really happened
    except Exception as exc:  # zipfile.BadZipFile, truncated members and friends
        if isinstance(exc, ValueError) and str(path) in str(exc):
            raise
        raise ValueError(f"{path} is not a readable NPZ file: {exc}") from exc
