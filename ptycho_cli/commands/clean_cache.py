"""``ptycho-group clean-cache``: find and remove the legacy group cache files.

The work, its arguments and its report are :mod:`ptycho_cli.cache_cleaner`'s,
which ``python migration/clean_cache.py`` in a checkout also runs; here it gets
the command's shared options.
"""
from __future__ import annotations

from .. import cache_cleaner as clean_cache
from ..options import PROG

NAME = "clean-cache"
HELP = "find and remove legacy *.groups_cache.npz files (see its --help)"
DESCRIPTION = ("Find and remove legacy *.g<G>k<K>.groups_cache.npz files left beside datasets "
               "by the pre-refactor grouping code. List them first with --dry-run.")

add_arguments = clean_cache.add_arguments


def run(args) -> int:
    return clean_cache.run(args, prog=f"{PROG} {NAME}", show_progress=args.show_progress,
                           quiet=args.quiet)
