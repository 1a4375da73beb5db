"""What every subcommand shares: the parser class, option types, shared options, path checks."""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

__all__ = ["PROG", "UsageError", "Parser", "HelpFormatter", "int_at_least", "positive_int",
           "non_negative_int", "COMMON_DEFAULTS", "common_options", "check_output_path"]

PROG = "ptycho-group"


class UsageError(Exception):
    """A problem with the command line or its inputs: exit status 2."""


class HelpFormatter(argparse.HelpFormatter):
    """Every option's default in ``--help``, except where there is none to show.

    Unlike ``argparse.ArgumentDefaultsHelpFormatter`` it leaves out ``None``
    (such options say in their own help what happens without them) and the
    ``False`` of on/off flags.
    """

    def _fill_text(self, text, width, indent):
        # Text with its own line breaks (an epilog laid out by hand) is kept as written.
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or default is None or default is False
                or default == argparse.SUPPRESS or not action.option_strings):
            return text
        if isinstance(default, (list, tuple)):
            default = " ".join(map(str, default))
        return f"{text} (default: {default})"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def int_at_least(minimum: int, what: str):
    """An argparse type for integers ``>= minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value
    parse.__name__ = f"{what} integer"  # argparse names the type in its messages
    return parse


positive_int = int_at_least(1, "positive")
non_negative_int = int_at_least(0, "non-negative")

#: The values of :func:`common_options` when not given (they are never set by
#: the parser itself, so that they work before and after the subcommand name).
COMMON_DEFAULTS = {"verbose": 0, "quiet": False, "debug": False, "progress": None}


def common_options() -> argparse.ArgumentParser:
    """``-v/-q/--debug/--progress``: a parent parser for the command and every subcommand."""
    common = Parser(add_help=False)
    group = common.add_argument_group("output options")
    group.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                       help="more log output (-vv for debug)")
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="errors only: no progress, notes, warnings or summary")
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
    group.add_argument("--progress", action=argparse.BooleanOptionalAction,
                       default=argparse.SUPPRESS,
                       help="progress bars on stderr (default: on when stderr is a terminal, "
                            "off under -q, when piped or when $CI is set)")
    return common


def check_output_path(path, input_path=None, option: str = "-o",
                      directory_ok: bool = False) -> Path:
    """Check that ``path`` can be written, before any work is done.

    The check creates (and at once removes) a temporary file in the target
    directory, so a read-only directory or file system, a missing directory
    or a directory in place of the file are reported with the path the
    user gave, not with the hidden temporary name a writer would use.
    ``directory_ok``: the output is a directory (a Zarr store) that may replace one.
    """
    out = Path(path)
    parent = out.parent
    if not parent.is_dir():
        raise UsageError(f"output directory does not exist: {parent}")
    if out.is_dir() and not directory_ok:
        raise UsageError(f"output path is a directory: {out}")
    if input_path is not None and out.exists() and os.path.samefile(out, input_path):
        raise UsageError(f"output {out} is the input file: writing it would replace the dataset")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {option} {out}: directory {parent} is not writable "
                         f"({exc.strerror or exc})") from None
    return out
