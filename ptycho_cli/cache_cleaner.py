"""Find and remove the group cache files the pre-refactor code left beside datasets.

Run as ``ptycho-group clean-cache`` or ``python migration/clean_cache.py``;
:data:`EPILOG` (its ``--help``) says what is removed. Each file is opened without
following links, relative to its directory (checked to be the one scanned),
checked through that descriptor (same inode, unmodified, still a cache; a
temporary one's lock held) and unlinked by name (POSIX: Windows refuses to
unlink an open file). **The remaining window:** a file renamed over the name
between that check and the unlink is what gets unlinked. Do not clean a
directory that a running job is reorganising.
"""
from __future__ import annotations

import argparse
import errno
import os
import stat
import struct
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

from ptycho_grouping.atomic_write import TEMP_NAME_RE as WRITER_TEMP_RE, lock_if_stale
from ptycho_grouping.legacy_cache import CACHE_KEYS, CACHE_NAME_RE, TEMP_NAME_RE, \
    cache_file_problem

from .progress import bar

__all__ = ["Finding", "CleanResult", "find_cache_files", "remove_cache_files", "add_arguments",
           "run", "main"]

# Never follow a link when opening a file to check it; never block on a FIFO.
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))
_CACHE_MEMBERS = {f"{key}.npy".encode() for key in CACHE_KEYS}
_REPLACED = "replaced by another file since the scan; left alone"


@dataclass(frozen=True)
class Finding:
    """A file named like a cache (or its temporary file): ``kind`` ``"cache"``/``"temp"``
    (removable), ``"skipped"`` (``reason`` says why) or ``"error"`` (unreadable)."""

    path: Path
    kind: str
    reason: str = ""
    st: Optional[os.stat_result] = None  # the file's lstat at scan time
    dir_st: Optional[os.stat_result] = None  # its directory's stat at scan time
    root: Optional[Path] = None  # the resolved root it was found under
    is_cache = property(lambda self: self.kind == "cache")
    removable = property(lambda self: self.kind in ("cache", "temp"))
    size = property(lambda self: self.st.st_size if self.st else 0)
    nlink = property(lambda self: self.st.st_nlink if self.st else 1)
    ident = property(lambda self: self.st and (self.st.st_dev, self.st.st_ino))


@dataclass
class CleanResult:
    """What a removal pass did; ``bytes_freed`` counts a file when its last name went."""

    removed: List[Finding] = field(default_factory=list)
    failed: List[Tuple[Finding, str]] = field(default_factory=list)
    bytes_freed: int = 0


def _is_temp_name(name: str) -> bool:
    """True for a cache write's temporary name by any release: ``.<cache>.<random>.tmp``
    (0.1's ``mkstemp``, today's writer) or ``.<cache>.<pid>-<start>-<pidns>@<host>.<hex>.tmp``."""
    m = TEMP_NAME_RE.match(name) or WRITER_TEMP_RE.match(name)
    return bool(m and CACHE_NAME_RE.match(m[1]))


def _problem(fd: int, fh, temp: bool) -> Optional[str]:
    """Why the open file must be kept (None: it may go), checked through its descriptor;
    a temporary file must be stale (its lock, taken here, is held until ``fd`` is closed)
    and begin as a cache write does: empty, or led by a cache member."""
    if not temp:
        return cache_file_problem(fh)
    if not lock_if_stale(fd):
        return ("temporary file of a cache write that is still running (its writer holds its "
                "lock); left alone")
    header = fh.read(30)
    if header and (len(header) < 30 or header[:4] != b"PK\x03\x04"):
        problem = "it does not start with a zip entry"
    elif header and (name := fh.read(struct.unpack("<H", header[26:28])[0])) not in _CACHE_MEMBERS:
        problem = f"its first zip member is {name.decode('utf-8', 'replace')!r}"
    else:
        return None
    return f"temporary file of a cache write, but not the start of a cache ({problem}); left alone"


def _classify(dirpath: Path, name: str, root: Path) -> Optional[Finding]:
    """The finding for ``dirpath/name`` (None if it vanished during the scan)."""
    path = dirpath / name
    try:
        found = Finding(path, "temp" if _is_temp_name(name) else "cache", st=os.lstat(path),
                        dir_st=os.stat(dirpath), root=root)
        if not stat.S_ISREG(found.st.st_mode):
            return replace(found, kind="skipped", reason="symbolic link (not followed)"
                           if stat.S_ISLNK(found.st.st_mode) else "not a regular file")
        fd = os.open(path, _OPEN_FLAGS)
        with os.fdopen(fd, "rb") as fh:
            problem = ("replaced by another file" if not os.path.samestat(os.fstat(fd), found.st)
                       else _problem(fd, fh, found.kind == "temp"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Finding(path, "error", reason=exc.strerror or str(exc))
    return found if problem is None else replace(found, kind="skipped", reason=problem)


def _walk(root, onerror: Callable) -> Iterator[Tuple[str, List[str], List[str]]]:
    """``os.walk(root)``, sorted and depth first, one directory at a time with an explicit
    stack of subdirectories (not links to them): ``os.walk`` recurses before Python 3.12."""
    stack = [os.fspath(root)]
    while stack:
        for dirpath, dirnames, filenames in os.walk(stack.pop(), onerror=onerror):
            dirnames.sort()
            yield dirpath, dirnames, sorted(filenames)
            stack.extend(os.path.join(dirpath, d) for d in reversed(dirnames)
                         if not os.path.islink(os.path.join(dirpath, d)))
            dirnames.clear()  # os.walk descends no further


def find_cache_files(roots: Iterable, progress: Optional[Callable[[int], None]] = None,
                     errors: Optional[list] = None) -> Iterator[Finding]:
    """Every file under ``roots`` named like a legacy cache or its temporary file, classified.

    Each name is yielded once, even through overlapping roots (every name of a
    hard-linked file is yielded). ``roots`` are directories (a symbolic link given
    here is followed; links below are not) or files; ``progress(n)`` is called every
    1000 files seen; the ``OSError`` of an unreadable directory is appended to ``errors``.
    """
    errors = [] if errors is None else errors
    seen, n_files = set(), 0
    for root in map(Path, roots):
        # A link given as a root is followed if it leads to a directory, else not.
        top, tree = (root, _walk(root, errors.append)) if os.path.isdir(root) else \
            (root.parent, [(root.parent, [], [root.name])])
        real_root = Path(os.path.realpath(top))
        for dirpath, dirnames, filenames in tree:
            for _ in filenames:
                n_files += 1
                if progress is not None and n_files % 1000 == 0:
                    progress(n_files)
            real_dir = os.path.realpath(dirpath)
            # Links to directories and directories named like caches are reported too.
            new = [name for name in sorted(filenames + dirnames) if (real_dir, name) not in seen
                   and (CACHE_NAME_RE.match(name) or _is_temp_name(name))]
            seen.update((real_dir, name) for name in new)
            yield from filter(None, (_classify(Path(dirpath), name, real_root) for name in new))


def freeable_bytes(findings: Iterable[Finding]) -> int:
    """Bytes that removing the removable ``findings`` would free: a hard-linked file
    counts once, when all its names are among them (a name left keeps the data)."""
    removable = [f for f in findings if f.removable]
    names = Counter(f.ident for f in removable)
    return sum(f.size for i, f in {f.ident: f for f in removable}.items() if names[i] >= f.nlink)


def _remove_one(f: Finding) -> Tuple[Optional[str], int]:
    """Remove ``f`` if it is still what was found, where it was found: ``(why not, freed)``."""
    real_parent = Path(os.path.realpath(f.path.parent))
    if f.root is not None and f.root != real_parent and f.root not in real_parent.parents:
        return (f"its directory now resolves to {_show(real_parent)}, outside {_show(f.root)}; "
                "left alone"), 0
    try:
        dir_fd = os.open(f.path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        return "vanished since the scan (its directory is gone)", 0
    name = f.path.name  # opened, checked and unlinked relative to dir_fd
    try:
        if not os.path.samestat(os.fstat(dir_fd), f.dir_st):
            return "its directory was replaced since the scan; left alone", 0
        try:
            fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
        except OSError as exc:  # ELOOP: a symbolic link now, refused by O_NOFOLLOW
            why = {errno.ENOENT: "vanished since the scan", errno.ELOOP: _REPLACED}
            return why.get(exc.errno, exc.strerror or str(exc)), 0
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not os.path.samestat(st, f.st) or not stat.S_ISREG(st.st_mode):
                return _REPLACED, 0
            if st.st_mtime_ns != f.st.st_mtime_ns:  # written to since the user saw it
                return "modified since the scan; left alone", 0
            problem = _problem(fd, fh, f.kind == "temp")
            if problem is not None:
                return (problem if f.kind == "temp" else
                        f"no longer a legacy cache file ({problem}); left alone"), 0
            # Still ours by name? (A rename after this, before the unlink: the window.)
            if not os.path.samestat(os.lstat(name, dir_fd=dir_fd), f.st):
                return _REPLACED, 0
            os.unlink(name, dir_fd=dir_fd)
            return None, f.size if st.st_nlink == 1 else 0
    finally:
        os.close(dir_fd)


def remove_cache_files(findings: Iterable[Finding]) -> CleanResult:
    """Remove the removable findings, each re-checked through an open descriptor first.

    A file is left alone (listed in ``failed`` with the reason) if it or its
    directory was replaced, moved out of its root, modified or is no longer a cache.
    """
    result = CleanResult()
    for f in (f for f in findings if f.removable):
        try:
            problem, freed = _remove_one(f)
        except OSError as exc:
            problem, freed = exc.strerror or str(exc), 0
        if problem is None:
            result.removed.append(f)
            result.bytes_freed += freed
        else:
            result.failed.append((f, problem))
    return result


def _show(path) -> str:
    """``path`` as printable text: undecodable bytes as ``\\xNN``, control characters escaped."""
    text = os.fsdecode(path)
    if text.isprintable():
        return text
    text = os.fsencode(path).replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _human(n: int) -> str:
    power = min((n.bit_length() - 1) // 10, 3)  # 1024 ** power <= n
    return f"{n} bytes" if power <= 0 else f"{n / 1024 ** power:.1f} {'KMG'[power - 1]}iB"


def _total(n: int) -> str:
    """A total: ``"512 bytes"``, or ``"1.5 KiB (1536 bytes)"`` when rounding hides bytes."""
    return _human(n) if n < 1024 else f"{_human(n)} ({n} bytes)"


def _describe(f: Finding) -> str:
    what = "leftover temporary file " if f.kind == "temp" else ""
    links = f"; one of {f.nlink} hard-linked names" if f.nlink > 1 else ""
    return f"{what}{_show(f.path)} ({_human(f.size)}{links})"


EPILOG = """\
what is removed:
  PATH/**/<stem>.g<G>k<K>.groups_cache.npz that np.load(allow_pickle=False)
  reads as a legacy cache (checked from the zip directory and array headers:
  nothing is unpickled), and the temporary files of interrupted cache writes
  (.<cache name>.<...>.tmp) whose writer is gone (its lock on the file is
  free) and that hold the start of a cache (or nothing yet). Look-alikes,
  datasets and symbolic links are never removed; all names of a hard-linked
  cache are, its space freed with the last.

symbolic links: a directory PATH that is a symbolic link is followed (like
find -H); links met below a PATH are never followed nor removed.

exit status: 0 all good, 1 some files could not be read or removed,
2 usage error, 130 interrupted at the question."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The tool's own arguments (paths, ``--dry-run``, ``--yes``), for any parser."""
    parser.epilog = EPILOG
    parser.add_argument("paths", nargs="+", metavar="PATH", help="directories (or files) to search")
    parser.add_argument("-n", "--dry-run", action="store_true",
                        help="list what would be removed and the space it would free")
    parser.add_argument("-y", "--yes", action="store_true", help="remove without asking")


def run(args: argparse.Namespace, prog: str, *, show_progress: bool = False,
        quiet: bool = False) -> int:
    """Find, list, confirm and remove, as parsed by :func:`add_arguments`; the exit status.

    ``quiet`` leaves out what ``--yes`` removed, not errors nor the lists asked for.
    """
    if hasattr(sys.stdout, "reconfigure"):  # print what it cannot encode escaped, as stderr does
        sys.stdout.reconfigure(errors="backslashreplace")
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        print(f"{prog}: error: no such file or directory: {_show(missing[0])}", file=sys.stderr)
        return 2
    errors: list = []
    with bar(show_progress, desc="scanning", unit=" files", leave=False) as scanned:
        findings = list(find_cache_files(args.paths, lambda n: scanned.update(n - scanned.n),
                                         errors))
    errors = [(Path(e.filename), e.strerror or str(e)) for e in errors] \
        + [(f.path, f.reason) for f in findings if f.kind == "error"]
    for path, message in errors:
        print(f"cannot read {_show(path)}: {message}", file=sys.stderr)
    status = 1 if errors else 0
    report = print if args.dry_run or not (quiet and args.yes) else (lambda text: None)
    for f in findings:
        if f.kind == "skipped":
            report(f"skipped {_show(f.path)}: {f.reason}")
    removable = [f for f in findings if f.removable]
    if not removable:
        report("no legacy cache files found")
        return status
    total, n = freeable_bytes(removable), len(removable)
    if args.dry_run or not args.yes:
        for f in removable:
            print(f"would remove {_describe(f)}")
    if args.dry_run:
        n_temp = sum(f.kind == "temp" for f in removable)
        names = Counter(f.ident for f in removable)
        kept = sum(names[i] < f.nlink for i, f in {f.ident: f for f in removable}.items())
        print(f"would remove {n} file(s), freeing {_total(total)}"
              + (f"; {n_temp} of them leftover temporary file(s)" if n_temp else "")
              + (f"; {kept} hard-linked file(s) keep names outside the search and free nothing"
                 if kept else ""))
        return status
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"{prog}: error: refusing to remove {n} file(s) without a terminal to "
                  "confirm; pass --yes (or --dry-run to list them)", file=sys.stderr)
            return 2
        try:
            answer = input(f"Remove these {n} file(s), {_total(total)}? [y/N] ")
        except (EOFError, KeyboardInterrupt) as exc:
            print("\nnothing removed")
            return 130 if isinstance(exc, KeyboardInterrupt) else 1
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 0
    result = remove_cache_files(removable)
    for f in result.removed:
        report(f"removed {_describe(f)}")
    for f, message in result.failed:
        print(f"could not remove {_show(f.path)}: {message}", file=sys.stderr)
    report(f"removed {len(result.removed)} file(s), freed {_total(result.bytes_freed)}"
           + (f"; {len(result.failed)} failed" if result.failed else ""))
    return 1 if (result.failed or errors) else 0


def main(argv=None, prog: str = "clean_cache") -> int:
    """Run the tool on its own (``python migration/clean_cache.py``); returns the exit status."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.partition("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--progress", action="store_true",
                        help="count scanned files on stderr (default when stderr is a terminal)")
    args = parser.parse_args(argv)
    return run(args, prog, show_progress=args.progress or sys.stderr.isatty())


if __name__ == "__main__":
    sys.exit(main())
