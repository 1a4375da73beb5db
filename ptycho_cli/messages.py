"""Library messages retold in the command's words: flags, not Python argument names.

The library names its parameters (``enable_oversampling=True``,
``n_groups``, ``neighbor_pool_size``); a person at the command line typed
``--oversample``, ``--groups`` and ``--pool-size``. Every error and warning
the command prints goes through :func:`in_command_words`.
"""
from __future__ import annotations

import re

__all__ = ["in_command_words"]

# Order matters: the specific phrases before the bare names they contain. Both the
# engine's names (n_groups, neighbors, group_size) and the data layer's (nsamples, K,
# gridsize, seed) occur: RawData retells engine errors in its own parameter names.
_REWRITES = [
    (r"\bset enable_oversampling=True\b", "add --oversample"),
    (r"\benable_oversampling=(True|False)\b", "--oversample"),
    (r"\bsequential(?:_sampling)?=True\b", "--sequential"),
    (r"\b(?:n_groups|nsamples)=(\d+)", r"--groups \1"),
    (r"\b(?:n_groups|nsamples)\b", "--groups"),
    (r"\braise K \(or set neighbor_pool_size\)", "raise --neighbors (or set --pool-size)"),
    (r"\bneighbor_pool_size=(\d+)", r"--pool-size \1"),
    (r"\bneighbor_pool_size\b", "--pool-size"),
    (r"\bneighbors \(K=(\d+)\)", r"--neighbors (K=\1)"),
    (r"\bneighbors=(\d+)", r"--neighbors \1"),
    (r"(?<!\()\bK=(\d+)", r"--neighbors \1"),
    (r"\braise neighbors\b", "raise --neighbors"),
    (r"\bgroup_size \(C=(\d+)\)", r"gridsize**2 (C=\1)"),
    (r"\bgroup_size=(\d+)", r"C=\1 (gridsize**2)"),
    (r"\bgridsize=(\d+)", r"--gridsize \1"),
    (r"\bgrouping_strategy=", "--strategy "),
    (r"\bgrouping_strategy\b", "--strategy"),
    (r"\bseed=(\d+)", r"--seed \1"),
]
_COMPILED = [(re.compile(pattern), replacement) for pattern, replacement in _REWRITES]


def in_command_words(text: str) -> str:
    """``text`` with the library's parameter names replaced by the command's flags."""
    for pattern, replacement in _COMPILED:
        text = pattern.sub(replacement, text)
    return text
