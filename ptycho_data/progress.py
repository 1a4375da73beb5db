"""The ``progress=`` argument of the data layer's long operations."""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

from tqdm import tqdm

__all__ = ["progress_advance"]


@contextlib.contextmanager
def progress_advance(progress, total: int, *, desc: str, unit: str = "it",
                     **tqdm_kwargs) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``, to be called as each ``n`` units of ``total`` are done.

    Parameters
    ----------
    progress : bool or callable
        False: nothing is shown. True: a tqdm bar on stderr. A callable is
        called with ``(done, total)`` after each step, for a caller that
        draws its own display (a command-line tool, a GUI).
    total : int
        Units of the whole operation.
    desc, unit, **tqdm_kwargs
        The bar's label, unit and other tqdm options (with ``progress=True``).
    """
    if callable(progress):
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            progress(done, total)
        yield advance
    elif progress:
        with tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, **tqdm_kwargs) as bar:
            yield bar.update
    else:
        yield lambda n: None
