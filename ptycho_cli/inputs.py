"""The dataset a command works on: a user's NPZ (memory-mapped when it can be), CXI or Zarr, or the demo.

Patterns stay on disk whenever the format allows (an uncompressed NPZ is
memory-mapped, a CXI file's dataset and a Zarr store's array are read where
needed), so that a file of any size opens in constant memory and Dask
workers can read it by path.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Tuple

from ptycho_data.raw_data import RawData
from ptycho_data.zarr_output import is_zarr_store, store_bytes

from .demo import make_demo
from .options import UsageError
from .progress import stage

__all__ = ["PATTERN_MEMBERS", "CXI_SUFFIXES", "DEMO_POINTS", "check_input_path", "stored_members",
           "open_dataset", "open_input", "disk_bytes"]

#: Members that hold pattern stacks, memory-mapped when stored uncompressed.
PATTERN_MEMBERS = ("diff3d", "diffraction", "Y")
#: Size of the built-in demo scan when no INPUT is given.
DEMO_POINTS = 10_000


#: INPUT endings read as CXI (HDF5) files.
CXI_SUFFIXES = (".cxi", ".h5", ".hdf5")


def check_input_path(path) -> Path:
    """``path`` as a Path, or a UsageError naming it when it is not a file (or a Zarr store)."""
    path = Path(path)
    if path.is_dir() and not is_zarr_store(path):
        raise UsageError(f"INPUT {path} is a directory, not an NPZ file or a Zarr store")
    if not path.exists():
        raise UsageError(f"input file not found: {path}")
    return path


def stored_members(path) -> dict:
    """``{member name: stored uncompressed?}`` of an NPZ, from its zip directory alone.

    Empty when the file is not a zip archive (loading it then says why).
    """
    try:
        with zipfile.ZipFile(path) as zf:
            return {info.filename[:-4] if info.filename.endswith(".npy") else info.filename:
                    info.compress_type == zipfile.ZIP_STORED for info in zf.infolist()}
    except (zipfile.BadZipFile, OSError):
        return {}


def open_dataset(path) -> Tuple[RawData, Tuple[str, ...]]:
    """The dataset at ``path`` and the pattern members left on disk (memory-mapped).

    Patterns stored uncompressed are memory-mapped, so a file of any size
    opens in constant memory; a compressed file has to be loaded.
    """
    path = check_input_path(path)
    if path.is_dir():
        from ptycho_data.zarr_input import open_zarr_dataset
        raw = open_zarr_dataset(path)
        return raw, ("diff3d",) + (("Y",) if raw.Y is not None else ())
    if path.suffix.lower() in CXI_SUFFIXES:
        raw = RawData.from_cxi(path)
        return raw, ("diff3d",)
    members = stored_members(path)
    present = [name for name in PATTERN_MEMBERS if name in members]
    mappable = bool(present) and all(members[name] for name in present)
    raw = RawData.from_file(path, mmap=mappable)
    return raw, tuple(present) if mappable else ()


def open_input(args) -> Tuple[RawData, Tuple[str, ...], str]:
    """The dataset of ``args.input`` (or the demo of ``--points``), its mapped members, its name."""
    if args.input is None:
        with stage(args.show_progress, "making the built-in demo scan"):
            return make_demo(points=args.points or DEMO_POINTS, seed=0), (), "built-in demo"
    if args.points is not None:
        raise UsageError("--points applies to the built-in demo only, not to INPUT")
    with stage(args.show_progress, f"opening {args.input}"):
        raw, mapped = open_dataset(args.input)
    return raw, mapped, args.input


def disk_bytes(path: Path) -> int:
    """The size of a file, or of the files in a directory (a Zarr store)."""
    return store_bytes(path) if path.is_dir() else path.stat().st_size
