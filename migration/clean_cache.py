"""Find and remove the group cache files the pre-refactor code left beside datasets.

Usage::

    python migration/clean_cache.py --dry-run PATH...   # list, remove nothing
    python migration/clean_cache.py --yes PATH...       # remove without asking

A file is removed only if its name is ``<stem>.g<int>k<int>.groups_cache.npz``
*and* it is an NPZ whose members are exactly the legacy cache's
(``all_groups``, ``dataset_checksum``, ``gridsize``, ``overlap_factor``),
checked from the zip directory without loading or unpickling anything.
Files named like a cache but holding anything else are reported as skipped.
Symbolic links are neither followed nor deleted. Exit status: 0 all good,
1 some files could not be removed, 2 usage error.
"""
from __future__ import annotations

import argparse
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

from ptycho_grouping.legacy_cache import CACHE_KEYS, CACHE_NAME_RE, is_legacy_cache_file

__all__ = ["Finding", "CleanResult", "find_cache_files", "remove_cache_files", "main"]

PROG = "clean_cache"


@dataclass(frozen=True)
class Finding:
    """A file named like a legacy cache: removable (``is_cache``) or skipped, and why."""

    path: Path
    is_cache: bool
    size: int = 0
    reason: str = ""


@dataclass
class CleanResult:
    """What a removal pass did."""

    removed: List[Finding] = field(default_factory=list)
    failed: List[Tuple[Finding, str]] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(f.size for f in self.removed)


def _why_not_a_cache(path: Path) -> str:
    if path.is_symlink():
        return "symbolic link (not followed)"
    if not path.is_file():
        return "not a regular file"
    try:
        with zipfile.ZipFile(path) as zf:
            members = sorted(n[:-4] if n.endswith(".npy") else n for n in zf.namelist())
    except (OSError, zipfile.BadZipFile) as exc:
        return f"not a readable NPZ ({exc.__class__.__name__})"
    return f"members {members} are not the legacy cache's {sorted(CACHE_KEYS)}"


def _classify(path: Path) -> Finding:
    if is_legacy_cache_file(path):
        try:
            return Finding(path, True, path.stat().st_size)
        except OSError as exc:
            return Finding(path, False, 0, f"cannot stat ({exc.strerror})")
    return Finding(path, False, 0, _why_not_a_cache(path))


def find_cache_files(roots: Iterable, progress: Optional[Callable[[int], None]] = None,
                     errors: Optional[list] = None) -> Iterator[Finding]:
    """Every file under ``roots`` named like a legacy cache, classified.

    Directories are walked without following symbolic links, so nothing
    outside the given roots is visited. ``progress(n)`` is called with the
    number of files seen every 1000 files; unreadable directories are
    appended to ``errors`` as ``(path, message)`` and the walk goes on.
    """
    seen = 0
    for root in map(Path, roots):
        if root.is_file() or root.is_symlink():
            if CACHE_NAME_RE.match(root.name):
                yield _classify(root)
            continue

        def onerror(exc, _errors=errors):
            if _errors is not None:
                _errors.append((Path(exc.filename or root), exc.strerror or str(exc)))

        for dirpath, _dirnames, filenames in os.walk(root, followlinks=False, onerror=onerror):
            for name in sorted(filenames):
                seen += 1
                if progress is not None and seen % 1000 == 0:
                    progress(seen)
                if CACHE_NAME_RE.match(name):
                    yield _classify(Path(dirpath) / name)
            # Symlinked directories appear in _dirnames; os.walk does not descend into them.


def remove_cache_files(findings: Iterable[Finding], *, dry_run: bool = False) -> CleanResult:
    """Remove the findings that are caches (re-checked right before removal)."""
    result = CleanResult()
    for finding in findings:
        if not finding.is_cache:
            continue
        if dry_run:
            result.removed.append(finding)
            continue
        if not is_legacy_cache_file(finding.path):  # changed since it was found
            result.failed.append((finding, "no longer a legacy cache file; left alone"))
            continue
        try:
            finding.path.unlink()
        except OSError as exc:
            result.failed.append((finding, exc.strerror or str(exc)))
        else:
            result.removed.append(finding)
    return result


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Find and remove legacy *.g<G>k<K>.groups_cache.npz files "
                               "left by the pre-refactor grouping code.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="directories (or files) to search")
    parser.add_argument("-n", "--dry-run", action="store_true",
                        help="list what would be removed and the space it would free")
    parser.add_argument("-y", "--yes", action="store_true", help="remove without asking")
    parser.add_argument("--progress", action="store_true",
                        help="count scanned files on stderr (default when stderr is a terminal)")
    return parser


def main(argv=None, prog: str = PROG) -> int:
    """Run the tool; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        print(f"{prog}: error: no such file or directory: {missing[0]}", file=sys.stderr)
        return 2
    show_progress = args.progress or sys.stderr.isatty()

    def progress(n):
        print(f"\rscanned {n} files...", end="", file=sys.stderr, flush=True)

    errors: list = []
    findings = list(find_cache_files(args.paths, progress if show_progress else None, errors))
    if show_progress:
        print("\r", end="", file=sys.stderr)
    for path, message in errors:
        print(f"cannot read {path}: {message}", file=sys.stderr)
    for f in findings:
        if not f.is_cache:
            print(f"skipped {f.path}: {f.reason}")
    caches = [f for f in findings if f.is_cache]
    total = sum(f.size for f in caches)

    if args.dry_run:
        for f in caches:
            print(f"would remove {f.path} ({_human(f.size)})")
        print(f"would remove {len(caches)} file(s), freeing {_human(total)} ({total} bytes)")
        return 1 if errors else 0
    if not caches:
        print("no legacy cache files found")
        return 1 if errors else 0
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"{prog}: error: refusing to remove {len(caches)} file(s) without a terminal "
                  "to confirm; pass --yes (or --dry-run to list them)", file=sys.stderr)
            return 2
        answer = input(f"Remove {len(caches)} legacy cache file(s), {_human(total)}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 0
    result = remove_cache_files(caches)
    for f in result.removed:
        print(f"removed {f.path} ({_human(f.size)})")
    for f, message in result.failed:
        print(f"could not remove {f.path}: {message}", file=sys.stderr)
    print(f"removed {len(result.removed)} file(s), freed {_human(result.bytes_freed)} "
          f"({result.bytes_freed} bytes)" + (f"; {len(result.failed)} failed" if result.failed else ""))
    return 1 if (result.failed or errors) else 0


if __name__ == "__main__":
    sys.exit(main())
