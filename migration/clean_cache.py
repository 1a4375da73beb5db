"""Find and remove the group cache files the pre-refactor code left beside datasets.

Usage::

    python migration/clean_cache.py --dry-run PATH...   # list, remove nothing
    python migration/clean_cache.py --yes PATH...       # remove without asking

A file is removed only if its name is ``<stem>.g<int>k<int>.groups_cache.npz``
*and* it is an NPZ holding exactly the legacy cache's members
(``all_groups``, ``dataset_checksum``, ``gridsize``, ``overlap_factor``) with
the legacy dtypes and shapes, checked from the zip directory and the ``.npy``
headers without loading or unpickling anything. Leftover temporary files of
interrupted cache writes (``.<cache name>.<random>.tmp``) are removed too,
once they are an hour old. Files named like a cache but holding anything else
are reported as skipped; files that cannot be read are reported as errors.

A directory given on the command line may be a symbolic link (it is
followed, like ``find -H``); links met below it are neither followed nor
deleted. Every file is checked again right before it is removed: same file
(device and inode) in the same directory, still inside the root. Exit
status: 0 all good, 1 some files could not be read or removed, 2 usage
error, 130 interrupted at the question.
"""
from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

if not __package__:
    # Run as a script from a checkout that is not installed: the project's
    # packages live beside this directory.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ptycho_grouping.legacy_cache import (  # noqa: E402 (after the path set-up above)
    CACHE_NAME_RE, TEMP_NAME_RE, cache_file_problem)

__all__ = ["Finding", "CleanResult", "find_cache_files", "remove_cache_files", "main",
           "TEMP_MIN_AGE"]

PROG = "clean_cache"

#: Seconds a leftover temporary file must be unmodified before it is removed,
#: so that a cache write still in progress is not destroyed.
TEMP_MIN_AGE = 3600.0

# Never follow a link when opening a file to check it; never block on a FIFO.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
# Pin the directory while re-checking and unlinking (not available on Windows).
_DIR_FD = {os.open, os.lstat, os.unlink} <= os.supports_dir_fd

Ident = Tuple[int, int]


@dataclass(frozen=True)
class Finding:
    """A file named like a legacy cache (or its temporary file) and what to do with it.

    ``kind`` is ``"cache"`` or ``"temp"`` (removable), ``"skipped"`` (``reason``
    says why) or ``"error"`` (it could not be read: ``reason`` is the error).
    ``ident`` and ``dir_ident`` are the ``(st_dev, st_ino)`` of the file and of
    its directory at scan time, ``mtime_ns`` the file's modification time;
    ``root`` is the resolved root it was found under.
    """

    path: Path
    kind: str
    size: int = 0
    reason: str = ""
    ident: Optional[Ident] = None
    dir_ident: Optional[Ident] = None
    root: Optional[Path] = None
    mtime_ns: int = 0

    @property
    def is_cache(self) -> bool:
        return self.kind == "cache"

    @property
    def removable(self) -> bool:
        return self.kind in ("cache", "temp")


@dataclass
class CleanResult:
    """What a removal pass did."""

    removed: List[Finding] = field(default_factory=list)
    failed: List[Tuple[Finding, str]] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(f.size for f in self.removed)


def _ident(st: os.stat_result) -> Ident:
    return st.st_dev, st.st_ino


def _is_temp_name(name: str) -> bool:
    m = TEMP_NAME_RE.match(name)
    return bool(m and CACHE_NAME_RE.match(m["cache"]))


def _classify(dirpath: Path, name: str, root: Path, now: float) -> Optional[Finding]:
    """The finding for ``dirpath/name`` (None if it vanished during the scan)."""
    path = dirpath / name
    try:
        dir_ident = _ident(os.stat(dirpath))
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Finding(path, "error", reason=exc.strerror or str(exc))
    found = Finding(path, "cache", st.st_size, ident=_ident(st), dir_ident=dir_ident, root=root,
                    mtime_ns=st.st_mtime_ns)
    if stat.S_ISLNK(st.st_mode):
        return replace(found, kind="skipped", reason="symbolic link (not followed)")
    if not stat.S_ISREG(st.st_mode):
        return replace(found, kind="skipped", reason="not a regular file")
    if _is_temp_name(name):
        age = now - st.st_mtime
        if age < TEMP_MIN_AGE:
            return replace(found, kind="skipped", reason=(
                f"temporary file modified {age / 60:.0f} min ago: a cache write may still be "
                f"running (removed once {TEMP_MIN_AGE / 3600:g} h old)"))
        return replace(found, kind="temp")
    try:
        problem = _content_problem(str(path), None, found.ident)
    except OSError as exc:
        return replace(found, kind="error", reason=exc.strerror or str(exc))
    return found if problem is None else replace(found, kind="skipped", reason=problem)


def _content_problem(name: str, dir_fd: Optional[int], ident: Ident) -> Optional[str]:
    """Why the file is not a legacy cache (None if it is), read without following links."""
    fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as fh:
        if _ident(os.fstat(fd)) != ident:
            return "replaced by another file"
        return cache_file_problem(fh)


def _walk(root: Path, errors: Optional[list]) -> Iterator[Tuple[Path, List[str]]]:
    """``(directory, sorted file names)`` under ``root``; links below it are not followed."""
    def onerror(exc):
        if errors is not None:
            errors.append((Path(exc.filename or root), exc.strerror or str(exc)))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=onerror):
        dirnames.sort()  # in place: os.walk then descends in this order
        yield Path(dirpath), sorted(filenames)


def _scan_root(root: Path, errors: Optional[list], count: Callable[[], None],
               now: float) -> Iterator[Finding]:
    if not os.path.isdir(root):  # a file (a link to a file stays a link: not followed)
        if CACHE_NAME_RE.match(root.name) or _is_temp_name(root.name):
            found = _classify(root.parent, root.name, Path(os.path.realpath(root.parent)), now)
            if found is not None:
                yield found
        return
    real_root = Path(os.path.realpath(root))  # a link given as the root is followed
    for dirpath, filenames in _walk(root, errors):
        for name in filenames:
            count()
            if CACHE_NAME_RE.match(name) or _is_temp_name(name):
                found = _classify(dirpath, name, real_root, now)
                if found is not None:
                    yield found


def find_cache_files(roots: Iterable, progress: Optional[Callable[[int], None]] = None,
                     errors: Optional[list] = None, *, now: Optional[float] = None
                     ) -> Iterator[Finding]:
    """Every file under ``roots`` named like a legacy cache or its temporary file, classified.

    Parameters
    ----------
    roots : iterable of str or os.PathLike
        Directories (a symbolic link given here is followed) or files.
        Links below a root are not followed, so nothing outside it is visited.
    progress : callable, optional
        Called with the number of files seen every 1000 files.
    errors : list, optional
        Unreadable directories are appended as ``(path, message)``; the walk goes on.
    now : float, optional
        The time temporary files' ages are measured from (default: now).

    Yields
    ------
    Finding
        Once per file: overlapping roots and several names of one file (hard
        links) yield it once, keyed by ``(st_dev, st_ino)``.
    """
    now = time.time() if now is None else now
    seen_files = [0]
    first_name = {}

    def count():
        seen_files[0] += 1
        if progress is not None and seen_files[0] % 1000 == 0:
            progress(seen_files[0])

    for root in map(Path, roots):
        for found in _scan_root(root, errors, count, now):
            if found.ident is None:
                yield found
                continue
            first = first_name.setdefault(found.ident, found.path)
            if first == found.path or os.path.realpath(first) == os.path.realpath(found.path):
                if first is found.path:
                    yield found
                continue  # the same file reached again through overlapping roots
            if found.removable:
                yield replace(found, kind="skipped",
                              reason=f"another name (hard link) of {first}, listed already")


def _removal_problem(f: Finding, dir_fd: Optional[int], now: float) -> Optional[str]:
    """Why ``f`` must not be removed now (None if it may), given its directory's fd."""
    name = f.path.name if dir_fd is not None else str(f.path)
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return "vanished since the scan"
    if _ident(st) != f.ident or not stat.S_ISREG(st.st_mode):
        return "replaced by another file since the scan; left alone"
    if st.st_mtime_ns != f.mtime_ns:
        # Written to since the user saw it (the old code rewrote caches in
        # place; a temporary file may belong to a write that resumed).
        return "modified since the scan; left alone"
    if f.kind == "temp":
        return None
    problem = _content_problem(name, dir_fd, f.ident)
    return None if problem is None else f"no longer a legacy cache file ({problem}); left alone"


def _remove_one(f: Finding, now: float) -> Optional[str]:
    """Remove ``f`` if it is still what was found, where it was found; else say why not."""
    parent = f.path.parent
    real_parent = Path(os.path.realpath(parent))
    if f.root is not None and not (real_parent == f.root or f.root in real_parent.parents):
        return f"its directory now resolves to {real_parent}, outside {f.root}; left alone"
    try:
        dir_fd = os.open(parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if _DIR_FD else None
    except FileNotFoundError:
        return "vanished since the scan (its directory is gone)"
    try:
        dir_st = os.fstat(dir_fd) if dir_fd is not None else os.stat(parent)
        if _ident(dir_st) != f.dir_ident:
            return "its directory was replaced since the scan; left alone"
        problem = _removal_problem(f, dir_fd, now)
        if problem is None:
            os.unlink(f.path.name if dir_fd is not None else f.path, dir_fd=dir_fd)
        return problem
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def remove_cache_files(findings: Iterable[Finding], *, dry_run: bool = False,
                       now: Optional[float] = None) -> CleanResult:
    """Remove the removable findings, each re-checked right before removal.

    A file is left alone (and listed in ``failed`` with the reason) when it
    vanished, was replaced by another file, was modified, or is no longer a
    cache; and when its directory was replaced or now resolves outside the
    root it was found under.
    """
    now = time.time() if now is None else now
    result = CleanResult()
    for finding in findings:
        if not finding.removable:
            continue
        if dry_run:
            result.removed.append(finding)
            continue
        try:
            problem = _remove_one(finding, now)
        except OSError as exc:
            problem = exc.strerror or str(exc)
        if problem is None:
            result.removed.append(finding)
        else:
            result.failed.append((finding, problem))
    return result


def _human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _total(n: int) -> str:
    """A total: ``"512 bytes"``, or ``"1.5 KiB (1536 bytes)"`` when rounding hides bytes."""
    return _human(n) if n < 1024 else f"{_human(n)} ({n} bytes)"


def _describe(f: Finding) -> str:
    what = "leftover temporary file " if f.kind == "temp" else ""
    return f"{what}{f.path} ({_human(f.size)})"


EPILOG = f"""\
what is removed:
  PATH/**/<stem>.g<G>k<K>.groups_cache.npz whose contents are a legacy cache
  (checked from the zip directory and array headers; nothing is unpickled),
  and leftover .<cache name>.<random>.tmp files of interrupted cache writes
  once they are {TEMP_MIN_AGE / 3600:g} hour old (younger ones may be a write in progress).
  Look-alikes, datasets and symbolic links are never removed.

symbolic links:
  a directory PATH that is a symbolic link is followed (like find -H);
  links met below a PATH are never followed nor removed.

exit status: 0 all good, 1 some files could not be read or removed,
2 usage error, 130 interrupted at the question."""


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Find and remove legacy *.g<G>k<K>.groups_cache.npz files "
                    "left by the pre-refactor grouping code.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="directories (or files) to search")
    parser.add_argument("-n", "--dry-run", action="store_true",
                        help="list what would be removed and the space it would free")
    parser.add_argument("-y", "--yes", action="store_true", help="remove without asking")
    parser.add_argument("--progress", action="store_true",
                        help="count scanned files on stderr (default when stderr is a terminal)")
    return parser


def _scan(paths, show_progress: bool) -> Tuple[List[Finding], list]:
    """All findings and unreadable directories, with a progress line on stderr if asked."""
    shown = [0]

    def progress(n):
        text = f"scanned {n} files..."
        shown[0] = len(text)
        print(f"\r{text}", end="", file=sys.stderr, flush=True)

    errors: list = []
    findings = list(find_cache_files(paths, progress if show_progress else None, errors))
    if shown[0]:
        print("\r" + " " * shown[0] + "\r", end="", file=sys.stderr, flush=True)  # clear it
    return findings, errors


def _confirm(prog: str, removable: List[Finding], total: int) -> Optional[int]:
    """None to go ahead, else the exit status (the user declined or could not answer)."""
    if not sys.stdin.isatty():
        print(f"{prog}: error: refusing to remove {len(removable)} file(s) without a terminal "
              "to confirm; pass --yes (or --dry-run to list them)", file=sys.stderr)
        return 2
    try:
        answer = input(f"Remove these {len(removable)} file(s), {_total(total)}? [y/N] ")
    except EOFError:
        print("\nnothing removed")
        return 1
    except KeyboardInterrupt:
        print("\nnothing removed")
        return 130
    if answer.strip().lower() not in ("y", "yes"):
        print("nothing removed")
        return 0
    return None


def main(argv=None, prog: str = PROG) -> int:
    """Run the tool; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        print(f"{prog}: error: no such file or directory: {missing[0]}", file=sys.stderr)
        return 2
    findings, errors = _scan(args.paths, args.progress or sys.stderr.isatty())
    errors += [(f.path, f.reason) for f in findings if f.kind == "error"]
    for path, message in errors:
        print(f"cannot read {path}: {message}", file=sys.stderr)
    for f in findings:
        if f.kind == "skipped":
            print(f"skipped {f.path}: {f.reason}")
    removable = [f for f in findings if f.removable]
    total = sum(f.size for f in removable)
    n_temp = sum(f.kind == "temp" for f in removable)
    temp_note = f"; {n_temp} of them leftover temporary file(s)" if n_temp else ""
    status = 1 if errors else 0
    if not removable:
        print("no legacy cache files found")
        return status
    if args.dry_run or not args.yes:
        for f in removable:
            print(f"would remove {_describe(f)}")
    if args.dry_run:
        print(f"would remove {len(removable)} file(s), freeing {_total(total)}{temp_note}")
        return status
    if not args.yes:
        declined = _confirm(prog, removable, total)
        if declined is not None:
            return declined
    result = remove_cache_files(removable)
    for f in result.removed:
        print(f"removed {_describe(f)}")
    for f, message in result.failed:
        print(f"could not remove {f.path}: {message}", file=sys.stderr)
    print(f"removed {len(result.removed)} file(s), freed {_total(result.bytes_freed)}"
          + (f"; {len(result.failed)} failed" if result.failed else ""))
    return 1 if (result.failed or errors) else status


if __name__ == "__main__":
    sys.exit(main())
