"""Argument parsing and dispatch for ``ptycho-group``; only this package prints."""
from __future__ import annotations

import argparse
import logging
import sys

PROG = "ptycho-group"


class UsageError(Exception):
    """A problem with the command line or its inputs: exit status 2."""


def _cmd_strategies(args) -> int:
    from ptycho_grouping.registry import list_strategies

    rows = [(i.name, i.source, "deprecated" if i.deprecated else "", i.summary)
            for i in list_strategies()]
    widths = [max(len(r[j]) for r in rows + [("name", "source", "status", "")]) for j in range(3)]
    print(f"{'name':<{widths[0]}}  {'source':<{widths[1]}}  {'status':<{widths[2]}}  summary")
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("strategies", help="list registered grouping strategies")
    p.set_defaults(func=_cmd_strategies)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO,
                                              logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return args.func(args)
    except (UsageError, ValueError, TypeError, OSError, KeyError) as exc:
        if args.debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
