"""Datasets stored as Zarr groups: the members of a PtychoPINN NPZ, one Zarr array each.

The pattern stacks (``diff3d``/``diffraction``, ``Y``) stay Zarr arrays,
read only where grouping needs them, and travel to Dask workers as the
store's path (a Zarr array pickles as its location, not its data); the
coordinates, probe and object are small and loaded. Needs the ``zarr`` extra.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset_checks import REQUIRED_KEYS, with_required_members
from .raw_data import OPTIONAL_KEYS, RawData
from .zarr_output import is_zarr_store, zarr_module

__all__ = ["open_zarr_dataset", "is_zarr_store"]

#: Members kept in the store (read lazily); the others are loaded.
LAZY_MEMBERS = ("diff3d", "diffraction", "Y")


def open_zarr_dataset(path) -> RawData:
    """The dataset in the Zarr group at ``path`` (arrays named as in a PtychoPINN NPZ)."""
    zarr = zarr_module()
    group = zarr.open_group(str(path), mode="r")
    names = set(group.array_keys())
    data = {name: (group[name] if name in LAZY_MEMBERS else np.asarray(group[name][...]))
            for name in names if name in LAZY_MEMBERS or name in REQUIRED_KEYS
            or name in OPTIONAL_KEYS}
    data = with_required_members(Path(path), data)
    x, y = data["xcoords"], data["ycoords"]
    return RawData(x, y, data.get("xcoords_start", x), data.get("ycoords_start", y),
                   data["diff3d"], data.get("probeGuess"), data.get("scan_index"),
                   data.get("objectGuess"), data.get("Y"))
