"""Progress bars on stderr for a person at a terminal, and logging that does not break them.

One rule decides whether bars show (:func:`progress_wanted`): on when stderr
is a terminal, off under ``-q``, when stderr is piped or redirected, and in
CI logs (the ``CI`` environment variable that CI services set), unless the
user asked with ``--progress`` (or refused with ``--no-progress``). Bars are
tqdm's, which draws correctly in terminals and notebooks; while one is on
screen, notes and warnings go through ``tqdm.write`` (log lines through
tqdm's ``logging_redirect_tqdm``) so that they print above it, not through it.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, Optional

from tqdm import tqdm

__all__ = ["progress_wanted", "bar", "stage", "write_line"]

#: Environment variable CI services (GitHub Actions, GitLab, Travis, ...) set.
CI_VARIABLE = "CI"


def progress_wanted(progress: Optional[bool], quiet: bool) -> bool:
    """Whether to draw progress bars.

    Parameters
    ----------
    progress : bool or None
        ``--progress`` (True) / ``--no-progress`` (False); None decides from
        the surroundings.
    quiet : bool
        ``-q``: errors only, so no bars unless ``--progress`` asks for them.
    """
    if progress is not None:
        return progress
    if quiet:
        return False
    if os.environ.get(CI_VARIABLE, "").lower() not in ("", "0", "false"):
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


#: Screen size when the terminal does not report one (a fresh pseudo-terminal says 0 x 0).
FALLBACK_SIZE = {"ncols": 80, "nrows": 24}


def _stderr_columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):  # not a terminal, or no file descriptor
        return 0


def bar(enabled: bool, *, total: Optional[int] = None, desc: str = "", unit: str = "it",
        **kwargs) -> tqdm:
    """A tqdm bar on stderr, or an inert one (same methods, draws nothing) when not enabled.

    It follows the terminal's width as it changes; where the width is unknown
    it takes :data:`FALLBACK_SIZE` (tqdm would draw nothing on a 0 x 0 screen).
    """
    width = dict(dynamic_ncols=True) if _stderr_columns() > 0 else FALLBACK_SIZE
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr,
                **width, **kwargs)


@contextlib.contextmanager
def stage(enabled: bool, desc: str) -> Iterator[None]:
    """A one-step bar for work that reports no progress of its own (reading a file).

    It shows ``desc`` while the step runs and its duration when it is done,
    so a long step is never a silent one.
    """
    with bar(enabled, total=1, desc=desc, bar_format="{desc}: {elapsed}") as step:
        yield
        step.update(1)


def write_line(text: str) -> None:
    """Print one line on stderr, above any bar that is on screen."""
    tqdm.write(text, file=sys.stderr)

