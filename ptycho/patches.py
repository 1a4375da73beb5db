"""Object patches for grouped scan positions, with NumPy only (no TensorFlow).

PtychoPINN cuts ground-truth patches by zero-padding the object by ``N//2``,
translating it by ``-(coords_offsets + coords_relative)`` with bilinear
interpolation and keeping the top-left ``N x N`` window. Translating by
``(dx, dy)`` means ``out[i, j] = padded[i - dy, j - dx]``, so the window
samples the padded object at ``(i + sy, j + sx)`` with
``(sx, sy) = coords_offsets + coords_relative``.

Each patch needs one ``(N+1) x (N+1)`` block of the object at its integer
corner: the blocks are copied once (a gather of whole rows, from a
``sliding_window_view``), then blended along x and along y by the
fractional offsets, in float32 arithmetic on the real and imaginary parts.
That is memory speed, where gathering every pixel four times (once per
bilinear corner) was not.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["extract_patches", "padded_object"]

#: Pixels per batch: a batch's blocks and blends stay in the CPU caches.
_CHUNK_PIXELS = 1 << 16


def padded_object(obj: np.ndarray, N: int) -> np.ndarray:
    """The object as :func:`extract_patches` reads it: complex64, zero margins.

    PtychoPINN's ``N // 2`` of padding, then ``N + 1`` more rings of zeros,
    so that every window corner can be clipped into range: a block clipped
    onto the outer margin is all zeros, as the window it stands for.
    Compute it once and pass it as ``padded`` when cutting patches in
    several calls.
    """
    obj = np.asarray(obj)
    if obj.ndim != 2:
        raise ValueError(f"objectGuess must be 2-D, got shape {obj.shape}")
    return np.pad(obj.astype(np.complex64, copy=False), N // 2 + N + 1)


def extract_patches(obj: np.ndarray, shifts: np.ndarray, N: int, *, padded=None,
                    out=None) -> np.ndarray:
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
    padded : ndarray, optional
        ``padded_object(obj, N)``, when the caller already has it.
    out : ndarray of shape (P, N, N), complex64, optional
        Where to write the patches.

    Returns
    -------
    ndarray of shape (P, N, N), complex64
        Pixels outside the padded object are zero; next to its edge they are
        interpolated towards zero (``scipy.ndimage.shift(..., order=1,
        mode="grid-constant")``).
    """
    img = padded_object(obj, N) if padded is None else padded
    shifts = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    if out is None:
        out = np.empty((len(shifts), N, N), dtype=np.complex64)
    chunk = max(1, _CHUNK_PIXELS // ((N + 1) * (N + 1)))
    blocks = sliding_window_view(img, (N + 1, N + 1))
    margin = N + 1
    for start in range(0, len(shifts), chunk):
        part = shifts[start:start + chunk]
        corner = np.floor(part)
        frac = (part - corner).astype(np.float32)
        # Pixel (r, c) of PtychoPINN's padded object is img[r + margin, c + margin].
        cols = np.clip(corner[:, 0] + margin, 0, blocks.shape[1] - 1).astype(np.intp)
        rows = np.clip(corner[:, 1] + margin, 0, blocks.shape[0] - 1).astype(np.intp)
        _blend_into(out[start:start + chunk], blocks[rows, cols], frac[:, 0], frac[:, 1])
    return out


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
