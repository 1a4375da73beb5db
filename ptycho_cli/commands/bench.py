"""``ptycho-group bench``: time and memory of every strategy, side by side."""
from __future__ import annotations

import logging

from ..bench import format_report, run_bench, write_json
from ..bench_cluster import format_cluster, run_cluster_bench
from ..bench_io import format_io, run_io_bench
from ..bench_sampling import format_sampling, run_sampling_bench
from ..bench_out_of_core import check_sizes, format_out_of_core, run_out_of_core
from ..grouping import DEFAULT_GROUPS, DEFAULT_NEIGHBORS
from ..options import UsageError, check_output_path, int_at_least, positive_int
from ..output import summary
from ..progress import bar

NAME = "bench"
HELP = "time and memory of every strategy, side by side"
DESCRIPTION = ("Benchmark every registered strategy on jittered-raster scans: time and peak "
               "memory (separate runs), ratios against the legacy strategy, coverage statistics, "
               "end-to-end grouping. A legend under the table explains every column.")
DEFAULT_SIZES = (10_000, 100_000)
LARGE_SIZE = 1_000_000

log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    p.add_argument("--sizes", type=positive_int, nargs="+", metavar="M", default=DEFAULT_SIZES,
                   help="scan sizes")
    p.add_argument("--large", action="store_true", help=f"add {LARGE_SIZE} points")
    p.add_argument("--repeat", type=positive_int, default=5, help="timing repeats, median kept")
    p.add_argument("--groups", type=positive_int, default=DEFAULT_GROUPS,
                   help="groups per draw (capped at the scan size)")
    p.add_argument("--neighbors", "-K", type=positive_int, default=DEFAULT_NEIGHBORS,
                   help="K, the neighbours members are drawn from")
    p.add_argument("--e2e-N", dest="e2e_N", type=positive_int, default=64,
                   help="pattern size for the end-to-end rows")
    p.add_argument("--legacy-limit", type=positive_int, default=LARGE_SIZE,
                   help="largest size the legacy strategy is run at; beyond, its time is "
                        "extrapolated linearly and marked so")
    p.add_argument("--out-of-core", action="store_true",
                   help="also group a pattern store larger than the memory the run may use "
                        "(the child process limits itself with setrlimit; writes about twice "
                        "--store-mib to a temporary directory)")
    p.add_argument("--store-mib", type=positive_int, default=2048,
                   help="size of that pattern store in MiB, at least twice --limit-mib")
    p.add_argument("--limit-mib", type=int_at_least(256, "at least 256"), default=384,
                   help="memory (RLIMIT_DATA) the grouping process may allocate")
    p.add_argument("--io", action="store_true",
                   help="also write a grouping's output and a plain copy of the same bytes to "
                        "the same directory, and compare MB/s and peak memory (writes a few GB "
                        "under --io-dir)")
    p.add_argument("--io-points", type=positive_int, default=200_000,
                   help="scan points (32x32 float32 patterns) of the --io store")
    p.add_argument("--io-groups", type=positive_int, default=50_000,
                   help="groups written by the --io rows")
    p.add_argument("--io-dir", metavar="DIR", default=None,
                   help="directory (disk) the --io rows write to (default: the system's "
                        "temporary directory)")
    p.add_argument("--cluster", action="store_true",
                   help="also write one grouping with the single-process writer (NPZ, Zarr) and "
                        "with --dask local:2 (Zarr), and compare MB/s and peak memory per worker "
                        "(needs the dask and zarr extras; writes a few GB under --io-dir)")
    p.add_argument("--cluster-points", type=positive_int, default=100_000,
                   help="scan points (64x64 float32 patterns) of the --cluster store")
    p.add_argument("--cluster-groups", type=positive_int, default=25_000,
                   help="groups written by the --cluster rows")
    p.add_argument("--sampling", action="store_true",
                   help="also measure how each strategy samples 10^4-point scans: coverage, "
                        "groups the covering strategy needs, spread, overlap metrics")
    p.add_argument("--sampling-large", action="store_true",
                   help="with --sampling, also time cover_scan against the default at 10^6 "
                        "points and ceil(M/C) groups")
    p.add_argument("--sampling-only", action="store_true",
                   help="run only the --sampling rows (skips the timing table)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")


def run(args) -> int:
    json_path = check_output_path(args.json, option="--json") if args.json else None
    if args.out_of_core:
        try:
            check_sizes(args.store_mib, args.limit_mib, names=("--store-mib", "--limit-mib"))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    sizes = list(args.sizes) + ([LARGE_SIZE] if args.large else [])
    sampling = args.sampling or args.sampling_only or args.sampling_large
    with bar(args.show_progress, desc="bench", unit="row") as rows:
        def step(message):
            log.info("%s", message)
            rows.set_postfix_str(message, refresh=False)
            rows.update()
        report = {} if args.sampling_only else run_bench(sizes, repeat=args.repeat, groups=args.groups,
                           neighbors=args.neighbors, e2e_N=args.e2e_N,
                           legacy_limit=args.legacy_limit, progress=step)
        if sampling:
            report["sampling"] = run_sampling_bench(large=args.sampling_large, say=step)
        if args.out_of_core:
            report["out_of_core"] = run_out_of_core(
                store_mib=args.store_mib, limit_mib=args.limit_mib, neighbors=args.neighbors,
                say=step)
        if args.io:
            report["io"] = run_io_bench(points=args.io_points, groups=args.io_groups,
                                        neighbors=args.neighbors, workdir=args.io_dir, say=step)
        if args.cluster:
            report["cluster"] = run_cluster_bench(points=args.cluster_points,
                                                  groups=args.cluster_groups,
                                                  neighbors=args.neighbors, workdir=args.io_dir,
                                                  say=step)
    if not args.sampling_only:
        print(format_report(report))
    if sampling:
        print(format_sampling(report["sampling"]))
    if args.out_of_core:
        print(format_out_of_core(report["out_of_core"]))
    if args.io:
        print(format_io(report["io"]))
    if args.cluster:
        print(format_cluster(report["cluster"]))
    if json_path is not None:
        write_json(report, json_path)
        summary(args, f"wrote {json_path}")
    return 0
