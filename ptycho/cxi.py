"""Reading CXI files (HDF5) without loading the patterns.

The patterns stay an h5py dataset inside the returned RawData, so grouping
reads only the frames it needs. Needs the ``hdf5`` extra (h5py).
"""
from __future__ import annotations

import numpy as np

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
    wavelength = _HC / float(f[ENERGY][()])
    return wavelength * float(f[DISTANCE][()]) / (n_pixels * float(f[DETECTOR_PIXEL][()]))


def read_cxi(path, pixel_size=None):
    """A RawData over a CXI file: patterns lazy, positions in object pixels.

    Positions come from ``entry_1/sample_1/geometry_1/translation`` (metres,
    x and y columns) divided by ``pixel_size``, which is computed from the
    beam energy, detector distance and detector pixel size when not given.
    The file stays open for as long as the RawData uses its patterns.
    """
    try:
        import h5py
    except ImportError:
        raise ImportError("reading CXI files needs h5py: pip install 'ptycho-grouping[hdf5]'") from None
    from .raw_data import RawData

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
        probe = np.asarray(f[PROBE][()]) if PROBE in f else None
        raw = RawData.from_coords_without_pc(x - x.min(), y - y.min(), patterns, probe,
                                             np.zeros(len(x), np.int64))
    except BaseException:
        f.close()
        raise
    raw._source_file = f  # keeps the HDF5 file open while the patterns are used
    return raw
