"""``ptycho-group bench --io``: grouped output against a plain copy of the same bytes.

A pattern store (an uncompressed NPZ with an object) is written to a
temporary directory. Then, each in a fresh process, :func:`write_grouped`
writes the output of a grouping from the memory-mapped store, and a plain
copy (read and write in 8 MiB blocks, then ``fsync``, as the writer does)
copies that output to a new file in the same directory: the same number of
bytes, to the same disk. Each row reports both throughputs (MB/s of output)
and their ratio, and both processes' peak resident set (``VmHWM``) and peak
anonymous memory (``RssAnon`` sampled every few milliseconds: what a memory
limit counts; file pages of the store mapping are not anonymous).

Time and memory come from separate runs: the timed run does nothing else.

Rows: ``warm`` (store and output in the page cache, a small store),
``cold`` (the store's and the copy source's pages evicted first with
``posix_fadvise(DONTNEED)``: what a store larger than the page cache
costs, without needing one), and ``warm + Y`` (object patches as well).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ptycho_data.grouped_writer import NpzSink
from ptycho_grouping.atomic_write import atomic_write

from .demo import scan_positions
from .memory import run_child

__all__ = ["run_io_bench", "format_io", "write_store"]

_MEASURE = r"""
import json, os, shutil, sys, threading, time
from ptycho_cli.memory import status_kib
peak = [0]
def anon_kib():
    return status_kib("RssAnon").get("RssAnon", 0)
def sample(stop):
    while not stop.is_set():
        peak[0] = max(peak[0], anon_kib())
        stop.wait(0.003)
spec = json.loads(sys.argv[1])
def evict(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
if spec["job"] == "group":
    from ptycho_data.grouped_writer import write_grouped
    from ptycho_data.raw_data import RawData
    raw = RawData.from_file(spec["store"], mmap=True)
    if not spec["patches"]:
        raw.objectGuess = None
    if spec["cold"]:
        evict(spec["store"])
    def job():
        write_grouped(raw, spec["out"], raw.diff3d.shape[1], K=spec["K"], nsamples=spec["groups"],
                      gridsize=spec["gridsize"], seed=0, chunk_mib=spec["chunk_mib"])
else:
    if spec["cold"]:
        evict(spec["source"])
    def job():
        with open(spec["source"], "rb") as src, open(spec["out"], "wb") as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
            dst.flush()
            os.fsync(dst.fileno())
stop = threading.Event()
if spec["memory"]:
    sampler = threading.Thread(target=sample, args=(stop,), daemon=True)
    sampler.start()
start = time.perf_counter()
job()
seconds = time.perf_counter() - start
stop.set()
hwm = status_kib("VmHWM").get("VmHWM", 0)
print(json.dumps(dict(seconds=seconds, peak_anon_kib=max(peak[0], anon_kib()), vmhwm_kib=hwm)))
"""


def write_store(path, points: int, N: int, rng=0, with_object: bool = False) -> None:
    """An uncompressed dataset NPZ of ``points`` float32 patterns, written chunk by chunk.

    Also positions (a jittered raster, ``N / 8`` apart, ``N`` from the edges),
    a flat probe and, with ``with_object``, an object the patterns lie in.
    """
    rng = np.random.default_rng(rng)
    base = rng.random((16, N, N), dtype=np.float32)
    xy = scan_positions(points, "raster", step=N / 8, rng=rng) + N
    height, width = int(xy[:, 1].max()) + 2 * N, int(xy[:, 0].max()) + 2 * N
    with atomic_write(path) as tmp, NpzSink.create(tmp, points) as sink:
        step = max(1, (64 << 20) // (N * N * 4))  # 64 MiB at a time
        for start in range(0, points, step):
            stop = min(start + step, points)
            scale = 1 + np.arange(start, stop, dtype=np.float32)[:, None, None] % 97 / 97
            sink.write("diff3d", slice(start, stop), base[np.arange(start, stop) % 16] * scale)
        sink.write_whole("xcoords", xy[:, 0])
        sink.write_whole("ycoords", xy[:, 1])
        sink.write_whole("probeGuess", np.ones((N, N), np.complex64))
        rows = max(1, (64 << 20) // (width * 8))
        for start in range(0, height if with_object else 0, rows):
            stop = min(start + rows, height)
            band = rng.random((stop - start, width), dtype=np.float32)
            sink.write("objectGuess", slice(start, stop), (band + 1j * band[::-1]).astype(
                np.complex64), rows=height)


def _run(spec: dict) -> dict:
    return run_child(_MEASURE, spec, "bench --io child")


def _measured(spec: dict, repeat: int) -> dict:
    """Time from the fastest of ``repeat`` runs (the disk is shared), memory from another run."""
    timed = min((_run(dict(spec, memory=False)) for _ in range(repeat)),
                key=lambda run: run["seconds"])
    size = os.path.getsize(spec["out"])
    memory = _run(dict(spec, memory=True))
    return dict(seconds=timed["seconds"], bytes=size, mb_s=size / timed["seconds"] / 1e6,
                peak_rss_mib=memory["vmhwm_kib"] / 1024,
                peak_anon_mib=memory["peak_anon_kib"] / 1024)


def run_io_bench(points: int = 200_000, N: int = 32, groups: int = 50_000, gridsize: int = 2,
                 neighbors: int = 7, chunk_mib=None, workdir=None, say=None,
                 rows=("warm", "cold", "warm + Y"), repeat: int = 2) -> dict:
    """Write a store, then time and measure grouped output against a plain copy; a JSON-ready dict.

    Parameters
    ----------
    points, N : int
        Store size: ``points`` float32 patterns of ``N x N``.
    groups, gridsize, neighbors : int
        The grouping whose output is written.
    chunk_mib : int, optional
        ``write_grouped``'s chunk budget (default: its own).
    workdir : path, optional
        Where the temporary directory goes (the disk being measured).
    say : callable, optional
        Progress messages.
    rows : sequence of str
        Which of ``warm``, ``cold``, ``warm + Y`` to run.
    repeat : int
        Timed runs of each; the fastest counts (the same for the copy).
    """
    say = say or (lambda msg: None)
    unknown = set(rows) - {"warm", "cold", "warm + Y"}
    if unknown:
        raise ValueError(f"rows must be among 'warm', 'cold', 'warm + Y', got {sorted(unknown)}")
    result = dict(points=points, N=N, groups=groups, gridsize=gridsize, repeat=repeat, rows=[])
    with tempfile.TemporaryDirectory(prefix="ptycho-io-", dir=workdir) as tmp:
        tmp = Path(tmp)
        store = tmp / "store.npz"
        say(f"io: writing a store of {points} patterns {N}x{N}")
        write_store(store, points, N, with_object=True)
        result["store_mib"] = store.stat().st_size / 2**20
        for row in rows:
            cold, patches = row == "cold", row.endswith("Y")
            out = tmp / "grouped.npz"
            say(f"io: {row}: grouped output")
            ours = _measured(dict(job="group", store=str(store), out=str(out), cold=cold,
                                  patches=patches, K=neighbors, groups=groups,
                                  gridsize=gridsize, chunk_mib=chunk_mib), repeat)
            say(f"io: {row}: plain copy of the same {ours['bytes'] / 2**20:.0f} MiB")
            copy = _measured(dict(job="copy", source=str(out), out=str(tmp / "copy.bin"),
                                  cold=cold), repeat)
            result["rows"].append(dict(row=row, grouped=ours, copy=copy,
                                       ratio=ours["mb_s"] / copy["mb_s"]))
            for name in ("grouped.npz", "copy.bin"):
                (tmp / name).unlink(missing_ok=True)
    return result


def format_io(r: dict) -> str:
    lines = [f"grouped output vs plain copy: {r['groups']} groups of {r['gridsize'] ** 2} from "
             f"{r['points']} patterns {r['N']}x{r['N']} ({r['store_mib']:.0f} MiB store)",
             f"  {'row':<9} {'output':>9} {'grouped':>10} {'copy':>10} {'ratio':>6}  "
             f"{'peak RSS / anon (grouped)':>26}  {'(copy)':>14}"]
    for row in r["rows"]:
        g, c = row["grouped"], row["copy"]
        lines.append(f"  {row['row']:<9} {g['bytes'] / 2**20:7.0f} MiB {g['mb_s']:6.0f} MB/s "
                     f"{c['mb_s']:6.0f} MB/s {row['ratio']:6.2f}  "
                     f"{g['peak_rss_mib']:11.0f} / {g['peak_anon_mib']:4.0f} MiB"
                     f"       {c['peak_rss_mib']:4.0f} / {c['peak_anon_mib']:3.0f} MiB")
    lines.append("  ratio: grouped MB/s over copy MB/s of the same bytes to the same directory; "
                 "anon: peak anonymous memory (what a memory limit counts)")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m ptycho_cli.bench_io [points groups]
    args = [int(a) for a in sys.argv[1:3]]
    report = run_io_bench(*args[:1], groups=args[1] if len(args) > 1 else 50_000,
                          say=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_io(report))
