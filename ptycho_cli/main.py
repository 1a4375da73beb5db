"""``ptycho-group``: the parser built from the command modules, and the one place that exits.

Errors are one line in the command's words (``--debug`` shows the
traceback); anticipated problems with the input exit 2, failures of ours 1.

Importing this module (and so :mod:`ptycho_cli`) imports no NumPy, SciPy or
subcommand: the benchmarks' measuring children import ``ptycho_cli.bench``
and friends, and should not pay for (or carry the memory of) every command.
The commands are imported when the parser is built.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import warnings

from .options import COMMON_DEFAULTS, PROG, Parser, UsageError, common_options

__all__ = ["main", "build_parser", "DESCRIPTION"]

DESCRIPTION = ("Group ptychography scan positions for training (sample-then-group): group a "
               "dataset, make demo data, describe a file, list, benchmark and draw strategies. "
               "Start with 'ptycho-group demo-data -o demo.npz'.")

#: Exceptions that describe a problem with the input or the environment (exit 2).
EXPECTED_ERRORS = (UsageError, ValueError, TypeError, OSError, KeyError, ImportError)


def build_parser() -> Parser:
    """The command's parser: shared options on it and, through ``parents=``, on every subcommand."""
    from ptycho_grouping import __version__

    from .commands import COMMANDS

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


@contextlib.contextmanager
def _process_state():
    """Put back the root logger, ``warnings.showwarning`` and the SIGTERM handler.

    ``main`` sets them for the run; a caller that is not a fresh process (a
    test, a notebook) gets its own back afterwards.
    """
    root = logging.getLogger()
    handlers, level, showwarning = root.handlers[:], root.level, warnings.showwarning
    in_main_thread = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        warnings.showwarning = showwarning
        if in_main_thread:
            signal.signal(signal.SIGTERM, sigterm)


def main(argv=None) -> int:
    """Run the command on ``argv`` (default ``sys.argv[1:]``); return its exit status."""
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version, or a usage error argparse has printed
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):  # not given before or after the subcommand name
            setattr(args, name, default)
    with _process_state():
        return _run(args)


def _run(args) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .grouping import in_command_words
    from .output import configure

    configure(args)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        with logging_redirect_tqdm():  # log lines print above a progress bar, not through it
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
