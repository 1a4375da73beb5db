"""``ptycho-group info``: what to know about a dataset before grouping it."""
from __future__ import annotations

import json

import numpy as np

from ptycho_grouping import NeighborIndex

from ..grouping import DEFAULT_GROUPS
from ..inputs import check_input_path, open_dataset, stored_members

NAME = "info"
HELP = "describe a dataset: positions, patterns, extent, spacing, metadata"
DESCRIPTION = ("Describe INPUT without grouping it: scan positions, pattern shape and dtype, "
               "coordinate extent and typical spacing, the other arrays, the metadata, which "
               "pattern stores are read lazily (memory-mapped), and the command that would "
               "group it.")

#: Positions whose nearest neighbour is measured for the typical spacing.
SPACING_SAMPLE = 10_000


def add_arguments(p) -> None:
    p.add_argument("input", metavar="INPUT.npz", help="dataset to describe")


def typical_spacing(x, y, sample: int = SPACING_SAMPLE) -> float:
    """Median distance from a position to its nearest other position (a sample of them)."""
    coords = np.column_stack([x, y])
    if len(coords) < 2:
        return float("nan")
    seeds = np.random.default_rng(0).choice(len(coords), min(sample, len(coords)),
                                            replace=False)
    nearest = NeighborIndex(coords).neighbors(seeds, 1)[:, 0]
    return float(np.median(np.hypot(*(coords[nearest] - coords[seeds]).T)))


def _array(value, lazy: bool = False) -> str:
    if value is None:
        return "absent"
    shape = " x ".join(map(str, value.shape))
    where = ", memory-mapped (read lazily)" if lazy else ", loaded"
    return f"{shape} {np.dtype(value.dtype).name}{where if value.ndim == 3 else ''}"


def _metadata(metadata) -> str:
    """PtychoPINN's ``_metadata`` (read by the data layer without unpickling) as one JSON line."""
    return "none" if metadata is None else json.dumps(metadata, default=str)


def run(args) -> int:
    path = check_input_path(args.input)
    members = stored_members(path)
    raw, mapped = open_dataset(path)
    x, y = np.asarray(raw.xcoords), np.asarray(raw.ycoords)
    n = len(raw)
    stem = path.with_suffix("").name
    groups = min(DEFAULT_GROUPS, n)
    rows = [
        ("file", f"{path} ({path.stat().st_size / 2**20:.1f} MiB, NPZ members: "
                 f"{', '.join(sorted(members))})"),
        ("positions", f"{n}"),
        ("patterns", _array(raw.diff3d, lazy=bool(mapped) and raw.diff3d is not None)),
        ("extent", f"x {x.min():.6g} .. {x.max():.6g}, y {y.min():.6g} .. {y.max():.6g} "
                   f"(width {np.ptp(x):.6g}, height {np.ptp(y):.6g})"),
        ("spacing", f"{typical_spacing(x, y):.6g} (median distance to the nearest position)"),
        ("probe", _array(raw.probeGuess)),
        ("object", _array(raw.objectGuess)),
        ("Y", _array(raw.Y, lazy="Y" in mapped)),
        ("metadata", _metadata(raw.metadata)),
        ("group it", f"ptycho-group group {path} -o {stem}-groups.npz --gridsize 2 "
                     f"--groups {groups}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        print(f"{label:<{width}}  {text}")
    return 0
