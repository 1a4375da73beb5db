"""A default probe diameter (in pixels) for the overlap metrics, derived from the probe.

The diameter is that of the smallest disc, centred on the centroid of
``|probe|^2``, that holds :data:`ENERGY_FRACTION` of the probe's energy
(``sum |probe|^2``). Scan coordinates of PtychoPINN datasets are in object
pixels, the probe's unit, so the two can be compared directly. A FWHM would
ignore the tails that still overlap; an energy fraction does not depend on
the probe's shape (Gaussian, Airy, a measured probe with side lobes).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["ENERGY_FRACTION", "describe_probe_diameter", "probe_diameter"]

#: Share of ``sum |probe|^2`` inside the disc whose diameter is reported.
ENERGY_FRACTION = 0.9


def probe_diameter(probe, fraction: float = ENERGY_FRACTION) -> Optional[float]:
    """Diameter (pixels) of the centred disc holding ``fraction`` of ``|probe|^2``.

    Returns ``None`` for a missing, non-2-D or all-zero probe.
    """
    if probe is None:
        return None
    p = np.asarray(probe)
    if p.ndim != 2 or p.size == 0:
        return None
    energy = np.abs(p).astype(np.float64) ** 2
    total = energy.sum()
    if not np.isfinite(total) or total <= 0:
        return None
    yy, xx = np.indices(energy.shape, dtype=np.float64)
    cy, cx = (energy * yy).sum() / total, (energy * xx).sum() / total
    r = np.hypot(yy - cy, xx - cx).ravel()
    order = np.argsort(r, kind="stable")
    held = np.cumsum(energy.ravel()[order]) / total
    i = int(np.searchsorted(held, fraction))
    # A pixel's energy sits at its centre: the disc reaches half a pixel beyond it.
    return float(2.0 * r[order][min(i, r.size - 1)] + 1.0)


def describe_probe_diameter(fraction: float = ENERGY_FRACTION) -> str:
    return (f"diameter of the disc holding {100 * fraction:g}% of |probe|^2, centred on its "
            "centroid")
