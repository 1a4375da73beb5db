"""Scan-position families that ptychography users meet, for property tests."""
import numpy as np

FAMILIES = ("raster", "jittered_raster", "fermat_spiral", "uniform",
            "clustered", "line", "duplicated")


def make_coords(family: str, m: int, seed: int = 0) -> np.ndarray:
    """``m`` scan positions of the given family, shape (m, 2)."""
    rng = np.random.default_rng(seed)
    if family in ("raster", "jittered_raster"):
        side = int(np.ceil(np.sqrt(m)))
        yy, xx = np.divmod(np.arange(m), side)
        xy = np.column_stack([xx, yy]).astype(float) * 2.0
        if family == "jittered_raster":
            xy += rng.normal(0, 0.2, size=xy.shape)
        return xy
    if family == "fermat_spiral":
        i = np.arange(m)
        r, theta = 1.5 * np.sqrt(i), i * np.pi * (3 - np.sqrt(5))
        return np.column_stack([r * np.cos(theta), r * np.sin(theta)])
    if family == "uniform":
        return rng.uniform(0, 100, size=(m, 2))
    if family == "clustered":
        centres = rng.uniform(0, 100, size=(max(1, m // 20), 2))
        return centres[rng.integers(0, len(centres), m)] + rng.normal(0, 1.0, (m, 2))
    if family == "line":
        return np.column_stack([np.arange(m) * 0.5, np.zeros(m)])
    if family == "duplicated":
        base = rng.uniform(0, 20, size=(max(1, m // 3), 2))
        return base[rng.integers(0, len(base), m)]
    raise ValueError(family)
