"""Find and remove the group cache files the pre-refactor code left beside datasets.

Usage::

    ptycho-group clean-cache --dry-run PATH...   # list, remove nothing
    ptycho-group clean-cache --yes PATH...       # remove without asking

(``python migration/clean_cache.py`` in a checkout runs the same code.)

A file is removed only if its name is ``<stem>.g<int>k<int>.groups_cache.npz``
(or the temporary name of an interrupted write of one) *and* ``np.load(...,
allow_pickle=False)`` would read it as a legacy cache: a zip that starts at
the file's first byte (a user file with a cache appended is not one) holding
exactly the legacy cache's members (``all_groups``, ``dataset_checksum``,
``gridsize``, ``overlap_factor``) with the legacy dtypes and shapes, checked
from the zip directory and the ``.npy`` headers without loading or
unpickling anything. Temporary files pass the same check (a write killed
half-way left something else: it is reported, not removed) and must also
have been left by a writer that is gone (a writer on this host that no
longer runs) or be an hour old. Files named like a cache but holding
anything else are reported as skipped; files that cannot be read are
reported as errors.

A directory given on the command line may be a symbolic link (it is
followed, like ``find -H``); links met below it are neither followed nor
deleted; the walk is iterative (any depth). A file is removed by identity:
it is renamed to a private name in its directory, checked there (same
device and inode as scanned, unmodified, still a cache) and only then
unlinked; anything else found under the private name is put back. Every
name of a hard-linked cache under the roots is removed; its space counts as
freed only when its last name goes. Names are printed with undecodable bytes
and control characters escaped (``\\xff``, ``\\n``), whatever the output
encoding. Exit status: 0 all good, 1 some files could not be read or
removed, 2 usage error, 130 interrupted at the question.
"""
from __future__ import annotations

import argparse
import os
import secrets
import stat
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

from tqdm import tqdm

from ptycho_grouping.atomic_write import TEMP_NAME_RE as WRITER_TEMP_RE, writer_is_gone
from ptycho_grouping.legacy_cache import CACHE_NAME_RE, TEMP_NAME_RE, cache_file_problem

__all__ = ["Finding", "CleanResult", "find_cache_files", "remove_cache_files", "add_arguments",
           "run", "main", "TEMP_MIN_AGE"]

PROG = "clean_cache"

#: Seconds a leftover temporary file must be unmodified before it is removed
#: when its writer cannot be shown to be gone, so that a cache write still in
#: progress is not destroyed.
TEMP_MIN_AGE = 3600.0

# Never follow a link when opening a file to check it; never block on a FIFO.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
# Pin the directory while re-checking and removing (not available on Windows).
_DIR_FD = {os.open, os.lstat, os.unlink, os.rename, os.link} <= os.supports_dir_fd
# What a file being removed is renamed to first: private to this run.
_PRIVATE_PREFIX = ".clean-cache-removing."

Ident = Tuple[int, int]


@dataclass(frozen=True)
class Finding:
    """A file named like a legacy cache (or its temporary file) and what to do with it.

    ``kind`` is ``"cache"`` or ``"temp"`` (removable), ``"skipped"`` (``reason``
    says why) or ``"error"`` (it could not be read: ``reason`` is the error).
    ``ident`` and ``dir_ident`` are the ``(st_dev, st_ino)`` of the file and of
    its directory at scan time, ``mtime_ns`` the file's modification time and
    ``nlink`` its number of names (hard links); ``root`` is the resolved root
    it was found under.
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
    """What a removal pass did.

    ``bytes_freed`` counts a file's size when its last name was removed (a
    hard-linked cache frees nothing while another name remains).
    """

    removed: List[Finding] = field(default_factory=list)
    failed: List[Tuple[Finding, str]] = field(default_factory=list)
    bytes_freed: int = 0


def _ident(st: os.stat_result) -> Ident:
    return st.st_dev, st.st_ino


def _is_temp_name(name: str) -> bool:
    """True for the temporary name of a cache write, this version's or an older one's."""
    m = TEMP_NAME_RE.match(name)
    if m and CACHE_NAME_RE.match(m["cache"]):
        return True
    m = WRITER_TEMP_RE.match(name)
    return bool(m and CACHE_NAME_RE.match(m["target"]))


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
                    mtime_ns=st.st_mtime_ns, nlink=st.st_nlink)
    if stat.S_ISLNK(st.st_mode):
        return replace(found, kind="skipped", reason="symbolic link (not followed)")
    if not stat.S_ISREG(st.st_mode):
        return replace(found, kind="skipped", reason="not a regular file")
    try:
        problem = _content_problem(str(path), None, found.ident)
    except OSError as exc:
        return replace(found, kind="error", reason=exc.strerror or str(exc))
    if not _is_temp_name(name):
        return found if problem is None else replace(found, kind="skipped", reason=problem)
    if problem is not None:
        return replace(found, kind="skipped", reason=(
            f"temporary file of a cache write, but not a complete cache ({problem}); "
            "left alone"))
    if writer_is_gone(name):
        return replace(found, kind="temp")
    age = now - st.st_mtime
    if age < TEMP_MIN_AGE:
        return replace(found, kind="skipped", reason=(
            f"temporary file modified {age / 60:.0f} min ago: a cache write may still be "
            f"running (removed once {TEMP_MIN_AGE / 3600:g} h old)"))
    return replace(found, kind="temp")


def _content_problem(name: str, dir_fd: Optional[int], ident: Ident) -> Optional[str]:
    """Why the file is not a legacy cache (None if it is), read without following links."""
    fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as fh:
        if _ident(os.fstat(fd)) != ident:
            return "replaced by another file"
        return cache_file_problem(fh)


def _walk(root: Path, errors: Optional[list]) -> Iterator[Tuple[Path, List[str]]]:
    """``(directory, sorted file names)`` under ``root``, depth first, sorted, iteratively.

    Links below ``root`` are not followed. An explicit stack instead of
    recursion (``os.walk`` recurses on older Pythons) keeps any depth working.
    """
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as exc:
            if errors is not None:
                errors.append((directory, exc.strerror or str(exc)))
            continue
        files, subdirs = [], []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            (subdirs if is_dir else files).append(entry.name)
        yield directory, sorted(files)
        stack.extend(directory / name for name in sorted(subdirs, reverse=True))


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
        Once per name: a name reached again through overlapping roots is
        yielded once; every name of a hard-linked file is yielded (each is
        removed; :attr:`Finding.nlink` tells how many the file has).
    """
    now = time.time() if now is None else now
    seen_files = [0]
    seen_names = set()

    def count():
        seen_files[0] += 1
        if progress is not None and seen_files[0] % 1000 == 0:
            progress(seen_files[0])

    for root in map(Path, roots):
        for found in _scan_root(root, errors, count, now):
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


def _precheck(f: Finding, name: str, dir_fd: Optional[int]) -> Optional[str]:
    """Why ``f`` must not be touched (None if it may be moved aside for removal)."""
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
    return None


def _verify_moved(f: Finding, private: str, dir_fd: Optional[int]) -> Tuple[Optional[str], int]:
    """``(why not to unlink, its link count)`` for what now sits under ``private``.

    Nobody else knows the private name, so what is checked here is what gets
    unlinked: a file swapped in under the original name by a racing rename
    is caught here and put back.
    """
    st = os.lstat(private, dir_fd=dir_fd)
    problem = _precheck(f, private, dir_fd)
    if problem is None:
        content = _content_problem(private, dir_fd, f.ident)
        if content is not None:
            problem = f"no longer a legacy cache file ({content}); left alone"
    return problem, st.st_nlink


def _put_back(private: str, name: str, dir_fd: Optional[int]) -> Optional[str]:
    """Return the file under ``private`` to ``name`` without overwriting anything there."""
    try:
        # link() fails if the name was taken meanwhile, where rename would overwrite it.
        os.link(private, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        return f"its name was taken meanwhile; it is kept as {private}"
    except OSError:  # no hard links on this filesystem: check, then rename
        try:
            os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            os.rename(private, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return None
        return f"its name was taken meanwhile; it is kept as {private}"
    try:
        os.unlink(private, dir_fd=dir_fd)
    except OSError as exc:
        return f"it is back under its name, and also under {private} ({exc.strerror or exc})"
    return None


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
    try:
        dir_st = os.fstat(dir_fd) if dir_fd is not None else os.stat(parent)
        if _ident(dir_st) != f.dir_ident:
            return "its directory was replaced since the scan; left alone", 0
        at = (lambda n: n) if dir_fd is not None else (lambda n: str(parent / n))
        name, private = at(f.path.name), at(_PRIVATE_PREFIX + secrets.token_hex(8))
        problem = _precheck(f, name, dir_fd)
        if problem is not None:
            return problem, 0
        try:
            os.rename(name, private, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except FileNotFoundError:
            return "vanished since the scan", 0
        try:
            problem, nlink = _verify_moved(f, private, dir_fd)
            if problem is None:
                os.unlink(private, dir_fd=dir_fd)
                return None, f.size if nlink == 1 else 0
        except OSError as exc:
            problem = exc.strerror or str(exc)
        kept = _put_back(private, name, dir_fd)
        return problem if kept is None else f"{problem}; {kept}", 0
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def remove_cache_files(findings: Iterable[Finding], *, dry_run: bool = False,
                       now: Optional[float] = None) -> CleanResult:
    """Remove the removable findings, each re-checked right before removal.

    A file is left alone (and listed in ``failed`` with the reason) when it
    vanished, was replaced by another file, was modified, or is no longer a
    cache; and when its directory was replaced or now resolves outside the
    root it was found under. ``now`` is kept for compatibility (unused).
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

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _show(path) -> str:
    """``path`` as printable text: undecodable bytes as ``\\xNN``, control characters escaped.

    A name that needs no escaping is shown as it is.
    """
    text = os.fsencode(path).decode("utf-8", "surrogateescape")
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


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


EPILOG = f"""\
what is removed:
  PATH/**/<stem>.g<G>k<K>.groups_cache.npz that np.load(allow_pickle=False)
  reads as a legacy cache (a zip starting at the first byte, the legacy
  members, dtypes and shapes, checked from the zip directory and array
  headers; nothing is unpickled), and the temporary files of interrupted
  cache writes (.<cache name>.<...>.tmp) that hold a complete cache and whose
  writer is gone or that are {TEMP_MIN_AGE / 3600:g} hour old (younger ones may be a write in
  progress). Look-alikes, datasets and symbolic links are never removed.
  Every name of a hard-linked cache is removed; its space is freed with the last.

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
