"""Diffraction-pattern stores that need not fit in memory.

``RawData.diff3d`` (and ``Y``) may be any array-like with a 3-D ``shape``, a
``dtype`` and integer-array indexing along the first axis: a NumPy array, an
``np.memmap`` (see ``RawData.from_file(..., mmap=True)``), an h5py dataset, a
Zarr array or a Dask array. Grouping reads only the frames the groups use,
each once, in increasing index order and in chunks of bounded size, which is
what memory maps, HDF5 and Zarr read fastest and what keeps memory bounded.
"""
from __future__ import annotations

import mmap

import numpy as np

__all__ = ["check_store", "gather_frames", "is_in_memory"]

#: Frames read per chunk from a store that is not in memory (at most
#: :data:`CHUNK_BYTES` of them).
CHUNK_FRAMES = 1024
#: Bytes read per chunk from a store that is not in memory.
CHUNK_BYTES = 8 << 20


def is_in_memory(store) -> bool:
    """True for plain in-memory NumPy arrays (not memory maps)."""
    return isinstance(store, np.ndarray) and not isinstance(store, np.memmap)


def check_store(name: str, store):
    """Return ``store`` unchanged if it looks like a pattern store, else raise.

    Lists and other sequences are converted with ``np.asarray``; array-likes
    that know their ``shape`` and ``dtype`` are kept as they are, unread.
    """
    if not (hasattr(store, "shape") and hasattr(store, "dtype") and hasattr(store, "__getitem__")):
        store = np.asarray(store)
    if len(store.shape) != 3:
        raise ValueError(f"{name} must be 3-D (M, N, N), got shape {tuple(store.shape)}")
    return store


def _read(store, rows: np.ndarray) -> np.ndarray:
    """``store[rows]`` for increasing, unique ``rows``, as a NumPy array."""
    if isinstance(store, np.ndarray):
        return store[rows]
    if hasattr(store, "oindex"):  # zarr: orthogonal selection takes an index array
        return np.asarray(store.oindex[rows])
    block = store[rows]
    if hasattr(block, "compute"):  # dask
        block = block.compute()
    return np.asarray(block)


def gather_frames(store, indices, chunk_frames=None) -> np.ndarray:
    """``store[indices]`` as an in-memory array of shape ``(len(indices), *frame)``.

    In-memory arrays use one ``np.take``. Other stores are read chunk by
    chunk over the sorted unique indices, so each needed frame is read once
    and at most ``chunk_frames`` frames are in flight besides the result.
    """
    frame_bytes = max(1, int(np.prod(store.shape[1:])) * np.dtype(store.dtype).itemsize)
    chunk_frames = chunk_frames or max(1, min(CHUNK_FRAMES, CHUNK_BYTES // frame_bytes))
    indices = np.asarray(indices, dtype=np.intp).ravel()
    if is_in_memory(store):
        return np.take(store, indices, axis=0)
    unique, inverse = np.unique(indices, return_inverse=True)
    out = np.empty((indices.size, *store.shape[1:]), dtype=store.dtype)
    order = np.argsort(inverse, kind="stable")  # result rows grouped by unique frame
    bounds = np.searchsorted(inverse[order], np.arange(0, unique.size + chunk_frames, chunk_frames))
    for i, start in enumerate(range(0, unique.size, chunk_frames)):
        block = _read(store, unique[start:start + chunk_frames])
        rows = order[bounds[i]:bounds[i + 1]]
        out[rows] = block[inverse[rows] - start]
        _release_mapped_pages(store)
    return out


def _release_mapped_pages(store) -> None:
    """Unmap the pages of a read-only memory map that reading it faulted in.

    Readahead maps far more of the file than the frames read; without this
    the resident set grows towards the whole file. The pages stay in the
    page cache, so a later read is as fast. Only read-only maps qualify:
    for a copy-on-write map (mode ``"c"``) it would discard changes.
    """
    mm = getattr(store, "_mmap", None)  # np.memmap's own mmap object
    if (isinstance(store, np.memmap) and store.mode == "r" and mm is not None
            and hasattr(mmap, "MADV_DONTNEED")):
        mm.madvise(mmap.MADV_DONTNEED)
