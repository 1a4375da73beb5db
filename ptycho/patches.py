"""Object patches for grouped scan positions, with NumPy only (no TensorFlow).

PtychoPINN cuts ground-truth patches by zero-padding the object by ``N//2``,
translating it by ``-(coords_offsets + coords_relative)`` with bilinear
interpolation and keeping the top-left ``N x N`` window. Translating by
``(dx, dy)`` means ``out[i, j] = padded[i - dy, j - dx]``, so the window
samples the padded object at ``(i + sy, j + sx)`` with
``(sx, sy) = coords_offsets + coords_relative``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["extract_patches"]

_CHUNK = 2048  # members per vectorised batch: bounds the temporaries


def extract_patches(obj: np.ndarray, shifts: np.ndarray, N: int) -> np.ndarray:
    """Bilinear ``N x N`` windows of the padded object.

    Parameters
    ----------
    obj : ndarray of shape (H, W)
        Complex (or real) object.
    shifts : ndarray of shape (P, 2)
        ``(sx, sy)`` per patch: the window's top-left corner in the padded
        object's pixel coordinates.
    N : int
        Patch size; the object is zero-padded by ``N // 2`` on every side.

    Returns
    -------
    ndarray of shape (P, N, N), complex64
        Pixels outside the padded object are zero.
    """
    obj = np.asarray(obj)
    if obj.ndim != 2:
        raise ValueError(f"objectGuess must be 2-D, got shape {obj.shape}")
    padded = np.pad(obj.astype(np.complex64, copy=False), N // 2)
    shifts = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    out = np.empty((len(shifts), N, N), dtype=np.complex64)
    for start in range(0, len(shifts), _CHUNK):
        out[start:start + _CHUNK] = _bilinear_windows(padded, shifts[start:start + _CHUNK], N)
    return out


def _bilinear_windows(img: np.ndarray, shifts: np.ndarray, N: int) -> np.ndarray:
    height, width = img.shape
    grid = np.arange(N)
    col0 = np.floor(shifts[:, 0])
    row0 = np.floor(shifts[:, 1])
    fx = (shifts[:, 0] - col0).astype(np.float32)[:, None, None]
    fy = (shifts[:, 1] - row0).astype(np.float32)[:, None, None]
    rows = row0.astype(np.intp)[:, None] + grid  # (P, N)
    cols = col0.astype(np.intp)[:, None] + grid

    def corner(r, c):
        inside = ((r >= 0) & (r < height))[:, :, None] & ((c >= 0) & (c < width))[:, None, :]
        vals = img[np.clip(r, 0, height - 1)[:, :, None], np.clip(c, 0, width - 1)[:, None, :]]
        return np.where(inside, vals, 0)

    return ((1 - fy) * ((1 - fx) * corner(rows, cols) + fx * corner(rows, cols + 1))
            + fy * ((1 - fx) * corner(rows + 1, cols) + fx * corner(rows + 1, cols + 1)))
