"""Diffraction-pattern stores that need not fit in memory.

``RawData.diff3d`` (and ``Y``) may be any array-like with a 3-D ``shape``, a
``dtype`` and integer-array indexing along the first axis: a NumPy array, an
``np.memmap`` (see ``RawData.from_file(..., mmap=True)``), an h5py dataset, a
Zarr array or a Dask array. Grouping reads only the frames the groups use,
each once, in increasing index order and in chunks of bounded size, which is
what memory maps, HDF5 and Zarr read fastest and what keeps memory bounded.
"""
from __future__ import annotations

import contextlib
import functools
import mmap
import os

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
    Memory maps are read with ``preadv`` from the file they map (see
    :func:`_mapped_file_reader`).
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
    with _mapped_file_reader(store) as read_rows:
        for i, start in enumerate(range(0, unique.size, chunk_frames)):
            block = read_rows(unique[start:start + chunk_frames])
            rows = order[bounds[i]:bounds[i + 1]]
            out[rows] = block[inverse[rows] - start]
    return out


@contextlib.contextmanager
def _mapped_file_reader(store):
    """A function ``rows -> store[rows]`` (increasing, unique rows) for the duration.

    A memory map whose frames are contiguous is read with ``preadv`` from the
    file it maps: opened by name and checked against the inode
    ``/proc/self/maps`` gives for the map, so that a file renamed over the
    name meanwhile is not read instead. Reading through the map faulted in
    whole read-around windows, mapped into this process: on Linux 6 a
    scattered gather of 512 frames of 16 KiB grew the resident set by
    830 MiB, which Dask's nanny counts (workers paused and were restarted
    over their memory limit), and on a cold page cache read 20x more than
    the frames. Other stores, and maps this cannot open (not Linux, a name
    that now holds another file, a copy-on-write map whose pages may differ
    from the file), are indexed, and a read-only map's faulted pages
    unmapped after each chunk.
    """
    fd = _open_mapped_file(store)
    if fd is None:
        def read_rows(rows):
            block = _read(store, rows)
            _release_mapped_pages(store)
            return block
        yield read_rows
        return
    try:
        # The file offset of row 0: np.memmap maps from `offset` rounded down to the
        # allocation granularity, and views keep their base's `offset`.
        first = (store.offset - store.offset % mmap.ALLOCATIONGRANULARITY
                 + store.ctypes.data - _map_base(store))
        yield functools.partial(_pread_rows, fd, store, first)
    finally:
        os.close(fd)


def _map_base(store) -> int:
    """The address of the first byte of ``store``'s mmap."""
    return np.frombuffer(store._mmap, dtype=np.uint8).ctypes.data


def _open_mapped_file(store):
    """A read-only descriptor of the file ``store`` maps, or None.

    None when it cannot be read that way (see :func:`_mapped_file_reader`).
    """
    if (not isinstance(store, np.memmap) or getattr(store, "_mmap", None) is None
            or store.mode == "c"
            or not store.filename or store.shape[0] == 0 or not store[:1].flags.c_contiguous):
        return None
    try:
        fd = os.open(store.filename, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    if os.fstat(fd).st_ino != _mapped_inode(_map_base(store)):
        os.close(fd)  # another file has the name now, or no /proc to tell
        return None
    return fd


def _mapped_inode(address: int):
    """The inode of the file mapped at ``address``, from ``/proc/self/maps`` (None without it)."""
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:  # "start-end perms offset dev inode path"
                start, _, rest = line.partition("-")
                end, _, rest = rest.partition(" ")
                if int(start, 16) <= address < int(end, 16):
                    return int(rest.split(maxsplit=4)[3])  # perms offset dev inode
    except (OSError, ValueError, IndexError):
        pass
    return None


def _pread_rows(fd: int, store: np.memmap, first: int, rows: np.ndarray) -> np.ndarray:
    """``store[rows]`` (rows increasing, at least one) read from ``fd``, where row 0
    starts at offset ``first``.

    One ``preadv`` per run of adjacent rows.
    """
    block = np.empty((rows.size, *store.shape[1:]), dtype=store.dtype)
    frame_bytes = block[0].nbytes
    stride = store.strides[0]
    buffer = memoryview(block.reshape(rows.size, -1).view(np.uint8)).cast("B")
    breaks = (np.flatnonzero(np.diff(rows) != 1) + 1 if stride == frame_bytes
              else np.arange(1, rows.size))
    starts, stops = np.r_[0, breaks], np.r_[breaks, rows.size]
    # Plain ints, computed at once: this loop is the hot path for small frames.
    for position, a, b in zip((first + rows[starts] * stride).tolist(),
                              (starts * frame_bytes).tolist(), (stops * frame_bytes).tolist()):
        got = os.preadv(fd, [buffer[a:b]], position)
        while got < b - a:  # a short read: rare, but allowed
            more = os.preadv(fd, [buffer[a + got:b]], position + got)
            if more == 0:
                row = rows[(a + got) // frame_bytes]
                raise OSError(f"{store.filename} ended before row {row} of the patterns "
                              f"it maps (truncated while being read?)")
            got += more
    return block


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
