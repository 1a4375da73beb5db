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

#: Pixels per vectorised batch. The only full-size temporary is one corner
#: gather of this many complex64 pixels (8 MiB), whatever N and the count.
_CHUNK_PIXELS = 1 << 20


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
        Pixels outside the padded object are zero; next to its edge they are
        interpolated towards zero (``scipy.ndimage.shift(..., order=1,
        mode="grid-constant")``).
    """
    obj = np.asarray(obj)
    if obj.ndim != 2:
        raise ValueError(f"objectGuess must be 2-D, got shape {obj.shape}")
    # One extra ring of zeros: clipping an index onto it reads zero, so the
    # corners outside the object need no mask.
    img = np.pad(obj.astype(np.complex64, copy=False), N // 2 + 1)
    shifts = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    out = np.empty((len(shifts), N, N), dtype=np.complex64)
    chunk = max(1, _CHUNK_PIXELS // (N * N))
    for start in range(0, len(shifts), chunk):
        _bilinear_into(out[start:start + chunk], img, shifts[start:start + chunk], N)
    return out


def _bilinear_into(out: np.ndarray, img: np.ndarray, shifts: np.ndarray, N: int) -> None:
    """Accumulate the four weighted corner gathers of ``shifts`` into ``out`` in place.

    ``img`` is the padded object with one more ring of zeros, so pixel
    ``(r, c)`` of the padded object is ``img[r + 1, c + 1]``; indices off
    ``img`` are clipped onto that ring and read zero.
    """
    col0, row0 = np.floor(shifts[:, 0]), np.floor(shifts[:, 1])
    fx = (shifts[:, 0] - col0).astype(np.float32)[:, None, None]
    fy = (shifts[:, 1] - row0).astype(np.float32)[:, None, None]

    def index(start, step, size):  # (P, N) indices into img
        return np.clip(start[:, None] + np.arange(step, N + step), 0, size - 1).astype(np.intp)

    rows, rows_next = index(row0, 1, img.shape[0]), index(row0, 2, img.shape[0])
    cols, cols_next = index(col0, 1, img.shape[1]), index(col0, 2, img.shape[1])
    corners = ((rows, cols, (1 - fy) * (1 - fx)), (rows, cols_next, (1 - fy) * fx),
               (rows_next, cols, fy * (1 - fx)), (rows_next, cols_next, fy * fx))
    for k, (r, c, weight) in enumerate(corners):
        corner = img[r[:, :, None], c[:, None, :]]  # (P, N, N): the one temporary
        corner *= weight
        if k == 0:
            out[...] = corner
        else:
            out += corner
        del corner  # else the next gather allocates while this one is still alive
