"""All-or-nothing file writes: the one recipe every writer in this project uses.

A write goes to a temporary file in the target's directory that replaces the
target only once it is complete and on disk. What a killed run (SIGKILL, the
out-of-memory killer, a scheduler's hard limit) leaves behind:

- on Linux, where the filesystem supports ``O_TMPFILE``, nothing: the
  temporary file has no name until it is linked into place, and the kernel
  frees it when its writer dies;
- elsewhere, a temporary file whose name identifies its writer (host, PID
  namespace, PID, process start time), matched by :data:`TEMP_NAME_RE`.
  The next :func:`atomic_write` to the same target removes every such file
  whose writer is provably gone (same host and PID namespace, and that
  process no longer runs or is another process with a reused PID).
"""
from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import re
import secrets
import socket
import stat
from pathlib import Path
from typing import Iterator, Optional

__all__ = ["atomic_write", "atomic_hdf5", "set_new_file_mode", "TEMP_NAME_RE",
           "temporary_name", "writer_is_gone", "remove_stale_temporaries"]

log = logging.getLogger(__name__)

#: A named temporary file of :func:`atomic_write`:
#: ``.<target>.<pid>-<start>-<pidns>@<host>.<8 hex digits>.tmp``. ``start`` is
#: the writer's start time (clock ticks since boot, 0 where unknown) and
#: ``pidns`` its PID namespace's inode (0 where unknown): together with the
#: host they tell a dead writer from a live one even when its PID was reused.
TEMP_NAME_RE = re.compile(r"(?s)\A\.(?P<target>.+)\.(?P<pid>[0-9]+)-(?P<start>[0-9]+)-"
                          r"(?P<pidns>[0-9]+)@(?P<host>[A-Za-z0-9-]+)\.(?P<rand>[0-9a-f]{8})\.tmp\Z")

# errno values by which os.open(dir, O_TMPFILE) says "not here" rather than
# "you may not": the filesystem (EOPNOTSUPP), or a kernel older than 3.11
# that reads the flag as O_DIRECTORY (EISDIR, EINVAL).
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL,
               getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


def _current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    ``os.umask`` can only be read by setting it, which for a moment changes
    the mode of files other threads create; Linux reports it in
    ``/proc/self/status`` instead, so that is tried first.
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(target) -> int:
    """The existing ``target``'s mode, else what ``open()`` gives a new file."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()


def set_new_file_mode(tmp, target) -> int:
    """Give the temporary file ``tmp`` the mode ``target`` should end up with.

    Temporary files are created readable by their owner only, and
    ``os.replace`` keeps that mode; call this before renaming ``tmp`` onto
    ``target``. The mode is the existing ``target``'s when a file is being
    replaced, else what ``open()`` would give a new file: ``0o666 & ~umask``.

    Parameters
    ----------
    tmp : str or os.PathLike
        The temporary file, about to be renamed.
    target : str or os.PathLike
        The final name.

    Returns
    -------
    int
        The mode that was set.
    """
    mode = _final_mode(target)
    os.chmod(tmp, mode)
    return mode


# --- who wrote a temporary file, and whether it is still running ------------------

def _process_start(pid: int) -> int:
    """Start time of process ``pid`` in clock ticks since boot; 0 where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return int(fields[19])  # field 22 of proc(5); the first two precede ")"
    except (OSError, IndexError, ValueError):
        return 0


def _pid_namespace() -> int:
    with contextlib.suppress(OSError):
        return os.stat("/proc/self/ns/pid").st_ino
    return 0


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "unknown"


def temporary_name(target_name: str) -> str:
    """A fresh temporary file name for ``target_name`` that identifies this process.

    See :data:`TEMP_NAME_RE` for the format.
    """
    pid = os.getpid()
    return (f".{target_name}.{pid}-{_process_start(pid)}-{_pid_namespace()}@{_host()}"
            f".{secrets.token_hex(4)}.tmp")


def writer_is_gone(name: str) -> bool:
    """True when ``name`` is a temporary name of :func:`atomic_write` whose writer is dead.

    Only a writer on this host and in this PID namespace can be checked: its
    PID no longer exists, or belongs to a process started at another time
    (the PID was reused). Anything else (another host, a live writer, an
    unknown start time on a running PID) gives False: a write that may be in
    progress is never disturbed.
    """
    m = TEMP_NAME_RE.match(name)
    if m is None or m["host"] != _host() or int(m["pidns"]) != _pid_namespace():
        return False
    pid, start = int(m["pid"]), int(m["start"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    except (OSError, OverflowError):
        return False
    now_start = _process_start(pid)
    return bool(start and now_start and start != now_start)


def remove_stale_temporaries(path) -> list:
    """Remove the temporary files of writes to ``path`` whose writers are gone.

    Only regular files named by :func:`temporary_name` for ``path``'s name
    are considered (see :func:`writer_is_gone`). Errors (an unreadable
    directory, a file removed meanwhile) are logged, never raised.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    path = Path(path)
    prefix = f".{path.name}."
    removed = []
    try:
        with os.scandir(path.parent) as entries:
            candidates = [e for e in entries if e.name.startswith(prefix)]
    except OSError as exc:
        log.debug("cannot list %s for stale temporary files: %s", path.parent, exc)
        return removed
    for entry in candidates:
        m = TEMP_NAME_RE.match(entry.name)
        if m is None or m["target"] != path.name or not writer_is_gone(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
        except OSError as exc:
            log.debug("cannot remove stale temporary file %s: %s", entry.path, exc)
            continue
        log.info("removed %s, left by an interrupted write of %s", entry.path, path)
        removed.append(Path(entry.path))
    return removed


# --- the write itself ---------------------------------------------------------------

def _open_unnamed(directory: Path) -> Optional[int]:
    """An ``O_TMPFILE`` descriptor in ``directory``, or None where unsupported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        fd = os.open(directory, flag | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE:
            return None
        raise
    if not os.path.exists(f"/proc/self/fd/{fd}"):  # no /proc: the caller could not open it
        os.close(fd)
        return None
    return fd


def _create_named(directory: Path, target_name: str) -> Path:
    while True:
        tmp = directory / temporary_name(target_name)
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
                         | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _link_unnamed(fd: int, directory: Path, name: str) -> None:
    """Give the ``O_TMPFILE`` file ``fd`` the name ``directory/name``."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # A dir_fd makes os.link call linkat (with AT_SYMLINK_FOLLOW, which
        # resolves the /proc link to the file); without one it calls link(2),
        # which would try to link the /proc symlink itself and fail (EXDEV).
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
    finally:
        os.close(dir_fd)


def _fsync_path(path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; not every OS can open a directory, so best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    The caller opens the yielded path itself (``open(tmp, "wb")``,
    ``zipfile.ZipFile(tmp, "w")``) and closes it before the block ends; it
    must write *into* that file (not replace, rename or delete it), and only
    from this process. Note that ``np.savez`` given a name adds ``.npz``, so
    give it the open file; and that the path may be ``/proc/self/fd/N``,
    which has no useful suffix and which HDF5 cannot open by name (use
    :func:`atomic_hdf5`). When the block ends, the file is flushed to disk,
    given the mode a plain ``open(path, "w")`` would have given it (the
    existing file's mode when one is replaced), and renamed over ``path``.
    Any exception (including ``KeyboardInterrupt``) removes the temporary
    file and leaves an existing ``path`` untouched.

    First, the temporary files of earlier writes to ``path`` whose writers
    were killed are removed (see :func:`remove_stale_temporaries`).

    Parameters
    ----------
    path : str or os.PathLike
        The final file name.

    Yields
    ------
    pathlib.Path
        Where to write: ``/proc/self/fd/N`` for an unnamed (``O_TMPFILE``)
        file in ``path``'s directory, else a named file there.
    """
    path = Path(path)
    directory = path.parent
    remove_stale_temporaries(path)
    fd = _open_unnamed(directory)
    named = None if fd is not None else _create_named(directory, path.name)
    try:
        if fd is not None:
            yield Path(f"/proc/self/fd/{fd}")
            os.fsync(fd)
            os.fchmod(fd, _final_mode(path))
            # linkat cannot overwrite: link under a name of ours, then rename.
            link = temporary_name(path.name)
            _link_unnamed(fd, directory, link)
            named = directory / link
        else:
            yield named
            _fsync_path(named)
            set_new_file_mode(named, path)
        os.replace(named, path)
        named = None
        _fsync_directory(directory)
    finally:
        if fd is not None:
            os.close(fd)
        if named is not None:
            with contextlib.suppress(OSError):
                os.unlink(named)


class _DiscardAfterAbort(io.RawIOBase):
    """A read-write file that, once ``discard`` is set, drops writes and truncations.

    HDF5 flushes its caches when a file is closed. After a failed write (a
    full disk) that flush fails too, the file stays open, and HDF5's own
    clean-up at interpreter exit then crashes (segmentation fault). With
    the writes dropped, the close succeeds and nothing is left open.
    """

    def __init__(self, raw: io.FileIO):
        super().__init__()
        self.raw = raw
        self.discard = False

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, buffer):
        return self.raw.readinto(buffer)

    def write(self, data):
        if self.discard:
            return memoryview(data).nbytes
        try:
            return self.raw.write(data)
        except OSError:
            # The file is lost: HDF5 will still try to flush objects that are
            # freed while the error unwinds, and each such write would fail
            # again inside a destructor ("Exception ignored ...").
            self.discard = True
            raise

    def seek(self, offset, whence=io.SEEK_SET):
        return self.raw.seek(offset, whence)

    def tell(self):
        return self.raw.tell()

    def truncate(self, size=None):
        if self.discard:
            return self.raw.tell() if size is None else size
        return self.raw.truncate(size)

    def flush(self):
        pass  # unbuffered: every write went to the OS already


@contextlib.contextmanager
def atomic_hdf5(path, reserve: int = 0, **file_kwargs):
    """An ``h5py.File`` open for writing that atomically replaces ``path`` when the block ends.

    :func:`atomic_write` for HDF5, safe on a full disk: whatever fails (a
    write, the final flush), the HDF5 file is closed before the exception
    propagates, no temporary file is left and an existing ``path`` is
    untouched. HDF5 writes through a Python file object here: it cannot open
    an unnamed temporary file by name, and the object lets a failed file be
    closed without writing (see :class:`_DiscardAfterAbort`).

    HDF5 also writes from destructors (a dataset's chunk cache is flushed
    when its last Python reference goes), where a failed write cannot raise
    and leaves HDF5 in a state that has ended in a crash. Claim the disk
    space first with ``reserve`` when the size is known: a full disk then
    fails here, before HDF5 writes anything. HDF5 trims the unused part of
    the reservation when it closes the file.

    Parameters
    ----------
    path : str or os.PathLike
    reserve : int, default 0
        Bytes of disk to claim up front (``posix_fallocate``; skipped where
        the filesystem cannot).
    **file_kwargs
        Passed to ``h5py.File`` (for example ``libver``, ``track_order``).

    Yields
    ------
    h5py.File
        Open in mode ``"w"``; do not close it.

    Raises
    ------
    OSError
        ``ENOSPC``, ``EFBIG`` or ``EDQUOT`` when the reservation does not fit.
    """
    try:
        import h5py  # an optional dependency (the "hdf5" extra)
    except ImportError:
        raise ImportError("HDF5 output needs h5py: pip install 'ptycho-grouping[hdf5]'") from None
    with atomic_write(path) as tmp, open(tmp, "w+b", buffering=0) as raw:
        sink = _DiscardAfterAbort(raw)
        h5 = h5py.File(sink, "w", **file_kwargs)
        if reserve > 0:
            # HDF5 creates a file only over an empty one; it is reopened over
            # the reservation, which it trims to its own end when it closes.
            h5.close()
            _reserve_disk(raw.fileno(), reserve)
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
