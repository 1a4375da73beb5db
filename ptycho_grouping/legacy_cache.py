"""The legacy group-cache file format, in one place.

The pre-refactor code cached every group it enumerated in
``<dir of dataset>/<stem>.g<gridsize>k<K>.groups_cache.npz`` with the members
``all_groups`` (int64, one sorted group per row), ``dataset_checksum`` (MD5 hex
string), ``gridsize`` and ``overlap_factor`` (= K). The legacy strategy reads
and writes these files; the migration tool uses :func:`cache_file_problem`
to recognise them without loading them.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Iterable, Optional, Tuple, Union

import numpy as np

from .npz_io import atomic_savez, read_npy_header

__all__ = ["CACHE_KEYS", "CACHE_NAME_RE", "dataset_checksum", "candidate_checksums",
           "cache_path", "read_cache", "write_cache", "cache_file_problem",
           "is_legacy_cache_file", "TEMP_NAME_RE"]

log = logging.getLogger(__name__)

CACHE_KEYS = frozenset({"all_groups", "dataset_checksum", "gridsize", "overlap_factor"})
# Whole names, any characters in the stem (a newline included), ASCII digits.
CACHE_NAME_RE = re.compile(
    r"(?s)\A(?P<stem>.+)\.g(?P<gridsize>[0-9]+)k(?P<k>[0-9]+)\.groups_cache\.npz\Z")
#: The temporary file of a cache write interrupted before this version:
#: ``.<cache name>.<random>.tmp``, the ``mkstemp`` prefix and suffix used then.
#: Today's temporary names are :data:`.atomic_write.TEMP_NAME_RE`'s.
TEMP_NAME_RE = re.compile(
    r"(?s)\A\.(?P<cache>.+\.g[0-9]+k[0-9]+\.groups_cache\.npz)\.[A-Za-z0-9_]+\.tmp\Z")


def dataset_checksum(x, y) -> str:
    """MD5 hex digest the old code used to tie a cache to its coordinates.

    The bytes hashed are those of ``concatenate([x.ravel(), y.ravel(),
    [len(x), len(y)]])``, so the digest depends on the dtype NumPy promotes
    to: float64 for floating coordinates (float16/32 values are widened
    exactly), int64 for integer ones.
    """
    x, y = np.asarray(x), np.asarray(y)
    payload = np.concatenate([x.ravel(), y.ravel(), np.array([len(x), len(y)])])
    return hashlib.md5(payload.tobytes()).hexdigest()


def candidate_checksums(x, y) -> Tuple[str, ...]:
    """Every checksum the old code may have written for these coordinate values.

    The first is the float64 digest (what :func:`dataset_checksum` gives for
    float coordinates, and what new caches are written with). When every
    value is integral, the old code may have seen integer arrays, whose
    digest is taken over int64 bytes: that one is accepted too, so caches it
    wrote for integer coordinates keep working.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sums = [dataset_checksum(x, y)]
    both = np.concatenate([x.ravel(), y.ravel()])
    limit = 2.0 ** 63
    if both.size and np.all(both == np.trunc(both)) and np.all(np.abs(both) < limit):
        sums.append(dataset_checksum(x.astype(np.int64), y.astype(np.int64)))
    return tuple(sums)


def cache_path(dataset_path, gridsize: int, k: int, checksum: str) -> Path:
    """Where the old code put the cache for this dataset and parameters.

    Without a dataset path the old code invented ``temp_dataset_<checksum>.npz``
    in the working directory, so the cache lands there too.
    """
    if dataset_path is None:
        dataset_path = f"temp_dataset_{checksum}.npz"
    dataset_path = Path(dataset_path)
    return dataset_path.parent / f"{dataset_path.stem}.g{gridsize}k{k}.groups_cache.npz"


def read_cache(path, checksum: Union[str, Iterable[str]], gridsize: int,
               k: int, n_points: Optional[int] = None) -> Optional[np.ndarray]:
    """The cached groups if ``path`` holds a valid cache for these parameters.

    Parameters
    ----------
    path : str or os.PathLike
    checksum : str or iterable of str
        The dataset checksum, or several acceptable ones
        (see :func:`candidate_checksums`).
    gridsize, k : int
    n_points : int, optional
        The number of scan points M. Every cached index must lie in
        ``[0, M)``; without M only negative indices are caught.

    Returns
    -------
    ndarray of shape (n, gridsize**2), dtype int64, or None
        None when there is no file; when it is a valid cache for other
        coordinates or parameters (it is left in place and will be
        overwritten, as the old code did); and when it is not in the legacy
        format (bad zip, wrong members, a pickled member, wrong dtype or
        shape, an index outside ``[0, n_points)``: such a file is removed
        with a warning, as the old code removed unreadable ones). The metadata
        are compared before ``all_groups`` is looked at, in the old order.
        Nothing is ever unpickled.

    Raises
    ------
    OSError
        When the file exists but cannot be opened or read (permissions, I/O
        error). It is left untouched: on a shared disk it may be another
        user's valid cache, which removing or replacing would change the
        groups of their running experiment.
    """
    path = Path(path)
    accepted = {checksum} if isinstance(checksum, str) else set(checksum)
    if not path.is_file():
        log.debug("no group cache at %s", path)
        return None
    # Opened here so that an access error (which propagates) is told apart
    # from a format error (the file is removed): np.load reads from the handle.
    with open(path, "rb") as fh:
        try:
            with np.load(fh, allow_pickle=False) as npz:
                if set(npz.files) != CACHE_KEYS:
                    raise ValueError(f"members {sorted(npz.files)}, expected {sorted(CACHE_KEYS)}")
                meta = (str(npz["dataset_checksum"]), int(npz["gridsize"]),
                        int(npz["overlap_factor"]))
                if meta[0] not in accepted or meta[1:] != (gridsize, k):
                    log.info("group cache %s is for other data or parameters (gridsize=%d, "
                             "K=%d); recomputing", path, meta[1], meta[2])
                    return None
                groups = npz["all_groups"]
            if groups.dtype != np.int64 or groups.ndim != 2:
                raise ValueError(f"all_groups has dtype {groups.dtype} and shape {groups.shape}")
            if groups.shape[1] != gridsize * gridsize:
                raise ValueError(f"rows of {groups.shape[1]} members, expected "
                                 f"{gridsize * gridsize}")
            _check_index_range(groups, n_points)
        except OSError:
            raise
        except Exception as exc:  # bad zip, pickled member, wrong members/dtype/shape
            problem = exc
        else:
            log.info("using group cache %s (%d groups)", path, len(groups))
            return groups
    log.warning("removing group cache %s: not in the legacy format (%s)", path, problem)
    with contextlib.suppress(OSError):
        os.unlink(path)
    return None


def _check_index_range(groups: np.ndarray, n_points: Optional[int]) -> None:
    """Raise ValueError if a cached index could not name one of ``n_points`` points.

    A negative index would silently pick another pattern (NumPy counts it
    from the end), one past the end would fail later with an IndexError:
    either way the file was not written for these points.
    """
    if groups.size == 0:
        return
    low, high = int(groups.min()), int(groups.max())
    if low < 0 or (n_points is not None and high >= n_points):
        valid = "0 and up" if n_points is None else f"0 to {n_points - 1}"
        raise ValueError(f"all_groups holds indices {low} to {high}; valid are {valid}")


def write_cache(path, all_groups: np.ndarray, checksum: str, gridsize: int, k: int) -> Path:
    """Write a cache atomically, in exactly the old format (compressed NPZ).

    The data go to a temporary file in the same directory that is renamed
    over ``path`` only when complete; on failure the temporary file is
    removed and the error propagates.
    """
    return atomic_savez(path, {
        "all_groups": np.asarray(all_groups, dtype=np.int64),
        "dataset_checksum": np.array(checksum),
        "gridsize": np.array(gridsize),
        "overlap_factor": np.array(k),
    }, compressed=True)


def cache_file_problem(fh) -> Optional[str]:
    """Why the open NPZ ``fh`` is not a legacy cache, or None if it is one.

    Only the zip directory and each member's ``.npy`` header are read:
    nothing is loaded or unpickled. A cache holds exactly the four members,
    none of object dtype; ``all_groups`` is 2-D int64, the checksum a 0-d
    string and ``gridsize`` and ``overlap_factor`` 0-d integers.

    Parameters
    ----------
    fh : binary file object, seekable

    Returns
    -------
    str or None

    Raises
    ------
    OSError
        When the file cannot be read (not when its contents are wrong).
    """
    try:
        fh.seek(0)
        if fh.read(4) != _ZIP_MAGIC:
            # np.load reads a zip only when it starts the file; zipfile would
            # find one after leading bytes (a user file with a cache appended).
            return "not an NPZ: the file does not start with a zip entry"
        with zipfile.ZipFile(fh) as zf:
            if min(info.header_offset for info in zf.infolist()) != 0:
                return "not an NPZ: its zip directory does not start at the file's first byte"
            names = zf.namelist()
            if len(names) != len(CACHE_KEYS) or set(names) != {f"{k}.npy" for k in CACHE_KEYS}:
                members = sorted(n[:-4] if n.endswith(".npy") else n for n in names)
                return f"members {members} are not the legacy cache's {sorted(CACHE_KEYS)}"
            headers = {name[:-4]: _npy_header(zf, name) for name in names}
    except OSError:
        raise
    except Exception as exc:  # BadZipFile, a bad .npy header, zlib.error, encryption, ...
        return f"not a readable NPZ ({exc.__class__.__name__}: {exc})"
    for key, (shape, dtype) in sorted(headers.items()):
        if dtype.hasobject:
            return f"member {key!r} holds pickled objects"
    for key, (shape, dtype) in sorted(headers.items()):
        fits, wanted = _MEMBER_RULES[key]
        if not fits(shape, dtype):
            return f"member {key!r} has dtype {dtype} and shape {shape}, not {wanted}"
    return None


_ZIP_MAGIC = b"PK\x03\x04"  # a local file header, what np.load looks for

# What the old code wrote for each member: (test on shape and dtype, description).
_MEMBER_RULES = {
    "all_groups": (lambda shape, dtype: dtype == np.int64 and len(shape) == 2, "2-D int64"),
    "dataset_checksum": (lambda shape, dtype: dtype.kind in "US" and shape == (),
                         "a 0-d string"),
    "gridsize": (lambda shape, dtype: dtype.kind in "iu" and shape == (), "a 0-d integer"),
    "overlap_factor": (lambda shape, dtype: dtype.kind in "iu" and shape == (), "a 0-d integer"),
}


def _npy_header(zf: zipfile.ZipFile, name: str):
    """``(shape, dtype)`` from a member's ``.npy`` header; the data are not read."""
    with zf.open(name) as member:
        shape, _fortran, dtype = read_npy_header(member)
    return shape, dtype


def is_legacy_cache_file(path) -> bool:
    """True if ``path`` is named like a legacy cache and holds one (see :func:`cache_file_problem`).

    Only the zip directory and the member headers are read: nothing is
    loaded or unpickled. A symbolic link is never a cache file (it is not
    followed). Unreadable files give False.
    """
    path = Path(path)
    try:
        if not CACHE_NAME_RE.match(path.name) or path.is_symlink() or not path.is_file():
            return False
        with open(path, "rb") as fh:
            return cache_file_problem(fh) is None
    except OSError:
        return False
