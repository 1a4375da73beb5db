"""``ptycho-group bench --out-of-core``: group a pattern store larger than the memory allowed.

A dataset of ``store_mib`` of patterns is written to disk as an uncompressed
NPZ. Then ``ptycho-group group STORE`` (which memory-maps it) runs in a child process that
first limits its own memory with ``resource.setrlimit(RLIMIT_DATA)``: the
heap, anonymous maps and thread stacks, i.e. everything the process
allocates, but not the read-only file mapping of the store. The output
(about the store's size) is streamed in chunks small enough for the limit.

The store must be at least twice the limit (:func:`check_sizes`), or the
run would show nothing. The output is checked: ``nn_indices`` against
``RawData.group_indices`` on the same store and arguments, sampled
``diffraction`` rows against the store's frames, and the same ``X_full``
rows against those times the normalisation of all groups.

The same grouping in memory (``RawData.from_file`` loads the patterns and
``generate_grouped_data`` holds the whole output) runs under the same limit
as a control: it must fail, which shows the limit is real.
Peak RSS (``VmHWM``) is reported too; it includes any clean pages of the
store mapping that are resident (the gather reads the store with ``preadv``,
so few are).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ptycho_data.grouped_writer import streamed_scale
from ptycho_data.raw_data import RawData
from ptycho_grouping.npz_io import load_npz

from .bench_io import write_store

# Memory an interpreter with NumPy, SciPy and the project imported starts
# with (VmData about 190 MiB measured); the limit must leave room above it.
BASELINE_MIB = 224
#: The store must be at least this many times the limit for the run to mean anything.
MIN_STORE_OVER_LIMIT = 2

_CHILD = """
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
mode, args = sys.argv[2], sys.argv[3:]
try:
    if mode == "cli":
        from ptycho_cli.main import main
        rc = main(args)
    else:  # "in-memory": the eager path, patterns loaded and the output held
        from ptycho_data.raw_data import RawData
        RawData.from_file(args[0]).generate_grouped_data(int(args[1]), **json.loads(args[2]))
        rc = 0
except MemoryError:
    rc = "MemoryError"
from ptycho_cli.memory import status_kib
status = status_kib("VmHWM", "VmData", "RssAnon", "RssFile")
print(json.dumps(dict(rc=rc, **status)))
"""


def _run_limited(limit_mib: int, argv, cwd: Path, mode: str = "cli") -> dict:
    """Run ``ptycho-group argv`` in a child limited to ``limit_mib``: its status, memory and times.

    With ``mode="in-memory"``, ``argv`` is ``[store, N, grouping as JSON]``
    and the child runs ``generate_grouped_data`` on the loaded store instead.

    ``process_s`` is the child's whole wall time (interpreter start-up
    included); ``group_s`` the time the ``group`` command itself reports for
    grouping, gathering and writing (None when it printed none).
    """
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(limit_mib << 20), mode, *argv],
                          cwd=cwd, capture_output=True, text=True)
    process_s = time.perf_counter() - start
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = dict(rc=proc.returncode)
    reported = re.search(r"^time\s+([0-9.]+) ms", proc.stdout, re.MULTILINE)
    result["group_s"] = float(reported.group(1)) / 1e3 if reported else None
    result["process_s"] = process_s
    result["stderr"] = proc.stderr.strip().splitlines()[-1:] if proc.stderr.strip() else []
    return result


def check_sizes(store_mib, limit_mib, allow_small: bool = False,
                names=("store_mib", "limit_mib")) -> None:
    """Refuse a limit the interpreter cannot start in, or a store too small to show anything.

    ``allow_small`` lifts the store-size rule, for quick tests of the
    machinery only: a store that fits in the limit proves nothing. ``names``
    are how errors call the two sizes (the CLI passes its option names).
    """
    store_name, limit_name = names
    if limit_mib <= BASELINE_MIB:
        raise ValueError(f"{limit_name} must exceed the {BASELINE_MIB} MiB an interpreter "
                         f"starts with, got {limit_mib}")
    if not allow_small and store_mib < MIN_STORE_OVER_LIMIT * limit_mib:
        raise ValueError(f"{store_name} must be at least {MIN_STORE_OVER_LIMIT}x {limit_name} for "
                         f"an out-of-core run, got {store_name}={store_mib} and "
                         f"{limit_name}={limit_mib}")


def run_out_of_core(store_mib: int = 2048, limit_mib: int = 384, N: int = 64,
                    gridsize: int = 2, neighbors: int = 7, workdir=None, say=None,
                    allow_small: bool = False) -> dict:
    """Write a store, group it under a memory limit, check the output; a JSON-ready dict.

    Raises ValueError from :func:`check_sizes`.
    """
    say = say or (lambda msg: None)
    check_sizes(store_mib, limit_mib, allow_small)
    c = gridsize * gridsize
    frame_bytes = N * N * 4
    frames = max(16, (store_mib << 20) // frame_bytes)
    groups = max(1, frames // (2 * c))  # diffraction + X_full together about the store's size
    # A chunk's arrays (diffraction, X_full, the gather buffer, their energies)
    # must fit several times over in what the limit leaves above the baseline.
    chunk_groups = max(1, ((limit_mib - BASELINE_MIB) << 20) // (8 * c * frame_bytes))
    grouping = dict(K=neighbors, nsamples=groups, seed=0, gridsize=gridsize)
    with tempfile.TemporaryDirectory(prefix="ptycho-ooc-", dir=workdir) as tmp:
        tmp = Path(tmp)
        store = tmp / "store.npz"
        say(f"out-of-core: writing a {frames * frame_bytes / 2**20:.0f} MiB store "
            f"({frames} patterns of {N}x{N})")
        write_store(store, frames, N)
        argv = ["group", str(store), "-o", str(tmp / "out.npz"), "--gridsize", str(gridsize),
                "--groups", str(groups), "--neighbors", str(neighbors), "--seed", "0",
                "--chunk-groups", str(chunk_groups)]
        say(f"out-of-core: grouping it under a {limit_mib} MiB data limit")
        run = _run_limited(limit_mib, argv, tmp)
        output_mib = (tmp / "out.npz").stat().st_size / 2**20 if run["rc"] == 0 else 0.0
        checks = {}
        if run["rc"] == 0:
            say("out-of-core: checking the output against the store")
            checks = _check_output(store, tmp / "out.npz", N, chunk_groups, grouping)
        say("out-of-core: control run in memory under the same limit")
        control = _run_limited(limit_mib, [str(store), str(N), json.dumps(grouping)], tmp,
                               mode="in-memory")
    return dict(store_mib=frames * frame_bytes / 2**20, limit_mib=limit_mib, frames=frames,
                N=N, gridsize=gridsize, groups=groups, chunk_groups=chunk_groups,
                ok=run["rc"] == 0, error=run["stderr"], group_time_s=run["group_s"],
                process_time_s=run["process_s"], output_mib=output_mib,
                output_checks=checks, output_checked=bool(checks) and all(checks.values()),
                peak_rss_mib=run.get("VmHWM", 0) / 1024,
                end_rss_anon_mib=run.get("RssAnon", 0) / 1024,
                end_rss_file_mib=run.get("RssFile", 0) / 1024,
                control_failed=control["rc"] != 0,
                control_error=control["stderr"] or [str(control["rc"])])


def _check_output(store: Path, out: Path, N: int, chunk_groups: int, grouping: dict,
                  samples: int = 64) -> dict:
    """The checks of the module docstring on the written groups: ``{check name: passed}``.

    The normalisation of *all* groups is recomputed here from the store, in chunks.
    """
    source = RawData.from_file(store, mmap=True)
    expected_nn = source.group_indices(N, dataset_path=str(store), **grouping)
    grouped = load_npz(out, mmap_keys=("diffraction", "X_full"))
    nn, diffraction, x_full = grouped["nn_indices"], grouped["diffraction"], grouped["X_full"]
    checks = {"nn_indices": np.array_equal(nn, expected_nn)}
    rows = np.linspace(0, len(nn) - 1, min(samples, len(nn))).astype(int)
    checks["diffraction"] = all(np.array_equal(np.moveaxis(diffraction[r], 2, 0),
                                               source.diff3d[nn[r]]) for r in rows)
    if checks["nn_indices"]:
        scale = np.asarray(streamed_scale(source, expected_nn, N, chunk_groups),
                           dtype=diffraction.dtype)
        checks["X_full"] = all(np.array_equal(x_full[r], diffraction[r] * scale) for r in rows)
    else:
        checks["X_full"] = False  # the scale of other groups would not tell anything
    return {key: bool(value) for key, value in checks.items()}


def format_out_of_core(r: dict) -> str:
    head = (f"out of core: {r['store_mib']:.0f} MiB store ({r['frames']} patterns "
            f"{r['N']}x{r['N']}), {r['groups']} groups of {r['gridsize'] ** 2}, data limit "
            f"{r['limit_mib']} MiB (the store is {r['store_mib'] / r['limit_mib']:.1f}x the limit)")
    if not r["ok"]:
        return f"{head}\n  FAILED: {' '.join(r['error'])}"
    group_time = ("? s" if r["group_time_s"] is None else f"{r['group_time_s']:.1f} s")
    failed = ", ".join(key for key, passed in r["output_checks"].items() if not passed)
    return "\n".join([
        head,
        f"  group: grouping {group_time} (process {r['process_time_s']:.1f} s with start-up), "
        f"wrote {r['output_mib']:.0f} MiB ({r['chunk_groups']} groups per chunk)",
        "  output " + ("matches the store (nn_indices, diffraction, X_full scale)"
                       if r["output_checked"] else f"DOES NOT match the store: {failed}"),
        f"  peak RSS {r['peak_rss_mib']:.0f} MiB = {r['peak_rss_mib'] / r['store_mib']:.2f}x "
        f"the store (at exit: {r['end_rss_anon_mib']:.0f} MiB allocated, "
        f"{r['end_rss_file_mib']:.0f} MiB mapped file pages)",
        "  control, the same grouping in memory under the same limit: "
        + ("failed, as it must (" + " ".join(r["control_error"]) + ")"
           if r["control_failed"] else "SUCCEEDED: the limit did not bind"),
    ])
