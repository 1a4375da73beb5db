"""``ptycho-group clean-cache``: find and remove the legacy group cache files.

The finding and the guarded removal are :mod:`migration.clean_cache`'s (which
also runs on its own, without this command); here they get the command's
shared options, its progress bar for the scan and its confirmation.
"""
from __future__ import annotations

import os
import sys

from migration.clean_cache import EPILOG, find_cache_files, remove_cache_files

from ..options import PROG, UsageError
from ..output import summary
from ..progress import bar

NAME = "clean-cache"
HELP = "find and remove legacy *.groups_cache.npz files (see its --help)"
DESCRIPTION = ("Find and remove legacy *.g<G>k<K>.groups_cache.npz files left beside datasets "
               "by the pre-refactor grouping code. List them first with --dry-run.")


def add_arguments(p) -> None:
    p.epilog = EPILOG
    p.add_argument("paths", nargs="+", metavar="PATH", help="directories (or files) to search")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="list what would be removed and the space it would free (printed "
                        "even under -q: it is the answer asked for)")
    p.add_argument("-y", "--yes", action="store_true", help="remove without asking")


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _name(f) -> str:
    kind = "leftover temporary file " if f.kind == "temp" else ""
    return f"{kind}{f.path} ({_size(f.size)})"


def _confirmed(count: int, total: int) -> bool:
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to remove {count} file(s) without a terminal to confirm; "
                         "pass --yes (or --dry-run to list them)")
    try:
        answer = input(f"Remove these {count} file(s), {_size(total)}? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def run(args) -> int:
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        raise UsageError(f"no such file or directory: {missing[0]}")
    errors: list = []
    with bar(args.show_progress, desc="scanning for legacy caches", unit=" files") as scanned:
        findings = list(find_cache_files(args.paths, lambda n: scanned.update(n - scanned.n),
                                         errors))
    errors += [(f.path, f.reason) for f in findings if f.kind == "error"]
    for path, message in errors:
        print(f"{PROG}: cannot read {path}: {message}", file=sys.stderr)
    for f in findings:
        if f.kind == "skipped":
            summary(args, f"skipped {f.path}: {f.reason}")
    removable = [f for f in findings if f.removable]
    total = sum(f.size for f in removable)
    status = 1 if errors else 0
    if not removable:
        summary(args, "no legacy cache files found")
        return status
    if args.dry_run or not args.yes:
        for f in removable:
            print(f"would remove {_name(f)}")
    if args.dry_run:
        print(f"would remove {len(removable)} file(s), freeing {_size(total)} ({total} bytes)")
        return status
    if not args.yes and not _confirmed(len(removable), total):
        summary(args, "nothing removed")
        return status
    result = remove_cache_files(removable)
    for f in result.removed:
        summary(args, f"removed {_name(f)}")
    for f, message in result.failed:
        print(f"{PROG}: could not remove {f.path}: {message}", file=sys.stderr)
    summary(args, f"removed {len(result.removed)} file(s), freed {_size(result.bytes_freed)}"
                  + (f"; {len(result.failed)} failed" if result.failed else ""))
    return 1 if (result.failed or errors) else status
