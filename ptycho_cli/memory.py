"""This process's memory figures from ``/proc/self/status``, for the benchmarks.

The one reader of that file in the command. ``resource.getrusage``'s
``ru_maxrss`` is not used for peaks: in a freshly started interpreter it
still holds the peak of the process image it replaced (its parent's, at
``exec``), so a small child of a large parent reports the parent's size;
``VmHWM`` is this process's own (and can be reset through ``clear_refs``).
"""
from __future__ import annotations

from typing import Dict

__all__ = ["status_kib"]


def status_kib(*fields: str) -> Dict[str, int]:
    """The named fields of ``/proc/self/status`` in KiB (``VmHWM``, ``VmRSS``, ``RssAnon``, ...).

    Fields the kernel does not report are left out; without ``/proc`` the
    result is empty.
    """
    found = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in fields:
                    found[key] = int(value.split()[0])
    except OSError:
        pass
    return found
