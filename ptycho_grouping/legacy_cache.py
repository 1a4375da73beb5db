"""The legacy group-cache file format, in one place.

The pre-refactor code cached every group it enumerated in
``<dir of dataset>/<stem>.g<gridsize>k<K>.groups_cache.npz`` with the members
``all_groups`` (int64, one sorted group per row), ``dataset_checksum`` (MD5 hex
string), ``gridsize`` and ``overlap_factor`` (= K). The legacy strategy reads
and writes these files; the migration tool uses :func:`is_legacy_cache_file`
to find them without loading them.
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

from .npz_io import atomic_savez

__all__ = ["CACHE_KEYS", "CACHE_NAME_RE", "dataset_checksum", "candidate_checksums",
           "cache_path", "read_cache", "write_cache", "is_legacy_cache_file"]

log = logging.getLogger(__name__)

CACHE_KEYS = frozenset({"all_groups", "dataset_checksum", "gridsize", "overlap_factor"})
CACHE_NAME_RE = re.compile(r"^(?P<stem>.+)\.g(?P<gridsize>\d+)k(?P<k>\d+)\.groups_cache\.npz$")


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
               k: int) -> Optional[np.ndarray]:
    """The cached groups if ``path`` holds a valid cache for these parameters.

    Parameters
    ----------
    path : str or os.PathLike
    checksum : str or iterable of str
        The dataset checksum, or several acceptable ones
        (see :func:`candidate_checksums`).
    gridsize, k : int

    Returns
    -------
    ndarray of shape (n, gridsize**2), dtype int64, or None
        None when there is no file; when it is a valid cache for other
        coordinates or parameters (it is left in place and will be
        overwritten, as the old code did); and when it is unreadable or not in
        the legacy format (such a file is removed, as the old code did).
        Nothing is ever unpickled.
    """
    path = Path(path)
    accepted = {checksum} if isinstance(checksum, str) else set(checksum)
    if not path.is_file():
        log.debug("no group cache at %s", path)
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if set(npz.files) != CACHE_KEYS:
                raise ValueError(f"members {sorted(npz.files)}, expected {sorted(CACHE_KEYS)}")
            groups = npz["all_groups"]
            meta = (str(npz["dataset_checksum"]), int(npz["gridsize"]),
                    int(npz["overlap_factor"]))
        if groups.dtype != np.int64 or groups.ndim != 2:
            raise ValueError(f"all_groups has dtype {groups.dtype} and shape {groups.shape}")
    except Exception as exc:  # any unreadable file (bad zip, pickled member, ...) goes
        log.warning("removing unreadable group cache %s (%s)", path, exc)
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None
    if meta[0] not in accepted or meta[1:] != (gridsize, k):
        log.info("group cache %s is for other data or parameters (gridsize=%d, K=%d); "
                 "recomputing", path, meta[1], meta[2])
        return None
    if groups.shape[1] != gridsize * gridsize:
        log.warning("removing group cache %s: rows of %d members, expected %d",
                    path, groups.shape[1], gridsize * gridsize)
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None
    log.info("using group cache %s (%d groups)", path, len(groups))
    return groups


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


def is_legacy_cache_file(path) -> bool:
    """True if ``path`` is named like a legacy cache and holds exactly its members.

    Only the zip directory is read: nothing is loaded or unpickled. A symbolic
    link is never a cache file (it is not followed). Unreadable files give False.
    """
    path = Path(path)
    try:
        if not CACHE_NAME_RE.match(path.name) or path.is_symlink() or not path.is_file():
            return False
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):
        return False
    return names == {f"{key}.npy" for key in CACHE_KEYS}
