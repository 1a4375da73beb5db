"""``ptycho-group group``: group a dataset and stream the grouped arrays to a file."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ptycho_data.grouped_writer import DEFAULT_CHUNK_MIB, FORMATS, write_grouped
from ptycho_data.probe_size import describe_probe_diameter, probe_diameter
from ptycho_data.zarr_output import replaceable
from ptycho_grouping.metrics import grouping_metrics

from ..grouping import (
    add_grouping_options,
    check_grouping_flags,
    naming,
    plan_grouping,
    zero_spread_groups,
)
from ..cluster import add_dask_options, check_dask_flags, cluster_summary, dask_client
from ..inputs import CXI_SUFFIXES, DEMO_POINTS, disk_bytes, open_input
from ..memory import peak_rss_mib
from ..metrics_text import metric_lines
from ..options import UsageError, check_output_path, positive_int
from ..output import note, summary, warning
from ..progress import bar

NAME = "group"
HELP = "group a dataset (or the built-in demo) and write the result"
DESCRIPTION = ("Group the scan positions of INPUT (a PtychoPINN-style NPZ) or, without INPUT, of "
               "a built-in simulated scan, and write the grouped arrays (nn_indices, diffraction, "
               "X_full, coordinates, Y) to OUT (NPZ, HDF5 or a Zarr store, chosen by OUT's "
               "ending or --out-format). The input is memory-mapped when stored "
               "uncompressed and the output is written chunk by chunk, so memory stays bounded "
               "whatever the dataset size. With --dask the patterns are gathered and written by "
               "the workers of a Dask cluster into a Zarr store.")

#: File name endings each --out-format is expected to have.
FORMAT_SUFFIXES = {"npz": (".npz",), "hdf5": (".h5", ".hdf5"), "zarr": (".zarr",)}


def add_arguments(p) -> None:
    p.add_argument("input", nargs="?", metavar="INPUT",
                   help="dataset: a PtychoPINN NPZ, a CXI file or a Zarr store of the same "
                        "arrays (default: built-in demo)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="where to write")
    p.add_argument("--out-format", "--format", choices=FORMATS, default=None,
                   help="npz, hdf5 (needs h5py) or zarr (needs zarr), all written chunk by "
                        "chunk (default: from OUT's ending, .h5/.hdf5 or .zarr, else npz)")
    p.add_argument("--chunk-groups", metavar="B", type=positive_int, default=None,
                   help="groups held in memory at a time while writing (default: as many as "
                        f"hold {DEFAULT_CHUNK_MIB} MiB of diffraction patterns, whatever their "
                        "size; the chunk's X_full and Y make peak memory a few times that)")
    p.add_argument("--mmap", action="store_true",
                   help="no effect, kept for old scripts: INPUT is always memory-mapped when "
                        "it is stored uncompressed (np.savez), and loaded otherwise")
    p.add_argument("--probe-diameter", metavar="D", type=_positive_float, default=None,
                   help="probe diameter (coordinate units) for the overlap metrics (default: "
                        "derived from the dataset's probe: the "
                        f"{describe_probe_diameter()})".replace("%", "%%"))
    add_grouping_options(p)
    add_dask_options(p)


def _out_format(args, out_path: Path) -> str:
    """--out-format, or the format OUT's ending names (npz when it names none)."""
    if args.out_format is not None:
        return args.out_format
    suffix = out_path.suffix.lower()
    return next((fmt for fmt, endings in FORMAT_SUFFIXES.items() if suffix in endings), "npz")


#: Where the grouping metrics are stored, as the provenance is: an NPZ member of JSON
#: text (``json.loads(str(np.load(out)[METRICS_KEY]))``, nothing unpickled), an HDF5 or
#: Zarr attribute.
METRICS_KEY = "grouping_metrics"


def _positive_float(text: str) -> float:
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _metrics_for(raw, args):
    """The metrics of ``nn`` as a dict, with where the probe diameter came from."""
    if args.probe_diameter is not None:
        diameter, how = args.probe_diameter, "--probe-diameter"
    else:
        diameter = probe_diameter(raw.probeGuess)
        how = describe_probe_diameter() if diameter is not None else "no probe: overlap not measured"
    coords = np.column_stack([np.asarray(raw.xcoords), np.asarray(raw.ycoords)])

    def compute(nn):
        out = grouping_metrics(coords, nn, probe_diameter=diameter).to_dict()
        out["probe_diameter_source"] = how
        return out
    return compute


def _check_suffix(args, out_path: Path) -> None:
    """Warn (no error: the name is the user's choice) when the name suggests another format."""
    expected = FORMAT_SUFFIXES[args.out_format]
    if out_path.suffix.lower() not in expected:
        warning(args, f"--out-format {args.out_format} writes {args.out_format.upper()}, but "
                      f"{out_path} does not end in {' or '.join(expected)}")


def _command_line(args, plan, out_format: str) -> str:
    """The command that writes this output again, every grouping value spelled out.

    The output is ``OUT``: the record is the same whatever the output is called.
    """
    parts = ["ptycho-group", "group"] + ([args.input] if args.input else
                                         ["--points", str(args.points or DEMO_POINTS)])
    parts += ["-o", "OUT", "--out-format", out_format, "--gridsize", str(plan.gridsize),
              "--groups", str(plan.groups), "--neighbors", str(plan.neighbors),
              "--seed", str(args.seed), "--strategy", plan.strategy]
    parts += ["--sequential"] * args.sequential + ["--oversample"] * args.oversample
    if args.pool_size is not None:
        parts += ["--pool-size", str(args.pool_size)]
    return " ".join(parts)


def run(args) -> int:
    check_grouping_flags(args)
    check_dask_flags(args)
    out_path = Path(args.output)
    args.out_format = _out_format(args, out_path)
    if args.dask and args.out_format != "zarr":
        raise UsageError(f"--dask writes a Zarr store: give -o OUT.zarr or --out-format zarr "
                         f"(got {args.out_format} for {out_path})")
    store = args.out_format == "zarr" and out_path.is_dir()
    if store and not replaceable(out_path):
        raise UsageError(f"output path is a directory that is not a Zarr store: {out_path}")
    out_path = check_output_path(args.output, args.input, directory_ok=store)
    _check_suffix(args, out_path)
    raw, mapped, source = open_input(args)
    show = args.show_progress
    n_points, n_pix = len(raw), raw.diff3d.shape[1]
    with naming(args.input):
        plan = plan_grouping(args, n_points, raw.neighbor_index)
        for text in plan.notes:
            note(args, text)
        record = {"command": _command_line(args, plan, args.out_format)}
        compute = _metrics_for(raw, args)
        measured = {}

        def metadata(groups):
            measured.update(compute(groups))
            return {METRICS_KEY: measured}
        with dask_client(args) as client:
            start = time.perf_counter()
            with bar(show, desc=f"grouping and writing {out_path}", unit="B", unit_scale=True,
                     unit_divisor=1024) as written:
                def advance(done, total):  # the writers report bytes written of the total
                    written.total = total
                    written.update(done - written.n)
                common = dict(chunk_groups=args.chunk_groups, progress=advance if show else False,
                              provenance=record, input_path=args.input, metadata=metadata,
                              **plan.library_kwargs(args, args.input))
                if client is None:
                    nn = write_grouped(raw, out_path, n_pix, out_format=args.out_format, **common)
                else:
                    from ptycho_data.cluster_writer import write_grouped_distributed
                    nn = write_grouped_distributed(raw, out_path, n_pix, client=client, **common)
            elapsed = time.perf_counter() - start
            cluster_lines = cluster_summary(args, client)
    flat = zero_spread_groups(raw.xcoords, raw.ycoords, nn)
    if flat:
        warning(args, f"{flat} of {len(nn)} groups have zero spread: all their members sit at "
                      f"one scan position ({source} has coincident positions), so they show "
                      "the same spot several times instead of overlapping neighbours")
    in_place = args.input and (Path(args.input).is_dir()
                               or Path(args.input).suffix.lower() in CXI_SUFFIXES)
    stored = (", read in place" if in_place else ", memory-mapped") if mapped else ""
    summary(args, f"input       {source} ({n_points} points, {n_pix}x{n_pix} "
                  f"{np.dtype(raw.diff3d.dtype).name} patterns{stored})")
    summary(args, f"groups      {nn.shape[0]} x {nn.shape[1]} (gridsize {plan.gridsize}, "
                  f"{plan.describe_k()}, strategy {plan.strategy}, seed {args.seed})")
    for line in metric_lines(measured):
        summary(args, line)
    summary(args, f"time        {elapsed * 1e3:.1f} ms (grouping, gathering and writing)")
    summary(args, f"peak RSS    {peak_rss_mib():.0f} MiB (whole process)")
    for line in cluster_lines:
        summary(args, line)
    summary(args, f"wrote       {out_path} ({disk_bytes(out_path) / 2**20:.1f} MiB)")
    return 0
