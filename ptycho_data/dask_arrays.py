"""Grouped data as Dask arrays, for pattern stores larger than memory or on a cluster.

``RawData.generate_grouped_data(..., lazy=True)`` returns Dask arrays for
``diffraction``, ``X_full`` and ``Y``; the groups and coordinates are small
and computed at once. Nothing is read until the arrays are computed, and
then block by block, so memory stays bounded by a few blocks:

Every store (``np.memmap``, h5py dataset, Zarr or Dask array, in-memory
array) is read by one task per block of groups, through
:func:`~ptycho_data.pattern_store.gather_frames`: only the frames that block
uses, sorted, in bounded chunks (a Dask array store computes just those
rows, inside the task). Memory maps and HDF5 datasets travel as small
picklable readers (file name and layout), never as their data, so the graph
also runs on ``dask.distributed`` workers that can open the same files.

``X_full`` needs the mean energy of *all* gathered patterns before its first
block can be scaled. So that no block has to wait in memory for it, the
energies and ``X_full`` read the patterns on their own branches of the graph
(the store is read again, as the streaming writer does); the energies are
reduced by the eager path's own function, so ``X_full`` is bit for bit the
eager result.

Needs the ``dask`` extra.
"""
from __future__ import annotations

import mmap
import sys
import uuid

import numpy as np

from .grouped_arrays import (X_FULL_DTYPE, frames_value_range, normalisation_scale,
                             pattern_energies, scaled)
from .patches import extract_patches
from .pattern_store import gather_frames

__all__ = ["compute", "lazy_pattern_arrays", "lazy_gathered", "lazy_patches", "block_groups",
           "MemmapReader", "Hdf5Reader", "DaskReader", "portable", "open_store"]

#: Bytes of patterns per Dask block (per output array).
BLOCK_BYTES = 64 << 20


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError:
        raise ImportError("lazy=True needs dask: pip install 'ptycho-grouping[dask]'") from None
    return dask, da


def compute(*arrays, progress=False, **kwargs):
    """``dask.compute(*arrays, **kwargs)``, with a progress bar over tasks when asked.

    Parameters
    ----------
    *arrays
        Dask collections, e.g. the ``diffraction``, ``X_full`` and ``Y`` of
        ``generate_grouped_data(..., lazy=True)``; computed together, so
        shared reads happen once.
    progress : bool, default False
        True shows a tqdm bar on stderr counting finished tasks
        (``tqdm.dask.TqdmCallback``: local schedulers; ``dask.distributed``
        has its own dashboard).
    **kwargs
        Passed to ``dask.compute`` (``scheduler=``, ...).
    """
    dask, _ = _dask()
    if not progress:
        return dask.compute(*arrays, **kwargs)
    from tqdm.dask import TqdmCallback
    with TqdmCallback(desc="computing", unit="task", file=sys.stderr):
        return dask.compute(*arrays, **kwargs)


def block_groups(group_size: int, frame_shape, dtype) -> int:
    """Groups per block so that one block of patterns is about :data:`BLOCK_BYTES`."""
    group_bytes = group_size * int(np.prod(frame_shape)) * np.dtype(dtype).itemsize
    return max(1, BLOCK_BYTES // max(1, group_bytes))


# -- picklable readers ------------------------------------------------------------

class MemmapReader:
    """A memory-mapped ``.npy``/NPZ member, pickled as its file name and layout.

    Pickling an ``np.memmap`` copies its data; this reopens the map instead,
    once per process.
    """

    def __init__(self, mm: np.memmap):
        self.filename, self.offset = mm.filename, mm.offset
        self.shape, self.dtype = mm.shape, mm.dtype
        self.order = "F" if mm.flags.f_contiguous and not mm.flags.c_contiguous else "C"
        self._map = None

    def open(self) -> np.memmap:
        if self._map is None:
            self._map = np.memmap(self.filename, dtype=self.dtype, mode="r", shape=self.shape,
                                  offset=self.offset, order=self.order)
        return self._map

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_map"} | {"_map": None}

    def __dask_tokenize__(self):
        return ("MemmapReader", self.filename, self.offset, self.shape, str(self.dtype))


class Hdf5Reader:
    """An h5py dataset, pickled as its file name and dataset path (h5py objects do not pickle)."""

    def __init__(self, dataset):
        self.filename, self.name = dataset.file.filename, dataset.name
        self.shape, self.dtype = dataset.shape, dataset.dtype
        self._dataset = dataset

    def open(self):
        if self._dataset is None:
            import h5py
            self._dataset = h5py.File(self.filename, "r")[self.name]
        return self._dataset

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_dataset"} | {"_dataset": None}

    def __dask_tokenize__(self):
        return ("Hdf5Reader", self.filename, self.name)


class DaskReader:
    """A Dask array store, held opaquely: as a plain graph input it would be computed whole."""

    def __init__(self, array):
        self.array = array

    def open(self):
        return self.array

    def __dask_tokenize__(self):
        return ("DaskReader", self.array.name)


def portable(store):
    """``store`` as something a task can hold and a worker can unpickle cheaply.

    Memory maps and HDF5 datasets become readers holding their file name
    (:class:`MemmapReader`, :class:`Hdf5Reader`); a Zarr array pickles as its
    store's location already; in-memory arrays are returned as they are.
    """
    if isinstance(store, np.memmap) and isinstance(getattr(store, "base", None), mmap.mmap):
        return MemmapReader(store)  # the whole map as opened (a slice would need its offset)
    if type(store).__module__.startswith("h5py"):
        return Hdf5Reader(store)
    if type(store).__module__.startswith("dask"):
        return DaskReader(store)
    return store


# -- block functions (module level: they pickle by reference) -----------------------

def _gather_block(idx: np.ndarray, store) -> np.ndarray:
    """The patterns of a ``(b, C)`` block of groups, channels-last ``(b, N, N, C)``."""
    b, c = idx.shape
    frames = gather_frames(open_store(store), idx.ravel())
    return np.moveaxis(frames.reshape(b, c, *frames.shape[1:]), 1, 3)


def open_store(store):
    """The array behind a reader of :func:`portable` (other stores as they are)."""
    return store.open() if isinstance(store, (MemmapReader, Hdf5Reader, DaskReader)) else store


def _energy_block(idx: np.ndarray, store) -> np.ndarray:
    return pattern_energies(_gather_block(idx, store))


def _scaled_block(idx: np.ndarray, store, scale: float) -> np.ndarray:
    return scaled(_gather_block(idx, store), scale)


def _checked_scale(energies: np.ndarray, N: int, store, nn_indices: np.ndarray) -> float:
    """The eager path's scale; on an error the patterns' range is read for the message."""
    return normalisation_scale(energies, N,
                               lambda: frames_value_range(open_store(store), nn_indices))


# -- the arrays ------------------------------------------------------------------------

def _source(store):
    """The store as one graph node, under a name of its own."""
    dask, _ = _dask()
    return dask.delayed(portable(store), name=f"ptycho-store-{uuid.uuid4().hex}")


def _groups(nn_indices: np.ndarray, chunk_groups: int):
    _, da = _dask()
    return da.from_array(nn_indices, chunks=(chunk_groups, nn_indices.shape[1]),
                         name=f"ptycho-groups-{uuid.uuid4().hex}")


def _gathered(idx, source, frame, dtype, what: str):
    chunks = (idx.chunks[0],) + tuple((n,) for n in frame) + (idx.chunks[1],)
    return idx.map_blocks(_gather_block, source, dtype=dtype, new_axis=(1, 2), chunks=chunks,
                          name=f"ptycho-{what}-{uuid.uuid4().hex}")


def lazy_pattern_arrays(store, nn_indices: np.ndarray, N: int, chunk_groups: int = None):
    """``(diffraction, X_full)`` for ``store[nn_indices]``, as lazy ``(B, N, N, C)`` arrays.

    Three branches read the store on their own (each has its own task
    names): the patterns, their energies, and the patterns again for
    ``X_full`` once the scale is known, so no block waits in memory.
    """
    dask, _ = _dask()
    frame = tuple(store.shape[1:])
    idx = _groups(nn_indices, chunk_groups or block_groups(nn_indices.shape[1], frame,
                                                           store.dtype))
    source = _source(store)
    diffraction = _gathered(idx, source, frame, store.dtype, "diffraction")
    energies = idx.map_blocks(_energy_block, source, dtype=np.float64,
                              name=f"ptycho-energies-{uuid.uuid4().hex}")
    scale = dask.delayed(_checked_scale)(energies, N, source, nn_indices)
    x_full = idx.map_blocks(_scaled_block, source, scale, dtype=X_FULL_DTYPE,
                            new_axis=(1, 2), chunks=diffraction.chunks,
                            name=f"ptycho-x-full-{uuid.uuid4().hex}")
    return diffraction, x_full


def lazy_gathered(store, nn_indices: np.ndarray, chunk_groups: int = None):
    """``store[nn_indices]`` channels-last as one lazy array (``Y`` given per position)."""
    frame = tuple(store.shape[1:])
    idx = _groups(nn_indices, chunk_groups or block_groups(nn_indices.shape[1], frame,
                                                           store.dtype))
    return _gathered(idx, _source(store), frame, store.dtype, "gather")


def _patch_block(shifts: np.ndarray, obj: np.ndarray, N: int) -> np.ndarray:
    """Patches of one block of groups, ``(b, C, 2)`` shifts to ``(b, N, N, C)``."""
    b, c, _ = shifts.shape
    patches = extract_patches(obj, shifts.reshape(-1, 2), N)
    return np.moveaxis(patches.reshape(b, c, N, N), 1, 3)


def lazy_patches(obj: np.ndarray, shifts: np.ndarray, group_shape, N: int,
                 chunk_groups: int = None):
    """Object patches ``(B, N, N, C)`` computed lazily, block by block.

    ``shifts`` is ``(B*C, 2)``: the ``(sx, sy)`` window corner of every
    member (:func:`ptycho_data.grouped_arrays.patch_shifts`), ``group_shape`` is
    ``(B, C)``. The object enters the graph once, not once per block.
    """
    dask, da = _dask()
    obj = np.asarray(obj).astype(np.complex64, copy=False)  # converted once, not per block
    b, c = group_shape
    chunk_groups = chunk_groups or block_groups(c, (N, N), np.complex64)
    lazy_shifts = da.from_array(np.reshape(shifts, (b, c, 2)), chunks=(chunk_groups, c, 2))
    return da.map_blocks(_patch_block, lazy_shifts, dask.delayed(obj), N, dtype=np.complex64,
                         drop_axis=(1, 2), new_axis=(1, 2, 3),
                         chunks=(lazy_shifts.chunks[0], (N,), (N,), (c,)))
