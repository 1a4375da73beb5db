"""``ptycho-group info``: what to know about a dataset before grouping it, or about a grouped output."""
from __future__ import annotations

import json
import zipfile

import numpy as np

from ptycho_data.provenance import KEY as PROVENANCE_KEY
from ptycho_data.provenance import read_record
from ptycho_grouping import NeighborIndex
from ptycho_grouping.npz_io import read_npy_header

from ..grouping import DEFAULT_GROUPS
from ..inputs import CXI_SUFFIXES, check_input_path, disk_bytes, open_dataset, stored_members
from ..metrics_text import metric_rows
from .group import METRICS_KEY

NAME = "info"
HELP = "describe a dataset: positions, patterns, extent, spacing, metadata"
DESCRIPTION = ("Describe INPUT without grouping it: scan positions, pattern shape and dtype, "
               "coordinate extent and typical spacing, the other arrays, the metadata, which "
               "pattern stores are read lazily (memory-mapped), and the command that would "
               "group it. On a grouped output of 'group' (NPZ, HDF5 or Zarr: it holds "
               "nn_indices): its arrays, how it was made (strategy, seed, parameters, command) "
               "and its grouping metrics, as 'group' printed them.")

#: Arrays every grouped output holds and no dataset does: what tells the two apart.
GROUPED_MEMBERS = ("nn_indices", "X_full")
#: The arrays of a grouped output whose shapes ``info`` shows (the others it names).
MAIN_ARRAYS = ("nn_indices", "diffraction", "X_full", "Y")

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


def _npz_shapes(path) -> dict:
    """``{member: (shape, dtype)}`` of an NPZ, from the array headers alone (nothing loaded)."""
    shapes = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with zf.open(info) as fh:
                shape, _, dtype = read_npy_header(fh)
            shapes[info.filename[:-4]] = (shape, dtype)
    return shapes


def grouped_arrays(path) -> "dict | None":
    """``{array: (shape, dtype)}`` of a grouped output, or None when ``path`` is not one.

    A grouped output is recognised by its members (:data:`GROUPED_MEMBERS`),
    whatever its format: NPZ, HDF5 or a Zarr store. Only headers are read.
    """
    if path.is_dir():
        from ptycho_data.zarr_output import zarr_module
        group = zarr_module().open_group(str(path), mode="r")
        shapes = {name: (tuple(a.shape), a.dtype) for name, a in group.arrays()}
    elif path.suffix.lower() in CXI_SUFFIXES:
        try:
            import h5py
        except ImportError:
            return None
        with h5py.File(path, "r") as f:
            shapes = {name: (f[name].shape, f[name].dtype) for name in f
                      if isinstance(f[name], h5py.Dataset)}
    else:
        try:
            shapes = _npz_shapes(path)
        except (zipfile.BadZipFile, OSError, ValueError):
            return None
    return shapes if all(name in shapes for name in GROUPED_MEMBERS) else None


def _shape(shape, dtype) -> str:
    return f"{' x '.join(map(str, shape)) or 'scalar'} {np.dtype(dtype).name}"


def _grouped_rows(path, arrays: dict) -> list:
    """What ``info`` says about a grouped output: its arrays, provenance and metrics."""
    prov = read_record(path, PROVENANCE_KEY)
    metrics = read_record(path, METRICS_KEY)
    n, c = arrays["nn_indices"][0][:2]
    main = [name for name in MAIN_ARRAYS if name in arrays]
    others = sorted(name for name, (shape, _) in arrays.items()
                    if name not in main and len(shape))  # 0-d members are the JSON records
    rows = [("file", f"{path} (grouped output, {disk_bytes(path) / 2**20:.1f} MiB)"),
            ("arrays", "; ".join(f"{name} {_shape(*arrays[name])}" for name in main)
             + (f"; also {', '.join(others)}" if others else ""))]
    if prov is None:
        rows.append(("provenance", "none stored"))
        rows.append(("groups", f"{n} x {c}"))
    else:
        p = prov.get("grouping", {})
        rows.append(("groups", f"{n} x {c} (gridsize {p.get('gridsize')}, K {p.get('K')}, "
                               f"strategy {p.get('grouping_strategy')}, seed {p.get('seed')})"))
        rows.append(("parameters", json.dumps(p, sort_keys=True)))
        src = prov.get("input", {})
        where = f", file {src['path']}" if "path" in src else ""
        rows.append(("input", f"{src.get('points')} points{where}, coordinates sha256 "
                              f"{str(src.get('coordinates_sha256'))[:16]}..."))
        rows.append(("producer", str(prov.get("producer"))))
        if "command" in prov:
            rows.append(("command", prov["command"]))
    if metrics is None:
        rows.append(("metrics", "none stored"))
    else:
        rows.extend(metric_rows(metrics))
    return rows


def _print(rows) -> None:
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        print(f"{label:<{width}}  {text}")


def run(args) -> int:
    path = check_input_path(args.input)
    arrays = grouped_arrays(path)
    if arrays is not None:
        _print(_grouped_rows(path, arrays))
        return 0
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
        # PtychoPINN's _metadata (read by the data layer without unpickling), one JSON line.
        ("metadata", "none" if raw.metadata is None else json.dumps(raw.metadata, default=str)),
        ("group it", f"ptycho-group group {path} -o {stem}-groups.npz --gridsize 2 "
                     f"--groups {groups}"),
    ]
    _print(rows)
    return 0
