"""Reading CXI files (HDF5) without loading the patterns.

:func:`read_cxi` returns the positions and probe as arrays and the patterns
as an open h5py dataset; ``RawData.from_cxi`` builds the dataset object from
them, so grouping reads only the frames it needs. Needs the ``hdf5`` extra
(h5py).
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

try:
    import h5py
except ImportError:  # the optional hdf5 extra; read_cxi says how to install it
    h5py = None

DATA = "entry_1/data_1/data"
TRANSLATION = "entry_1/sample_1/geometry_1/translation"
ENERGY = "entry_1/instrument_1/source_1/energy"
DISTANCE = "entry_1/instrument_1/detector_1/distance"
DETECTOR_PIXEL = "entry_1/instrument_1/detector_1/x_pixel_size"
PROBE = "entry_1/instrument_1/source_1/probe"

_HC = 6.62607015e-34 * 299792458.0  # Planck constant x speed of light, J m


def object_pixel_size(f, n_pixels: int) -> float:
    """Real-space pixel size (m) from the beam energy and detector geometry."""
    missing = [k for k in (ENERGY, DISTANCE, DETECTOR_PIXEL) if k not in f]
    if missing:
        raise ValueError(f"cannot convert positions to pixels: the file lacks {', '.join(missing)}; "
                         "pass pixel_size (metres per object pixel)")
    energy, distance, detector_pixel = (_positive_real(k, _scalar(f, k))
                                        for k in (ENERGY, DISTANCE, DETECTOR_PIXEL))
    return _HC / energy * distance / (n_pixels * detector_pixel)


def _scalar(f, key: str) -> float:
    """The one number stored at ``key``, whether as a scalar or a 1-element array (``(1,)``)."""
    value = np.asarray(f[key][()])
    if value.size != 1:
        raise ValueError(f"{key} must hold a single value, got shape {value.shape}")
    return value.reshape(-1)[0].item()


def _positive_real(name: str, value) -> float:
    """``value`` as a float, or an error naming ``name`` unless it is a positive finite real."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number, got {value!r} "
                        f"of type {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _probe(f):
    """The probe as a 2-D array, or None; of a multi-mode probe, the strongest mode.

    Grouping never uses the probe, but PtychoPINN expects a 2-D probeGuess,
    so a stack of modes (``(modes, N, N)``) is reduced to its dominant mode
    with a warning rather than failing the whole file.
    """
    if PROBE not in f:
        return None
    probe = np.asarray(f[PROBE][()])
    if probe.ndim <= 2:
        return probe
    modes = probe.reshape(-1, *probe.shape[-2:])
    if len(modes) == 1:
        return modes[0]
    power = np.sum(np.abs(modes) ** 2, axis=(1, 2), dtype=np.float64)
    keep = int(np.argmax(power))
    warnings.warn(f"{PROBE} holds {len(modes)} probe modes (shape {probe.shape}); keeping "
                  f"mode {keep}, the strongest ({100 * power[keep] / power.sum():.0f}% of the "
                  "power), as probeGuess, which PtychoPINN expects to be 2-D", UserWarning,
                  stacklevel=4)
    return modes[keep]


@dataclass(frozen=True)
class CxiScan:
    """What a CXI file holds for grouping.

    Attributes
    ----------
    xcoords, ycoords : ndarray of shape (M,)
        Positions in object pixels, shifted so the smallest is 0.
    patterns : h5py.Dataset of shape (M, N, N)
        The diffraction patterns, unread.
    probe : ndarray of shape (N, N) or None
    file : h5py.File
        The open file behind ``patterns``; close it when done with them.
    """

    xcoords: np.ndarray
    ycoords: np.ndarray
    patterns: Any
    probe: Optional[np.ndarray]
    file: Any


def read_cxi(path, pixel_size=None) -> CxiScan:
    """Positions (object pixels), probe and the unread patterns of a CXI file.

    Positions come from ``entry_1/sample_1/geometry_1/translation`` (metres,
    x and y columns) divided by ``pixel_size``, which is computed from the
    beam energy, detector distance and detector pixel size when not given.
    The file is returned open (``CxiScan.file``); on any error it is closed.

    ``pixel_size`` must be a positive finite real number. Energy, distance
    and pixel size may be stored as scalars or 1-element arrays. A probe of
    several modes is reduced to its strongest mode, with a ``UserWarning``.
    """
    if pixel_size is not None:
        pixel_size = _positive_real("pixel_size", pixel_size)
    if h5py is None:
        raise ImportError("reading CXI files needs h5py: pip install 'ptycho-grouping[hdf5]'")
    f = h5py.File(path, "r")
    try:
        missing = [k for k in (DATA, TRANSLATION) if k not in f]
        if missing:
            raise ValueError(f"{path} is not a CXI ptychography file: lacks {', '.join(missing)}")
        patterns = f[DATA]
        translation = np.asarray(f[TRANSLATION][()], dtype=np.float64)
        if translation.ndim != 2 or translation.shape[1] < 2:
            raise ValueError(f"{TRANSLATION} must have shape (M, 2 or 3), got {translation.shape}")
        scale = pixel_size if pixel_size is not None else object_pixel_size(f, patterns.shape[-1])
        x, y = translation[:, 0] / scale, translation[:, 1] / scale
        return CxiScan(x - x.min(), y - y.min(), patterns, _probe(f), f)
    except BaseException:
        f.close()
        raise
