"""Grouped output as a Zarr store: the arrays of the NPZ output, one Zarr array each.

A Zarr store is a directory (one file per chunk), so it can be written by
many processes at once, each its own whole chunks, without locks: the
single-process streaming writer (:class:`ZarrSink`, through
:func:`~ptycho_data.grouped_writer.write_grouped`) and the Dask workers of
:mod:`ptycho_data.cluster_writer` write the same layout.

Layout: every ``(B, ...)`` array is chunked along the groups only, with
:func:`chunk_rows` groups per chunk for the pattern arrays (``diffraction``,
``X_full``, ``Y``: about :data:`CHUNK_BYTES` of diffraction) and a multiple
of that for the small ones, so a block of whole pattern chunks covers whole
chunks of every array. Chunks are stored uncompressed, like the NPZ output
(diffraction data compresses poorly and a compressor would cost every
reader CPU time). The grouping's record is the group attribute
``provenance`` (:mod:`ptycho_data.provenance`).

The store is built in a temporary directory beside the target and renamed
into place when complete (:func:`~ptycho_data.atomic_directory.atomic_directory`).
Needs the ``zarr`` extra (zarr-python 2.16+ or 3).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from .atomic_directory import atomic_directory

__all__ = ["zarr_module", "CHUNK_BYTES", "chunk_rows", "aligned_groups", "is_zarr_store",
           "replaceable", "create_array", "ZarrSink", "store_bytes"]

#: Bytes of diffraction per Zarr chunk of the pattern arrays (when the writer's
#: own chunk is not smaller): large enough for fast sequential writes and reads,
#: small enough that a training reader fetching a few groups reads little more.
CHUNK_BYTES = 16 << 20


def zarr_module():
    try:
        import zarr
    except ImportError:
        raise ImportError("Zarr output needs zarr: pip install 'ptycho-grouping[zarr]'") from None
    return zarr


def chunk_rows(group_bytes: int, chunk_groups: int = None) -> int:
    """Groups per Zarr chunk of a pattern array whose groups are ``group_bytes`` each.

    About :data:`CHUNK_BYTES`, and never more than ``chunk_groups`` (the
    writer's chunk), so that the writer's chunks are whole Zarr chunks.
    """
    rows = max(1, CHUNK_BYTES // max(1, group_bytes))
    return min(rows, chunk_groups) if chunk_groups else rows


def aligned_groups(chunk_groups: int, rows: int) -> int:
    """``chunk_groups`` rounded down to whole Zarr chunks of ``rows`` groups (at least one)."""
    return max(rows, chunk_groups // rows * rows)


def is_zarr_store(path) -> bool:
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ("zarr.json", ".zgroup"))


def replaceable(path) -> bool:
    """What an output may replace: a Zarr store (a previous output) or an empty directory."""
    path = Path(path)
    return is_zarr_store(path) or (path.is_dir() and not path.is_symlink()
                                   and not any(path.iterdir()))


def open_group(path, mode="w"):
    return zarr_module().open_group(str(path), mode=mode)


def create_array(group, key: str, shape, dtype, rows: int):
    """An uncompressed array chunked by ``rows`` along the first axis (zarr 2 and 3)."""
    shape = tuple(int(n) for n in shape)
    chunks = ((max(1, min(rows, shape[0])),) + shape[1:]) if shape else None
    if hasattr(group, "create_array"):  # zarr 3
        return group.create_array(key, shape=shape, chunks=chunks or "auto", dtype=dtype,
                                  compressors=None, fill_value=0)
    return group.create_dataset(key, shape=shape, chunks=chunks or True, dtype=dtype,
                                compressor=None, fill_value=0)


def store_bytes(path) -> int:
    """Bytes of the files under the store ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


class ZarrSink:
    """A Zarr group written key after key; the interface of :class:`~ptycho_data.grouped_writer.NpzSink`.

    Rows arrive in blocks of any size; they are collected into whole chunks
    (one chunk of one key in memory at a time) so that every chunk is
    written once, never read back and rewritten.
    """

    def __init__(self, group, n_rows: int, pattern_rows: int, pattern_row_bytes: int):
        self.group, self.n_rows = group, n_rows
        self.pattern_rows, self.pattern_row_bytes = pattern_rows, pattern_row_bytes
        self._key = self._array = self._buffer = None
        self._start = self._fill = 0

    @classmethod
    @contextlib.contextmanager
    def create(cls, path, n_rows: int, *, pattern_rows: int, pattern_row_bytes: int):
        """Write the store that takes the name ``path`` when the block ends without error."""
        zarr_module()
        with atomic_directory(path, replaceable=replaceable) as tmp:
            sink = cls(open_group(tmp), n_rows, pattern_rows, pattern_row_bytes)
            yield sink
            sink.close()

    def rows_for(self, row_bytes: int) -> int:
        """Chunk rows of an array with ``row_bytes`` per group: whole pattern chunks."""
        return self.pattern_rows * max(1, self.pattern_row_bytes // max(1, row_bytes))

    def write(self, key, span, value):
        if key != self._key:
            self._flush()
            self._key = key
            self._array = create_array(self.group, key, (self.n_rows, *value.shape[1:]),
                                       value.dtype, self.rows_for(value[:1].nbytes))
            rows = self._array.chunks[0]
            self._buffer = np.empty((rows, *value.shape[1:]), value.dtype)
            self._start = self._fill = 0
        if span.start != self._start + self._fill:
            raise RuntimeError(f"internal error: rows {span} of {key!r} written out of order")
        done = 0
        while done < len(value):
            take = min(len(value) - done, len(self._buffer) - self._fill)
            self._buffer[self._fill:self._fill + take] = value[done:done + take]
            self._fill += take
            done += take
            if self._fill == len(self._buffer) or self._start + self._fill == self.n_rows:
                self._flush()

    def _flush(self):
        if self._array is not None and self._fill:
            self._array[self._start:self._start + self._fill] = self._buffer[:self._fill]
            self._start, self._fill = self._start + self._fill, 0

    def write_whole(self, key, value):
        self._flush()
        self._key = None
        value = np.asarray(value)
        row_bytes = value[:1].nbytes if value.ndim else value.nbytes
        array = create_array(self.group, key, value.shape, value.dtype,
                             max(1, (16 << 20) // max(1, row_bytes)))
        array[...] = value

    def write_metadata(self, key: str, record: dict) -> None:
        self.group.attrs[key] = record

    def read(self, key, span) -> np.ndarray:
        if key == self._key:
            self._flush()
        return np.asarray(self.group[key][span])

    def close(self):
        self._flush()
        self._key = None
