"""Argument parsing and dispatch for ``ptycho-group``; only this package prints."""
from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

PROG = "ptycho-group"
DESCRIPTION = ("Group ptychography scan positions for training (sample-then-group), "
               "make demo data, list, benchmark and draw strategies.")

log = logging.getLogger("ptycho_cli")


class UsageError(Exception):
    """A problem with the command line or its inputs: exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _int_at_least(minimum: int, what: str):
    """An argparse type for integers ``>= minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value
    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


def _output_path(path: str) -> Path:
    out = Path(path)
    if not out.parent.is_dir():
        raise UsageError(f"output directory does not exist: {out.parent}")
    return out


def _load(input_path, args):
    """The dataset named on the command line, or the built-in demo."""
    from ptycho.raw_data import RawData

    if input_path is None:
        from .demo import make_demo
        log.info("no INPUT given: using the built-in demo dataset (%d points)", args.points)
        return make_demo(points=args.points, seed=0), None
    path = Path(input_path)
    if not path.is_file():
        raise UsageError(f"input file not found: {path}")
    return RawData.from_file(path, mmap=getattr(args, "mmap", False)), str(path)


def _grouping_kwargs(args, dataset_path):
    return dict(K=args.neighbors, nsamples=args.groups, seed=args.seed,
                sequential_sampling=args.sequential, gridsize=args.gridsize,
                enable_oversampling=args.oversample, neighbor_pool_size=args.pool_size,
                grouping_strategy=args.strategy, dataset_path=dataset_path)


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux: the process's peak resident memory so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cmd_group(args) -> int:
    import numpy as np

    from ptycho.grouped_writer import write_grouped

    if args.pool_size is not None and not args.oversample:
        raise UsageError("--pool-size only applies with --oversample")
    out_path = _output_path(args.output)
    raw, dataset_path = _load(args.input, args)
    n_pix = raw.diff3d.shape[1]
    start = time.perf_counter()
    # Streamed in chunks of groups: memory stays bounded however large the output.
    nn = write_grouped(raw, out_path, n_pix, out_format=args.out_format,
                       chunk_groups=args.chunk_groups, **_grouping_kwargs(args, dataset_path))
    elapsed = time.perf_counter() - start
    covered = len(np.unique(nn))
    strategy = args.strategy or "sample_then_group"
    print(f"input       {args.input or 'built-in demo'} ({len(raw)} points, {n_pix}x{n_pix} patterns)")
    print(f"groups      {nn.shape[0]} x {nn.shape[1]} (gridsize {args.gridsize}, K {args.neighbors}, "
          f"strategy {strategy})")
    print(f"coverage    {covered} distinct scan points ({100 * covered / len(raw):.1f}%)")
    print(f"time        {elapsed * 1e3:.1f} ms (grouping, gathering and writing)")
    print(f"peak RSS    {_peak_rss_mib():.0f} MiB (whole process)")
    print(f"wrote       {out_path}")
    return 0


def _cmd_demo_data(args) -> int:
    from .demo import make_demo

    out_path = _output_path(args.output)
    raw = make_demo(points=args.points, pattern=args.pattern, N=args.N, seed=args.seed)
    raw.to_file(out_path)
    print(f"wrote {out_path}: {len(raw)} {args.pattern} positions, "
          f"{args.N}x{args.N} patterns, probe and object")
    return 0


def _cmd_strategies(args) -> int:
    from ptycho_grouping.registry import list_strategies

    rows = [(i.name, i.source, "deprecated" if i.deprecated else "", i.summary)
            for i in list_strategies()]
    header = ("name", "source", "status", "summary")
    widths = [max(len(r[j]) for r in rows + [header]) for j in range(3)]
    for row in [header] + rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row[:3], widths)) + "  " + row[3])
    return 0


def _cmd_bench(args) -> int:
    from .bench import format_report, run_bench, write_json

    sizes = args.sizes or ([10_000, 100_000] + ([1_000_000] if args.large else []))
    report = run_bench(sizes, repeat=args.repeat, groups=args.groups, neighbors=args.neighbors,
                       e2e_N=args.e2e_N, legacy_limit=args.legacy_limit,
                       progress=None if args.quiet else
                       (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True)))
    print(format_report(report))
    if args.json:
        write_json(report, _output_path(args.json))
        print(f"wrote {args.json}")
    return 0


def _cmd_plot(args) -> int:
    from .plot import plot_groups

    out_path = _output_path(args.output)
    raw, dataset_path = _load(args.input, args)
    kwargs = _grouping_kwargs(args, dataset_path)
    grouped = raw.generate_grouped_data(raw.diff3d.shape[1], **kwargs)
    plot_groups(raw.xcoords, raw.ycoords, grouped["nn_indices"], out_path, show=args.show,
                title=f"{args.strategy or 'sample_then_group'}: gridsize {args.gridsize}, "
                      f"K {args.neighbors}")
    print(f"wrote {out_path}")
    return 0


def _add_grouping_options(p, *, groups_default=512):
    p.add_argument("--gridsize", type=_positive_int, default=2, help="C = gridsize**2 members (default 2)")
    p.add_argument("--groups", type=_positive_int, default=groups_default,
                   help=f"number of groups (default {groups_default})")
    p.add_argument("--neighbors", "-K", type=_positive_int, default=7,
                   help="members come from the seed's K nearest neighbours (default 7)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--strategy", default=None,
                   help="grouping strategy (see 'ptycho-group strategies'; default sample_then_group)")
    p.add_argument("--sequential", action="store_true",
                   help="deterministic: first points as seeds, nearest neighbours as members")
    p.add_argument("--oversample", action="store_true",
                   help="allow more groups than scan points (gridsize > 1)")
    p.add_argument("--pool-size", type=_positive_int, default=None,
                   help="neighbour pool when oversampling (default K)")
    p.add_argument("--points", type=_positive_int, default=10_000,
                   help="size of the built-in demo when INPUT is omitted (default 10000)")


def build_parser() -> argparse.ArgumentParser:
    # Logging options work before or after the subcommand name.
    common = _Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="more log output (-vv for debug)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="errors only")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
    parser = _Parser(prog=PROG, description=DESCRIPTION, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_parser = sub.add_parser

    def add_parser(name, **kwargs):
        kwargs.setdefault("parents", [common])
        return _add_parser(name, **kwargs)

    sub.add_parser = add_parser

    p = sub.add_parser("group", help="group a dataset (or the built-in demo) and write the result",
                       description="Run generate_grouped_data on INPUT (a PtychoPINN-style NPZ) or, "
                                   "without INPUT, on a built-in simulated scan, and write the "
                                   "grouped arrays to OUT.npz.")
    p.add_argument("input", nargs="?", metavar="INPUT.npz", help="dataset (default: built-in demo)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="where to write")
    p.add_argument("--out-format", choices=["npz", "hdf5"], default="npz",
                   help="npz (default) or hdf5 (needs h5py); both written chunk by chunk")
    p.add_argument("--chunk-groups", type=_positive_int, default=4096,
                   help="groups held in memory at a time while writing (default 4096)")
    p.add_argument("--mmap", action="store_true",
                   help="memory-map the patterns of an uncompressed INPUT.npz instead of loading them")
    _add_grouping_options(p)
    p.set_defaults(func=_cmd_group)

    p = sub.add_parser("demo-data", help="write the built-in demo dataset to a file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    p.add_argument("--points", type=_positive_int, default=10_000, help="scan positions (default 10000)")
    p.add_argument("--pattern", choices=["raster", "spiral", "random"], default="raster")
    p.add_argument("--N", type=_positive_int, default=32, help="pattern size (default 32)")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser("strategies", help="list registered grouping strategies")
    p.set_defaults(func=_cmd_strategies)

    p = sub.add_parser("bench", help="time and memory of every strategy, side by side",
                       description="Benchmark every registered strategy on jittered-raster scans: "
                                   "time and peak memory (separate runs), ratios against the "
                                   "legacy strategy, coverage statistics, end-to-end grouping.")
    p.add_argument("--sizes", type=_positive_int, nargs="+", metavar="M",
                   help="scan sizes (default 10000 100000)")
    p.add_argument("--large", action="store_true", help="add 10^6 points")
    p.add_argument("--repeat", type=_positive_int, default=5, help="timing repeats, median kept")
    p.add_argument("--groups", type=_positive_int, default=512)
    p.add_argument("--neighbors", "-K", type=_positive_int, default=7)
    p.add_argument("--e2e-N", dest="e2e_N", type=_positive_int, default=64,
                   help="pattern size for the end-to-end rows (default 64)")
    p.add_argument("--legacy-limit", type=_positive_int, default=1_000_000,
                   help="largest size the legacy strategy is run at; beyond, its time is "
                        "extrapolated linearly and marked so (default 10^6)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("plot", help="draw scan positions and a sample of groups (needs matplotlib)")
    p.add_argument("input", nargs="?", metavar="INPUT.npz", help="dataset (default: built-in demo)")
    p.add_argument("-o", "--output", required=True, metavar="groups.png")
    p.add_argument("--show", type=_positive_int, default=40, help="groups to draw (default 40)")
    _add_grouping_options(p, groups_default=512)
    p.set_defaults(func=_cmd_plot)

    # Listed for --help; main() hands 'clean-cache ...' to migration.clean_cache.
    sub.add_parser("clean-cache", help="find and remove legacy group cache files "
                                       "(see 'ptycho-group clean-cache --help')")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["clean-cache"]:
        # The migration tool parses its own options (argparse would take
        # '--dry-run' for one of ours).
        from migration.clean_cache import main as clean_main
        return clean_main(argv[1:], prog=f"{PROG} clean-cache")
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in (("verbose", 0), ("quiet", False), ("debug", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO,
                                              logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.captureWarnings(True)  # library warnings become one log line each
    if not args.quiet:
        # The legacy strategy is the one that runs long: show its progress.
        logging.getLogger("ptycho_grouping.legacy").setLevel(min(level, logging.INFO))
    try:
        return args.func(args)
    except (UsageError, ValueError, TypeError, OSError, KeyError, ImportError) as exc:
        if args.debug:
            raise
        text = str(exc).strip()
        message = text.splitlines()[0] if text else type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
