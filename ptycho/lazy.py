"""Grouped data as Dask arrays, for pattern stores processed on a cluster.

``RawData.generate_grouped_data(..., lazy=True)`` returns Dask arrays for
``diffraction``, ``X_full`` and ``Y``; the groups and coordinates are small
and computed at once. Nothing is read from the pattern store until the
arrays are computed, and then only the frames the groups use.

The graph is made of Dask's own operations on the store (a Dask array, or
any other store wrapped with ``dask.array.from_array``), so it can run on a
``dask.distributed`` cluster when the store is one the workers can read
(a Dask array built from Zarr, HDF5 paths, or in-memory data). ``X_full``
comes out bit for bit equal to the eager path: the per-pattern energies are
computed block by block with the same einsum, and their mean, the single
reduction, goes through the same function.

Needs the ``dask`` extra.
"""
from __future__ import annotations

import numpy as np

from .patches import extract_patches
from .pattern_store import CHUNK_FRAMES

__all__ = ["lazy_channels_last", "lazy_normalised", "lazy_patches"]


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError:
        raise ImportError("lazy=True needs dask: pip install 'ptycho-grouping[dask]'") from None
    return dask, da


def _as_dask(store):
    _, da = _dask()
    if isinstance(store, da.Array):
        return store
    # h5py datasets are not thread-safe; a lock is harmless for the others.
    # An explicit meta keeps from_array from reading the store to infer it.
    return da.from_array(store, chunks=(CHUNK_FRAMES, *store.shape[1:]),
                         lock=not isinstance(store, np.ndarray),
                         meta=np.empty((0,) * len(store.shape), dtype=store.dtype))


def lazy_channels_last(store, nn_indices: np.ndarray, chunk_groups: int):
    """``store[nn_indices]`` as a lazy ``(B, N, N, C)`` array, ``chunk_groups`` groups per block."""
    _, da = _dask()
    b, c = nn_indices.shape
    flat = _as_dask(store)[nn_indices.ravel()]
    frames = flat.rechunk((chunk_groups * c, *flat.shape[1:])).reshape(b, c, *flat.shape[1:])
    return da.moveaxis(frames, 1, 3)


def _energies(frames: np.ndarray) -> np.ndarray:
    # Imported here: raw_data imports this module lazily, not the other way round.
    from .raw_data import pattern_energies
    return pattern_energies(np.moveaxis(frames, 1, 3))


def lazy_normalised(diffraction, N: int):
    """``X_full`` for a lazy ``diffraction``: the energies are one pass over the blocks."""
    dask, da = _dask()
    from .raw_data import _scaled, normalisation_scale
    frames = da.moveaxis(diffraction, 3, 1)  # (B, C, N, N): one block per group chunk
    energies = frames.map_blocks(_energies, drop_axis=(2, 3), dtype=np.float64)
    scale = dask.delayed(normalisation_scale)(energies, N)
    return da.map_blocks(_scaled, diffraction, scale, dtype=_scaled_dtype(diffraction.dtype))


def _scaled_dtype(dtype) -> np.dtype:
    return np.dtype(dtype) if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def _patch_block(shifts: np.ndarray, obj: np.ndarray, N: int) -> np.ndarray:
    """Patches of one block of groups, ``(b, C, 2)`` shifts to ``(b, N, N, C)``."""
    b, c, _ = shifts.shape
    patches = extract_patches(obj, shifts.reshape(-1, 2), N)
    return np.moveaxis(patches.reshape(b, c, N, N), 1, 3)


def lazy_patches(obj: np.ndarray, shifts: np.ndarray, N: int, chunk_groups: int):
    """Object patches ``(B, N, N, C)`` computed lazily, ``chunk_groups`` groups per block.

    ``shifts`` is ``(B, 2, C)``: the ``(sx, sy)`` window corner of every member.
    The object enters the graph once, not once per block.
    """
    dask, da = _dask()
    c = shifts.shape[2]
    lazy_shifts = da.from_array(np.moveaxis(shifts, 1, 2), chunks=(chunk_groups, c, 2))
    return da.map_blocks(_patch_block, lazy_shifts, dask.delayed(obj), N, dtype=np.complex64,
                         drop_axis=(1, 2), new_axis=(1, 2, 3),
                         chunks=(lazy_shifts.chunks[0], (N,), (N,), (c,)))
