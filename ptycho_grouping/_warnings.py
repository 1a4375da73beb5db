"""Warnings that point at the user's line, however deep the library call was."""
import sys
import warnings

from .errors import ParameterWarning, current_names

# Frames in these top-level packages are the library; the first frame outside
# them is the user's. Names only: nothing here imports the other packages.
_LIBRARY_PACKAGES = frozenset({"ptycho_grouping", "ptycho_data", "ptycho", "ptycho_cli", "migration"})


def external_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` called from library code."""
    level, frame = 1, sys._getframe(1)
    # The outermost frame ends the walk even if it is the library's own.
    while frame.f_back is not None and _in_library(frame):
        frame, level = frame.f_back, level + 1
    return level


def _in_library(frame) -> bool:
    return frame.f_globals.get("__name__", "").split(".", 1)[0] in _LIBRARY_PACKAGES


def warn(message, category=UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside the library.

    ``message`` may be a :class:`~ptycho_grouping.errors.ParameterWarning`:
    it is then spelled in the names the calling layer asked for
    (:func:`~ptycho_grouping.errors.warning_names`).
    """
    if isinstance(message, ParameterWarning):
        for names in current_names():
            message = message.renamed(names)
    warnings.warn(message, category, stacklevel=external_stacklevel())
