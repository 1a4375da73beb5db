"""Object patches for grouped scan positions, with NumPy only (no TensorFlow).

PtychoPINN cuts ground-truth patches by zero-padding the object by ``N//2``,
translating it by ``-(coords_offsets + coords_relative)`` with bilinear
interpolation and keeping the top-left ``N x N`` window. Translating by
``(dx, dy)`` means ``out[i, j] = padded[i - dy, j - dx]``, so the window
samples the padded object at ``(i + sy, j + sx)`` with
``(sx, sy) = coords_offsets + coords_relative``.

Each patch needs one ``(N+1) x (N+1)`` block of the object at its integer
corner. Blocks inside the object are copied whole (a gather of rows from a
``sliding_window_view``); the few that cross its edge are gathered pixel by
pixel with zeros outside. Then each block is blended along x and along y by
the fractional offsets, in float32 arithmetic on the real and imaginary
parts. That is memory speed, where gathering every pixel four times (once
per bilinear corner) was not; and the object is never padded or copied
(a complex64 memory map is read in place).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["extract_patches"]

#: Pixels per batch: a batch's blocks and blends stay in the CPU caches.
_CHUNK_PIXELS = 1 << 16


def extract_patches(obj: np.ndarray, shifts: np.ndarray, N: int, *, out=None) -> np.ndarray:
    """Bilinear ``N x N`` windows of the padded object.

    Parameters
    ----------
    obj : ndarray of shape (H, W)
        Complex (or real) object; complex64 (a memory map too) is used in
        place, anything else is converted once.
    shifts : ndarray of shape (P, 2)
        ``(sx, sy)`` per patch: the window's top-left corner in the padded
        object's pixel coordinates.
    N : int
        Patch size; the object is zero-padded by ``N // 2`` on every side.
    out : ndarray of shape (P, N, N), complex64, optional
        Where to write the patches.

    Returns
    -------
    ndarray of shape (P, N, N), complex64
        Pixels outside the padded object are zero; next to its edge they are
        interpolated towards zero (``scipy.ndimage.shift(..., order=1,
        mode="grid-constant")``).
    """
    if np.ndim(obj) != 2:
        raise ValueError(f"objectGuess must be 2-D, got shape {np.shape(obj)}")
    if not (isinstance(obj, np.ndarray) and obj.dtype == np.complex64):
        obj = np.asarray(obj).astype(np.complex64)
    shifts = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    if out is None:
        out = np.empty((len(shifts), N, N), dtype=np.complex64)
    chunk = max(1, _CHUNK_PIXELS // ((N + 1) * (N + 1)))
    for start in range(0, len(shifts), chunk):
        part = shifts[start:start + chunk]
        corner = np.floor(part)
        frac = (part - corner).astype(np.float32)
        # Padded pixel (r, c) is object pixel (r - N//2, c - N//2); far-off
        # corners are clipped where the block is all zeros anyway.
        rows = np.clip(corner[:, 1] - N // 2, -N - 2, obj.shape[0] + 1).astype(np.intp)
        cols = np.clip(corner[:, 0] - N // 2, -N - 2, obj.shape[1] + 1).astype(np.intp)
        _blend_into(out[start:start + chunk], _blocks(obj, rows, cols, N + 1),
                    frac[:, 0], frac[:, 1])
    return out


def _blocks(obj: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """The ``size x size`` blocks of ``obj`` at ``(rows, cols)``, zero outside it."""
    h, w = obj.shape
    edge = (rows < 0) | (cols < 0) | (rows + size > h) | (cols + size > w)
    if h >= size and w >= size:
        # One gather of whole blocks, at corners clipped into the object...
        windows = sliding_window_view(obj, (size, size))
        blocks = windows[np.clip(rows, 0, h - size), np.clip(cols, 0, w - size)]
    else:  # an object smaller than a block: every block crosses its edge
        blocks = np.empty((len(rows), size, size), np.complex64)
    if edge.any():  # ...then the few blocks that cross the edge, pixel by pixel
        r = rows[edge, None] + np.arange(size)                     # (E, size)
        c = cols[edge, None] + np.arange(size)
        valid = ((r >= 0) & (r < h))[:, :, None] & ((c >= 0) & (c < w))[:, None, :]
        pixels = obj[np.clip(r, 0, h - 1)[:, :, None], np.clip(c, 0, w - 1)[:, None, :]]
        blocks[edge] = np.where(valid, pixels, 0)
    return blocks


def _blend_into(out: np.ndarray, block: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> None:
    """Bilinear blend of ``(P, N+1, N+1)`` complex blocks into ``(P, N, N)``, in place.

    The real and imaginary parts are blended as float32 pairs: multiplying
    a complex number by a real weight as complex would do twice the work.
    """
    parts = block.view(np.float32).reshape(*block.shape, 2)          # (P, N+1, N+1, 2)
    wx = fx[:, None, None, None]
    row = parts[:, :, :-1] * (1 - wx)
    row += parts[:, :, 1:] * wx                                       # (P, N+1, N, 2)
    wy = fy[:, None, None, None]
    target = out.view(np.float32).reshape(*out.shape, 2)
    np.multiply(row[:, :-1], 1 - wy, out=target)
    target += row[:, 1:] * wy
