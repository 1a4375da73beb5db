"""``ptycho-group demo-data``: write the built-in simulated scan to a file."""
from __future__ import annotations

from ..demo import PATTERNS, write_demo
from ..inputs import DEMO_POINTS
from ..options import check_output_path, non_negative_int, positive_int
from ..output import summary
from ..progress import bar

NAME = "demo-data"
HELP = "write the built-in demo dataset to a file"
DESCRIPTION = ("Simulate a ptychography scan (positions, far-field diffraction amplitudes of a "
               "synthetic object under a Gaussian probe, the probe and the object) and write it "
               "as a PtychoPINN-style NPZ. Deterministic: the same options write the same data.")


def add_arguments(p) -> None:
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="where to write")
    p.add_argument("--points", type=positive_int, default=DEMO_POINTS, help="scan positions")
    p.add_argument("--pattern", choices=PATTERNS, default=PATTERNS[0],
                   help="scan path: jittered raster, Fermat spiral, or uniform random positions")
    p.add_argument("--N", type=positive_int, default=32, help="diffraction pattern size (pixels)")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="random seed of the jitter, the positions and the object")


def run(args) -> int:
    out_path = check_output_path(args.output)
    with bar(args.show_progress, total=args.points, unit="pt", unit_scale=True,
             desc=f"simulating {args.points} {args.pattern} positions into {out_path}") as shown:
        out_path = write_demo(out_path, points=args.points, pattern=args.pattern, N=args.N,
                              seed=args.seed,
                              progress=(lambda done, total: shown.update(done - shown.n))
                              if args.show_progress else False)
    summary(args, f"wrote {out_path}: {args.points} {args.pattern} positions, "
                  f"{args.N}x{args.N} patterns, probe and object")
    return 0
