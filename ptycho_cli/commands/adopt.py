"""``ptycho-group adopt``: the refactor into a PtychoPINN checkout, or the surface into a folder."""
from __future__ import annotations

from ..adoption import adopt, write_standalone

NAME = "adopt"
HELP = "put the refactor into a PtychoPINN checkout (or --standalone: the ptycho surface)"
DESCRIPTION = (
    "Replace PATH/ptycho/raw_data.py of a PtychoPINN checkout with the thin RawData of this "
    "project (PtychoPINN's params.py and config are kept) and add grouping_strategy to its "
    "TrainingConfig and InferenceConfig. Running it again changes nothing; 'git checkout "
    "ptycho/raw_data.py ptycho/config/config.py' undoes it. With --standalone, write the ptycho "
    "surface (raw_data, params, config) as PATH/ptycho, for PtychoPINN-style scripts without "
    "PtychoPINN.")


def add_arguments(p) -> None:
    p.add_argument("path", metavar="PATH", help="a PtychoPINN checkout (or, with --standalone, "
                   "the folder to write ptycho/ into)")
    p.add_argument("--standalone", action="store_true",
                   help="write the ptycho surface into PATH instead (no PtychoPINN)")
    p.add_argument("--dry-run", action="store_true", help="say what would change, write nothing")


def run(args) -> int:
    act = write_standalone if args.standalone else adopt
    changes = act(args.path, dry_run=args.dry_run)
    verb = "would write" if args.dry_run else "wrote"
    for change in changes:
        print(f"{verb if change.done else 'unchanged'}  {change.path}  ({change.what})")
    if not any(c.done for c in changes):
        print("already adopted: nothing to do" if not args.standalone else "already up to date")
    return 0
