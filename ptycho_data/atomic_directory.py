"""All-or-nothing directory writes (a Zarr store is a directory tree, not one file).

:func:`atomic_directory` yields a fresh directory beside the target; when the
block succeeds it is renamed to the target's name, and when it fails (an
exception, Ctrl-C, ``SIGTERM`` through the command) it is removed. So the
target's name only ever holds a complete store: the previous one, or the new.

A writer that is killed outright (``SIGKILL``, the out-of-memory killer)
cannot clean up. Each temporary directory has a lock file beside it, held
with ``flock`` by its writer for as long as it writes; the kernel releases
the lock when the writer dies, however it dies. The next
:func:`atomic_directory` for the same target removes every temporary
directory whose lock it can take (its writer is gone) and leaves the others
(a write in progress, here or on another host sharing the filesystem).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Callable, Iterator, Optional

from ptycho_grouping.atomic_write import fsync_directory

__all__ = ["atomic_directory", "remove_stale_directories", "PARTIAL_SUFFIX"]

log = logging.getLogger(__name__)

#: Temporary directories are ``.<target name>.<16 hex digits>.partial``, their
#: lock files the same name plus ``.lock``.
PARTIAL_SUFFIX = ".partial"


def _try_lock(lock_path: str) -> Optional[int]:
    """A descriptor holding ``lock_path``'s exclusive lock, or None if a live writer holds it."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_stale_directories(path) -> list:
    """Remove the temporary directories of writes to ``path`` whose writers are gone.

    Returns
    -------
    list of pathlib.Path
        The directories removed. Errors are logged, never raised.
    """
    path = Path(path)
    ours = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{16}}{re.escape(PARTIAL_SUFFIX)}\.lock")
    removed = []
    try:
        names = [n for n in os.listdir(path.parent) if ours.fullmatch(n)]
    except OSError as exc:
        log.debug("cannot list %s for stale temporary directories: %s", path.parent, exc)
        return removed
    for lock_name in names:
        lock = path.parent / lock_name
        fd = _try_lock(str(lock))
        if fd is None:
            continue  # a live writer (or a lock we may not open): never disturbed
        try:
            stale = lock.with_name(lock_name[:-len(".lock")])
            aside = stale.with_name(stale.name[:-len(PARTIAL_SUFFIX)] + ".old" + PARTIAL_SUFFIX)
            if aside.exists() and not os.path.lexists(path):
                # Killed between moving the previous output aside and renaming the
                # new one in: the previous output is complete, so it goes back.
                os.rename(aside, path)
                log.info("restored %s, moved aside by an interrupted write", path)
            for leftover in (stale, aside):
                if os.path.lexists(leftover):
                    if leftover.is_dir() and not leftover.is_symlink():
                        shutil.rmtree(leftover, ignore_errors=True)
                    else:
                        leftover.unlink()
                    log.info("removed %s, left by an interrupted write of %s", leftover, path)
                    removed.append(leftover)
            lock.unlink(missing_ok=True)
        except OSError as exc:
            log.debug("cannot remove stale temporary directory of %s: %s", path, exc)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_directory(path, *, replaceable: Optional[Callable[[Path], bool]] = None
                     ) -> Iterator[Path]:
    """Yield an empty directory to fill; on success it takes the name ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The final name.
    replaceable : callable, optional
        Called with ``path`` when something already exists there: True lets
        the new directory replace it. Default: only an empty directory is
        replaced; anything else is a ``FileExistsError`` before any work, so
        a user's directory is never deleted by mistake.

    Notes
    -----
    Replacing an existing directory takes two renames (the old one aside,
    the new one in), so for a moment neither is under ``path``; a reader
    never sees a partial one.
    """
    path = Path(path)
    replaceable = replaceable or (lambda p: p.is_dir() and not any(p.iterdir()))
    if os.path.lexists(path) and not replaceable(path):
        raise FileExistsError(errno.EEXIST, "will not replace it (not an output of this "
                                            "program)", str(path))
    remove_stale_directories(path)
    token = secrets.token_hex(8)
    tmp = path.with_name(f".{path.name}.{token}{PARTIAL_SUFFIX}")
    lock = tmp.with_name(tmp.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until this writer ends, however it ends
        os.mkdir(tmp)
        old = None
        try:
            yield tmp
            if os.path.lexists(path):
                if not replaceable(path):  # appeared while we wrote
                    raise FileExistsError(errno.EEXIST, "will not replace it", str(path))
                old = tmp.with_name(f".{path.name}.{token}.old{PARTIAL_SUFFIX}")
                os.rename(path, old)
            os.rename(tmp, path)
            fsync_directory(path.parent)
            if old is not None:
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink()
        except BaseException:
            if old is not None and old.exists() and not os.path.lexists(path):
                os.rename(old, path)  # the previous output stays where it was
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)
