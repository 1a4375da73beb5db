"""RawData: scan positions, diffraction patterns, probe and object, and grouping.

A drop-in for PtychoPINN's ``ptycho.raw_data.RawData``. ``generate_grouped_data``
has one code path for every gridsize: it asks the strategy registry for the
configured strategy, gets ``(B, C)`` group indices, and gathers the arrays
PtychoPINN consumers read.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from ptycho_grouping import GroupingRequest, NeighborIndex, get_strategy
from ptycho_grouping.npz_io import atomic_savez, load_npz
from ptycho_grouping.registry import DEFAULT_STRATEGY
from ptycho_grouping.strategy import check_bool, check_positive_int, check_rng

from . import dask_arrays, params
from .grouped_arrays import (channels_last, member_coords, normalisation_scale, patch_shifts,
                             pattern_energies, scaled, value_range)
from .patches import extract_patches
from .pattern_store import check_store

__all__ = ["RawData", "REQUIRED_KEYS", "OPTIONAL_KEYS"]

log = logging.getLogger(__name__)

#: NPZ members a dataset file must have (``diffraction`` is accepted for ``diff3d``).
REQUIRED_KEYS = ("xcoords", "ycoords", "diff3d")
#: NPZ members that may be missing, and what stands in for them. A member
#: holding the pickled ``None`` that ``np.savez(..., key=None)`` writes (as
#: PtychoPINN's ``to_file`` does) counts as missing.
OPTIONAL_KEYS = {
    "xcoords_start": "xcoords",
    "ycoords_start": "ycoords",
    "scan_index": "zeros(M, int64)",
    "probeGuess": "None",
    "objectGuess": "None",
    "Y": "None",
}

# Old module-level functions, kept importable for one transition period by a
# shim that warns and forwards to the legacy strategy (see ptycho._deprecated).
_DEPRECATED = ("group_coords", "get_neighbor_diffraction_and_positions", "get_neighbor_indices",
               "sample_rows", "get_neighbor_self_indices", "calculate_relative_coords")


def __getattr__(name):
    if name in _DEPRECATED:
        from . import _deprecated
        return getattr(_deprecated, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _coordinate(name: str, value, length: Optional[int] = None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} has {arr.shape[0]} entries but xcoords has {length}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr))
        raise ValueError(f"{name} must be finite: {bad.size} non-finite value(s), "
                         f"first at index {bad[0]}: {arr[bad[0]]}")
    return arr


def _check_dtype(name: str, dtype, real: bool = False) -> None:
    """Refuse a dtype other than integer, float and (unless ``real``) complex.

    Booleans, strings and objects are refused: they would fail later, far
    from the cause, or silently give nonsense.
    """
    dtype = np.dtype(dtype)
    kinds = (np.integer, np.floating) if real else (np.integer, np.floating, np.complexfloating)
    if not any(np.issubdtype(dtype, kind) for kind in kinds):
        what = "real numbers (integer or float)" if real else "numbers"
        raise TypeError(f"{name} must hold {what}, got dtype {dtype}")


def _numeric_2d(name: str, value) -> Optional[np.ndarray]:
    """``value`` as a 2-D real or complex array, or None."""
    if value is None:
        return None
    arr = np.asarray(value)
    _check_dtype(name, arr.dtype)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    return arr


def _as_path(name: str, value) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {value!r} "
                        f"of type {type(value).__name__}")
    return Path(value)


class RawData:
    """A ptychography scan: positions, patterns, probe, optional object.

    Parameters
    ----------
    xcoords, ycoords : array_like of shape (M,)
        Scan positions (pixels).
    xcoords_start, ycoords_start : array_like of shape (M,)
        Start positions (PtychoPINN keeps both; often equal to the above).
    diff3d : array_like of shape (M, N, N)
        Diffraction amplitudes, one square pattern per position. Any store
        with ``shape``, ``dtype`` and integer-array indexing (``np.memmap``,
        h5py dataset, Zarr or Dask array) is kept unread; grouping reads only
        the frames it needs (see :mod:`ptycho.pattern_store`).
        Must hold real numbers (checked from the dtype alone).
    probeGuess : array_like, 2-D, or None
        Not used by grouping.
    scan_index : array_like of shape (M,), or None
        None gives ``zeros(M, int64)``.
    objectGuess : array_like of shape (H, W), optional
        Numeric; cut into patches for the output ``Y`` when ``Y`` is absent.
    Y : array_like of shape (M, N, N), optional
        Ground-truth patches, same pattern size as ``diff3d``; used for the
        output ``Y`` when present. A lazy store like ``diff3d``.
    norm_Y_I : optional
        Kept for compatibility; not used by grouping.

    The arrays are checked again, cheaply, each time groups are made, so
    attributes reassigned or edited in place after construction are caught.
    """

    def __init__(self, xcoords, ycoords, xcoords_start, ycoords_start, diff3d,
                 probeGuess, scan_index, objectGuess=None, Y=None, norm_Y_I=None):
        self.xcoords, self.ycoords = xcoords, ycoords
        self.xcoords_start, self.ycoords_start = xcoords_start, ycoords_start
        self.diff3d, self.probeGuess, self.objectGuess, self.Y = diff3d, probeGuess, objectGuess, Y
        if scan_index is None:  # as upstream allows; from_file's default
            scan_index = np.zeros(np.shape(xcoords)[:1], dtype=np.int64)
        self.scan_index = scan_index
        self.norm_Y_I = norm_Y_I
        self._index: Optional[NeighborIndex] = None
        self._validate()

    def _validate(self) -> None:
        """Check every array and store the checked ones back, converted to NumPy.

        Called by the constructor and again before grouping: a few passes over
        ``M`` numbers, and only the dtype and shape of the pattern stores, so
        lazy stores stay unread.
        """
        self.xcoords = _coordinate("xcoords", self.xcoords)
        m = self.xcoords.shape[0]
        if m == 0:
            raise ValueError("xcoords must hold at least one scan position, got 0")
        self.ycoords = _coordinate("ycoords", self.ycoords, m)
        self.xcoords_start = _coordinate("xcoords_start", self.xcoords_start, m)
        self.ycoords_start = _coordinate("ycoords_start", self.ycoords_start, m)
        diff3d = self.diff3d = check_store("diff3d", self.diff3d)
        _check_dtype("diff3d", diff3d.dtype, real=True)  # from the dtype: lazy stores stay unread
        if diff3d.shape[0] != m:
            raise ValueError(f"diff3d has {diff3d.shape[0]} patterns but xcoords has {m} positions")
        if diff3d.shape[1] != diff3d.shape[2]:
            raise ValueError("diff3d patterns must be square, got "
                             f"{diff3d.shape[1]}x{diff3d.shape[2]}")
        self.probeGuess = _numeric_2d("probeGuess", self.probeGuess)
        self.scan_index = np.asarray(self.scan_index)
        if self.scan_index.shape != (m,):
            raise ValueError(f"scan_index must have shape ({m},), got {self.scan_index.shape}")
        self.objectGuess = _numeric_2d("objectGuess", self.objectGuess)
        if self.Y is not None:
            self._validate_y(m)

    def _validate_y(self, m: int) -> None:
        Y = self.Y = check_store("Y", self.Y)
        if Y.shape[0] != m:
            raise ValueError(f"Y has {Y.shape[0]} patches but xcoords has {m} positions")
        if tuple(Y.shape[1:]) != tuple(self.diff3d.shape[1:]):
            raise ValueError(f"Y patches are {Y.shape[1]}x{Y.shape[2]} but diff3d patterns are "
                             f"{self.diff3d.shape[1]}x{self.diff3d.shape[2]}")
        _check_dtype("Y", Y.dtype)

    # -- construction and I/O ------------------------------------------------

    @staticmethod
    def from_coords_without_pc(xcoords, ycoords, diff3d, probeGuess, scan_index,
                               objectGuess=None):
        """RawData whose start coordinates equal the coordinates."""
        return RawData(xcoords, ycoords, xcoords, ycoords, diff3d, probeGuess, scan_index,
                       objectGuess)

    @staticmethod
    def from_file(path, mmap: bool = False) -> "RawData":
        """Load a PtychoPINN-style NPZ (``allow_pickle=False``).

        Required members: ``xcoords ycoords diff3d`` (``diffraction`` is
        accepted for ``diff3d``); see :data:`REQUIRED_KEYS`. Missing optional
        members default as in :data:`OPTIONAL_KEYS`: start coordinates to the
        coordinates, ``scan_index`` to zeros, ``probeGuess``, ``objectGuess``
        and ``Y`` to None. A member that holds the pickled ``None`` of
        PtychoPINN's ``to_file`` (``np.savez(..., objectGuess=None)``) counts
        as missing; it is recognised from its header and never unpickled.

        With ``mmap=True`` the pattern stacks (``diff3d``/``diffraction``
        and ``Y``) of an uncompressed NPZ are memory-mapped read-only instead
        of loaded, so a file of any size opens in constant memory.
        """
        data = load_npz(path, mmap_keys=("diff3d", "diffraction", "Y") if mmap else (),
                        optional_keys=tuple(OPTIONAL_KEYS))
        if "diff3d" not in data and "diffraction" in data:
            data["diff3d"] = data.pop("diffraction")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ValueError(f"{path} lacks required key(s) {', '.join(missing)} "
                             f"(found: {', '.join(sorted(data)) or 'none'})")
        x, y = data["xcoords"], data["ycoords"]
        return RawData(x, y, data.get("xcoords_start", x), data.get("ycoords_start", y),
                       data["diff3d"], data.get("probeGuess"), data.get("scan_index"),
                       data.get("objectGuess"), data.get("Y"))

    @staticmethod
    def from_cxi(path, pixel_size=None) -> "RawData":
        """Open a CXI file lazily (patterns stay in the file); see :mod:`ptycho.cxi`."""
        from .cxi import read_cxi
        return read_cxi(path, pixel_size)

    @staticmethod
    def from_files(train_data_file_path, test_data_file_path):
        """Load a training and a test NPZ, as PtychoPINN's ``from_files`` does.

        Parameters
        ----------
        train_data_file_path, test_data_file_path : str or os.PathLike

        Returns
        -------
        tuple of RawData
            ``(train, test)``, each read by :meth:`from_file`.

        To join several scans into one dataset use :meth:`concatenate_files`.
        """
        paths = []
        for name, value in (("train_data_file_path", train_data_file_path),
                            ("test_data_file_path", test_data_file_path)):
            if isinstance(value, (list, tuple)):
                raise TypeError(f"{name} must be one path, got the sequence {value!r}; "
                                "RawData.concatenate_files(paths) joins several files")
            paths.append(_as_path(name, value))
        return RawData.from_file(paths[0]), RawData.from_file(paths[1])

    @staticmethod
    def concatenate_files(paths) -> "RawData":
        """One dataset from several NPZ scans with the same pattern size.

        Positions, start positions, patterns and scan indices are
        concatenated in the order given; ``Y`` too when every file has it
        (otherwise it is dropped, with a warning). The probe and object come
        from the first file.

        Parameters
        ----------
        paths : sequence of str or os.PathLike
            At least one file.
        """
        if isinstance(paths, (str, bytes, os.PathLike)):
            raise TypeError(f"paths must be a sequence of paths, got the single path {paths!r}; "
                            "use RawData.from_file for one file")
        paths = [_as_path(f"paths[{i}]", p) for i, p in enumerate(paths)]
        if not paths:
            raise ValueError("paths must name at least one file, got none")
        parts = [RawData.from_file(p) for p in paths]
        for path, part in zip(paths[1:], parts[1:]):
            if part.diff3d.shape[1:] != parts[0].diff3d.shape[1:]:
                raise ValueError(
                    f"diff3d patterns of {path} are {part.diff3d.shape[1]}x{part.diff3d.shape[2]} "
                    f"but those of {paths[0]} are {parts[0].diff3d.shape[1]}x"
                    f"{parts[0].diff3d.shape[2]}")
        Y = None
        lacking_y = [str(p) for p, part in zip(paths, parts) if part.Y is None]
        if not lacking_y:
            Y = np.concatenate([part.Y for part in parts])
        elif len(lacking_y) < len(parts):
            warnings.warn(f"Y dropped: not every file has it (missing in {', '.join(lacking_y)})",
                          UserWarning, stacklevel=2)

        def cat(name):
            return np.concatenate([getattr(part, name) for part in parts])

        return RawData(cat("xcoords"), cat("ycoords"), cat("xcoords_start"), cat("ycoords_start"),
                       cat("diff3d"), parts[0].probeGuess, cat("scan_index"),
                       parts[0].objectGuess, Y)

    def to_file(self, path) -> Path:
        """Write the NPZ that :meth:`from_file` reads, atomically (dtypes kept).

        As with ``np.savez``, ``.npz`` is appended to ``path`` when it does not
        already end with it. ``None`` members (probe, object, ``Y``) are left
        out rather than pickled. Returns the path written.
        """
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = {
            "xcoords": self.xcoords, "ycoords": self.ycoords,
            "xcoords_start": self.xcoords_start, "ycoords_start": self.ycoords_start,
            "diff3d": self.diff3d, "probeGuess": self.probeGuess, "scan_index": self.scan_index,
            "objectGuess": self.objectGuess, "Y": self.Y,
        }
        return atomic_savez(path, {k: v for k, v in arrays.items() if v is not None})

    def __len__(self) -> int:
        return self.xcoords.shape[0]

    # -- grouping --------------------------------------------------------------

    def _neighbor_index(self) -> NeighborIndex:
        """The neighbour index of the current coordinates, reused while they hold.

        Every array is checked again first (:meth:`_validate`): attributes
        may have been reassigned or edited since construction. Comparing the
        coordinates with the index's frozen copy (two array comparisons, a
        few ms at 10^6 points) keeps a stale tree out.
        """
        self._validate()
        x, y = self.xcoords, self.ycoords
        index = self._index
        if (index is None or index.n_points != x.shape[0]
                or not np.array_equal(index.coords[:, 0], x)
                or not np.array_equal(index.coords[:, 1], y)):
            # column_stack makes a fresh array nobody else holds: no second copy.
            index = self._index = NeighborIndex(np.column_stack([x, y]), copy=False)
        return index

    def generate_grouped_data(self, N, K=4, nsamples=1, dataset_path=None, seed=None,
                              sequential_sampling=False, gridsize=None,
                              enable_oversampling=False, neighbor_pool_size=None,
                              grouping_strategy=None, lazy=False) -> dict:
        """Group scan positions and gather what a PtychoPINN model trains on.

        Parameters
        ----------
        N : int
            Pattern size; must equal ``diff3d.shape[1]``.
        K : int, default 4
            Neighbours a group's members are drawn from.
        nsamples : int, default 1
            Number of groups ``B``.
        dataset_path : str, optional
            Only the legacy strategy uses it (its cache file lives beside it).
        seed : None, int or numpy.random.Generator
            Randomness (SPEC 7). The default strategy never uses NumPy's global
            state; the deprecated legacy strategy uses it when ``seed`` is None,
            as the old code did.
        sequential_sampling : bool
            First ``nsamples`` positions as seeds, nearest neighbours as members.
        gridsize : int, optional
            ``C = gridsize**2`` members per group; default ``params.get('gridsize')``.
        enable_oversampling : bool
            Allow ``nsamples`` > number of positions (gridsize > 1).
        neighbor_pool_size : int, optional
            Neighbour pool when oversampling (default ``K``).
        grouping_strategy : str, optional
            Registry name; default ``params.cfg['grouping_strategy']``, then
            ``"sample_then_group"``.
        lazy : bool, default False
            Return ``diffraction``, ``X_full`` and ``Y`` as Dask arrays that
            read the patterns only when computed (needs the ``dask`` extra;
            see :mod:`ptycho.dask_arrays`). The other entries are computed at once.

        Returns
        -------
        dict
            ``nn_indices (B, C)``, ``diffraction``/``X_full (B, N, N, C)``,
            ``coords_nn``/``coords_start_nn (B, 1, 2, C)``,
            ``coords_offsets``/``coords_start_offsets (B, 1, 2, 1)``,
            ``coords_relative``/``coords_start_relative (B, 1, 2, C)``,
            ``Y (B, N, N, C)`` or None, ``objectGuess``.

        Raises
        ------
        TypeError, ValueError
            Naming the argument as passed here (``nsamples``, ``K``, ``seed``,
            ...) and its value; ``ValueError`` also when the drawn patterns
            have zero total energy, so ``X_full`` cannot be normalised.

        Notes
        -----
        Sign convention (PtychoPINN's current one, ``local_offset_sign = -1``):
        ``coords_relative = -(coords_nn - coords_offsets)``, so
        ``coords_offsets + coords_relative = 2 * coords_offsets - coords_nn``.
        Object patches are cut at that point, so with ``gridsize > 1`` channel
        ``c`` of ``Y`` is centred on the reflection of member ``c`` through the
        group centre, not on the member's own position; with ``gridsize = 1``
        the two coincide. A ``Y`` given to the constructor is gathered per
        member and is not affected.
        """
        lazy = check_bool("lazy", lazy)
        nn_indices = self.group_indices(
            N, K=K, nsamples=nsamples, dataset_path=dataset_path, seed=seed,
            sequential_sampling=sequential_sampling, gridsize=gridsize,
            enable_oversampling=enable_oversampling, neighbor_pool_size=neighbor_pool_size,
            grouping_strategy=grouping_strategy)
        return self._grouped(nn_indices, N, lazy=lazy)

    def group_indices(self, N, K=4, nsamples=1, dataset_path=None, seed=None,
                      sequential_sampling=False, gridsize=None, enable_oversampling=False,
                      neighbor_pool_size=None, grouping_strategy=None) -> np.ndarray:
        """Only the groups, ``(B, C)`` indices: what ``generate_grouped_data`` gathers for.

        Takes the same arguments with the same defaults and precedence; use it
        with :func:`ptycho.grouped_writer.write_grouped` for outputs larger
        than memory. Errors name the arguments as passed here, not the
        grouping engine's names for them.
        """
        nsamples = check_positive_int("nsamples", nsamples)
        K = check_positive_int("K", K)
        seed = check_rng("seed", seed)
        sequential_sampling = check_bool("sequential_sampling", sequential_sampling)
        enable_oversampling = check_bool("enable_oversampling", enable_oversampling)
        neighbor_pool_size = check_positive_int("neighbor_pool_size", neighbor_pool_size,
                                                allow_none=True)
        if gridsize is None:
            gridsize = params.cfg.get("gridsize", 1)
        gridsize = check_positive_int("gridsize", gridsize)
        N = check_positive_int("N", N)
        if N != self.diff3d.shape[1]:
            raise ValueError(f"N={N} does not match the diffraction patterns' size "
                             f"{self.diff3d.shape[1]}x{self.diff3d.shape[2]}")
        if grouping_strategy is None:
            grouping_strategy = params.cfg.get("grouping_strategy") or DEFAULT_STRATEGY
        strategy = get_strategy(grouping_strategy)
        request = GroupingRequest(
            n_groups=nsamples, group_size=gridsize * gridsize, neighbors=K, rng=seed,
            sequential=sequential_sampling, enable_oversampling=enable_oversampling,
            neighbor_pool_size=neighbor_pool_size, dataset_path=dataset_path)
        nn_indices = strategy.group(self._neighbor_index(), request)
        log.info("%s: %d groups of %d from %d positions", strategy.name, len(nn_indices),
                 gridsize * gridsize, len(self))
        return nn_indices

    def _grouped(self, nn_indices: np.ndarray, N: int, lazy: bool = False) -> dict:
        """The output dictionary for ``nn_indices``.

        The arithmetic lives in :mod:`ptycho.grouped_arrays`, shared with the
        Dask (``lazy=True``, :mod:`ptycho.dask_arrays`) and streaming
        (:mod:`ptycho.grouped_writer`) paths.
        """
        coords_nn, coords_offsets, coords_relative = member_coords(
            self.xcoords, self.ycoords, nn_indices)
        start_nn, start_offsets, start_relative = member_coords(
            self.xcoords_start, self.ycoords_start, nn_indices)
        shifts = patch_shifts(coords_offsets, coords_relative)        # (B*C, 2)
        if lazy:
            diffraction, X_full = dask_arrays.lazy_pattern_arrays(self.diff3d, nn_indices, N)
            if self.Y is not None:
                Y = dask_arrays.lazy_gathered(self.Y, nn_indices)
            elif self.objectGuess is not None:
                Y = dask_arrays.lazy_patches(self.objectGuess, shifts, nn_indices.shape, N)
            else:
                Y = None
        else:
            diffraction = channels_last(self.diff3d, nn_indices)
            scale = normalisation_scale(pattern_energies(diffraction), N,
                                        lambda: value_range(diffraction))
            X_full = scaled(diffraction, scale)
            if self.Y is not None:
                Y = channels_last(self.Y, nn_indices)
            elif self.objectGuess is not None:
                patches = extract_patches(self.objectGuess, shifts, N)
                Y = np.moveaxis(patches.reshape(*nn_indices.shape, N, N), 1, 3)
            else:
                Y = None
        return {
            "nn_indices": nn_indices,
            "diffraction": diffraction,
            "X_full": X_full,
            "coords_nn": coords_nn,
            "coords_offsets": coords_offsets,
            "coords_relative": coords_relative,
            "coords_start_nn": start_nn,
            "coords_start_offsets": start_offsets,
            "coords_start_relative": start_relative,
            "Y": Y,
            "objectGuess": self.objectGuess,
        }

