"""The legacy group-cache file format, in one place.

The pre-refactor code cached every group it enumerated in
``<dir of dataset>/<stem>.g<gridsize>k<K>.groups_cache.npz`` with the members
``all_groups`` (int64), ``dataset_checksum``, ``gridsize`` and
``overlap_factor`` (= K). The legacy strategy reads and writes these files;
the migration tool uses :func:`is_legacy_cache_file` to find them.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from .npz_io import atomic_savez

__all__ = ["CACHE_KEYS", "CACHE_NAME_RE", "dataset_checksum", "cache_path", "read_cache",
           "write_cache", "is_legacy_cache_file"]

log = logging.getLogger(__name__)

CACHE_KEYS = frozenset({"all_groups", "dataset_checksum", "gridsize", "overlap_factor"})
CACHE_NAME_RE = re.compile(r"^(?P<stem>.+)\.g(?P<gridsize>\d+)k(?P<k>\d+)\.groups_cache\.npz$")


def dataset_checksum(x, y) -> str:
    """MD5 hex digest the old code used to tie a cache to its coordinates."""
    x, y = np.asarray(x), np.asarray(y)
    payload = np.concatenate([x.ravel(), y.ravel(), np.array([len(x), len(y)])])
    return hashlib.md5(payload.tobytes()).hexdigest()


def cache_path(dataset_path, gridsize: int, k: int, checksum: str) -> Path:
    """Where the old code put the cache for this dataset and parameters.

    Without a dataset path the old code invented ``temp_dataset_<checksum>.npz``
    in the working directory, so the cache lands there too.
    """
    if dataset_path is None:
        dataset_path = f"temp_dataset_{checksum}.npz"
    dataset_path = Path(dataset_path)
    return dataset_path.parent / f"{dataset_path.stem}.g{gridsize}k{k}.groups_cache.npz"


def read_cache(path, checksum: str, gridsize: int, k: int) -> Optional[np.ndarray]:
    """The cached groups if ``path`` holds a valid cache for these parameters.

    Returns None when there is no file, when it is for other coordinates or
    parameters (it will be overwritten), and when it is unreadable or not in
    the legacy format: such a file is removed, as the old code did.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if set(npz.files) != CACHE_KEYS:
                raise ValueError(f"members {sorted(npz.files)}")
            groups = npz["all_groups"]
            meta = (str(npz["dataset_checksum"]), int(npz["gridsize"]), int(npz["overlap_factor"]))
        if groups.dtype != np.int64 or groups.ndim != 2:
            raise ValueError(f"all_groups has dtype {groups.dtype} and shape {groups.shape}")
    except Exception as exc:
        log.warning("removing unreadable group cache %s (%s)", path, exc)
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None
    if meta != (checksum, gridsize, k):
        log.info("group cache %s is for other data or parameters; recomputing", path)
        return None
    log.info("using group cache %s (%d groups)", path, len(groups))
    return groups


def write_cache(path, all_groups: np.ndarray, checksum: str, gridsize: int, k: int) -> Path:
    """Write a cache atomically, in exactly the old format (compressed NPZ)."""
    return atomic_savez(path, {
        "all_groups": np.asarray(all_groups, dtype=np.int64),
        "dataset_checksum": np.array(checksum),
        "gridsize": np.array(gridsize),
        "overlap_factor": np.array(k),
    }, compressed=True)


def is_legacy_cache_file(path) -> bool:
    """True if ``path`` is named like a legacy cache and holds exactly its members.

    Only the zip directory is read: nothing is loaded or unpickled. A symbolic
    link is never a cache file (it is not followed).
    """
    path = Path(path)
    if not CACHE_NAME_RE.match(path.name) or path.is_symlink() or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return names == {f"{key}.npy" for key in CACHE_KEYS}
