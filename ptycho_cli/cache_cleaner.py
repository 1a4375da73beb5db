"""Find and remove the group cache files the pre-refactor code left beside datasets.

Usage::

    ptycho-group clean-cache --dry-run PATH...   # list, remove nothing
    ptycho-group clean-cache --yes PATH...       # remove without asking

(``python migration/clean_cache.py`` in a checkout runs the same code.)

A file is removed only if its name is ``<stem>.g<int>k<int>.groups_cache.npz``
*and* ``np.load(..., allow_pickle=False)`` would read it as a legacy cache
(:func:`~ptycho_grouping.legacy_cache.cache_file_problem`: a zip at the
file's first byte holding exactly the legacy members, dtypes and shapes,
read from the zip directory and ``.npy`` headers; nothing is unpickled). The
temporary file of a cache write (any release's name, see
:func:`_is_temp_name`) is removed when it is stale, its writer's lock free
(:func:`~ptycho_grouping.atomic_write.lock_if_stale`; earlier releases took
no lock), and it holds what a cache write begins with: nothing yet, or a
zip whose first member is a legacy cache member. Anything else named like
a cache is reported as skipped; files that cannot be read as errors.

The scan is ``os.walk``: a directory given on the command line may be a
symbolic link (followed, like ``find -H``); links below it are neither
followed nor deleted; any depth works. Each file is removed by name after
it is opened without following links (relative to its directory, opened
and checked to be the one scanned) and checked through that descriptor:
the file scanned (same device and inode), unmodified, still a cache (a
temporary one's lock taken and held). **The remaining window:** a rename by
another process between that check and the unlink puts another file under
the name, and that file's name is what gets unlinked. Do not clean a
directory that a running job is reorganising.

Every name of a hard-linked cache under the roots is removed; its space
counts as freed only when its last name goes. Names are printed with
undecodable bytes and control characters escaped (``\\xff``, ``\\n``),
whatever the output encoding. Exit status: 0 all good, 1 some files could
not be read or removed, 2 usage error, 130 interrupted at the question.
"""
from __future__ import annotations

import argparse
import errno
import os
import stat
import struct
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

from tqdm import tqdm

from ptycho_grouping.atomic_write import TEMP_NAME_RE as WRITER_TEMP_RE, lock_if_stale
from ptycho_grouping.legacy_cache import CACHE_KEYS, CACHE_NAME_RE, TEMP_NAME_RE, \
    cache_file_problem

__all__ = ["Finding", "CleanResult", "find_cache_files", "remove_cache_files", "add_arguments",
           "run", "main"]

PROG = "clean_cache"

# Never follow a link when opening a file to check it; never block on a FIFO.
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))
# Open and unlink relative to the directory checked (not available on Windows).
_DIR_FD = {os.open, os.lstat, os.unlink} <= os.supports_dir_fd
_CACHE_MEMBERS = {f"{key}.npy".encode() for key in CACHE_KEYS}

Ident = Tuple[int, int]


@dataclass(frozen=True)
class Finding:
    """A file named like a legacy cache (or its temporary file) and what to do with it.

    ``kind``: ``"cache"``/``"temp"`` (removable), ``"skipped"`` (``reason`` says
    why) or ``"error"`` (unreadable). ``ident``/``dir_ident``: ``(st_dev,
    st_ino)`` of the file and its directory at scan time; ``root``: the
    resolved root it was found under; ``nlink``: its number of names.
    """

    path: Path
    kind: str
    size: int = 0
    reason: str = ""
    ident: Optional[Ident] = None
    dir_ident: Optional[Ident] = None
    root: Optional[Path] = None
    mtime_ns: int = 0
    nlink: int = 1

    @property
    def is_cache(self) -> bool:
        return self.kind == "cache"

    @property
    def removable(self) -> bool:
        return self.kind in ("cache", "temp")


@dataclass
class CleanResult:
    """What a removal pass did; ``bytes_freed`` counts a file when its last name went."""

    removed: List[Finding] = field(default_factory=list)
    failed: List[Tuple[Finding, str]] = field(default_factory=list)
    bytes_freed: int = 0


def _ident(st: os.stat_result) -> Ident:
    return st.st_dev, st.st_ino


def _is_temp_name(name: str) -> bool:
    """True for the temporary name of a cache write by any release.

    ``.<cache>.<random>.tmp`` (0.1's ``mkstemp``, and today's writer) or
    ``.<cache>.<pid>-<start>-<pidns>@<host>.<hex>.tmp`` (late 0.1 and 0.2).
    """
    m = TEMP_NAME_RE.match(name) or WRITER_TEMP_RE.match(name)
    return bool(m and CACHE_NAME_RE.match(m[1]))


def _begun_cache_problem(fh) -> Optional[str]:
    """Why ``fh`` is not what a cache write begins with: empty, or a zip led by a cache member."""
    fh.seek(0)
    header = fh.read(30)
    if not header:
        return None
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        return "it does not start with a zip entry"
    name = fh.read(struct.unpack("<H", header[26:28])[0])
    if name not in _CACHE_MEMBERS:
        return f"its first zip member is {name.decode('utf-8', 'replace')!r}"
    return None


def _problem(fd: int, fh, temp: bool) -> Optional[str]:
    """Why the open file must be kept (None: it may go), checked through its descriptor.

    A temporary file's lock is taken here and held until ``fd`` is closed.
    """
    if not temp:
        return cache_file_problem(fh)
    if not lock_if_stale(fd):
        return "temporary file of a cache write that is still running (its writer holds its lock)"
    problem = _begun_cache_problem(fh)
    return problem and f"temporary file of a cache write, but not the start of a cache ({problem})"


def _classify(dirpath: Path, name: str, root: Path) -> Optional[Finding]:
    """The finding for ``dirpath/name`` (None if it vanished during the scan)."""
    path = dirpath / name
    try:
        dir_ident = _ident(os.stat(dirpath))
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Finding(path, "error", reason=exc.strerror or str(exc))
    found = Finding(path, "temp" if _is_temp_name(name) else "cache", st.st_size,
                    ident=_ident(st), dir_ident=dir_ident, root=root, mtime_ns=st.st_mtime_ns,
                    nlink=st.st_nlink)
    if stat.S_ISLNK(st.st_mode):
        return replace(found, kind="skipped", reason="symbolic link (not followed)")
    if not stat.S_ISREG(st.st_mode):
        return replace(found, kind="skipped", reason="not a regular file")
    try:
        fd = os.open(path, _OPEN_FLAGS)
        with os.fdopen(fd, "rb") as fh:
            problem = ("replaced by another file" if _ident(os.fstat(fd)) != found.ident
                       else _problem(fd, fh, found.kind == "temp"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return replace(found, kind="error", reason=exc.strerror or str(exc))
    if problem is None:
        return found
    return replace(found, kind="skipped",
                   reason=problem + ("; left alone" if found.kind == "temp" else ""))


def _walk(root, onerror: Callable) -> Iterator[Tuple[str, List[str], List[str]]]:
    """``os.walk(root)``, sorted, depth first, and iterative at any depth.

    ``os.walk`` recurses before Python 3.12: here it walks one directory at a
    time and the subdirectories (not links to them) go on an explicit stack.
    """
    stack = [os.fspath(root)]
    while stack:
        for dirpath, dirnames, filenames in os.walk(stack.pop(), onerror=onerror):
            dirnames.sort()
            yield dirpath, dirnames, sorted(filenames)
            stack.extend(os.path.join(dirpath, d) for d in reversed(dirnames)
                         if not os.path.islink(os.path.join(dirpath, d)))
            dirnames.clear()  # os.walk descends no further


def _is_candidate(name: str) -> bool:
    return bool(CACHE_NAME_RE.match(name)) or _is_temp_name(name)


def _scan_root(root: Path, errors: Optional[list], count: Callable[[], None]) -> Iterator[Finding]:
    if not os.path.isdir(root):  # a file (a link to a file stays a link: not followed)
        if _is_candidate(root.name):
            found = _classify(root.parent, root.name, Path(os.path.realpath(root.parent)))
            if found is not None:
                yield found
        return
    real_root = Path(os.path.realpath(root))  # a link given as the root is followed

    def unreadable(exc: OSError) -> None:
        if errors is not None:
            errors.append((Path(exc.filename), exc.strerror or str(exc)))

    for dirpath, dirnames, filenames in _walk(root, unreadable):
        for name in filenames:
            count()
        # Links to directories and directories named like caches are reported too.
        for name in sorted(filter(_is_candidate, filenames + dirnames)):
            found = _classify(Path(dirpath), name, real_root)
            if found is not None:
                yield found


def find_cache_files(roots: Iterable, progress: Optional[Callable[[int], None]] = None,
                     errors: Optional[list] = None, *, now=None) -> Iterator[Finding]:
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
    now : ignored
        Kept for callers of earlier releases (temporary files are judged by lock, not age).

    Yields
    ------
    Finding
        Once per name: a name reached again through overlapping roots is
        yielded once; every name of a hard-linked file is yielded.
    """
    seen_files = [0]
    seen_names = set()

    def count():
        seen_files[0] += 1
        if progress is not None and seen_files[0] % 1000 == 0:
            progress(seen_files[0])

    for root in map(Path, roots):
        for found in _scan_root(root, errors, count):
            key = (os.path.realpath(found.path.parent), found.path.name)
            if key not in seen_names:
                seen_names.add(key)
                yield found


def freeable_bytes(findings: Iterable[Finding]) -> int:
    """Bytes that removing the removable ``findings`` would free.

    A hard-linked file counts once, and only when all its names are among
    them: a name left elsewhere keeps the data on disk.
    """
    names = defaultdict(list)
    for f in findings:
        if f.removable:
            names[f.ident].append(f)
    return sum(group[0].size for group in names.values() if len(group) >= group[0].nlink)


def _remove_one(f: Finding) -> Tuple[Optional[str], int]:
    """Remove ``f`` if it is still what was found, where it was found.

    Returns ``(why not, or None; bytes freed)``.
    """
    parent = f.path.parent
    real_parent = Path(os.path.realpath(parent))
    if f.root is not None and not (real_parent == f.root or f.root in real_parent.parents):
        return f"its directory now resolves to {_show(real_parent)}, outside {_show(f.root)}; " \
               "left alone", 0
    try:
        dir_fd = os.open(parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if _DIR_FD else None
    except FileNotFoundError:
        return "vanished since the scan (its directory is gone)", 0
    name = f.path.name if dir_fd is not None else str(f.path)
    try:
        dir_st = os.fstat(dir_fd) if dir_fd is not None else os.stat(parent)
        if _ident(dir_st) != f.dir_ident:
            return "its directory was replaced since the scan; left alone", 0
        try:
            fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return "vanished since the scan", 0
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symbolic link now: O_NOFOLLOW refused it
                return "replaced by another file since the scan; left alone", 0
            raise
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if _ident(st) != f.ident or not stat.S_ISREG(st.st_mode):
                return "replaced by another file since the scan; left alone", 0
            if st.st_mtime_ns != f.mtime_ns:
                # Written to since the user saw it (the old code rewrote caches in
                # place; a temporary file may belong to a write that resumed).
                return "modified since the scan; left alone", 0
            problem = _problem(fd, fh, f.kind == "temp")
            if problem is not None:
                return (f"{problem}; left alone" if f.kind == "temp" else
                        f"no longer a legacy cache file ({problem}); left alone"), 0
            # Still ours under that name? (A rename landing after this lstat, before
            # the unlink, is the window the module docstring describes.)
            if _ident(os.lstat(name, dir_fd=dir_fd)) != f.ident:
                return "replaced by another file since the scan; left alone", 0
            os.unlink(name, dir_fd=dir_fd)
            return None, f.size if st.st_nlink == 1 else 0
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def remove_cache_files(findings: Iterable[Finding], *, dry_run: bool = False,
                       now=None) -> CleanResult:
    """Remove the removable findings, each re-checked through an open descriptor first.

    A file is left alone (and listed in ``failed`` with the reason) when it
    vanished, was replaced by another file, was modified, is no longer a
    cache (a temporary file: its writer is running again); and when its
    directory was replaced or now resolves outside the root it was found
    under. ``now`` is ignored (kept for callers of earlier releases).
    """
    findings = [f for f in findings if f.removable]
    result = CleanResult()
    if dry_run:
        result.removed = findings
        result.bytes_freed = freeable_bytes(findings)
        return result
    for finding in findings:
        try:
            problem, freed = _remove_one(finding)
        except OSError as exc:
            problem, freed = exc.strerror or str(exc), 0
        if problem is None:
            result.removed.append(finding)
            result.bytes_freed += freed
        else:
            result.failed.append((finding, problem))
    return result


# --- output: any name, any stdout encoding ----------------------------------------

def _show(path) -> str:
    """``path`` as printable text: undecodable bytes as ``\\xNN``, control characters escaped."""
    text = os.fsencode(path).decode("utf-8", "surrogateescape")
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() and ch != "\\" else
                   f"\\x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF else  # not UTF-8
                   repr(ch)[1:-1] for ch in text)


def _say(text: str = "", file=None, **kwargs) -> None:
    """``print`` that cannot fail on encoding: what the stream cannot encode is escaped."""
    file = sys.stdout if file is None else file
    encoding = getattr(file, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        pass
    print(text, file=file, **kwargs)


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
    links = f"; one of {f.nlink} hard-linked names" if f.nlink > 1 else ""
    return f"{what}{_show(f.path)} ({_human(f.size)}{links})"


EPILOG = """\
what is removed:
  PATH/**/<stem>.g<G>k<K>.groups_cache.npz that np.load(allow_pickle=False)
  reads as a legacy cache (a zip starting at the first byte, the legacy
  members, dtypes and shapes, checked from the zip directory and array
  headers; nothing is unpickled), and the temporary files of interrupted
  cache writes (.<cache name>.<...>.tmp) whose writer is gone (its lock on
  the file is free) and that hold the start of a cache (or nothing yet).
  Look-alikes, datasets and symbolic links are never removed. Every name of
  a hard-linked cache is removed; its space is freed with the last.

symbolic links:
  a directory PATH that is a symbolic link is followed (like find -H);
  links met below a PATH are never followed nor removed.

exit status: 0 all good, 1 some files could not be read or removed,
2 usage error, 130 interrupted at the question."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The tool's own arguments (paths, ``--dry-run``, ``--yes``), for any parser."""
    parser.epilog = EPILOG
    parser.add_argument("paths", nargs="+", metavar="PATH", help="directories (or files) to search")
    parser.add_argument("-n", "--dry-run", action="store_true",
                        help="list what would be removed and the space it would free")
    parser.add_argument("-y", "--yes", action="store_true", help="remove without asking")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Find and remove legacy *.g<G>k<K>.groups_cache.npz files "
                    "left by the pre-refactor grouping code.")
    add_arguments(parser)
    parser.add_argument("--progress", action="store_true",
                        help="count scanned files on stderr (default when stderr is a terminal)")
    return parser


def stderr_bar(enabled: bool, **kwargs) -> tqdm:
    """A tqdm bar on stderr (inert unless ``enabled``): the default ``make_bar`` of :func:`run`."""
    return tqdm(disable=not enabled, file=sys.stderr, **kwargs)


def _scan(paths, show_progress: bool, make_bar) -> Tuple[List[Finding], list]:
    """All findings and unreadable directories, counting scanned files on stderr if asked."""
    with make_bar(show_progress, desc="scanning", unit=" files", leave=False) as bar:
        errors: list = []
        findings = list(find_cache_files(paths, lambda n: bar.update(n - bar.n), errors))
    return findings, errors


def _confirm(prog: str, removable: List[Finding], total: int) -> Optional[int]:
    """None to go ahead, else the exit status (the user declined or could not answer)."""
    if not sys.stdin.isatty():
        _say(f"{prog}: error: refusing to remove {len(removable)} file(s) without a terminal "
             "to confirm; pass --yes (or --dry-run to list them)", file=sys.stderr)
        return 2
    try:
        answer = input(f"Remove these {len(removable)} file(s), {_total(total)}? [y/N] ")
    except EOFError:
        _say("\nnothing removed")
        return 1
    except KeyboardInterrupt:
        _say("\nnothing removed")
        return 130
    if answer.strip().lower() not in ("y", "yes"):
        _say("nothing removed")
        return 0
    return None


def _kept_links_note(removable: List[Finding]) -> str:
    names = defaultdict(int)
    for f in removable:
        names[f.ident] += 1
    kept = sum(1 for f in {f.ident: f for f in removable}.values() if names[f.ident] < f.nlink)
    return (f"; {kept} hard-linked file(s) keep names outside the search and free nothing"
            if kept else "")


def run(args: argparse.Namespace, prog: str = PROG, *, show_progress: bool = False,
        quiet: bool = False, make_bar: Callable[..., tqdm] = stderr_bar) -> int:
    """Find, list, confirm and remove, as parsed by :func:`add_arguments`; the exit status.

    ``quiet`` leaves out the list of what was removed under ``--yes`` (errors
    still print); a dry run's list and the question's list are always shown,
    since they are what was asked for. ``make_bar(enabled, **tqdm_kwargs)``
    makes the scan's progress bar (a host command passes its own, sized for
    its terminal).
    """
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        _say(f"{prog}: error: no such file or directory: {_show(missing[0])}", file=sys.stderr)
        return 2
    findings, errors = _scan(args.paths, show_progress, make_bar)
    errors += [(f.path, f.reason) for f in findings if f.kind == "error"]
    for path, message in errors:
        _say(f"cannot read {_show(path)}: {message}", file=sys.stderr)
    silent = quiet and args.yes and not args.dry_run
    report = (lambda text="": None) if silent else _say
    for f in findings:
        if f.kind == "skipped":
            report(f"skipped {_show(f.path)}: {f.reason}")
    removable = [f for f in findings if f.removable]
    total = freeable_bytes(removable)
    n_temp = sum(f.kind == "temp" for f in removable)
    temp_note = f"; {n_temp} of them leftover temporary file(s)" if n_temp else ""
    temp_note += _kept_links_note(removable)
    status = 1 if errors else 0
    if not removable:
        report("no legacy cache files found")
        return status
    if args.dry_run or not args.yes:
        for f in removable:
            _say(f"would remove {_describe(f)}")
    if args.dry_run:
        _say(f"would remove {len(removable)} file(s), freeing {_total(total)}{temp_note}")
        return status
    if not args.yes:
        declined = _confirm(prog, removable, total)
        if declined is not None:
            return declined
    result = remove_cache_files(removable)
    for f in result.removed:
        report(f"removed {_describe(f)}")
    for f, message in result.failed:
        _say(f"could not remove {_show(f.path)}: {message}", file=sys.stderr)
    report(f"removed {len(result.removed)} file(s), freed {_total(result.bytes_freed)}"
           + (f"; {len(result.failed)} failed" if result.failed else ""))
    return 1 if (result.failed or errors) else status


def main(argv=None, prog: str = PROG) -> int:
    """Run the tool on its own (``python migration/clean_cache.py``); returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    return run(args, prog, show_progress=args.progress or sys.stderr.isatty())


if __name__ == "__main__":
    sys.exit(main())
