"""A simulated ptychography scan, made deterministically at run time (no download)."""
from __future__ import annotations

import numpy as np

from ptycho.patches import extract_patches
from ptycho.raw_data import RawData

PATTERNS = ("raster", "spiral", "random")


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


def synthetic_object(height: int, width: int, rng) -> np.ndarray:
    """A smooth complex test object: blobs in amplitude, a slow phase ramp."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    amp = np.full((height, width), 0.6, np.float32)
    for cy, cx, r in zip(rng.uniform(0, height, 24), rng.uniform(0, width, 24),
                         rng.uniform(4, 20, 24)):
        amp += 0.4 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    phase = 0.5 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    return (amp * np.exp(1j * phase)).astype(np.complex64)


def make_demo(points: int = 10_000, pattern: str = "raster", N: int = 32,
              seed: int = 0) -> RawData:
    """The built-in demo dataset: positions, far-field amplitudes, probe, object.

    Diffraction amplitudes are ``|FFT(probe * object patch)|`` (float32), so
    the data are physically shaped while staying small (32x32 by default).
    """
    if points < 1:
        raise ValueError(f"points must be a positive integer, got {points}")
    rng = np.random.default_rng(seed)
    xy = scan_positions(points, pattern, step=N / 8, rng=rng) + N  # margin for the probe
    height, width = (int(np.ceil(xy[:, 1].max())) + 2 * N, int(np.ceil(xy[:, 0].max())) + 2 * N)
    obj = synthetic_object(height, width, rng)
    yy, xx = np.mgrid[0:N, 0:N] - (N - 1) / 2
    probe = (np.exp(-(xx ** 2 + yy ** 2) / (2 * (N / 6) ** 2))
             * np.exp(1j * 0.02 * (xx ** 2 + yy ** 2))).astype(np.complex64)
    diff3d = np.empty((points, N, N), np.float32)
    for start in range(0, points, 4096):  # bounded temporaries
        patches = extract_patches(obj, xy[start:start + 4096], N)
        far = np.fft.fftshift(np.fft.fft2(patches * probe), axes=(1, 2))
        diff3d[start:start + 4096] = np.abs(far) / N
    return RawData.from_coords_without_pc(xy[:, 0], xy[:, 1], diff3d, probe,
                                          np.zeros(points, np.int64), objectGuess=obj)
