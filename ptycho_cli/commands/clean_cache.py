"""``ptycho-group clean-cache``: find and remove the legacy group cache files.

The work and its report are :mod:`migration.clean_cache`'s, which also runs on
its own (``python -m migration.clean_cache``) for users who have not installed
this command; here it gets the command's shared options. Its entry point
takes an argument list, so the options parsed here are handed on as one.
"""
from __future__ import annotations

import contextlib
import io

from migration.clean_cache import EPILOG
from migration.clean_cache import main as clean_cache_main

from ..options import PROG

NAME = "clean-cache"
HELP = "find and remove legacy *.groups_cache.npz files (see its --help)"
DESCRIPTION = ("Find and remove legacy *.g<G>k<K>.groups_cache.npz files left beside datasets "
               "by the pre-refactor grouping code. List them first with --dry-run.")


def add_arguments(p) -> None:
    p.epilog = EPILOG
    p.add_argument("paths", nargs="+", metavar="PATH", help="directories (or files) to search")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="list what would be removed and the space it would free (printed "
                        "under -q too: it is the answer asked for)")
    p.add_argument("-y", "--yes", action="store_true",
                   help="remove without asking (under -q, without the list of what was removed)")


def run(args) -> int:
    argv = ["--dry-run"] * args.dry_run + ["--yes"] * args.yes
    argv += ["--progress"] * args.show_progress + ["--", *args.paths]
    # -q: errors only. A question needs its list, and a dry run's list is its answer.
    silent = args.quiet and args.yes and not args.dry_run
    with contextlib.redirect_stdout(io.StringIO()) if silent else contextlib.nullcontext():
        return clean_cache_main(argv, prog=f"{PROG} {NAME}")
