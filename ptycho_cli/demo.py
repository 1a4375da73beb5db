"""A simulated ptychography scan, made deterministically at run time (no download).

:func:`make_demo` builds it in memory; :func:`write_demo` writes the same
arrays straight to an NPZ chunk by chunk, in memory bounded by the chunk
whatever the number of points (the object is written first and read back
through a memory map while the patterns are made).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ptycho_data.grouped_writer import NpzSink
from ptycho_data.patches import extract_patches
from ptycho_data.progress import progress_advance
from ptycho_data.raw_data import RawData
from ptycho_grouping.atomic_write import atomic_write

PATTERNS = ("raster", "spiral", "random")
#: Scan points whose patterns are made at once.
CHUNK_POINTS = 4096
#: Object rows made at once.
_OBJECT_ROWS = 256


def scan_positions(points: int, pattern: str = "raster", step: float = 4.0,
                   rng=None) -> np.ndarray:
    """``(points, 2)`` scan positions with about ``step`` pixels between neighbours.

    ``raster`` is a jittered raster (row-major), ``spiral`` a Fermat spiral,
    ``random`` uniform positions at the same density.
    """
    rng = np.random.default_rng(rng)
    if pattern == "raster":
        side = int(np.ceil(np.sqrt(points)))
        yy, xx = np.divmod(np.arange(points), side)
        xy = np.column_stack([xx, yy]) * step + rng.normal(0, 0.1 * step, (points, 2))
    elif pattern == "spiral":
        i = np.arange(points)
        r = step * np.sqrt(i / np.pi)
        theta = i * np.pi * (3 - np.sqrt(5))
        xy = np.column_stack([r * np.cos(theta), r * np.sin(theta)])
    elif pattern == "random":
        side = step * np.sqrt(points)
        xy = rng.uniform(0, side, (points, 2))
    else:
        raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, got {pattern!r}")
    return xy - xy.min(axis=0)


def _blobs(height: int, width: int, rng) -> tuple:
    """The random blob centres and radii of :func:`synthetic_object`."""
    return tuple(zip(rng.uniform(0, height, 24), rng.uniform(0, width, 24),
                     rng.uniform(4, 20, 24)))


def _object_rows(start: int, stop: int, width: int, blobs) -> np.ndarray:
    """Rows ``start:stop`` of the synthetic object (each pixel depends on its position only)."""
    yy, xx = np.mgrid[start:stop, 0:width].astype(np.float32)
    amp = np.full(yy.shape, 0.6, np.float32)
    for cy, cx, r in blobs:
        amp += 0.4 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    phase = 0.5 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    return (amp * np.exp(1j * phase)).astype(np.complex64)


def synthetic_object(height: int, width: int, rng) -> np.ndarray:
    """A smooth complex test object: blobs in amplitude, a slow phase ramp."""
    blobs = _blobs(height, width, rng)
    obj = np.empty((height, width), np.complex64)
    for start in range(0, height, _OBJECT_ROWS):
        stop = min(start + _OBJECT_ROWS, height)
        obj[start:stop] = _object_rows(start, stop, width, blobs)
    return obj


def _layout(points: int, pattern: str, N: int, seed):
    """Positions, object size, probe and the generator, as both builders use them."""
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 1:
        raise ValueError(f"points must be a positive integer, got {points}")
    rng = np.random.default_rng(seed)
    xy = scan_positions(points, pattern, step=N / 8, rng=rng) + N  # margin for the probe
    height, width = (int(np.ceil(xy[:, 1].max())) + 2 * N, int(np.ceil(xy[:, 0].max())) + 2 * N)
    yy, xx = np.mgrid[0:N, 0:N] - (N - 1) / 2
    probe = (np.exp(-(xx ** 2 + yy ** 2) / (2 * (N / 6) ** 2))
             * np.exp(1j * 0.02 * (xx ** 2 + yy ** 2))).astype(np.complex64)
    return rng, xy, height, width, probe


def _patterns(obj, xy: np.ndarray, probe: np.ndarray, N: int) -> np.ndarray:
    """Far-field amplitudes ``|FFT(probe * object patch)| / N`` (float32) at ``xy``."""
    far = np.fft.fftshift(np.fft.fft2(extract_patches(obj, xy, N) * probe), axes=(1, 2))
    return (np.abs(far) / N).astype(np.float32, copy=False)


def make_demo(points: int = 10_000, pattern: str = "raster", N: int = 32,
              seed: int = 0) -> RawData:
    """The built-in demo dataset: positions, far-field amplitudes, probe, object.

    Diffraction amplitudes are ``|FFT(probe * object patch)|`` (float32), so
    the data are physically shaped while staying small (32x32 by default).
    """
    rng, xy, height, width, probe = _layout(points, pattern, N, seed)
    obj = synthetic_object(height, width, rng)
    diff3d = np.empty((points, N, N), np.float32)
    for start in range(0, points, CHUNK_POINTS):  # bounded temporaries
        diff3d[start:start + CHUNK_POINTS] = _patterns(obj, xy[start:start + CHUNK_POINTS],
                                                       probe, N)
    return RawData.from_coords_without_pc(xy[:, 0], xy[:, 1], diff3d, probe,
                                          np.zeros(points, np.int64), objectGuess=obj)


def write_demo(path, points: int = 10_000, pattern: str = "raster", N: int = 32,
               seed: int = 0, progress=False) -> Path:
    """Write :func:`make_demo`'s dataset to an NPZ, chunk by chunk, in bounded memory.

    The file holds the arrays ``make_demo(...).to_file(path)`` writes, bit
    for bit, and is written atomically. Memory is a chunk of
    :data:`CHUNK_POINTS` patterns and a band of object rows, plus the
    positions (16 bytes per point); the object is read back through a
    memory map of the file being written, not held in memory.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npz`` is appended when missing, as ``RawData.to_file`` does.
    points, pattern, N, seed
        As for :func:`make_demo`.
    progress : bool or callable
        True shows a progress bar (tqdm, points) on stderr; a callable is
        called with ``(points_written, points)`` after each chunk.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    rng, xy, height, width, probe = _layout(points, pattern, N, seed)
    blobs = _blobs(height, width, rng)
    with atomic_write(path) as tmp, NpzSink.create(tmp, points) as sink, \
            progress_advance(progress, points, desc="demo-data", unit="pt",
                             unit_scale=True) as advance:
        for key in ("xcoords", "xcoords_start"):
            sink.write_whole(key, xy[:, 0])
        for key in ("ycoords", "ycoords_start"):
            sink.write_whole(key, xy[:, 1])
        for start in range(0, height, _OBJECT_ROWS):
            stop = min(start + _OBJECT_ROWS, height)
            sink.write("objectGuess", slice(start, stop), _object_rows(start, stop, width, blobs),
                       rows=height)
        obj = sink.memmap("objectGuess")
        for start in range(0, points, CHUNK_POINTS):
            stop = min(start + CHUNK_POINTS, points)
            sink.write("diff3d", slice(start, stop), _patterns(obj, xy[start:stop], probe, N))
            advance(stop - start)
        del obj
        sink.write_whole("probeGuess", probe)
        sink.write_whole("scan_index", np.zeros(points, np.int64))
    return Path(path)


