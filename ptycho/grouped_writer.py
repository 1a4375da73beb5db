"""Write grouped data chunk by chunk, for outputs larger than memory.

The result is the dictionary of ``RawData.generate_grouped_data`` (``None``
entries left out), bit for bit, but only ``chunk_groups`` groups are in
memory at a time (by default as many as hold :data:`DEFAULT_CHUNK_MIB` MiB
of diffraction, whatever the pattern size). The patterns are gathered twice:
once for the per-pattern energies the X_full normalisation needs over *all*
groups, once to write.

Formats: ``npz`` (no extra dependency: each array streams to a ``.npy`` file,
then they are stored uncompressed in the zip, so ``RawData.from_file(...,
mmap=True)``-style memory maps work on the result) and ``hdf5`` (h5py, one
chunked dataset per key). Everything is written under a temporary name in
the target directory, flushed to disk and renamed at the end: an interrupted
write (or a crash) leaves no file that looks complete.
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
from ptycho_grouping.strategy import check_positive_int

from .raw_data import _channels_last, normalisation_scale, pattern_energies

__all__ = ["write_grouped", "FORMATS", "NpzSink", "DEFAULT_CHUNK_MIB", "chunk_groups_for",
           "streamed_scale"]

FORMATS = ("npz", "hdf5")
#: MiB of diffraction per chunk when no group count is given. A chunk's X_full
#: and Y (twice as large when complex) come on top: peak memory is a few times this.
DEFAULT_CHUNK_MIB = 256
#: Target size of one HDF5 storage chunk: large enough for fast writes, small
#: enough for readers' chunk caches (and far below HDF5's 4 GiB chunk limit).
_HDF5_CHUNK_BYTES = 1 << 20
log = logging.getLogger(__name__)


def write_grouped(raw, path, N, *, out_format="npz", chunk_groups=None, chunk_mib=None,
                  progress=None, **grouping) -> np.ndarray:
    """Group ``raw`` and write the grouped arrays to ``path`` in bounded memory.

    Parameters
    ----------
    raw : RawData
    path : str or os.PathLike
    N : int
        Pattern size, as for ``generate_grouped_data``.
    out_format : {"npz", "hdf5"}
    chunk_groups : int, optional
        Groups per chunk; memory is about this many groups' outputs. Default:
        as many as hold ``chunk_mib`` MiB of diffraction (see
        :func:`chunk_groups_for`).
    chunk_mib : int, optional
        The per-chunk diffraction budget in MiB when ``chunk_groups`` is not
        given; default :data:`DEFAULT_CHUNK_MIB`. Give one of the two.
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
    if chunk_groups is not None and chunk_mib is not None:
        raise ValueError(f"give chunk_groups or chunk_mib, not both (got chunk_groups="
                         f"{chunk_groups!r}, chunk_mib={chunk_mib!r})")
    chunk_groups = check_positive_int("chunk_groups", chunk_groups, allow_none=True)
    chunk_mib = check_positive_int("chunk_mib", chunk_mib, allow_none=True) or DEFAULT_CHUNK_MIB
    path = Path(path)
    nn = raw.group_indices(N, **grouping)
    if chunk_groups is None:
        chunk_groups = chunk_groups_for(raw.diff3d.shape[1], nn.shape[1],
                                        np.dtype(raw.diff3d.dtype).itemsize, chunk_mib)
    scale = streamed_scale(raw, nn, N, chunk_groups)
    spans = _spans(len(nn), chunk_groups)
    # The sink removes its own temporary files if its construction fails.
    sink = (NpzSink if out_format == "npz" else _Hdf5Sink)(path, len(nn))
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
    log.info("wrote %d groups to %s in %d chunk(s) of up to %d", len(nn), path, len(spans),
             chunk_groups)
    return nn


def chunk_groups_for(n_pix: int, group_size: int, itemsize: int,
                     chunk_mib: int = DEFAULT_CHUNK_MIB) -> int:
    """Groups per chunk whose diffraction, ``(C, N, N)`` each, fits ``chunk_mib`` MiB.

    At least one group, so a single group larger than the budget is still
    written (one at a time).
    """
    return max(1, (chunk_mib << 20) // (group_size * n_pix * n_pix * itemsize))


def streamed_scale(raw, nn: np.ndarray, N: int, chunk_groups: int) -> float:
    """The X_full normalisation over all of ``nn``, gathering ``chunk_groups`` groups at a time.

    Equal to the one ``generate_grouped_data`` computes from the whole
    diffraction array: the per-pattern energies are the same numbers.
    """
    energies = np.empty(nn.shape)
    for span in _spans(len(nn), chunk_groups):
        energies[span] = pattern_energies(_channels_last(raw.diff3d, nn[span]))
    return normalisation_scale(energies, N)


def _spans(n: int, step: int) -> list:
    return [slice(s, min(s + step, n)) for s in range(0, n, step)]


def _fsync(path) -> None:
    """Flush ``path``'s data to disk, so a rename never exposes a truncated file after a crash."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


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
        _fsync(tmp_zip)
        set_new_file_mode(tmp_zip, self.path)
        os.replace(tmp_zip, self.path)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def abort(self):
        for fh in self.files.values():
            fh.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


class _Hdf5Sink:
    """One chunked HDF5 dataset per key, in a temporary file renamed at the end."""

    def __init__(self, path: Path, n_groups: int):
        try:
            import h5py
        except ImportError:
            raise ImportError("HDF5 output needs h5py: pip install 'ptycho-grouping[hdf5]'") from None
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        os.close(fd)
        self.path, self.tmp = path, Path(tmp)
        self.n_groups = n_groups
        try:
            self.file = h5py.File(self.tmp, "w")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            raise

    def write(self, key, span, value):
        if key not in self.file:
            # Storage chunks of about 1 MiB, independent of the write chunk:
            # a write chunk can be far larger than HDF5 allows for one chunk.
            row_bytes = max(1, value[:1].nbytes)
            rows = int(np.clip(_HDF5_CHUNK_BYTES // row_bytes, 1, self.n_groups))
            self.file.create_dataset(key, shape=(self.n_groups, *value.shape[1:]),
                                     dtype=value.dtype, chunks=(rows, *value.shape[1:]))
        self.file[key][span] = value

    def write_whole(self, key, value):
        self.file[key] = value

    def commit(self):
        self.file.close()
        _fsync(self.tmp)
        set_new_file_mode(self.tmp, self.path)
        os.replace(self.tmp, self.path)

    def abort(self):
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
