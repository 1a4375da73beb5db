"""The data layer's names for the grouping engine's parameters, and its words for their errors.

``RawData.group_indices`` and ``generate_grouped_data`` take PtychoPINN's
arguments (``nsamples``, ``K``, ``gridsize``, ``seed``...); the engine's
:class:`~ptycho_grouping.errors.InvalidParameterError` and
:class:`~ptycho_grouping.errors.ParameterWarning` carry its own names
(``n_groups``, ``neighbors``, ``group_size``, ``rng``). :data:`CALLER_NAMES`
is the table between the two; :func:`in_callers_names` re-raises an engine
error spelled through it, with the phrases PtychoPINN's own tests look for
where they apply. Nothing here reads a message's text.
"""
from __future__ import annotations

import math

from ptycho_grouping.errors import Names, ParameterIssue, Rename

__all__ = ["CALLER_NAMES", "GROUP_SIZE_NAMES", "in_callers_names"]


def _gridsize(c):
    """``gridsize`` for ``C = gridsize**2`` (a C that is no square, which RawData never asks, as is)."""
    root = math.isqrt(c)
    return root if root * root == c else c


#: Engine parameter -> the name ``RawData``'s callers pass. ``group_size`` is
#: ``C = gridsize**2``: spelled ``gridsize=2 (C=4)``.
CALLER_NAMES = Names({
    "n_groups": "nsamples",
    "group_size": Rename("gridsize", value=_gridsize, note=lambda c: f" (C={c})"),
    "neighbors": "K",
    "rng": "seed",
    "sequential": "sequential_sampling",
})

#: The same for ``RawData._generate_groups_efficiently(nsamples, K, C, seed)``,
#: PtychoPINN's method that takes the group size ``C`` itself.
GROUP_SIZE_NAMES = Names({"n_groups": "nsamples", "group_size": "C", "neighbors": "K",
                          "rng": "seed", "sequential": "sequential_sampling"})

#: PtychoPINN's wording of the oversampling rules (its tests assert these phrases).
_OVERSAMPLING_001 = "see OVERSAMPLING-001 in PtychoPINN's docs/findings.md"


def _ptychopinn_phrase(exc: ParameterIssue) -> str:
    """What PtychoPINN's own message said for this rule, where it had one."""
    if exc.code == "too_few_neighbors" and exc.facts["min_neighbors"] == exc.facts["C"]:
        return f" (K={exc.params['neighbors']} must be >= C={exc.facts['C']})"
    if exc.code == "oversampling_disabled":
        return f"; K choose C oversampling is required but not enabled ({_OVERSAMPLING_001})"
    if exc.code == "pool_too_small":
        return f"; K choose C oversampling requires neighbor_pool_size >= C ({_OVERSAMPLING_001})"
    return ""


def in_callers_names(exc: BaseException, subsampled: bool = False, names: Names = CALLER_NAMES):
    """Raise ``exc`` again in the caller's names, chained from it, if it is about a parameter.

    ``subsampled``: the engine saw the points ``n_subsample`` drew, not all of
    them (the message says so). ``names``: the caller's table. Any other exception is re-raised untouched,
    whatever its constructor.
    """
    if not isinstance(exc, ParameterIssue):
        raise exc
    addendum = _ptychopinn_phrase(exc)
    if subsampled and exc.code == "group_larger_than_points":
        addendum += " drawn by n_subsample"
    raise exc.renamed(names, addendum=addendum) from exc
