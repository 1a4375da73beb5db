"""All-or-nothing file writes: the one recipe every writer in this project uses."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_write", "set_new_file_mode"]


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


def set_new_file_mode(tmp, target) -> int:
    """Give the temporary file ``tmp`` the mode ``target`` should end up with.

    ``tempfile.mkstemp`` creates files readable by their owner only, and
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
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_current_umask()
    os.chmod(tmp, mode)
    return mode


@contextlib.contextmanager
def atomic_write(path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    The caller opens the yielded path itself (``open(tmp, "wb")``,
    ``h5py.File(tmp, "w")``; note that ``np.savez`` given a name adds
    ``.npz``, so give it the open file) and closes it before the
    block ends. Then the file is flushed to disk, given the mode a plain
    ``open(path, "w")`` would have given it, and renamed over ``path``. Any
    exception (including ``KeyboardInterrupt``) removes the temporary file and
    leaves an existing ``path`` untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The final file name.

    Yields
    ------
    pathlib.Path
        Where to write, in the same directory as ``path``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        set_new_file_mode(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
