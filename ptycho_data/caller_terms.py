"""Engine error messages reworded in the parameter names ``RawData``'s callers pass.

The grouping engine speaks of ``n_groups``, ``group_size``, ``neighbors`` and
``rng``; PtychoPINN scripts pass ``nsamples``, ``gridsize``, ``K`` and ``seed``.
The translation lives here so that it can be read, and grown, in one place.
"""
from __future__ import annotations

import re

__all__ = ["callers_terms", "reraise_in_callers_terms"]


def callers_terms(message: str, gridsize: int) -> str:
    """An engine message with the engine's parameter names replaced by the caller's.

    The engine says ``n_groups``, ``group_size``, ``neighbors`` and ``rng``;
    ``generate_grouped_data`` and ``group_indices`` take ``nsamples``,
    ``gridsize``, ``K`` and ``seed``.
    """
    c = gridsize * gridsize
    rules = (
        (r"\bneighbors \(K=(\d+)\)", r"K=\1"),
        (r"\bgroup_size \(C=\d+\)", f"gridsize={gridsize} (C={c})"),
        (r"\bgroup_size=\d+", f"gridsize={gridsize} (C={c})"),
        (r"\bgroup_size\b", "gridsize**2"),
        (r"\bn_groups\b", "nsamples"),
        (r"\bneighbors(?==)", "K"),
        (r"\braise neighbors\b", "raise K (or set neighbor_pool_size)"),
        (r"\brng(?==)", "seed"),
        (r"\bsequential(?==)", "sequential_sampling"),
    )
    for pattern, replacement in rules:
        message = re.sub(pattern, replacement, message)
    return message


def reraise_in_callers_terms(exc: Exception, gridsize: int):
    """``exc`` again, its message in the caller's parameter names."""
    message = str(exc)
    translated = callers_terms(message, gridsize)
    if translated == message:
        raise exc
    try:
        new = type(exc)(translated)
    except Exception:  # an exception class that takes other arguments: keep it as it is
        raise exc from None
    raise new from exc
