"""Where the command's words go: results on stdout, notes, warnings and logs on stderr.

``-q`` means errors only: no progress bars, notes, warnings or summaries.
What a command exists to print (the strategy list, ``info``, the bench
table, the list of a ``clean-cache --dry-run``) is its answer and is printed
anyway. Notes and warnings go through :func:`progress.write_line`, and log
lines through tqdm's ``logging_redirect_tqdm`` (set up in :func:`.main.main`),
so they print above a progress bar instead of through it.
"""
from __future__ import annotations

import logging
import sys
import warnings

from ptycho_grouping.errors import ParameterIssue

from .grouping import in_command_words
from .options import PROG
from .progress import progress_wanted, write_line

__all__ = ["configure", "summary", "note", "warning"]


def configure(args) -> None:
    """Logging level, one-line warnings and the progress decision, from the shared options."""
    args.show_progress = progress_wanted(args.progress, args.quiet)
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO,
                                              logging.DEBUG)[min(args.verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)  # main() redirects it above the bars
    handler.set_name(PROG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in root.handlers[:]:
        if old.get_name() == PROG:  # main() run twice in one process (tests)
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

    def one_line(message, category, filename, lineno, file=None, line=None):
        if not args.quiet:
            # A ParameterWarning is shown as the standard class it extends (UserWarning).
            shown = category
            if issubclass(category, ParameterIssue):
                shown = next(c for c in category.__mro__ if c.__module__ == "builtins")
            write_line(f"{PROG}: {shown.__name__}: {in_command_words(message)}")

    warnings.showwarning = one_line  # library warnings: one line each, no source echo


def summary(args, text: str) -> None:
    """A line of the report of what was done (stdout; silent under ``-q``)."""
    if not args.quiet:
        print(text, flush=True)


def note(args, text: str) -> None:
    """Something the user should know about the values used (stderr; silent under ``-q``)."""
    if not args.quiet:
        write_line(f"{PROG}: note: {text}")


def warning(args, text: str) -> None:
    """A result the user should look at before using it (stderr; silent under ``-q``)."""
    if not args.quiet:
        write_line(f"{PROG}: warning: {text}")

