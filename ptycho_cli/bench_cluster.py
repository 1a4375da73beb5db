"""``ptycho-group bench --cluster``: the same grouping written by one process and by ``--dask local:2``.

A pattern store (an uncompressed NPZ) is written to a temporary directory.
Then, each in a fresh process, the same grouping is written three times:
by the single-process streaming writer to NPZ and to Zarr, and by the
workers of a two-process ``LocalCluster`` (one thread each, a memory limit
each) to Zarr. Each row reports MB/s of output and peak memory: the
writer process's ``VmHWM``, or each worker's and the client's. The
cluster's start-up is timed apart (a cluster that stays up pays it once).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from .bench_io import write_store
from .inputs import disk_bytes
from .memory import run_child

__all__ = ["run_cluster_bench", "format_cluster"]

_CHILD = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
from ptycho_data.raw_data import RawData
raw = RawData.from_file(spec["store"], mmap=True)
raw.objectGuess = None
kw = dict(K=spec["K"], nsamples=spec["groups"], gridsize=spec["gridsize"], seed=0)
result = {}
if spec["job"] == "single":
    from ptycho_data.grouped_writer import write_grouped
    start = time.perf_counter()
    write_grouped(raw, spec["out"], raw.diff3d.shape[1], out_format=spec["format"], **kw)
    result["seconds"] = time.perf_counter() - start
else:
    from distributed import Client, LocalCluster
    from ptycho_data.cluster_writer import write_grouped_distributed
    from ptycho_cli.memory import worker_peak_kib
    start = time.perf_counter()
    with LocalCluster(n_workers=spec["workers"], threads_per_worker=1, processes=True,
                      dashboard_address=":0", memory_limit=spec["limit"]) as cluster, \
            Client(cluster) as client:
        result["startup_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        write_grouped_distributed(raw, spec["out"], raw.diff3d.shape[1], client=client, **kw)
        result["seconds"] = time.perf_counter() - start
        result["worker_hwm_kib"] = [v["VmHWM"] for _, v in sorted(worker_peak_kib(client).items())]
from ptycho_cli.memory import status_kib
result["hwm_kib"] = status_kib("VmHWM")["VmHWM"]
print(json.dumps(result))
"""


def _run(spec: dict) -> dict:
    result = run_child(_CHILD, spec, "bench --cluster child")
    out = Path(spec["out"])
    result["bytes"] = disk_bytes(out)
    result["mb_s"] = result["bytes"] / result["seconds"] / 1e6
    shutil.rmtree(out) if out.is_dir() else out.unlink()
    return result


def run_cluster_bench(points: int = 100_000, N: int = 64, groups: int = 25_000,
                      gridsize: int = 2, neighbors: int = 7, workers: int = 2,
                      limit_mib: int = 512, workdir=None, say=None, repeat: int = 2) -> dict:
    """Time and memory of the single-process writer and of a local Dask cluster; a JSON-ready dict.

    The fastest of ``repeat`` runs of each row counts (the disk is shared);
    the rows alternate so that both see the same page cache.
    """
    say = say or (lambda msg: None)
    result = dict(points=points, N=N, groups=groups, gridsize=gridsize, workers=workers,
                  limit_mib=limit_mib, repeat=repeat, rows=[])
    with tempfile.TemporaryDirectory(prefix="ptycho-cluster-", dir=workdir) as tmp:
        tmp = Path(tmp)
        store = tmp / "store.npz"
        say(f"cluster: writing a store of {points} patterns {N}x{N}")
        write_store(store, points, N)
        result["store_mib"] = store.stat().st_size / 2**20
        base = dict(store=str(store), K=neighbors, groups=groups, gridsize=gridsize)
        specs = {"1 process, npz": dict(base, job="single", format="npz", out=str(tmp / "o.npz")),
                 "1 process, zarr": dict(base, job="single", format="zarr",
                                         out=str(tmp / "o.zarr")),
                 f"dask local:{workers}, zarr": dict(base, job="dask", workers=workers,
                                                     limit=f"{limit_mib}MiB",
                                                     out=str(tmp / "d.zarr"))}
        runs = {name: [] for name in specs}
        for i in range(repeat):
            for name, spec in specs.items():
                say(f"cluster: {name} ({i + 1}/{repeat})")
                runs[name].append(_run(spec))
        for name in specs:
            best = min(runs[name], key=lambda r: r["seconds"])
            best["peak_hwm_mib"] = max(r["hwm_kib"] for r in runs[name]) / 1024
            if "worker_hwm_kib" in best:
                best["worker_peak_mib"] = [max(w) / 1024 for w in
                                           zip(*(r["worker_hwm_kib"] for r in runs[name]))]
            result["rows"].append(dict(row=name, **best))
    single = next(r for r in result["rows"] if r["row"] == "1 process, zarr")
    for row in result["rows"]:
        row["ratio"] = row["mb_s"] / single["mb_s"]
    return result


def format_cluster(r: dict) -> str:
    lines = [f"single process vs Dask local cluster: {r['groups']} groups of {r['gridsize'] ** 2} "
             f"from {r['points']} patterns {r['N']}x{r['N']} ({r['store_mib']:.0f} MiB store), "
             f"{r['workers']} workers of 1 thread and {r['limit_mib']} MiB each",
             f"  {'row':<22} {'output':>9} {'MB/s':>7} {'ratio':>6}  peak RSS"]
    for row in r["rows"]:
        peak = f"{row['peak_hwm_mib']:.0f} MiB"
        if "worker_peak_mib" in row:
            peak = (" / ".join(f"{w:.0f}" for w in row["worker_peak_mib"])
                    + f" MiB per worker, client {row['peak_hwm_mib']:.0f} MiB, cluster start-up "
                      f"{row['startup_seconds']:.1f} s (not timed)")
        lines.append(f"  {row['row']:<22} {row['bytes'] / 2**20:5.0f} MiB {row['mb_s']:7.0f} "
                     f"{row['ratio']:6.2f}  {peak}")
    lines.append("  ratio: MB/s over the single-process Zarr writer's; bar: dask >= 0.50")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m ptycho_cli.bench_cluster [points groups]
    args = [int(a) for a in sys.argv[1:3]]
    report = run_cluster_bench(*args[:1], groups=args[1] if len(args) > 1 else 25_000,
                               say=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_cluster(report))
