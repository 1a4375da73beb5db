"""Argument parsing and dispatch for ``ptycho-group``; only this package prints."""
from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

PROG = "ptycho-group"
DEMO_POINTS = 10_000
# ptycho.grouped_writer.DEFAULT_CHUNK_MIB, for --help; importing it would load
# NumPy and SciPy (~0.4 s) on every command. A test keeps the two equal.
DEFAULT_CHUNK_MIB = 256
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


def _output_path(path: str, input_path=None) -> Path:
    """Check an output path before any work is done (nothing is written here)."""
    out = Path(path)
    if not out.parent.is_dir():
        raise UsageError(f"output directory does not exist: {out.parent}")
    if out.is_dir():
        raise UsageError(f"output path is a directory: {out}")
    if input_path is not None and out.exists() and os.path.samefile(out, input_path):
        raise UsageError(f"output {out} is the input file: writing it would replace the dataset")
    return out


def _load(input_path, args):
    """The dataset named on the command line, or the built-in demo."""
    from ptycho.raw_data import RawData

    if input_path is None:
        if getattr(args, "mmap", False):
            raise UsageError("--mmap applies to an INPUT file, not to the built-in demo")
        from .demo import make_demo
        if args.points is None:
            args.points = DEMO_POINTS
        log.info("no INPUT given: using the built-in demo dataset (%d points)", args.points)
        return make_demo(points=args.points, seed=0), None
    if args.points is not None:
        raise UsageError("--points applies to the built-in demo only, not to INPUT")
    path = Path(input_path)
    if not path.is_file():
        raise UsageError(f"input file not found: {path}")
    return RawData.from_file(path, mmap=getattr(args, "mmap", False)), str(path)


def _grouping_kwargs(args, dataset_path):
    return dict(K=args.neighbors, nsamples=args.groups, seed=args.seed,
                sequential_sampling=args.sequential, gridsize=args.gridsize,
                enable_oversampling=args.oversample, neighbor_pool_size=args.pool_size,
                grouping_strategy=args.strategy, dataset_path=dataset_path)


def _progress(args, what: str):
    """A ``(done, total)`` callback: a live counter on a terminal, INFO log lines otherwise."""
    if args.quiet:
        return None
    if sys.stderr.isatty():
        def show(done, total):
            end = "\n" if done >= total else ""
            print(f"\r{what} {done}/{total} groups", end=end, file=sys.stderr, flush=True)
        return show
    return lambda done, total: log.info("%s %d/%d groups", what, done, total)


#: File name endings each --out-format is expected to have.
_FORMAT_SUFFIXES = {"npz": (".npz",), "hdf5": (".h5", ".hdf5")}


def _check_suffix(out_path: Path, out_format: str) -> None:
    """Warn (no error: the name is the user's choice) when the name suggests another format."""
    expected = _FORMAT_SUFFIXES[out_format]
    if out_path.suffix.lower() not in expected:
        log.warning("--out-format %s writes %s, but %s does not end in %s", out_format,
                    out_format.upper(), out_path, " or ".join(expected))


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux: the process's peak resident memory so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cmd_group(args) -> int:
    import numpy as np

    from ptycho.grouped_writer import write_grouped

    if args.pool_size is not None and not args.oversample:
        raise UsageError("--pool-size only applies with --oversample")
    out_path = _output_path(args.output, args.input)
    _check_suffix(out_path, args.out_format)
    raw, dataset_path = _load(args.input, args)
    n_pix = raw.diff3d.shape[1]
    start = time.perf_counter()
    # Streamed in chunks of groups: memory stays bounded however large the output.
    nn = write_grouped(raw, out_path, n_pix, out_format=args.out_format,
                       chunk_groups=args.chunk_groups, progress=_progress(args, "written"),
                       **_grouping_kwargs(args, dataset_path))
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

    json_path = _output_path(args.json) if args.json else None  # fail before the long run
    if args.out_of_core:
        from .bench_out_of_core import check_sizes
        try:
            check_sizes(args.store_mib, args.limit_mib, names=("--store-mib", "--limit-mib"))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    sizes = args.sizes or ([10_000, 100_000] + ([1_000_000] if args.large else []))
    report = run_bench(sizes, repeat=args.repeat, groups=args.groups, neighbors=args.neighbors,
                       e2e_N=args.e2e_N, legacy_limit=args.legacy_limit,
                       progress=None if args.quiet else
                       (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True)))
    print(format_report(report))
    if args.out_of_core:
        from .bench_out_of_core import format_out_of_core, run_out_of_core
        report["out_of_core"] = run_out_of_core(
            store_mib=args.store_mib, limit_mib=args.limit_mib, neighbors=args.neighbors,
            say=None if args.quiet else
            (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True)))
        print(format_out_of_core(report["out_of_core"]))
    if json_path is not None:
        write_json(report, json_path)
        print(f"wrote {json_path}")
    return 0


def _cmd_plot(args) -> int:
    from .plot import plot_groups

    out_path = _output_path(args.output, args.input)
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
    p.add_argument("--points", type=_positive_int, default=None,
                   help=f"size of the built-in demo when INPUT is omitted (default {DEMO_POINTS})")


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
    p.add_argument("--chunk-groups", type=_positive_int, default=None,
                   help="groups held in memory at a time while writing (default: as many as "
                        f"hold {DEFAULT_CHUNK_MIB} MiB of diffraction patterns, whatever their "
                        "size; the chunk's X_full and Y make peak memory a few times that)")
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
    p.add_argument("--out-of-core", action="store_true",
                   help="also group a pattern store larger than the memory the run may use "
                        "(the child process limits itself with setrlimit; writes about twice "
                        "--store-mib to a temporary directory)")
    p.add_argument("--store-mib", type=_positive_int, default=2048,
                   help="size of that pattern store in MiB, at least twice --limit-mib "
                        "(default 2048)")
    p.add_argument("--limit-mib", type=_int_at_least(256, "at least 256"), default=384,
                   help="memory (RLIMIT_DATA) the grouping process may allocate (default 384)")
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


_GLOBAL_FLAGS = {"-v": ("verbose", 1), "--verbose": ("verbose", 1), "-vv": ("verbose", 2),
                 "-q": ("quiet", True), "--quiet": ("quiet", True), "--debug": ("debug", True)}


def _split_clean_cache(argv):
    """``(global options, rest)`` when the subcommand is ``clean-cache``, else None.

    The migration tool parses its own options (ours would take ``--dry-run``
    for one of theirs), so it gets everything after its name.
    """
    for i, token in enumerate(argv):
        if token == "clean-cache":
            return argv[:i], argv[i + 1:]
        if token not in _GLOBAL_FLAGS:
            return None
    return None


def _configure_output(args) -> None:
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO,
                                              logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    legacy_log = logging.getLogger("ptycho_grouping.legacy")
    if not args.quiet:
        # The legacy strategy is the one that runs long: show its progress.
        legacy_log.setLevel(min(level, logging.INFO))
    # Its deprecation is also logged once for library callers, who may not see
    # warnings; here the warning itself is always shown, so once is enough.
    from ptycho_grouping.legacy import DEPRECATION_MESSAGE
    legacy_log.addFilter(lambda record: record.getMessage() != DEPRECATION_MESSAGE)

    def one_line(message, category, filename, lineno, file=None, line=None):
        if not args.quiet:
            print(f"{PROG}: {category.__name__}: {message}", file=sys.stderr)

    warnings.showwarning = one_line  # library warnings: one line each, no source echo


def _terminate(signum, frame):
    # SIGTERM (a batch scheduler's kill) unwinds like Ctrl-C, so writers remove
    # their temporary files instead of leaving them behind.
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    split = _split_clean_cache(argv)
    if split is not None:
        args = argparse.Namespace(verbose=0, quiet=False, debug=False)
        for token in split[0]:
            name, value = _GLOBAL_FLAGS[token]
            setattr(args, name, getattr(args, name) + value if name == "verbose" else value)
        from migration.clean_cache import main as clean_main
        args.func = lambda a: clean_main(split[1], prog=f"{PROG} clean-cache")
    else:
        args = build_parser().parse_args(argv)
        for name, default in (("verbose", 0), ("quiet", False), ("debug", False)):
            if not hasattr(args, name):
                setattr(args, name, default)
    _configure_output(args)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        text = str(exc).strip()
        message = text.splitlines()[0] if text else type(exc).__name__
        # Anticipated problems with the input are usage errors (2); anything
        # else is a failure of ours (1). Either way one line, --debug for more.
        expected = (UsageError, ValueError, TypeError, OSError, KeyError, ImportError)
        if not isinstance(exc, expected):
            message = f"{type(exc).__name__}: {message} (run with --debug for the traceback)"
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2 if isinstance(exc, expected) else 1
