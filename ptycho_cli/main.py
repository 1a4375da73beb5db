"""``ptycho-group``: the parser built from the command modules, and the one place that exits.

Errors are one line in the command's words (``--debug`` shows the
traceback); anticipated problems with the input exit 2, failures of ours 1.
"""
from __future__ import annotations

import signal
import sys
import threading

from ptycho_grouping import __version__

from .commands import COMMANDS
from .grouping import in_command_words
from .options import COMMON_DEFAULTS, PROG, Parser, UsageError, common_options
from .output import configure

__all__ = ["main", "build_parser", "DESCRIPTION"]

DESCRIPTION = ("Group ptychography scan positions for training (sample-then-group): group a "
               "dataset, make demo data, describe a file, list, benchmark and draw strategies. "
               "Start with 'ptycho-group demo-data -o demo.npz'.")

#: Exceptions that describe a problem with the input or the environment (exit 2).
EXPECTED_ERRORS = (UsageError, ValueError, TypeError, OSError, KeyError, ImportError)


def build_parser() -> Parser:
    """The command's parser: shared options on it and, through ``parents=``, on every subcommand."""
    common = common_options()
    parser = Parser(prog=PROG, description=DESCRIPTION, parents=[common])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.DESCRIPTION,
                           parents=[common])
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def _terminate(signum, frame):
    # SIGTERM (a batch scheduler's kill) unwinds like Ctrl-C, so writers remove
    # their temporary files instead of leaving them behind.
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):  # not given before or after the subcommand name
            setattr(args, name, default)
    configure(args)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        text = str(in_command_words(exc)).strip()
        message = text.splitlines()[0] if text else type(exc).__name__
        if not isinstance(exc, EXPECTED_ERRORS):
            message = f"{type(exc).__name__}: {message} (run with --debug for the traceback)"
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2 if isinstance(exc, EXPECTED_ERRORS) else 1
