"""``ptycho-group group``: group a dataset and stream the grouped arrays to a file."""
from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np

from ptycho_data.grouped_writer import DEFAULT_CHUNK_MIB, FORMATS, write_grouped

from ..grouping import (
    add_grouping_options,
    check_grouping_flags,
    naming,
    plan_grouping,
    zero_spread_groups,
)
from ..inputs import open_input
from ..options import check_output_path, positive_int
from ..output import note, summary, warning
from ..progress import bar

NAME = "group"
HELP = "group a dataset (or the built-in demo) and write the result"
DESCRIPTION = ("Group the scan positions of INPUT (a PtychoPINN-style NPZ) or, without INPUT, of "
               "a built-in simulated scan, and write the grouped arrays (nn_indices, diffraction, "
               "X_full, coordinates, Y) to OUT. The input is memory-mapped when stored "
               "uncompressed and the output is written chunk by chunk, so memory stays bounded "
               "whatever the dataset size.")

#: File name endings each --out-format is expected to have.
FORMAT_SUFFIXES = {"npz": (".npz",), "hdf5": (".h5", ".hdf5")}


def add_arguments(p) -> None:
    p.add_argument("input", nargs="?", metavar="INPUT.npz", help="dataset (default: built-in demo)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="where to write")
    p.add_argument("--out-format", choices=FORMATS, default=FORMATS[0],
                   help="npz or hdf5 (needs h5py); both written chunk by chunk")
    p.add_argument("--chunk-groups", metavar="B", type=positive_int, default=None,
                   help="groups held in memory at a time while writing (default: as many as "
                        f"hold {DEFAULT_CHUNK_MIB} MiB of diffraction patterns, whatever their "
                        "size; the chunk's X_full and Y make peak memory a few times that)")
    p.add_argument("--mmap", action="store_true",
                   help="no effect, kept for old scripts: INPUT is always memory-mapped when "
                        "it is stored uncompressed (np.savez), and loaded otherwise")
    add_grouping_options(p)


def _check_suffix(args, out_path: Path) -> None:
    """Warn (no error: the name is the user's choice) when the name suggests another format."""
    expected = FORMAT_SUFFIXES[args.out_format]
    if out_path.suffix.lower() not in expected:
        warning(args, f"--out-format {args.out_format} writes {args.out_format.upper()}, but "
                      f"{out_path} does not end in {' or '.join(expected)}")


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux: the process's peak resident memory so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args) -> int:
    check_grouping_flags(args)
    out_path = check_output_path(args.output, args.input)
    _check_suffix(args, out_path)
    raw, mapped, source = open_input(args)
    show = args.show_progress
    n_points, n_pix = len(raw), raw.diff3d.shape[1]
    with naming(args.input):
        plan = plan_grouping(args, n_points)
        for text in plan.notes:
            note(args, text)
        start = time.perf_counter()
        with bar(show, desc=f"grouping and writing {out_path}", unit="B", unit_scale=True,
                 unit_divisor=1024) as written:
            def advance(done, total):  # write_grouped reports bytes written of the total
                written.total = total
                written.update(done - written.n)
            nn = write_grouped(raw, out_path, n_pix, out_format=args.out_format,
                               chunk_groups=args.chunk_groups,
                               progress=advance if show else False,
                               **plan.library_kwargs(args, args.input))
        elapsed = time.perf_counter() - start
    covered = len(np.unique(nn))
    flat = zero_spread_groups(raw.xcoords, raw.ycoords, nn)
    if flat:
        warning(args, f"{flat} of {len(nn)} groups have zero spread: all their members sit at "
                      f"one scan position ({source} has coincident positions), so they show "
                      "the same spot several times instead of overlapping neighbours")
    stored = ", memory-mapped" if mapped else ""
    summary(args, f"input       {source} ({n_points} points, {n_pix}x{n_pix} "
                  f"{np.dtype(raw.diff3d.dtype).name} patterns{stored})")
    summary(args, f"groups      {nn.shape[0]} x {nn.shape[1]} (gridsize {plan.gridsize}, "
                  f"{plan.describe_k()}, strategy {plan.strategy}, seed {args.seed})")
    summary(args, f"coverage    {covered} distinct scan points ({100 * covered / n_points:.1f}%)")
    summary(args, f"time        {elapsed * 1e3:.1f} ms (grouping, gathering and writing)")
    summary(args, f"peak RSS    {_peak_rss_mib():.0f} MiB (whole process)")
    summary(args, f"wrote       {out_path} ({out_path.stat().st_size / 2**20:.1f} MiB)")
    return 0
