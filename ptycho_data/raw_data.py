"""RawData: scan positions, diffraction patterns, probe and object, and grouping.

A drop-in for PtychoPINN's ``ptycho.raw_data``. ``RawData.generate_grouped_data``
has one code path for every gridsize: it asks the strategy registry for the
configured strategy, gets ``(B, C)`` group indices, and gathers the arrays
PtychoPINN consumers read. The module keeps PtychoPINN's module-level names
(:func:`normalize_data`, :func:`get_relative_coords`,
:func:`get_image_patches`, :data:`local_offset_sign`,
:data:`key_coords_offsets`, :data:`key_coords_relative`) and, for one
transition period, the deprecated grouping functions.

What an assigned array must be is in :mod:`ptycho_data.dataset_checks`, the
``_metadata`` member's encoding in :mod:`ptycho_data.file_metadata`, and the
caller's names for the engine's parameters in :mod:`ptycho_data.parameter_names`.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from ptycho_grouping import GroupingRequest, NeighborIndex, get_strategy
from ptycho_grouping.errors import warning_names
from ptycho_grouping.npz_io import atomic_savez, load_npz
from ptycho_grouping.registry import DEFAULT_STRATEGY
from ptycho_grouping.validation import check_bool, check_positive_int, check_rng

from . import dask_arrays, params
from ._deprecated import (  # noqa: F401 - the deprecated names stay importable from here
    calculate_relative_coords,
    get_neighbor_indices,
    get_neighbor_self_indices,
    group_coords,
    legacy_group_coords,
    sample_rows,
    warn_deprecated,
)
from .cxi import read_cxi
from .dataset_checks import (REQUIRED_KEYS, CheckedAttribute, check_coordinates, check_image,
                             check_patches, check_path, check_patterns, check_scan_index,
                             usable_patches, with_required_members)
from .file_metadata import (METADATA_KEY, metadata_from_member, metadata_member,
                            metadata_mismatches)
from .grouped_arrays import (channels_last, index_dtype, member_coords, normalisation_scale,
                             patch_shifts, pattern_energies, scaled, value_range)
from .parameter_names import CALLER_NAMES, GROUP_SIZE_NAMES, in_callers_names
from .patches import extract_patches

__all__ = ["RawData", "REQUIRED_KEYS", "OPTIONAL_KEYS", "METADATA_KEY", "normalize_data",
           "get_relative_coords", "get_image_patches", "local_offset_sign",
           "key_coords_offsets", "key_coords_relative", "metadata_mismatches",
           "group_coords", "get_neighbor_diffraction_and_positions", "get_neighbor_indices",
           "sample_rows", "get_neighbor_self_indices", "calculate_relative_coords"]

log = logging.getLogger(__name__)

#: PtychoPINN's sign of ``coords_relative``: ``local_offset_sign * (coords_nn - coords_offsets)``.
local_offset_sign = -1
#: The output keys PtychoPINN's model reads the group offsets from.
key_coords_offsets = "coords_start_offsets"
key_coords_relative = "coords_start_relative"

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


# -- PtychoPINN's module-level functions --------------------------------------------

def get_relative_coords(coords_nn):
    """``(coords_offsets, coords_relative)`` of grouped coordinates, as PtychoPINN computes them.

    Parameters
    ----------
    coords_nn : ndarray of shape (B, 1, 2, C)

    Returns
    -------
    coords_offsets : ndarray of shape (B, 1, 2, 1)
        Mean over the ``C`` members.
    coords_relative : ndarray of shape (B, 1, 2, C)
        ``local_offset_sign * (coords_nn - coords_offsets)``.
    """
    coords_nn = np.asarray(coords_nn)
    if coords_nn.ndim != 4:
        raise ValueError(f"coords_nn must be 4-D (B, 1, 2, C), got shape {coords_nn.shape}")
    offsets = coords_nn.mean(axis=3, keepdims=True)
    return offsets, local_offset_sign * (coords_nn - offsets)


def normalize_data(dset: dict, N: int) -> np.ndarray:
    """PtychoPINN's ``X_full``: ``dset['diffraction']`` scaled to mean energy ``(N/2)**2``, float32.

    As in PtychoPINN, a pattern's energy is the sum over axes 1 and 2 of its
    square, and the scale is ``sqrt((N/2)**2 / mean(energies))`` over every
    pattern, so both grouped ``(B, N, N, C)`` and ungrouped ``(n, N, N)``
    stacks are accepted. The energies are summed in float64 (no overflow for
    ``uint16`` patterns); the result is float32 whatever the input dtype.

    Parameters
    ----------
    dset : dict
        Has ``'diffraction'`` of shape ``(B, N, N, C)`` or ``(n, N, N)``.
    N : int
    """
    N = check_positive_int("N", N)
    diffraction = dset["diffraction"]
    if np.ndim(diffraction) not in (3, 4):
        raise ValueError("dset['diffraction'] must be 3-D (n, N, N) or 4-D (B, N, N, C), got "
                         f"shape {np.shape(diffraction)}")
    diffraction = np.asarray(diffraction)
    grouped = diffraction if diffraction.ndim == 4 else diffraction[..., None]
    scale = normalisation_scale(pattern_energies(grouped), N, lambda: value_range(diffraction))
    return scaled(diffraction, scale)


def get_image_patches(gt_image, global_offsets, local_offsets, N=None, gridsize=None):
    """Object patches for groups, channels-last complex64 ``(B, N, N, C)``; NumPy only.

    For each member the object is zero-padded by ``N//2``, translated by
    ``-(global_offsets + local_offsets)`` (x, y) with bilinear interpolation,
    and its top-left ``N x N`` window kept: the patches
    ``generate_grouped_data`` returns as ``Y`` when the dataset has no ``Y``.
    PtychoPINN returns a TensorFlow tensor; this returns a NumPy array.

    Parameters
    ----------
    gt_image : array_like of shape (H, W)
    global_offsets : array_like of shape (B, 1, 2, 1)
    local_offsets : array_like of shape (B, 1, 2, C)
    N : int, optional
        Patch size; default ``params.get('N')``.
    gridsize : int, optional
        ``C = gridsize**2``; default ``params.get('gridsize')``.
    """
    N = check_positive_int("N", params.get("N") if N is None else N)
    gridsize = check_positive_int("gridsize", params.get("gridsize") if gridsize is None
                                  else gridsize)
    c = gridsize * gridsize
    global_offsets = np.asarray(global_offsets, dtype=np.float64)
    local_offsets = np.asarray(local_offsets, dtype=np.float64)
    shifts = global_offsets + local_offsets
    if shifts.ndim != 4 or shifts.shape[1:3] != (1, 2) or shifts.shape[3] != c:
        raise ValueError(f"global_offsets + local_offsets must have shape (B, 1, 2, {c}) for "
                         f"gridsize={gridsize}, got {shifts.shape}")
    b = shifts.shape[0]
    patches = extract_patches(gt_image, patch_shifts(global_offsets, local_offsets), N)
    return np.moveaxis(patches.reshape(b, c, N, N), 1, 3)


def get_neighbor_diffraction_and_positions(ptycho_data, N, K=6, C=None, nsamples=10):
    """The grouped-data dictionary of ``ptycho_data`` for the old ``group_coords`` groups.

    ``ptycho_data`` is a ``RawData`` (or any object with its attributes). The
    dictionary has the keys and shapes ``RawData.generate_grouped_data``
    returns. Deprecated: use ``RawData.generate_grouped_data``.
    """
    warn_deprecated("get_neighbor_diffraction_and_positions", "RawData.generate_grouped_data")
    if not isinstance(ptycho_data, RawData):
        ptycho_data = RawData(
            ptycho_data.xcoords, ptycho_data.ycoords,
            getattr(ptycho_data, "xcoords_start", ptycho_data.xcoords),
            getattr(ptycho_data, "ycoords_start", ptycho_data.ycoords),
            ptycho_data.diff3d, getattr(ptycho_data, "probeGuess", None),
            getattr(ptycho_data, "scan_index", None),
            getattr(ptycho_data, "objectGuess", None), getattr(ptycho_data, "Y", None))
    nn_indices, _ = legacy_group_coords(ptycho_data.xcoords, ptycho_data.ycoords, K, C, nsamples)
    return ptycho_data._grouped(nn_indices, N)


class RawData:
    """A ptychography scan: positions, patterns, probe, optional object.

    Parameters
    ----------
    xcoords, ycoords : array_like of shape (M,)
        Scan positions (pixels).
    xcoords_start, ycoords_start : array_like of shape (M,)
        Start positions (PtychoPINN keeps both; often equal to the above).
    diff3d : array_like of shape (M, N, N), or None
        Diffraction amplitudes, one square pattern per position. Any store
        with ``shape``, ``dtype`` and integer-array indexing (``np.memmap``,
        h5py dataset, Zarr or Dask array) is kept unread; grouping reads only
        the frames it needs (see :mod:`ptycho_data.pattern_store`). Must hold real
        numbers (checked from the dtype alone). None makes a coordinates-only
        RawData (as PtychoPINN's product import does): :meth:`group_indices`
        works, :meth:`generate_grouped_data` says it needs patterns.
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
    metadata : dict, optional
        The dataset's metadata (PtychoPINN's ``_metadata`` JSON), written
        back by :meth:`to_file`.

    Attributes
    ----------
    sample_indices : ndarray or None
        Set by loaders that subsample a file (PtychoPINN's ``load_data``):
        the file rows this RawData holds. Copied into the grouped output.

    Notes
    -----
    Every array is checked when it is assigned, in the constructor or later
    (``raw.diff3d = ...``); the lengths are compared again (shapes only) when
    groups are made. The positions are kept as private read-only copies: an
    in-place edit such as ``raw.xcoords[0] = 5`` raises ``ValueError``
    (assignment destination is read-only); assign a new array instead. So the
    neighbour index built on the first call is reused by every later call
    until positions are assigned, and a second call costs O(nsamples), not
    O(M).
    """

    #: The module whose ``cfg`` ``gridsize`` and ``grouping_strategy`` default
    #: from: the data layer's :mod:`ptycho_data.params`; PtychoPINN's
    #: ``ptycho.raw_data`` points it at PtychoPINN's own ``ptycho.params``.
    params_module = params
    #: ``seed=None`` means fresh entropy (SPEC 7); PtychoPINN's
    #: ``ptycho.raw_data`` sets it to take one draw from NumPy's global
    #: generator instead, as PtychoPINN's scripts expect.
    seed_from_global_state = False

    # Assigning a position empties _indexes, the cached neighbour indexes.
    xcoords = CheckedAttribute(check_coordinates, clears="_indexes")
    ycoords = CheckedAttribute(check_coordinates, clears="_indexes")
    xcoords_start = CheckedAttribute(check_coordinates)
    ycoords_start = CheckedAttribute(check_coordinates)
    diff3d = CheckedAttribute(check_patterns)
    probeGuess = CheckedAttribute(check_image)
    scan_index = CheckedAttribute(check_scan_index)
    objectGuess = CheckedAttribute(check_image)
    Y = CheckedAttribute(check_patches)

    def __init__(self, xcoords, ycoords, xcoords_start, ycoords_start, diff3d,
                 probeGuess, scan_index, objectGuess=None, Y=None, norm_Y_I=None,
                 metadata=None):
        self.xcoords, self.ycoords = xcoords, ycoords
        self.xcoords_start, self.ycoords_start = xcoords_start, ycoords_start
        self.diff3d, self.probeGuess, self.objectGuess, self.Y = diff3d, probeGuess, objectGuess, Y
        self.scan_index = scan_index
        self.norm_Y_I = norm_Y_I
        self.metadata = metadata
        self.sample_indices = None
        self.subsample_seed = None
        self._source_file = None
        self._check_lengths()

    def _check_lengths(self) -> None:
        """The arrays agree on ``M`` and on the pattern size (shapes only: O(1))."""
        m = self.xcoords.shape[0]
        if m == 0:
            raise ValueError("xcoords must hold at least one scan position, got 0")
        for name in ("ycoords", "xcoords_start", "ycoords_start"):
            n = getattr(self, name).shape[0]
            if n != m:
                raise ValueError(f"{name} has {n} entries but xcoords has {m}")
        diff3d, Y = self.diff3d, self.Y
        if diff3d is not None and diff3d.shape[0] != m:
            raise ValueError(f"diff3d has {diff3d.shape[0]} patterns but xcoords has {m} positions")
        if self.scan_index.shape != (m,):
            raise ValueError(f"scan_index must have shape ({m},), got {self.scan_index.shape}")
        if Y is not None:
            if Y.shape[0] != m:
                raise ValueError(f"Y has {Y.shape[0]} patches but xcoords has {m} positions")
            if diff3d is not None and tuple(Y.shape[1:]) != tuple(diff3d.shape[1:]):
                raise ValueError(f"Y patches are {Y.shape[1]}x{Y.shape[2]} but diff3d patterns "
                                 f"are {diff3d.shape[1]}x{diff3d.shape[2]}")

    # -- construction and I/O ------------------------------------------------

    @classmethod
    def from_coords_without_pc(cls, xcoords, ycoords, diff3d, probeGuess, scan_index,
                               objectGuess=None):
        """RawData whose start coordinates equal the coordinates."""
        return cls(xcoords, ycoords, xcoords, ycoords, diff3d, probeGuess, scan_index,
                       objectGuess)

    @classmethod
    def from_file(cls, train_data_file_path, validate_config: bool = False, current_config=None,
                  mmap: bool = False) -> "RawData":
        """Load a PtychoPINN-style NPZ (``allow_pickle=False``).

        Parameters
        ----------
        train_data_file_path : str or os.PathLike
            The NPZ. Required members: ``xcoords ycoords diff3d``
            (``diffraction`` is accepted for ``diff3d``); see
            :data:`REQUIRED_KEYS`. Missing optional members default as in
            :data:`OPTIONAL_KEYS`; one that holds the pickled ``None`` of
            PtychoPINN's ``to_file`` counts as missing (recognised from its
            header, never unpickled).
        validate_config : bool, default False
            With ``current_config``, log a warning for each physics parameter
            (``nphotons``, ``N``, ``gridsize``) on which the file's metadata
            and the config disagree, as PtychoPINN does.
        current_config : TrainingConfig, optional
        mmap : bool, default False
            Memory-map the pattern stacks (``diff3d``/``diffraction`` and
            ``Y``) of an uncompressed NPZ read-only instead of loading them,
            so a file of any size opens in constant memory.

        The ``_metadata`` member PtychoPINN's tools write (JSON text, stored
        as a pickled 0-d object array) becomes :attr:`metadata`; it is read
        without unpickling anything, and any other pickle there is skipped
        with a warning naming the file.
        """
        path = train_data_file_path
        data = load_npz(path, mmap_keys=("diff3d", "diffraction", "Y") if mmap else (),
                        optional_keys=tuple(OPTIONAL_KEYS), text_keys=(METADATA_KEY,))
        metadata = metadata_from_member(path, data.pop(METADATA_KEY, None))
        data = with_required_members(path, data)
        if validate_config and current_config is not None:
            for message in metadata_mismatches(metadata, current_config):
                log.warning("Parameter mismatch in %s: %s", path, message)
        x, y = data["xcoords"], data["ycoords"]
        Y = usable_patches(path, data.get("Y"), np.shape(x)[:1], data["diff3d"])
        return cls(x, y, data.get("xcoords_start", x), data.get("ycoords_start", y),
                       data["diff3d"], data.get("probeGuess"), data.get("scan_index"),
                       data.get("objectGuess"), Y, metadata=metadata)

    @classmethod
    def from_cxi(cls, path, pixel_size=None) -> "RawData":
        """Open a CXI file lazily (patterns stay in the file); see :func:`ptycho_data.cxi.read_cxi`.

        The HDF5 file stays open while the RawData exists; :meth:`close` closes it.
        """
        scan = read_cxi(path, pixel_size)
        try:
            raw = RawData.from_coords_without_pc(scan.xcoords, scan.ycoords, scan.patterns,
                                                 scan.probe, np.zeros(len(scan.xcoords), np.int64))
        except BaseException:
            scan.file.close()
            raise
        raw._source_file = scan.file
        return raw

    def close(self) -> None:
        """Close the file the patterns are read from, if this RawData opened one (CXI)."""
        if self._source_file is not None:
            self._source_file.close()

    @classmethod
    def from_files(cls, train_data_file_path, test_data_file_path):
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
            paths.append(check_path(name, value))
        return cls.from_file(paths[0]), cls.from_file(paths[1])

    @classmethod
    def concatenate_files(cls, paths) -> "RawData":
        """One dataset from several NPZ scans with the same pattern size.

        Positions, start positions, patterns and scan indices are
        concatenated in the order given; ``Y`` too when every file has it
        (otherwise it is dropped, with a warning). The probe, object and
        metadata come from the first file.

        Parameters
        ----------
        paths : sequence of str or os.PathLike
            At least one file.
        """
        if isinstance(paths, (str, bytes, os.PathLike)):
            raise TypeError(f"paths must be a sequence of paths, got the single path {paths!r}; "
                            "use RawData.from_file for one file")
        paths = [check_path(f"paths[{i}]", p) for i, p in enumerate(paths)]
        if not paths:
            raise ValueError("paths must name at least one file, got none")
        parts = [cls.from_file(p) for p in paths]
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

        return cls(cat("xcoords"), cat("ycoords"), cat("xcoords_start"), cat("ycoords_start"),
                       cat("diff3d"), parts[0].probeGuess, cat("scan_index"),
                       parts[0].objectGuess, Y, metadata=parts[0].metadata)

    def to_file(self, file_path) -> Path:
        """Write the NPZ that :meth:`from_file` reads, atomically (dtypes kept).

        As with ``np.savez``, ``.npz`` is appended to ``file_path`` when it
        does not already end with it. ``None`` members (patterns, probe,
        object, ``Y``) are left out rather than pickled. :attr:`metadata`, when
        set, is written as ``_metadata``: its JSON text in a 0-d unicode
        array, which PtychoPINN's loader reads (``str(arr.item())``, then
        ``json.loads``) and which is not a pickle. Returns the path written.
        """
        self._check_lengths()
        path = os.fspath(file_path)
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = {
            "xcoords": self.xcoords, "ycoords": self.ycoords,
            "xcoords_start": self.xcoords_start, "ycoords_start": self.ycoords_start,
            "diff3d": self.diff3d, "probeGuess": self.probeGuess, "scan_index": self.scan_index,
            "objectGuess": self.objectGuess, "Y": self.Y,
        }
        if self.metadata is not None:
            arrays[METADATA_KEY] = metadata_member(self.metadata)
        return atomic_savez(path, {k: v for k, v in arrays.items() if v is not None})

    def __len__(self) -> int:
        return self.xcoords.shape[0]

    def __getstate__(self) -> dict:
        # The neighbour indexes hold a lock and an open CXI file cannot be
        # pickled; both are rebuilt or reopened on the other side as needed.
        state = dict(self.__dict__)
        state["_indexes"], state["_source_file"] = {}, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for name in ("_xcoords", "_ycoords", "_xcoords_start", "_ycoords_start"):
            self.__dict__[name].flags.writeable = False  # unpickled arrays come back writable

    def __str__(self) -> str:
        def shape(name):
            value = getattr(self, name)
            return "None" if value is None else f"{tuple(value.shape)} {np.dtype(value.dtype)}"

        def span(name):
            values = getattr(self, name)
            return f"[{values.min():.6g}, {values.max():.6g}]"

        patterns = ("no diffraction patterns" if self.diff3d is None else
                    f"{self.diff3d.shape[1]}x{self.diff3d.shape[2]} diffraction patterns")
        lines = [f"RawData: {len(self)} scan positions, {patterns}"]
        for name in ("xcoords", "ycoords", "xcoords_start", "ycoords_start"):
            lines.append(f"  {name}: {shape(name)}, range {span(name)}")
        for name in ("diff3d", "probeGuess", "scan_index", "objectGuess", "Y"):
            lines.append(f"  {name}: {shape(name)}")
        if self.metadata is not None:
            lines.append(f"  metadata: {', '.join(sorted(self.metadata))}")
        return "\n".join(lines)

    # -- grouping --------------------------------------------------------------

    def _subsample(self, n_subsample, subsample_seed) -> Optional[np.ndarray]:
        """The sorted scan points to group from, or None for all of them.

        Only an explicit ``n_subsample`` subsamples: ``params.cfg`` is never
        read for it, since PtychoPINN's workflow writes it there and applies
        it when loading the file (reading it again subsampled twice).
        ``n_subsample >= M`` means every point. Drawn with its own generator
        from ``subsample_seed`` (SPEC 7), independently of the group draw.
        """
        if n_subsample is None:
            return None
        n_subsample = check_positive_int("n_subsample", n_subsample)
        subsample_seed = check_rng("subsample_seed", subsample_seed)
        m = len(self)
        log.info("n_subsample=%d: grouping %d of %d scan points", n_subsample,
                 min(n_subsample, m), m)
        if n_subsample >= m:
            return None
        rng = np.random.default_rng(subsample_seed)
        return np.sort(rng.choice(m, size=n_subsample, replace=False))

    def _default_seed(self, seed, strategy):
        """``seed``, or for ``seed=None`` one draw from NumPy's global generator where asked.

        Only when :attr:`seed_from_global_state` is set (PtychoPINN's
        ``ptycho.raw_data``): PtychoPINN's callers seed the global generator
        and pass no seed, so one draw from it makes their runs reproducible
        (DESIGN.md, Randomness). A strategy that uses the global state itself
        (the legacy one) gets ``None``, as the old code did.
        """
        if seed is None and self.seed_from_global_state and not strategy.uses_global_random_state:
            return int(np.random.randint(0, np.iinfo(np.int64).max, dtype=np.int64))
        return seed

    def _generate_groups_efficiently(self, nsamples, K, C, seed=None, seed_indices=None):
        """PtychoPINN's sample-then-group method, by its name: ``(B, C)`` int32 groups.

        The refactor plan's named method, kept with PtychoPINN's signature and
        rules for its callers: ``C`` is the group size itself (any positive
        integer, not only a square), ``nsamples`` above the number of scan
        points gives one group per point with a warning, and the groups are
        ``int32``. The groups come from the ``sample_then_group`` strategy
        (never oversampled; use :meth:`generate_grouped_data` for that).

        Parameters
        ----------
        nsamples, K, C : int
            Groups, neighbours to draw members from (``K >= C`` for ``C > 1``),
            members per group.
        seed : None, int or numpy.random.Generator
            As in :meth:`generate_grouped_data`.
        seed_indices : array_like, optional
            PtychoPINN passes ``arange(n)`` for sequential sampling: the first
            ``n`` points as seeds, nearest neighbours as members. Only that
            form is accepted.
        """
        nsamples = check_positive_int("nsamples", nsamples)
        K = check_positive_int("K", K)
        C = check_positive_int("C", C)
        sequential = False
        if seed_indices is not None:
            seed_indices = np.asarray(seed_indices)
            if seed_indices.ndim != 1 or not np.array_equal(seed_indices,
                                                            np.arange(seed_indices.size)):
                raise ValueError("seed_indices must be None or the first n scan points "
                                 "(arange(n), sequential sampling), got other indices")
            nsamples, sequential = min(nsamples, max(seed_indices.size, 1)), True
        m = len(self)
        if nsamples > m:
            warnings.warn(f"nsamples={nsamples} is more than the {m} scan points: returning "
                          f"{m} groups, one per point", UserWarning, stacklevel=2)
            nsamples = m
        strategy = get_strategy(DEFAULT_STRATEGY)
        request = GroupingRequest(n_groups=nsamples, group_size=C, neighbors=K,
                                  rng=check_rng("seed", self._default_seed(seed, strategy)),
                                  sequential=sequential)
        # The strategy checks K against C (PtychoPINN's "K=3 must be >= C=5").
        try:
            with warning_names(GROUP_SIZE_NAMES):
                groups = strategy.group(self._neighbor_index(None), request)
        except (ValueError, TypeError) as exc:
            in_callers_names(exc, names=GROUP_SIZE_NAMES)
        return groups.astype(index_dtype(len(self)), copy=False)

    def neighbor_index(self) -> NeighborIndex:
        """The neighbour index of all positions: the one grouping uses, built once and kept."""
        return self._neighbor_index(None)

    def _neighbor_index(self, points: Optional[np.ndarray]) -> NeighborIndex:
        """The neighbour index of all positions, or of ``points``, reused while positions hold.

        Assigning ``xcoords``/``ycoords`` empties the cache; in-place edits
        cannot happen (the positions are read-only), so no comparison is
        needed and a cached index costs nothing.
        """
        key = None if points is None else points.tobytes()
        index = self._indexes.get(key)
        if index is None:
            x, y = (self.xcoords, self.ycoords) if points is None else \
                (self.xcoords[points], self.ycoords[points])
            if len(self._indexes) >= 4:  # a few subsets at most; the full index stays
                self._indexes = {k: v for k, v in self._indexes.items() if k is None}
            # column_stack makes a fresh array nobody else holds: no second copy.
            index = self._indexes[key] = NeighborIndex(np.column_stack([x, y]), copy=False)
        return index

    def generate_grouped_data(self, N, K=4, nsamples=1, dataset_path=None, seed=None,
                              sequential_sampling=False, gridsize=None,
                              enable_oversampling=False, neighbor_pool_size=None,
                              grouping_strategy=None, lazy=False, n_subsample=None,
                              subsample_seed=None) -> dict:
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
            Randomness (SPEC 7): None is fresh entropy here. The PtychoPINN-facing
            ``ptycho.raw_data.RawData`` (:attr:`seed_from_global_state`) takes
            one draw from NumPy's global generator instead; the deprecated
            legacy strategy uses the global state itself, as the old code did.
        sequential_sampling : bool
            First ``nsamples`` positions as seeds, nearest neighbours as members.
        gridsize : int, optional
            ``C = gridsize**2`` members per group; default ``params.cfg['gridsize']``
            of :attr:`params_module`, then 1.
        enable_oversampling : bool
            Allow ``nsamples`` > number of positions (gridsize > 1).
        neighbor_pool_size : int, optional
            Neighbour pool when oversampling (default ``K``).
        grouping_strategy : str, optional
            Registry name; default ``params.cfg['grouping_strategy']`` of
            :attr:`params_module`, then ``"sample_then_group"``.
        lazy : bool, default False
            Return ``diffraction``, ``X_full`` and ``Y`` as Dask arrays that
            read the patterns only when computed (needs the ``dask`` extra;
            see :mod:`ptycho_data.dask_arrays`). The other entries are computed at once.
        n_subsample : int, optional
            Group only this many scan points, drawn at random (sorted) before
            grouping; by default every point (``params.cfg`` is not read for
            it: PtychoPINN's workflow subsamples when it loads the file).
            The groups' indices still refer to the full dataset.
        subsample_seed : None, int or numpy.random.Generator
            Randomness of the subsample (SPEC 7), independent of ``seed``.

        Returns
        -------
        dict
            ``nn_indices (B, C)``, ``diffraction``/``X_full (B, N, N, C)``
            (``X_full`` float32, ``diffraction`` in ``diff3d``'s dtype),
            ``coords_nn``/``coords_start_nn (B, 1, 2, C)``,
            ``coords_offsets``/``coords_start_offsets (B, 1, 2, 1)``,
            ``coords_relative``/``coords_start_relative (B, 1, 2, C)``,
            ``Y (B, N, N, C)`` or None, ``objectGuess``; and
            ``sample_indices`` when :attr:`sample_indices` is set.

        Raises
        ------
        TypeError, ValueError
            Naming the argument as passed here (``nsamples``, ``K``, ``seed``,
            ...) and its value; ``ValueError`` also when the drawn patterns
            have zero total energy, so ``X_full`` cannot be normalised, and
            when this RawData has no patterns (``diff3d`` is None).

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
            grouping_strategy=grouping_strategy, n_subsample=n_subsample,
            subsample_seed=subsample_seed)
        if self.diff3d is None:
            raise ValueError("diff3d is None: this RawData holds scan positions only, and "
                             "generate_grouped_data gathers diffraction patterns; use "
                             "group_indices(...) for the groups alone")
        out = self._grouped(nn_indices, N, lazy=lazy)
        if self.sample_indices is not None:
            out["sample_indices"] = np.array(self.sample_indices, copy=True)
        return out

    def group_indices(self, N, K=4, nsamples=1, dataset_path=None, seed=None,
                      sequential_sampling=False, gridsize=None, enable_oversampling=False,
                      neighbor_pool_size=None, grouping_strategy=None, n_subsample=None,
                      subsample_seed=None, progress=False) -> np.ndarray:
        """Only the groups, ``(B, C)`` indices: what ``generate_grouped_data`` gathers for.

        Takes the same arguments with the same defaults and precedence; use it
        with :func:`ptycho_data.grouped_writer.write_grouped` for outputs larger
        than memory. Errors name the arguments as passed here (``nsamples``,
        ``gridsize``, ``K``, ``seed``...), not the grouping engine's names for
        them. Works on a RawData without patterns (``diff3d=None``).
        ``progress=True`` lets a strategy with a long step show a tqdm bar on
        stderr (the legacy strategy's enumeration of all groups).
        """
        nsamples = check_positive_int("nsamples", nsamples)
        K = check_positive_int("K", K)
        seed = check_rng("seed", seed)
        sequential_sampling = check_bool("sequential_sampling", sequential_sampling)
        enable_oversampling = check_bool("enable_oversampling", enable_oversampling)
        neighbor_pool_size = check_positive_int("neighbor_pool_size", neighbor_pool_size,
                                                allow_none=True)
        if gridsize is None:
            gridsize = self.params_module.cfg.get("gridsize", 1)
        gridsize = check_positive_int("gridsize", gridsize)
        N = check_positive_int("N", N)
        self._check_lengths()
        if self.diff3d is not None and N != self.diff3d.shape[1]:
            raise ValueError(f"N={N} does not match the diffraction patterns' size "
                             f"{self.diff3d.shape[1]}x{self.diff3d.shape[2]}")
        if grouping_strategy is None:
            grouping_strategy = self.params_module.cfg.get("grouping_strategy") or DEFAULT_STRATEGY
        strategy = get_strategy(grouping_strategy)
        seed = self._default_seed(seed, strategy)
        points = self._subsample(n_subsample, subsample_seed)
        index = self._neighbor_index(points)
        c = gridsize * gridsize
        request = GroupingRequest(
            n_groups=nsamples, group_size=c, neighbors=K, rng=seed,
            sequential=sequential_sampling, enable_oversampling=enable_oversampling,
            neighbor_pool_size=neighbor_pool_size, dataset_path=dataset_path,
            progress=check_bool("progress", progress))
        # The strategy checks the request (K against C, C against the points, the
        # oversampling rules); its errors and warnings come back in our names.
        try:
            with warning_names(CALLER_NAMES):
                nn_indices = strategy.group(index, request)
        except (ValueError, TypeError) as exc:
            in_callers_names(exc, subsampled=points is not None)
        if points is not None:
            nn_indices = points[nn_indices]
        log.info("%s: %d groups of %d from %d positions", strategy.name, len(nn_indices),
                 c, index.n_points)
        return nn_indices.astype(index_dtype(len(self)), copy=False)

    def _grouped(self, nn_indices: np.ndarray, N: int, lazy: bool = False) -> dict:
        """The output dictionary for ``nn_indices``.

        The arithmetic lives in :mod:`ptycho_data.grouped_arrays`, shared with the
        Dask (``lazy=True``, :mod:`ptycho_data.dask_arrays`) and streaming
        (:mod:`ptycho_data.grouped_writer`) paths.
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

