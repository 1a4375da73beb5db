"""What the benchmarks share: a measuring child process, and memory figures from ``/proc/self/status``.

:func:`status_kib` is the one reader of that file in the packages (in a Dask worker
too, through :func:`worker_peak_kib`). ``resource.getrusage``'s
``ru_maxrss`` is not used for peaks: in a freshly started interpreter it
still holds the peak of the process image it replaced (its parent's, at
``exec``), so a small child of a large parent reports the parent's size;
``VmHWM`` is this process's own (and can be reset through ``clear_refs``).
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Dict

__all__ = ["status_kib", "peak_rss_mib", "run_child", "worker_peak_kib"]


def run_child(code: str, spec, what: str, env=None):
    """Run ``code`` in a fresh interpreter, ``spec`` as JSON in its ``sys.argv[1]``.

    Returns the last line it printed, parsed as JSON; a child that fails
    raises RuntimeError naming ``what``, with the end of its stderr.
    """
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


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


def worker_peak_kib(client) -> Dict[str, Dict[str, int]]:
    """``{worker address: {"VmHWM": KiB, "VmRSS": KiB, "RssAnon": KiB}}`` for each
    worker process of a ``dask.distributed`` client."""
    return client.run(status_kib, "VmHWM", "VmRSS", "RssAnon")


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: ``VmHWM``.

    Without ``/proc``, ``ru_maxrss`` (KiB on Linux, bytes on macOS), which
    in a command started from a large process (a notebook's ``!ptycho-group``)
    can be that process's peak: see the module's docstring.
    """
    hwm = status_kib("VmHWM").get("VmHWM")
    if hwm is not None:
        return hwm / 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024
