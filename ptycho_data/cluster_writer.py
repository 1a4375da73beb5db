"""Grouped output written by ``dask.distributed`` workers into one Zarr store.

The grouping itself is small and computed once, here, on the client. The
client writes ``nn_indices``, the coordinates and ``objectGuess`` into the
store (kilobytes per group), then the workers do the heavy part, one block
of whole Zarr chunks per task:

1. ``diffraction``: a task reads its block's group indices from the store,
   gathers their patterns from the input (opened by path on the worker:
   memory map, HDF5/CXI or Zarr; never shipped through the scheduler),
   writes them and returns their energies (a few bytes per pattern);
2. the ``X_full`` scale is reduced from all energies on the client, by the
   function the eager path uses, so it is the same float;
3. ``X_full``: a task reads its block of ``diffraction`` back from the
   store, sequentially, and writes it scaled; ``Y`` is gathered (or cut
   from the object read from the store) by tasks of its own.

Every task writes whole chunks of its own, so no locks are needed, and
writing a block twice writes the same bytes: a task lost with its worker is
simply run again by the scheduler. The store is built in a temporary
directory beside the target and renamed into place when every task has
succeeded (:func:`~ptycho_data.atomic_directory.atomic_directory`); on a
failure the remaining tasks are cancelled, running ones waited for, and
the temporary directory removed. The workers must see the input and the
output directory at the same paths as the client (a shared filesystem).

An input held in memory (the built-in demo, a compressed NPZ) is first
written as an uncompressed ``.npy`` inside the temporary directory and
memory-mapped from there, so that it too travels by path.
Needs the ``dask`` and ``zarr`` extras.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from .atomic_directory import atomic_directory
from .dask_arrays import open_store, portable
from .grouped_arrays import (X_FULL_DTYPE, frame_energies, frames_value_range, member_coords,
                             normalisation_scale, patch_shifts, scaled_into)
from .grouped_writer import check_free_space
from .patches import extract_patches
from .pattern_store import gather_frames, is_in_memory
from .progress import progress_advance
from .provenance import output_records
from .zarr_output import CHUNK_BYTES, aligned_groups, chunk_rows, create_array, open_group, \
    replaceable

__all__ = ["write_grouped_distributed"]

log = logging.getLogger(__name__)
_COORD_KEYS = ("coords_nn", "coords_offsets", "coords_relative")
#: Seconds to wait for running tasks to end after a failure before removing the store.
DRAIN_SECONDS = 60


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError("--dask needs dask.distributed: pip install "
                          "'ptycho-grouping[dask,zarr]'") from None
    return distributed


# -- tasks (module level: they pickle by reference) ---------------------------------

def _diffraction_task(reader, nn_array, out, start: int, stop: int) -> np.ndarray:
    """Gather, write and return the energies of the patterns of groups ``start:stop``."""
    idx = np.asarray(nn_array[start:stop])
    b, c = idx.shape
    frames = gather_frames(open_store(reader), idx.ravel())
    energies = frame_energies(frames)
    out[start:stop] = np.moveaxis(frames.reshape(b, c, *frames.shape[1:]), 1, 3)
    return energies


def _x_full_task(diffraction, out, start: int, stop: int, scale: float) -> int:
    block = np.asarray(diffraction[start:stop])
    result = block if block.dtype == X_FULL_DTYPE else np.empty(block.shape, X_FULL_DTYPE)
    out[start:stop] = scaled_into(result, block, scale)
    return result.nbytes


def _gathered_task(reader, nn_array, out, start: int, stop: int) -> int:
    idx = np.asarray(nn_array[start:stop])
    b, c = idx.shape
    frames = gather_frames(open_store(reader), idx.ravel())
    block = np.moveaxis(frames.reshape(b, c, *frames.shape[1:]), 1, 3)
    out[start:stop] = block
    return block.nbytes


def _patches_task(obj_array, offsets_array, relative_array, out, start: int, stop: int,
                  N: int) -> int:
    obj = np.asarray(obj_array[...]).astype(np.complex64, copy=False)
    offsets, relative = np.asarray(offsets_array[start:stop]), np.asarray(relative_array[start:stop])
    c = relative.shape[-1]
    patches = extract_patches(obj, patch_shifts(offsets, relative), N)
    block = np.moveaxis(patches.reshape(-1, c, N, N), 1, 3)
    out[start:stop] = block
    return block.nbytes


# -- the client side ------------------------------------------------------------------

def _spans(n: int, step: int):
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def _spill(store, directory: Path, name: str):
    """An in-memory ``store`` as a read-only memory map of a ``.npy`` in ``directory``."""
    if not is_in_memory(store):
        return store
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=store.dtype, shape=store.shape)
    mm[...] = store
    mm.flush()
    del mm
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _drain(client, futures, directory: Path) -> None:
    """Cancel ``futures`` and wait until none of them runs, so nothing writes into ``directory``."""
    keys = {f.key for f in futures}
    client.cancel(futures)
    deadline = time.monotonic() + DRAIN_SECONDS
    with contextlib.suppress(Exception):
        while time.monotonic() < deadline:
            running = {k for keys_ in client.processing().values() for k in keys_}
            if not running & keys:
                break
            time.sleep(0.1)
    shutil.rmtree(directory, ignore_errors=True)


def write_grouped_distributed(raw, path, N, *, client, chunk_groups=None, progress=False,
                              provenance=True, input_path=None, metadata=None,
                              **grouping) -> np.ndarray:
    """Group ``raw`` on this process and have the workers of ``client`` write the Zarr store ``path``.

    Parameters
    ----------
    raw : RawData
        Patterns in a store the workers can open by path (memory-mapped NPZ,
        HDF5/CXI, Zarr); an in-memory one is written to disk first.
    path : str or os.PathLike
        The Zarr store (a directory) to create or replace.
    N : int
    client : distributed.Client
    chunk_groups : int, optional
        Groups per task and per Zarr chunk of the pattern arrays (default:
        about :data:`~ptycho_data.zarr_output.CHUNK_BYTES` of diffraction).
    progress : bool or callable
        As for :func:`~ptycho_data.grouped_writer.write_grouped`: bytes
        written, counted as tasks finish.
    provenance, input_path, **grouping
        As for :func:`~ptycho_data.grouped_writer.write_grouped`.

    Returns
    -------
    ndarray
        The ``(B, C)`` groups written: the same for any number of workers or
        chunk size.
    """
    distributed = _distributed()
    path = Path(path)
    nn = raw.group_indices(N, progress=bool(progress), **grouping)
    b, c = nn.shape
    store = raw.diff3d
    frame = tuple(store.shape[1:])
    group_bytes = c * int(np.prod(frame)) * np.dtype(store.dtype).itemsize
    rows = chunk_rows(group_bytes, chunk_groups)
    block = aligned_groups(chunk_groups or rows, rows)
    pattern_bytes = b * c * int(np.prod(frame))
    y_dtype = (np.dtype(raw.Y.dtype) if raw.Y is not None
               else np.dtype(np.complex64) if raw.objectGuess is not None else None)
    total = (nn.nbytes + pattern_bytes * (np.dtype(store.dtype).itemsize + X_FULL_DTYPE.itemsize
                                          + (y_dtype.itemsize if y_dtype else 0))
             + 2 * 8 * b * (4 * c + 2)
             + (raw.objectGuess.nbytes if raw.objectGuess is not None else 0))
    check_free_space(path.parent, total)
    token = uuid.uuid4().hex[:12]
    with progress_advance(progress, total, desc="writing", unit="B", unit_scale=True,
                          unit_divisor=1024) as advance, \
            atomic_directory(path, replaceable=replaceable) as tmp:
        inputs = tmp / ".inputs"
        try:
            group = open_group(tmp)
            arrays = _write_small_arrays(group, raw, nn, rows, group_bytes, advance)
            arrays["diffraction"] = create_array(group, "diffraction", (b, *frame, c),
                                                 store.dtype, rows)
            arrays["X_full"] = create_array(group, "X_full", (b, *frame, c), X_FULL_DTYPE, rows)
            if y_dtype is not None:
                arrays["Y"] = create_array(group, "Y", (b, *frame, c), y_dtype, rows)
            reader = portable(_spill(store, inputs, "diff3d"))
            spans = _spans(b, block)
            futures = []
            try:
                energies = [client.submit(_diffraction_task, reader, arrays["nn_indices"],
                                          arrays["diffraction"], s, e, pure=False,
                                          key=f"ptycho-diffraction-{token}-{s}")
                            for s, e in spans]
                futures += energies
                futures += _submit_y(client, raw, arrays, spans, N, inputs, token)
                by_future = {f: e - s for f, (s, e) in zip(energies, spans)}
                row_bytes = {"diffraction": group_bytes}
                for future in distributed.as_completed(energies):
                    future.result()  # a task's error ends the run here
                    advance(by_future[future] * row_bytes["diffraction"])
                scale = normalisation_scale(
                    np.concatenate(client.gather(energies)), N,
                    lambda: frames_value_range(store, nn))
                x_full = [client.submit(_x_full_task, arrays["diffraction"], arrays["X_full"],
                                        s, e, scale, pure=False, key=f"ptycho-x-full-{token}-{s}")
                          for s, e in spans]
                futures += x_full
                for future in distributed.as_completed(futures[len(energies):]):
                    advance(future.result())
                for key, record in output_records(raw, nn, N, grouping, input_path, provenance,
                                                  metadata).items():
                    group.attrs[key] = record
            except BaseException:
                _drain(client, futures, tmp)
                raise
        finally:
            shutil.rmtree(inputs, ignore_errors=True)
    log.info("wrote %d groups to %s (%d tasks of %d groups)", b, path, len(spans), block)
    return nn


def _write_small_arrays(group, raw, nn, rows, group_bytes, advance) -> dict:
    """``nn_indices``, the coordinates and ``objectGuess``, written by the client in blocks."""
    b, c = nn.shape
    arrays = {"nn_indices": create_array(group, "nn_indices", nn.shape, nn.dtype,
                                         rows * max(1, group_bytes // max(1, nn[:1].nbytes)))}
    arrays["nn_indices"][...] = nn
    advance(nn.nbytes)
    coord_rows = rows * max(1, group_bytes // (2 * 8 * c))
    step = max(1, (CHUNK_BYTES // (2 * 8 * c)) // coord_rows) * coord_rows
    for prefix, x, y in (("", raw.xcoords, raw.ycoords),
                         ("start_", raw.xcoords_start, raw.ycoords_start)):
        keys = [key.replace("coords_", f"coords_{prefix}") for key in _COORD_KEYS]
        for start, stop in _spans(b, step):
            values = member_coords(x, y, nn[start:stop])
            for key, value in zip(keys, values):
                if key not in arrays:
                    arrays[key] = create_array(group, key, (b, *value.shape[1:]), value.dtype,
                                               coord_rows)
                arrays[key][start:stop] = value
                advance(value.nbytes)
    if raw.objectGuess is not None:
        obj = np.asarray(raw.objectGuess)
        arrays["objectGuess"] = create_array(group, "objectGuess", obj.shape, obj.dtype,
                                             max(1, CHUNK_BYTES // max(1, obj[:1].nbytes)))
        arrays["objectGuess"][...] = obj
        advance(obj.nbytes)
    return arrays


def _submit_y(client, raw, arrays, spans, N, inputs: Path, token: str) -> list:
    """The tasks writing ``Y``: gathered when given per position, else object patches."""
    if raw.Y is not None:
        reader = portable(_spill(raw.Y, inputs, "Y"))
        return [client.submit(_gathered_task, reader, arrays["nn_indices"], arrays["Y"], s, e,
                              pure=False, key=f"ptycho-y-{token}-{s}") for s, e in spans]
    if raw.objectGuess is not None:
        return [client.submit(_patches_task, arrays["objectGuess"], arrays["coords_offsets"],
                              arrays["coords_relative"], arrays["Y"], s, e, N, pure=False,
                              key=f"ptycho-y-{token}-{s}") for s, e in spans]
    return []
