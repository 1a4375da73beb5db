"""Write grouped data member by member, chunk by chunk, at the speed of the disk.

The result is the dictionary of ``RawData.generate_grouped_data`` (``None``
entries left out), bit for bit, written in memory bounded by the chunk size
whatever the dataset and output sizes, from any pattern store (in-memory
array, memory map, h5py, Zarr or Dask array).

Every output byte is written once, one member after another:

1. ``nn_indices``;
2. ``diffraction``: the patterns of a chunk of groups are gathered (sorted,
   each frame once, large sequential reads: :func:`~ptycho_data.pattern_store.gather_frames`),
   their energies summed while they are in memory, and the chunk written;
3. ``X_full``: the normalisation of *all* groups is known now; the
   ``diffraction`` member just written is read back sequentially (from the
   page cache, usually), scaled and written;
4. the coordinates, then ``Y`` (gathered like the patterns, or object
   patches cut block by block), then ``objectGuess``.

Formats: ``npz`` (no extra dependency): members are streamed straight into
the zip (stored, ZIP64, sizes known up front), so the file is a normal NPZ
that ``np.load`` reads and whose members can be memory-mapped
(``RawData.from_file(..., mmap=True)``); ``hdf5`` (h5py): one chunked dataset
per key. Both are written through
:func:`ptycho_grouping.atomic_write.atomic_write`: a failure (a full disk
included) leaves any previous file intact and no temporary file. ``zarr``
(zarr-python): a directory store built beside the target and renamed into
place when complete (:mod:`ptycho_data.zarr_output`); the same layout the
Dask workers of :mod:`ptycho_data.cluster_writer` write.

Each output records how it was made (:mod:`ptycho_data.provenance`).
"""
from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ptycho_grouping.atomic_hdf5 import atomic_hdf5
from ptycho_grouping.atomic_write import atomic_write
from ptycho_grouping.validation import check_positive_int

from .grouped_arrays import (X_FULL_DTYPE, frame_energies, frames_value_range, member_coords,
                             normalisation_scale, patch_shifts, scaled_into)
from .patches import extract_patches
from .pattern_store import gather_frames
from .progress import progress_advance
from .provenance import output_records, to_json
from .zarr_output import ZarrSink, aligned_groups, chunk_rows as zarr_chunk_rows, zarr_module

__all__ = ["write_grouped", "FORMATS", "NpzSink", "Hdf5Sink", "ZarrSink", "DEFAULT_CHUNK_MIB",
           "chunk_groups_for", "streamed_scale"]

FORMATS = ("npz", "hdf5", "zarr")
#: MiB of gathered diffraction per chunk when no group count is given: the one
#: large buffer. Everything else is written in blocks of :data:`BLOCK_BYTES`.
DEFAULT_CHUNK_MIB = 256
#: Bytes per block when transposing, scaling, reading back and writing: small
#: enough to stay in the CPU cache between being made, checksummed and written
#: (measured 30-40% faster overall than 8 MiB blocks).
BLOCK_BYTES = 2 << 20
#: Target size of one HDF5 storage chunk: large enough for fast writes, small
#: enough for readers' chunk caches (and far below HDF5's 4 GiB chunk limit).
_HDF5_CHUNK_BYTES = 1 << 20
_COORD_KEYS = ("coords_nn", "coords_offsets", "coords_relative")
log = logging.getLogger(__name__)


def write_grouped(raw, path, N, *, out_format="npz", chunk_groups=None, chunk_mib=None,
                  progress=False, provenance=True, input_path=None, metadata=None,
                  **grouping) -> np.ndarray:
    """Group ``raw`` and write the grouped arrays to ``path`` in bounded memory.

    Parameters
    ----------
    raw : RawData
    path : str or os.PathLike
    N : int
        Pattern size, as for ``generate_grouped_data``.
    out_format : {"npz", "hdf5", "zarr"}
        ``zarr`` writes a directory store (:mod:`ptycho_data.zarr_output`)
        whose chunks are whole writer chunks.
    chunk_groups : int, optional
        Groups whose patterns are gathered at once; memory is about this many
        groups' diffraction. Default: as many as hold ``chunk_mib`` MiB (see
        :func:`chunk_groups_for`).
    chunk_mib : int, optional
        The per-chunk diffraction budget in MiB when ``chunk_groups`` is not
        given; default :data:`DEFAULT_CHUNK_MIB`. Give one of the two.
    progress : bool or callable, default False
        True shows a progress bar (tqdm, bytes written) on stderr; a callable
        is called with ``(bytes_written, total_bytes)`` after each block.
        Either also lets the grouping strategy show its own long steps.
    provenance : bool or dict, default True
        Record how the output was made (:mod:`ptycho_data.provenance`): the
        NPZ member / HDF5 or Zarr attribute ``provenance``. A dict adds its
        entries to the record (a command line, say); False records nothing.
    input_path : str or os.PathLike, optional
        The file ``raw`` was read from, fingerprinted in the record.
    metadata : callable, optional
        Called with the group indices; returns ``{name: record}``, JSON
        records written like the provenance (e.g. the grouping metrics), so
        that they are part of the one atomic write.
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
    if out_format == "hdf5":
        _h5py()  # fail before the grouping, not after it
    elif out_format == "zarr":
        zarr_module()
    path = Path(path)
    # A strategy with a long step of its own (the legacy enumeration) shows it too.
    nn = raw.group_indices(N, progress=bool(progress), **grouping)
    if chunk_groups is None:
        chunk_groups = chunk_groups_for(raw.diff3d.shape[1], nn.shape[1],
                                        np.dtype(raw.diff3d.dtype).itemsize, chunk_mib)
    group_bytes = nn.shape[1] * int(np.prod(raw.diff3d.shape[1:])) * np.dtype(
        raw.diff3d.dtype).itemsize
    rows = zarr_chunk_rows(group_bytes, chunk_groups)
    if out_format == "zarr":  # the writer's chunks are whole Zarr chunks
        chunk_groups = aligned_groups(chunk_groups, rows)
    plan = _Plan(raw, nn, N, chunk_groups)
    with progress_advance(progress, plan.total_bytes, desc="writing", unit="B",
                          unit_scale=True, unit_divisor=1024) as advance, \
            _open_sink(out_format, path, len(nn), plan.total_bytes, rows, group_bytes) as sink:
        plan.write(sink, advance)
        for key, record in output_records(raw, nn, N, grouping, input_path, provenance,
                                          metadata).items():
            sink.write_metadata(key, record)
    log.info("wrote %d groups to %s (%d groups per chunk)", len(nn), path, chunk_groups)
    return nn


@contextlib.contextmanager
def _open_sink(out_format: str, path: Path, n_rows: int, nbytes: int, rows: int,
               group_bytes: int):
    """The sink of ``out_format`` whose file replaces ``path`` atomically on success."""
    if out_format == "zarr":
        check_free_space(path.parent, nbytes)
        with ZarrSink.create(path, n_rows, pattern_rows=rows,
                             pattern_row_bytes=group_bytes) as sink:
            yield sink
    elif out_format == "hdf5":
        with Hdf5Sink.create(path, n_rows, reserve=nbytes) as sink:
            yield sink
    else:
        with atomic_write(path) as tmp, NpzSink.create(tmp, n_rows, reserve=nbytes) as sink:
            yield sink


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
    energies = np.empty(nn.size)
    c = nn.shape[1]
    for span in _spans(len(nn), chunk_groups):
        energies[span.start * c:span.stop * c] = frame_energies(
            gather_frames(raw.diff3d, nn[span].ravel()))
    return normalisation_scale(energies, N, lambda: frames_value_range(raw.diff3d, nn))


def _spans(n: int, step: int) -> list:
    return [slice(s, min(s + step, n)) for s in range(0, n, step)]


def _rows_per_block(row_bytes: int) -> int:
    return max(1, BLOCK_BYTES // max(1, row_bytes))


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("HDF5 output needs h5py: pip install 'ptycho-grouping[hdf5]'") from None
    return h5py


class _Plan:
    """What is written, in which order, from which source; holds no output array."""

    def __init__(self, raw, nn: np.ndarray, N: int, chunk_groups: int):
        self.raw, self.nn, self.N, self.chunk_groups = raw, nn, N, chunk_groups
        b, c = nn.shape
        store = raw.diff3d
        self.frame = tuple(store.shape[1:])
        pattern_bytes = b * c * int(np.prod(self.frame))
        self.total_bytes = (nn.nbytes + pattern_bytes * np.dtype(store.dtype).itemsize
                            + pattern_bytes * X_FULL_DTYPE.itemsize + 2 * 8 * b * (4 * c + 2))
        if raw.Y is not None:
            self.total_bytes += pattern_bytes * np.dtype(raw.Y.dtype).itemsize
        elif raw.objectGuess is not None:
            self.total_bytes += pattern_bytes * 8
        if raw.objectGuess is not None:
            self.total_bytes += raw.objectGuess.nbytes

    def write(self, sink, advance) -> None:
        raw, nn = self.raw, self.nn
        sink.write("nn_indices", slice(0, len(nn)), nn)
        advance(nn.nbytes)
        energies = self._gathered(sink, "diffraction", raw.diff3d, advance, with_energies=True)
        scale = normalisation_scale(energies, self.N,
                                    lambda: frames_value_range(raw.diff3d, nn))
        self._x_full(sink, scale, advance)
        for prefix, x, y in (("", raw.xcoords, raw.ycoords),
                             ("start_", raw.xcoords_start, raw.ycoords_start)):
            for which, key in enumerate(_COORD_KEYS):
                self._coords(sink, key.replace("coords_", f"coords_{prefix}"), x, y, which,
                             advance)
        if raw.Y is not None:
            self._gathered(sink, "Y", raw.Y, advance)
        elif raw.objectGuess is not None:
            self._patches(sink, advance)
        if raw.objectGuess is not None:
            sink.write_whole("objectGuess", raw.objectGuess)
            advance(raw.objectGuess.nbytes)

    def _gathered(self, sink, key, store, advance, with_energies=False):
        """``store[nn]`` channels-last, a chunk gathered at a time; the energies if asked."""
        nn = self.nn
        b, c = nn.shape
        frame_bytes = int(np.prod(self.frame)) * np.dtype(store.dtype).itemsize
        diff_bytes = int(np.prod(self.frame)) * np.dtype(self.raw.diff3d.dtype).itemsize
        # The same bytes per chunk for every store, whatever its dtype.
        chunk = max(1, self.chunk_groups * diff_bytes // frame_bytes)
        energies = np.empty(b * c) if with_energies else None
        rows = _rows_per_block(c * frame_bytes)
        for span in _spans(b, chunk):
            frames = gather_frames(store, nn[span].ravel())          # (g*C, N, N)
            if with_energies:
                energies[span.start * c:span.stop * c] = frame_energies(frames)
            groups = frames.reshape(-1, c, *self.frame)
            for part in _spans(len(groups), rows):
                block = np.moveaxis(groups[part], 1, 3)             # (r, N, N, C) view
                sink.write(key, slice(span.start + part.start, span.start + part.stop), block)
                advance(block.nbytes)
            # Every view of this chunk goes before the next one is gathered,
            # or two chunks would be alive at once.
            del frames, groups, block
        return energies

    def _x_full(self, sink, scale, advance):
        """``X_full`` from a sequential read of the ``diffraction`` member just written."""
        b, c = self.nn.shape
        rows = _rows_per_block(c * int(np.prod(self.frame)) * 8)
        for span in _spans(b, rows):
            block = sink.read("diffraction", span)
            out = block if block.dtype == X_FULL_DTYPE else np.empty(block.shape, X_FULL_DTYPE)
            sink.write("X_full", span, scaled_into(out, block, scale))
            advance(out.nbytes)

    def _coords(self, sink, key, x, y, which, advance):
        b, c = self.nn.shape
        for span in _spans(b, _rows_per_block(2 * c * 8 * 3)):
            value = member_coords(x, y, self.nn[span])[which]
            sink.write(key, span, value)
            advance(value.nbytes)

    def _patches(self, sink, advance):
        """Object patches ``(B, N, N, C)``, cut a block of groups at a time."""
        raw, N = self.raw, self.N
        b, c = self.nn.shape
        # extract_patches reads a complex64 object in place; convert any other once, not per block.
        obj = np.asarray(raw.objectGuess).astype(np.complex64, copy=False)
        for span in _spans(b, _rows_per_block(c * N * N * 8)):
            _, offsets, relative = member_coords(raw.xcoords, raw.ycoords, self.nn[span])
            patches = extract_patches(obj, patch_shifts(offsets, relative), N)
            block = np.moveaxis(patches.reshape(-1, c, N, N), 1, 3)
            sink.write("Y", span, block)
            advance(block.nbytes)


def _npy_header(shape, dtype) -> bytes:
    """The ``.npy`` header ``np.save`` would write for a C-ordered array."""
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": tuple(shape)}
    try:
        np.lib.format.write_array_header_1_0(buf, header)
    except ValueError:  # a header longer than version 1.0 allows
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


class NpzSink:
    """An uncompressed NPZ written member after member, straight into the zip.

    Each member is a ``.npy`` stream of known size (stored, ZIP64), so each
    byte is written once and the result is an ordinary NPZ. :meth:`write`
    appends the next rows of a key, starting the key's member when its first
    rows arrive (``n_rows`` rows in all); :meth:`write_whole` stores a
    complete array; :meth:`read` reads rows of a finished member back.

    The zip framing is :mod:`zipfile`'s own (its local header, central
    directory and ZIP64 records); only the CRC-32 of a member's data is
    summed here, on a helper thread while the next block is prepared
    (``zlib.crc32`` releases the GIL), instead of in line with each write.
    A block handed to :meth:`write` must not change until the next call.

    Use :meth:`create` on an open-able path (a context manager that closes
    the file, completing the zip on success).
    """

    def __init__(self, fh, n_rows: int):
        self.fh, self.n_rows = fh, n_rows
        self.zip = zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.members = {}      # key -> (data offset, shape, dtype)
        self._info = None      # the zipfile.ZipInfo of the member being written
        self._crc = 0
        self._pending = None   # the CRC of the last block, being summed
        self._checksums = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npz-crc")
        self._key = None
        self._rows = self._expected = 0

    @classmethod
    @contextlib.contextmanager
    def create(cls, path, n_rows: int, reserve: int = 0):
        """Write the NPZ at ``path``; fails at once if ``reserve`` bytes are clearly not free.

        Unlike HDF5, a zip written with plain writes fails cleanly when the
        disk fills up; claiming the space with ``posix_fallocate`` would make
        every write slower (ext4 converts the claimed extents as it goes,
        measured at twice the time), so only the free space is checked.
        """
        check_free_space(path, reserve)
        with open(path, "w+b") as fh:
            sink = cls(fh, n_rows)
            try:
                yield sink
                sink.close()
            except BaseException:
                sink.abort()
                raise

    def _begin(self, key, shape, dtype, rows):
        self._finish()
        header = _npy_header(shape, dtype)
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        info.file_size = info.compress_size = len(header) + nbytes
        info.CRC = 0
        info.header_offset = self.fh.tell()
        self.fh.write(info.FileHeader(zip64=True))  # rewritten with the CRC at the end
        self._info, self._crc, self._written = info, 0, 0
        self._put(header)
        self.members[key] = (self.fh.tell(), tuple(shape), np.dtype(dtype))
        self._key, self._rows, self._expected = key, 0, rows

    def _put(self, data) -> None:
        """Write ``data`` (bytes-like) to the member and sum its CRC on the helper thread."""
        view = memoryview(data).cast("B")
        self._wait()
        self._pending = self._checksums.submit(zlib.crc32, view, self._crc)
        self.fh.write(view)
        self._written += view.nbytes

    def _wait(self) -> None:
        if self._pending is not None:
            self._crc = self._pending.result()
            self._pending = None

    def _finish(self):
        if self._info is None:
            return
        info, self._info = self._info, None
        self._wait()
        if self._written != info.file_size or self._rows != self._expected:
            raise RuntimeError(f"internal error: member {self._key!r} got {self._rows} of "
                               f"{self._expected} rows ({self._written} of "
                               f"{info.file_size} bytes)")
        info.CRC = self._crc
        end = self.fh.tell()
        self.fh.seek(info.header_offset)
        self.fh.write(info.FileHeader(zip64=True))
        self.fh.seek(end)
        # Register the member as zipfile's own writer does, for its central directory.
        self.zip.filelist.append(info)
        self.zip.NameToInfo[info.filename] = info
        self.zip.start_dir = end

    def write(self, key, span, value, rows: int = None):
        """Append ``value`` as the next rows of ``key`` (``span`` says which, for checking).

        The member holds ``rows`` rows in all (default ``n_rows``).
        """
        if key != self._key or self._info is None:
            rows = self.n_rows if rows is None else rows
            self._begin(key, (rows, *value.shape[1:]), value.dtype, rows)
        if span.start != self._rows:
            raise RuntimeError(f"internal error: rows {span} of {key!r} written out of order")
        self._put(np.ascontiguousarray(value).reshape(-1))
        self._rows += len(value)

    def write_whole(self, key, value):
        value = np.asarray(value, order="C")  # ascontiguousarray would make a 0-d array 1-d
        self._begin(key, value.shape, value.dtype, None)
        self._put(value.reshape(-1))
        self._rows = None

    def write_metadata(self, key: str, record: dict) -> None:
        """The record as the member ``key``: JSON text, a 0-d str array (no pickle)."""
        self.write_whole(key, np.array(to_json(record)))

    def read(self, key, span) -> np.ndarray:
        """Rows ``span`` of the member ``key``, read back from the file."""
        if key == self._key:
            self._finish()
        offset, shape, dtype = self.members[key]
        out = np.empty((span.stop - span.start, *shape[1:]), dtype)
        row_bytes = out[:1].nbytes
        self.fh.flush()
        view = memoryview(out).cast("B")
        done = 0
        while done < out.nbytes:
            got = os.preadv(self.fh.fileno(), [view[done:]],
                            offset + span.start * row_bytes + done)
            if got == 0:
                raise EOFError(f"member {key!r} ends before row {span.stop}")
            done += got
        return out

    def memmap(self, key) -> np.memmap:
        """A read-only memory map of the finished member ``key`` (file pages, not heap)."""
        if key == self._key:
            self._finish()
        offset, shape, dtype = self.members[key]
        self.fh.flush()
        return np.memmap(self.fh, dtype=dtype, mode="r", offset=offset, shape=shape)

    def close(self):
        try:
            self._finish()
            self.zip.close()
        finally:
            self._checksums.shutdown()

    def abort(self):
        """Drop the half-written zip (the file itself is removed by its owner)."""
        self._info = None
        with contextlib.suppress(Exception):
            self._wait()
        self._checksums.shutdown()
        with contextlib.suppress(Exception):
            self.zip.close()


class Hdf5Sink:
    """One chunked HDF5 dataset per key; the same interface as :class:`NpzSink`."""

    def __init__(self, file, n_rows: int):
        self.file, self.n_rows = file, n_rows

    @classmethod
    @contextlib.contextmanager
    def create(cls, path, n_rows: int, reserve: int = 0):
        """Write the HDF5 file that replaces ``path`` atomically when the block ends.

        Through :func:`~ptycho_grouping.atomic_hdf5.atomic_hdf5`: whatever
        fails (a full disk included), HDF5 is closed before the exception
        propagates (HDF5 2.0 can crash closing a failed file at exit), no
        temporary is left and an existing ``path`` is untouched. ``reserve``
        bytes of disk are claimed first, so that a full disk fails before
        HDF5 writes anything (edge chunks are stored whole: up to one storage
        chunk per dataset more than the data).
        """
        _h5py()
        with atomic_hdf5(path, reserve + reserve // 256 + 16 * _HDF5_CHUNK_BYTES) as file:
            yield cls(file, n_rows)

    def write(self, key, span, value):
        if key not in self.file:
            # Storage chunks of about 1 MiB, independent of the write blocks.
            row_bytes = max(1, value[:1].nbytes)
            rows = int(np.clip(_HDF5_CHUNK_BYTES // row_bytes, 1, self.n_rows))
            self.file.create_dataset(key, shape=(self.n_rows, *value.shape[1:]),
                                     dtype=value.dtype, chunks=(rows, *value.shape[1:]))
        self.file[key][span] = value

    def write_whole(self, key, value):
        self.file[key] = value

    def write_metadata(self, key: str, record: dict) -> None:
        self.file.attrs[key] = to_json(record)

    def read(self, key, span) -> np.ndarray:
        return self.file[key][span]


def check_free_space(path, nbytes: int) -> None:
    """``OSError(ENOSPC)`` when the filesystem of ``path`` has less than ``nbytes`` free."""
    try:
        # The file itself: a /proc/self/fd path (an unnamed temporary) names its filesystem.
        st = os.statvfs(path)
    except (OSError, AttributeError):
        return
    free = st.f_bavail * st.f_frsize
    if free < nbytes:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: the output needs about "
                                    f"{nbytes / 2**20:.0f} MiB, {free / 2**20:.0f} MiB are free")
