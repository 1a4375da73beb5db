"""All-or-nothing HDF5 files: :func:`.atomic_write.atomic_write` for ``h5py``, safe on a full disk."""
from __future__ import annotations

import contextlib
import errno
import io
import logging
import os

from .atomic_write import atomic_write

__all__ = ["atomic_hdf5"]

log = logging.getLogger(__name__)


class _DiscardAfterAbort(io.FileIO):
    """A raw read-write file that, once ``discard`` is set, drops writes and truncations.

    After a failed write (a full disk) HDF5's flushes at close fail too, the
    file stays open and HDF5's clean-up at exit crashes (segmentation fault);
    with writes dropped, the close succeeds.
    """

    discard = False

    def write(self, data):
        if self.discard:
            return memoryview(data).nbytes
        try:
            return super().write(data)
        except OSError:
            self.discard = True  # the file is lost; later flushes would fail in destructors
            raise

    def truncate(self, size=None):
        if self.discard:
            return self.tell() if size is None else size
        return super().truncate(size)


@contextlib.contextmanager
def atomic_hdf5(path, reserve: int = 0, **file_kwargs):
    """An ``h5py.File`` (mode ``"w"``; do not close it) that replaces ``path`` atomically.

    :func:`~.atomic_write.atomic_write` for HDF5, safe on a full disk: whatever fails, the
    file is closed before the exception propagates, nothing is left and
    ``path`` is untouched. HDF5 writes through a Python file object (it
    cannot open an unnamed file by name; the object lets a failed file close
    without writing). A write failing in an HDF5 destructor cannot raise, so
    ``reserve`` bytes (``posix_fallocate``, where the filesystem can) are
    claimed first: a full disk fails here with ``OSError`` (``ENOSPC``,
    ``EFBIG``, ``EDQUOT``). HDF5 trims the unused part when it closes.
    ``file_kwargs`` go to ``h5py.File`` (``libver``, ``track_order``, ...).
    """
    try:
        import h5py  # an optional dependency (the "hdf5" extra)
    except ImportError:
        raise ImportError("HDF5 output needs h5py: pip install 'ptycho-grouping[hdf5]'") from None
    with atomic_write(path) as tmp, _DiscardAfterAbort(tmp, "w+") as sink:
        h5 = h5py.File(sink, "w", **file_kwargs)
        if reserve > 0:  # HDF5 creates a file only over an empty one: reopen over the claim
            h5.close()
            _reserve_disk(sink.fileno(), reserve)
            h5 = h5py.File(sink, "r+")
        try:
            yield h5
            h5.close()
        except BaseException:
            sink.discard = True
            with contextlib.suppress(Exception):
                h5.close()
            raise


def _reserve_disk(fd: int, nbytes: int) -> None:
    """Claim ``nbytes`` of disk for ``fd`` now; ``OSError`` when they are not there."""
    if nbytes <= 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise OSError(exc.errno, f"{os.strerror(exc.errno)}: the output needs about "
                                     f"{nbytes / 2**20:.0f} MiB") from None
        log.debug("no disk reservation (%s): writing without one", exc)
