"""``ptycho-group bench --out-of-core``: group a pattern store larger than the memory allowed.

A dataset of ``store_mib`` of patterns is written to disk as an uncompressed
NPZ. Then ``ptycho-group group STORE --mmap`` runs in a child process that
first limits its own memory with ``resource.setrlimit(RLIMIT_DATA)``: the
heap, anonymous maps and thread stacks, i.e. everything the process
allocates, but not the read-only file mapping of the store. The output
(about the store's size) is streamed in chunks small enough for the limit.

The same command without ``--mmap`` (which loads the patterns) runs under the
same limit as a control: it must fail, which shows the limit is real.
Peak RSS (``VmHWM``) is reported too; it includes the clean pages of the
store mapping that the kernel keeps resident and may drop at any time.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ptycho.grouped_writer import NpzSink
from ptycho_grouping.npz_io import load_npz

from .demo import scan_positions

# Memory an interpreter with NumPy, SciPy and the project imported starts
# with (VmData about 190 MiB measured); the limit must leave room above it.
BASELINE_MIB = 224

_CHILD = """
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
try:
    from ptycho_cli.main import main
    rc = main(sys.argv[2:])
except MemoryError:
    rc = "MemoryError"
status = {}
with open("/proc/self/status") as fh:
    for line in fh:
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmData", "RssAnon", "RssFile"):
            status[key] = int(value.split()[0])
print(json.dumps(dict(rc=rc, **status)))
"""


def write_store(path: Path, frames: int, N: int, rng=0) -> None:
    """An uncompressed dataset NPZ of ``frames`` float32 patterns, written chunk by chunk."""
    rng = np.random.default_rng(rng)
    base = rng.random((16, N, N), dtype=np.float32)
    xy = scan_positions(frames, "raster", step=1.0, rng=rng)
    sink = NpzSink(path, frames)
    try:
        step = max(1, (64 << 20) // (N * N * 4))  # 64 MiB at a time
        for start in range(0, frames, step):
            stop = min(start + step, frames)
            scale = 1 + np.arange(start, stop, dtype=np.float32)[:, None, None] % 97 / 97
            sink.write("diff3d", slice(start, stop), base[np.arange(start, stop) % 16] * scale)
        sink.write_whole("xcoords", xy[:, 0])
        sink.write_whole("ycoords", xy[:, 1])
        sink.write_whole("probeGuess", np.ones((N, N), np.complex64))
        sink.commit()
    except BaseException:
        sink.abort()
        raise


def _run_limited(limit_mib: int, argv, cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(limit_mib << 20), *argv],
                          cwd=cwd, capture_output=True, text=True)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = dict(rc=proc.returncode)
    result["stderr"] = proc.stderr.strip().splitlines()[-1:] if proc.stderr.strip() else []
    return result


def run_out_of_core(store_mib: int = 2048, limit_mib: int = 384, N: int = 64,
                    gridsize: int = 2, neighbors: int = 7, workdir=None, say=None) -> dict:
    """Write a store, group it under a memory limit, check the output; a JSON-ready dict."""
    say = say or (lambda msg: None)
    if limit_mib <= BASELINE_MIB:
        raise ValueError(f"limit_mib must exceed the {BASELINE_MIB} MiB an interpreter "
                         f"starts with, got {limit_mib}")
    c = gridsize * gridsize
    frame_bytes = N * N * 4
    frames = max(16, (store_mib << 20) // frame_bytes)
    groups = max(1, frames // (2 * c))  # diffraction + X_full together about the store's size
    # A chunk's arrays (diffraction, X_full, the gather buffer, their energies)
    # must fit several times over in what the limit leaves above the baseline.
    chunk_groups = max(1, ((limit_mib - BASELINE_MIB) << 20) // (8 * c * frame_bytes))
    with tempfile.TemporaryDirectory(prefix="ptycho-ooc-", dir=workdir) as tmp:
        tmp = Path(tmp)
        store = tmp / "store.npz"
        say(f"out-of-core: writing a {frames * frame_bytes / 2**20:.0f} MiB store "
            f"({frames} patterns of {N}x{N})")
        write_store(store, frames, N)
        argv = ["group", str(store), "-o", str(tmp / "out.npz"), "--gridsize", str(gridsize),
                "--groups", str(groups), "--neighbors", str(neighbors), "--seed", "0",
                "--chunk-groups", str(chunk_groups), "-q"]
        say(f"out-of-core: grouping it with --mmap under a {limit_mib} MiB data limit")
        start = time.perf_counter()
        run = _run_limited(limit_mib, argv + ["--mmap"], tmp)
        elapsed = time.perf_counter() - start
        output_mib = (tmp / "out.npz").stat().st_size / 2**20 if run["rc"] == 0 else 0.0
        checked = run["rc"] == 0 and _output_matches(store, tmp / "out.npz", N)
        say("out-of-core: control run without --mmap under the same limit")
        control = _run_limited(limit_mib, argv + ["-o", str(tmp / "control.npz")], tmp)
    return dict(store_mib=frames * frame_bytes / 2**20, limit_mib=limit_mib, frames=frames,
                N=N, gridsize=gridsize, groups=groups, chunk_groups=chunk_groups,
                ok=run["rc"] == 0, error=run["stderr"], time_s=elapsed, output_mib=output_mib,
                output_checked=bool(checked), peak_rss_mib=run.get("VmHWM", 0) / 1024,
                end_rss_anon_mib=run.get("RssAnon", 0) / 1024,
                end_rss_file_mib=run.get("RssFile", 0) / 1024,
                control_failed=control["rc"] != 0,
                control_error=control["stderr"] or [str(control["rc"])])


def _output_matches(store: Path, out: Path, N: int, samples: int = 64) -> bool:
    """Spot-check the written groups against the store's own frames."""
    # np.load ignores mmap_mode for NPZ members; this maps them.
    patterns = load_npz(store, mmap_keys=("diff3d",))["diff3d"]
    grouped = load_npz(out, mmap_keys=("diffraction",))
    nn, diffraction = grouped["nn_indices"], grouped["diffraction"]
    rows = np.linspace(0, len(nn) - 1, min(samples, len(nn))).astype(int)
    return all(np.array_equal(np.moveaxis(diffraction[r], 2, 0), patterns[nn[r]]) for r in rows)


def format_out_of_core(r: dict) -> str:
    head = (f"out of core: {r['store_mib']:.0f} MiB store ({r['frames']} patterns "
            f"{r['N']}x{r['N']}), {r['groups']} groups of {r['gridsize'] ** 2}, data limit "
            f"{r['limit_mib']} MiB ({r['store_mib'] / r['limit_mib']:.1f}x smaller than the store)")
    if not r["ok"]:
        return f"{head}\n  FAILED: {' '.join(r['error'])}"
    return "\n".join([
        head,
        f"  --mmap: {r['time_s']:.1f} s, wrote {r['output_mib']:.0f} MiB "
        f"({r['chunk_groups']} groups per chunk), output "
        f"{'matches the store' if r['output_checked'] else 'DOES NOT match the store'}",
        f"  peak RSS {r['peak_rss_mib']:.0f} MiB = {r['peak_rss_mib'] / r['store_mib']:.2f}x "
        f"the store (at exit: {r['end_rss_anon_mib']:.0f} MiB allocated, "
        f"{r['end_rss_file_mib']:.0f} MiB mapped file pages)",
        "  control without --mmap under the same limit: "
        + ("failed, as it must (" + " ".join(r["control_error"])[:80] + ")"
           if r["control_failed"] else "SUCCEEDED: the limit did not bind"),
    ])
