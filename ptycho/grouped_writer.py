"""Write grouped data chunk by chunk, for outputs larger than memory.

The result is the dictionary of ``RawData.generate_grouped_data`` (``None``
entries left out), bit for bit, but only ``chunk_groups`` groups are in
memory at a time. The patterns are gathered twice: once for the per-pattern
energies the X_full normalisation needs over *all* groups, once to write.

Formats: ``npz`` (no extra dependency: each array streams to a ``.npy`` file,
then they are stored uncompressed in the zip, so ``RawData.from_file(...,
mmap=True)``-style memory maps work on the result) and ``hdf5`` (h5py, one
chunked dataset per key). Everything is written under a temporary name in
the target directory and renamed at the end: an interrupted write leaves no
file that looks complete.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ptycho_grouping.npz_io import set_new_file_mode

from .raw_data import _channels_last, normalisation_scale, pattern_energies

__all__ = ["write_grouped", "FORMATS", "NpzSink"]

FORMATS = ("npz", "hdf5")
log = logging.getLogger(__name__)


def write_grouped(raw, path, N, *, out_format="npz", chunk_groups=4096, progress=None,
                  **grouping) -> np.ndarray:
    """Group ``raw`` and write the grouped arrays to ``path`` in bounded memory.

    Parameters
    ----------
    raw : RawData
    path : str or os.PathLike
    N : int
        Pattern size, as for ``generate_grouped_data``.
    out_format : {"npz", "hdf5"}
    chunk_groups : int
        Groups per chunk; memory is about this many groups' outputs.
    progress : callable, optional
        Called with ``(groups_written, total)`` after each chunk.
    **grouping
        ``K``, ``nsamples``, ``seed``, ... as for ``generate_grouped_data``.

    Returns
    -------
    ndarray
        The ``(B, C)`` group indices that were written.
    """
    if out_format not in FORMATS:
        raise ValueError(f"out_format must be one of {', '.join(FORMATS)}, got {out_format!r}")
    if not isinstance(chunk_groups, int) or chunk_groups < 1:
        raise ValueError(f"chunk_groups must be a positive integer, got {chunk_groups!r}")
    path = Path(path)
    nn = raw.group_indices(N, **grouping)
    spans = [slice(s, min(s + chunk_groups, len(nn))) for s in range(0, len(nn), chunk_groups)]
    energies = np.empty(nn.shape)
    for span in spans:
        energies[span] = pattern_energies(_channels_last(raw.diff3d, nn[span]))
    scale = normalisation_scale(energies, N)

    sink = (NpzSink if out_format == "npz" else _Hdf5Sink)(path, len(nn), chunk_groups)
    try:
        for done, span in enumerate(spans, 1):
            arrays = raw._grouped(nn[span], N, scale=scale)
            whole = arrays.pop("objectGuess")
            for key, value in arrays.items():
                if value is not None:
                    sink.write(key, span, value)
            if done == 1 and whole is not None:
                sink.write_whole("objectGuess", whole)
            if progress is not None:
                progress(span.stop, len(nn))
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    log.info("wrote %d groups to %s in %d chunk(s)", len(nn), path, len(spans))
    return nn


class NpzSink:
    """An uncompressed NPZ written array by array, chunk by chunk, renamed into place at the end.

    Each key becomes a ``.npy`` file of ``n_rows`` rows in a temporary
    directory beside ``path``; :meth:`write` appends the next rows of a key,
    :meth:`write_whole` stores a complete array. :meth:`commit` zips them
    (stored, so the result can be memory-mapped) and renames the zip onto
    ``path``; :meth:`abort` removes everything. Memory is one chunk.
    """

    def __init__(self, path, n_rows: int, chunk_rows: int = 0):
        path = Path(path)
        self.path, self.n_groups = path, n_rows
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent or "."))
        self.files = {}

    def _open(self, key, value, shape):
        fh = open(self.tmpdir / f"{key}.npy", "wb")
        np.lib.format.write_array_header_2_0(
            fh, {"descr": np.lib.format.dtype_to_descr(value.dtype), "fortran_order": False,
                 "shape": shape})
        self.files[key] = fh
        return fh

    def write(self, key, span, value):
        """Append ``value`` as the next rows of ``key`` (``span`` is for the HDF5 sink)."""
        fh = self.files.get(key) or self._open(key, value, (self.n_groups, *value.shape[1:]))
        fh.write(np.ascontiguousarray(value))  # the buffer itself, no bytes copy

    def write_whole(self, key, value):
        self._open(key, value, value.shape).write(np.ascontiguousarray(value))

    def commit(self):
        tmp_zip = self.tmpdir / "out.npz"
        with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, fh in self.files.items():
                fh.close()
                zf.write(fh.name, arcname=f"{key}.npy")
        with open(tmp_zip, "rb+") as fh:
            os.fsync(fh.fileno())
        set_new_file_mode(tmp_zip, self.path)
        os.replace(tmp_zip, self.path)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def abort(self):
        for fh in self.files.values():
            fh.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


class _Hdf5Sink:
    """One chunked HDF5 dataset per key, in a temporary file renamed at the end."""

    def __init__(self, path: Path, n_groups: int, chunk_groups: int):
        try:
            import h5py
        except ImportError:
            raise ImportError("HDF5 output needs h5py: pip install 'ptycho-grouping[hdf5]'") from None
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        os.close(fd)
        self.path, self.tmp = path, Path(tmp)
        self.n_groups, self.chunk_groups = n_groups, chunk_groups
        self.file = h5py.File(self.tmp, "w")

    def write(self, key, span, value):
        if key not in self.file:
            shape = (self.n_groups, *value.shape[1:])
            self.file.create_dataset(key, shape=shape, dtype=value.dtype,
                                     chunks=(min(self.chunk_groups, self.n_groups), *value.shape[1:]))
        self.file[key][span] = value

    def write_whole(self, key, value):
        self.file[key] = value

    def commit(self):
        self.file.flush()
        self.file.close()
        set_new_file_mode(self.tmp, self.path)
        os.replace(self.tmp, self.path)

    def abort(self):
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
