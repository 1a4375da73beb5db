"""All-or-nothing file writes: the one recipe every writer in this project uses.

A write goes to a temporary file in the target's directory that replaces the
target only once it is complete and on disk. Its writer holds an exclusive
``flock`` on it all its life, which the kernel drops when the writer dies
(even by SIGKILL): a temporary file whose lock can be taken is stale. A
killed run leaves nothing where ``O_TMPFILE`` works (Linux: the file has no
name until it is complete), else ``.<target>.<8 hex digits>.tmp``, which the
next write to the same target removes (``clean-cache`` too, for legacy
caches); so are earlier versions' names (:data:`TEMP_NAME_RE`), whose
writers took no lock. Without ``fcntl`` (Windows) nothing is judged stale.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Iterator, Optional

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["atomic_write", "set_new_file_mode", "fsync_directory", "TEMP_NAME_RE",
           "temporary_name", "is_temporary_of", "lock_if_stale", "remove_stale_temporaries"]

log = logging.getLogger(__name__)

#: A temporary file of a write to ``target``, as any release named it:
#: ``.<target>.<tag>.tmp``, ``tag`` being 8 random characters (``mkstemp``'s in
#: 0.1, hex today) or ``<pid>-<start>-<pidns>@<host>.<8 hex>`` (late 0.1, 0.2).
TEMP_TAG = r"(?:[a-z0-9_]{8}|[0-9]+-[0-9]+-[0-9]+@[A-Za-z0-9-]+\.[0-9a-f]{8})"
TEMP_NAME_RE = re.compile(rf"(?s)\A\.(?P<target>.+?)\.{TEMP_TAG}\.tmp\Z")
_TAG_RE = re.compile(rf"{TEMP_TAG}\.tmp\Z")

# os.open(dir, O_TMPFILE) saying "not here" (the filesystem; a kernel before
# 3.11 reads the flag as O_DIRECTORY) rather than "you may not".
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL}
# Never follow a link when opening a file to check it; never block on a FIFO.
_PROBE_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                | getattr(os, "O_CLOEXEC", 0))


def temporary_name(target_name: str) -> str:
    """A fresh temporary file name for ``target_name``: ``.<target>.<8 hex digits>.tmp``."""
    return f".{target_name}.{secrets.token_hex(4)}.tmp"


def is_temporary_of(name: str, target_name: str) -> bool:
    """True when ``name`` is a temporary name (any version's) of a write to ``target_name``."""
    prefix = f".{target_name}."
    return name.startswith(prefix) and bool(_TAG_RE.match(name, len(prefix)))


def lock_if_stale(fd: int) -> bool:
    """True if nobody held the lock on open file ``fd`` (stale); the caller then holds it.

    Held until ``fd`` is closed, so a writer that created the file but had
    not yet locked it waits, then sees it gone. False where there are no locks.
    """
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def remove_stale_temporaries(path) -> list:
    """Remove the stale temporary files of writes to ``path``; return their paths.

    Each regular file with a temporary name of ``path`` is opened without
    following links, locked (:func:`lock_if_stale`) and unlinked if its name
    still leads to it. Errors are logged, never raised.
    """
    path = Path(path)
    removed = []
    try:
        names = [n for n in os.listdir(path.parent or ".") if is_temporary_of(n, path.name)]
    except OSError as exc:
        log.debug("cannot list %s for stale temporary files: %s", path.parent, exc)
        return removed
    for name in names:
        tmp = path.parent / name
        try:
            fd = os.open(tmp, _PROBE_FLAGS)
        except OSError as exc:  # vanished, a link (ELOOP), unreadable
            log.debug("cannot check temporary file %s: %s", tmp, exc)
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or not lock_if_stale(fd):
                continue
            now = os.lstat(tmp)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                continue  # renamed meanwhile: what the name leads to was not checked
            os.unlink(tmp)
        except OSError as exc:
            log.debug("cannot remove stale temporary file %s: %s", tmp, exc)
            continue
        finally:
            os.close(fd)
        log.info("removed %s, left by an interrupted write of %s", tmp, path)
        removed.append(tmp)
    return removed


def _current_umask() -> int:
    """The umask; from ``/proc`` where possible, since ``os.umask`` reads it only by setting it
    (which for a moment changes the mode of files other threads create)."""
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
    """Give ``tmp`` (created owner-only) the mode ``target`` should have; return that mode.

    The existing ``target``'s mode when a file is replaced, else what
    ``open()`` gives a new file: ``0o666 & ~umask``. Call before renaming.
    """
    mode = _final_mode(target)
    os.chmod(tmp, mode)
    return mode


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks only while a cleaner checks the new file


def _open_unnamed(directory: Path) -> Optional[int]:
    """A locked ``O_TMPFILE`` descriptor in ``directory``, or None where unsupported."""
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
    _lock(fd)  # before it has a name, so it is never seen unlocked
    return fd


def _create_named(directory: Path, target_name: str):
    """``(fd, path)`` of a new temporary file, locked, that no cleaner took meanwhile."""
    while True:
        tmp = directory / temporary_name(target_name)
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
                         | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            continue
        _lock(fd)
        if os.fstat(fd).st_nlink:
            return fd, tmp
        os.close(fd)  # found unlocked and removed before we locked it: take another name


def _link_unnamed(fd: int, directory: Path, target_name: str) -> Path:
    """Give the ``O_TMPFILE`` file ``fd`` a fresh temporary name in ``directory``."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        while True:
            name = temporary_name(target_name)
            try:
                # A dir_fd makes os.link call linkat (with AT_SYMLINK_FOLLOW, which
                # resolves the /proc link to the file); without one it calls link(2),
                # which would try to link the /proc symlink itself and fail (EXDEV).
                os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
            except FileExistsError:
                continue
            return directory / name
    finally:
        os.close(dir_fd)


def fsync_directory(directory: Path) -> None:
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

    The caller opens the yielded path itself and closes it before the block
    ends, writing *into* it (not replacing or renaming it) from this process
    only. It may be ``/proc/self/fd/N`` (``O_TMPFILE``): no useful suffix
    (give ``np.savez`` the open file) and no HDF5 by name (use
    :func:`.atomic_hdf5.atomic_hdf5`). When the block ends the file is fsynced, given the
    mode ``open(path, "w")`` would give it (an existing file's mode is kept)
    and renamed over ``path``. Any exception (``KeyboardInterrupt`` too)
    removes it and leaves ``path`` untouched. Stale temporary files of
    earlier writes to ``path`` are removed first.
    """
    path = Path(path)
    directory = path.parent
    remove_stale_temporaries(path)
    fd = _open_unnamed(directory)
    named = None
    if fd is None:
        fd, named = _create_named(directory, path.name)
    try:
        yield named or Path(f"/proc/self/fd/{fd}")
        os.fsync(fd)
        os.fchmod(fd, _final_mode(path))
        if named is None:  # linkat cannot overwrite: link under a name of ours, then rename
            named = _link_unnamed(fd, directory, path.name)
        os.replace(named, path)
        named = None
        fsync_directory(directory)
    finally:
        if named is not None:
            with contextlib.suppress(OSError):
                os.unlink(named)
        os.close(fd)  # last: the lock keeps the file ours until it is gone or in place

