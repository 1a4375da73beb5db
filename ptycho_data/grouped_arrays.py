"""The arithmetic of grouped output, shared by the eager, Dask and streaming paths.

``RawData.generate_grouped_data`` (eager), :mod:`ptycho_data.dask_arrays` (lazy)
and :mod:`ptycho_data.grouped_writer` (streaming) build the same arrays from the
same group indices; they all take the gather, the ``X_full`` normalisation
and the coordinate offsets from here, so the three agree bit for bit and
refuse the same inputs with the same messages.

``X_full`` is float32 whatever ``diff3d``'s dtype (PtychoPINN's data
contract). Its scale ``sqrt((N/2)^2 / mean energy)`` is computed in float64
from float64 energies, checked before it is applied, and applied in a dtype
wide enough that neither the scale nor the product can overflow: float32
when both fit, float64 otherwise (for example float32 patterns near 1e-41,
whose scale of about 1e40 is beyond float32). A scale that cannot give a
finite ``X_full`` is a ``ValueError`` naming the patterns' value range.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np

from .pattern_store import gather_frames

__all__ = ["X_FULL_DTYPE", "channels_last", "frame_energies", "pattern_energies",
           "normalisation_scale", "scale_dtype", "scaled", "scaled_into", "member_coords",
           "patch_shifts", "value_range", "frames_value_range"]

#: dtype of ``X_full``, whatever the patterns' dtype (PtychoPINN's data contract).
X_FULL_DTYPE = np.dtype(np.float32)

#: Pixels per block when summing energies: the float64 copy stays in cache.
_ENERGY_BLOCK_PIXELS = 1 << 16

_F32 = np.finfo(np.float32)


def index_dtype(n_points: int) -> np.dtype:
    """The dtype of ``nn_indices`` for a dataset of ``n_points`` positions.

    int32, PtychoPINN's, wherever the indices fit (any scan below 2**31
    positions); int64 beyond.
    """
    return np.dtype(np.int32 if n_points <= np.iinfo(np.int32).max + 1 else np.int64)


def channels_last(stack, nn_indices: np.ndarray) -> np.ndarray:
    """``stack[nn_indices]`` with shape ``(B, N, N, C)``, gathered in one pass.

    The frames are gathered contiguously as ``(B, C, N, N)`` and returned as a
    channels-last *view*: one copy of the data instead of two, and every
    pattern stays contiguous in memory. ``np.ascontiguousarray`` gives a
    C-ordered copy for code that needs one.
    """
    b, c = nn_indices.shape
    block = gather_frames(stack, nn_indices.ravel()).reshape(b, c, *stack.shape[1:])
    return np.moveaxis(block, 1, 3)


def frame_energies(frames: np.ndarray) -> np.ndarray:
    """``sum(frame**2)`` of every frame of an ``(n, N, N)`` array, ``(n,)`` float64.

    Summed in float64, block by block: each block is cast into a small
    reused float64 buffer (no full-size float64 temporary) and reduced by
    ``einsum``, whose loops are NumPy's own. Not BLAS: its threaded dot
    products sum in an order that depends on the thread count, so the same
    file gave other energies (and, rarely, another ``X_full`` bit) on a
    machine with more cores, or in a Dask worker, which runs one thread.
    """
    n = frames.shape[0]
    flat = frames.reshape(n, -1)
    pixels = flat.shape[1]
    out = np.empty(n, dtype=np.float64)
    step = max(1, _ENERGY_BLOCK_PIXELS // max(1, pixels))
    buf = np.empty((min(step, n), pixels), dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):  # judged by normalisation_scale
        for start in range(0, n, step):
            block = buf[:min(step, n - start)]
            block[...] = flat[start:start + step]
            out[start:start + len(block)] = np.einsum("ij,ij->i", block, block)
    return out


def pattern_energies(diffraction: np.ndarray) -> np.ndarray:
    """``sum(pattern**2)`` of every pattern of a ``(B, N, N, C)`` array, ``(B, C)`` float64."""
    b, n, _, c = diffraction.shape
    frames = np.moveaxis(diffraction, 3, 1).reshape(b * c, n, n)  # a view when gathered by us
    return frame_energies(frames).reshape(b, c)


def value_range(patterns: np.ndarray) -> Tuple[float, float, bool]:
    """``(min, max, all finite)`` of some patterns, for error messages."""
    patterns = np.asarray(patterns)
    if patterns.size == 0:
        return 0.0, 0.0, True
    finite = bool(np.isfinite(patterns).all())
    return float(np.nanmin(patterns)), float(np.nanmax(patterns)), finite


def frames_value_range(store, indices, chunk_frames: int = 4096) -> Tuple[float, float, bool]:
    """:func:`value_range` of ``store[indices]``, read a chunk of frames at a time."""
    indices = np.unique(np.asarray(indices).ravel())
    lo, hi, finite = np.inf, -np.inf, True
    for start in range(0, indices.size, chunk_frames):
        a, b, f = value_range(gather_frames(store, indices[start:start + chunk_frames]))
        lo, hi, finite = min(lo, a), max(hi, b), finite and f
    return lo, hi, finite


def _range_text(pattern_range: Optional[Callable[[], Tuple[float, float, bool]]]) -> str:
    if pattern_range is None:
        return ""
    lo, hi, finite = pattern_range()
    return (f" (the drawn patterns' values range from {lo:.6g} to {hi:.6g}"
            f"{'' if finite else ' and include NaN or inf'})")


def normalisation_scale(energies: np.ndarray, N: int, pattern_range=None) -> float:
    """PtychoPINN's X_full factor ``sqrt((N/2)^2 / mean(energies))``, float64, checked.

    Parameters
    ----------
    energies : ndarray
        Per-pattern sums of squares (float64), e.g. from :func:`pattern_energies`.
    N : int
        Pattern size.
    pattern_range : callable, optional
        Returns ``(min, max, all finite)`` of the drawn patterns; called only
        to word an error (so the normal path never pays for it).

    Raises
    ------
    ValueError
        When the mean energy is zero (all drawn patterns blank, or their
        squares underflow), not finite (NaN or inf in ``diff3d``, or squares
        too large for float64), or when the scale itself is not a finite
        positive float64, instead of an ``X_full`` of inf or NaN.
    """
    energies = np.asarray(energies, dtype=np.float64).ravel()
    peak = float(np.max(energies)) if energies.size else 0.0
    if not np.isfinite(energies).all():
        lo, hi, finite = pattern_range() if pattern_range is not None else (0, 0, False)
        if np.isnan(energies).any() or not finite:
            mean = float(np.mean(energies))
            raise ValueError(f"the drawn diffraction patterns have a non-finite mean energy "
                             f"({mean}): diff3d holds NaN or inf, so X_full cannot be "
                             f"normalised{_range_text(pattern_range)}")
        raise ValueError("the energy (sum of squares) of the drawn diffraction patterns "
                         "overflows float64, so X_full cannot be normalised"
                         f"{_range_text(pattern_range)}; rescale diff3d")
    if peak == 0:
        raise ValueError("the drawn diffraction patterns have zero total energy, so X_full's "
                         "normalisation sqrt((N/2)^2 / mean energy) is undefined"
                         f"{_range_text(pattern_range)}")
    # The mean relative to the peak cannot overflow however large the energies.
    mean = float(np.mean(energies / peak)) * peak
    with np.errstate(over="ignore", divide="ignore"):
        scale = float(N / 2 / np.sqrt(np.float64(mean)))
    # |X_full| <= (N/2) * sqrt(number of patterns): beyond float32 only for absurd counts.
    if not (np.isfinite(scale) and scale > 0) or N / 2 * np.sqrt(energies.size) > float(_F32.max):
        raise ValueError(f"X_full's normalisation scale {scale:.6g} (mean energy {mean:.6g}) "
                         "cannot give finite float32 values"
                         f"{_range_text(pattern_range)}; rescale diff3d")
    return scale


def scale_dtype(dtype, scale: float) -> np.dtype:
    """The dtype ``X_full = patterns * scale`` is computed in before it is stored as float32.

    float32 where the patterns convert to float32 without loss of range and
    ``scale`` is a normal float32 number (the fast common case); float64
    otherwise, so neither the scale nor the product overflows.
    """
    dtype = np.dtype(dtype)
    fits = np.result_type(dtype, np.float32) == np.float32
    if fits and float(_F32.tiny) <= scale <= float(_F32.max):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def scaled_into(out: np.ndarray, patterns: np.ndarray, scale: float) -> np.ndarray:
    """Write ``patterns * scale`` into the float32 array ``out`` (may be ``patterns`` itself)."""
    work = scale_dtype(patterns.dtype, scale)
    np.multiply(patterns, work.type(scale), out=out, dtype=work, casting="unsafe")
    return out


def scaled(patterns: np.ndarray, scale: float) -> np.ndarray:
    """``patterns * scale`` as a new float32 array (``X_full``), laid out as ``patterns``.

    Keeping the input's memory layout (``empty_like``) makes the product one
    contiguous pass over a channels-last view, where a C-ordered result
    would be filled with strided reads.
    """
    return scaled_into(np.empty_like(patterns, dtype=X_FULL_DTYPE), patterns, scale)


def member_coords(x, y, nn_indices):
    """``coords_nn (B, 1, 2, C)``, offsets (mean over members) and relative coords.

    ``coords_relative = -(coords_nn - coords_offsets)``: PtychoPINN's sign.
    """
    coords_nn = np.stack([x[nn_indices], y[nn_indices]], axis=1)[:, None].astype(np.float64)
    offsets = coords_nn.mean(axis=3, keepdims=True)
    return coords_nn, offsets, -(coords_nn - offsets)


def patch_shifts(coords_offsets: np.ndarray, coords_relative: np.ndarray) -> np.ndarray:
    """``(B*C, 2)`` window corners ``(sx, sy)`` of the object patches, member by member."""
    shifts = (coords_offsets + coords_relative)[:, 0]  # (B, 2, C)
    return np.moveaxis(shifts, 1, 2).reshape(-1, 2)
