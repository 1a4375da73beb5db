"""How well a set of groups samples a scan: coverage, use counts, spread and overlap.

:func:`grouping_metrics` takes scan positions ``(M, 2)`` and groups
``(B, C)`` of indices (column 0 the seed) and reports

* coverage: the share of positions that appear in at least one group;
* use counts: how often each position is used (min, mean, max, coefficient
  of variation, and how many positions are used 0, 1, 2, ... times);
* spread: distances of the members to their seed and to their group's
  centre (the mean of its members);
* the three disc-overlap metrics of PtychoPINN's study specification
  (``specs/overlap_metrics.md``, version 1.0), when a probe diameter ``D``
  is given. With ``f(d)`` the overlap area of two discs of diameter ``D``
  whose centres are ``d`` apart, divided by the area of one disc
  (:func:`disc_overlap_fraction`):

  1. group-based: per group, the mean of ``f`` from the seed to each of the
     other ``C - 1`` members; averaged over groups (``None`` for ``C == 1``);
  2. image-based: positions deduplicated by exact ``(x, y)`` equality; per
     unique position, the mean of ``f`` to its ``neighbor_count`` nearest
     other unique positions (fewer when there are not that many); averaged
     over unique positions; 0 when there is only one;
  3. group-to-group: per group, the mean of ``f`` over every *other* group
     whose centre is strictly closer than ``D`` (0 when there is none);
     averaged over groups.

  Metric 2 describes the scan itself (every position, used or not), as the
  specification's "global set" does; metrics 1 and 3 describe the groups.

The cost is O(B C + M log M) plus the number of group-centre pairs closer
than ``D`` (which metric 3 needs by definition); those pairs are found with a
k-d tree and processed in blocks of bounded size.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np

from .neighbors import kd_tree
from .validation import check_coords, check_scalar

__all__ = ["GroupingMetrics", "METRICS_VERSION", "disc_overlap_fraction", "grouping_metrics"]

#: Version of the overlap-metric definitions (PtychoPINN's spec, version 1.0).
METRICS_VERSION = "1.0"
#: Group-centre pairs handled at once by metric 3 (bounds its memory).
_PAIR_BLOCK = 1 << 16


@dataclass(frozen=True)
class GroupingMetrics:
    """What :func:`grouping_metrics` measured; :meth:`to_dict` is JSON-ready.

    Distances are in the units of the coordinates. Overlap fields are
    ``None`` when no probe diameter was given (and metric 1 also when
    ``group_size == 1``).
    """

    n_points: int
    n_groups: int
    group_size: int
    n_used: int
    used_fraction: float
    use_count_min: int
    use_count_mean: float
    use_count_max: int
    use_count_cv: float
    #: ``use_count_histogram[i]`` positions are used exactly ``i`` times.
    use_count_histogram: Tuple[int, ...]
    seed_distance_mean: Optional[float]
    seed_distance_max: Optional[float]
    centre_distance_mean: float
    centre_distance_max: float
    probe_diameter: Optional[float]
    neighbor_count: int
    n_unique_positions: int
    metric_1_group_based_avg: Optional[float]
    metric_2_image_based_avg: Optional[float]
    metric_3_group_to_group_avg: Optional[float]
    metrics_version: str = METRICS_VERSION

    def to_dict(self) -> dict:
        """Plain Python values only (ints, floats, strings, lists, None)."""
        out = asdict(self)
        out["use_count_histogram"] = list(self.use_count_histogram)
        return out


def disc_overlap_fraction(d, diameter: float) -> np.ndarray:
    """Overlap area of two discs of ``diameter`` with centres ``d`` apart, over one disc's area.

    ``A(d) = 2 R^2 acos(d / 2R) - (d / 2) sqrt(4 R^2 - d^2)`` for ``d < D``
    (``R = D / 2``), else 0; the fraction is ``A(d) / (pi R^2)``: 1 at
    ``d = 0``, about 0.391 at ``d = R``, 0 from ``d = D`` on.

    Parameters
    ----------
    d : array_like
        Non-negative centre distances.
    diameter : float
        ``D > 0``, in the units of ``d``.

    Returns
    -------
    ndarray of float64, the shape of ``d``
    """
    diameter = _check_diameter(diameter)
    d = np.asarray(d, dtype=np.float64)
    r = diameter / 2.0
    inside = d < diameter
    dd = np.where(inside, d, 0.0)
    area = 2.0 * r * r * np.arccos(dd / (2.0 * r)) - (dd / 2.0) * np.sqrt(
        np.maximum(4.0 * r * r - dd * dd, 0.0))
    return np.where(inside, area / (math.pi * r * r), 0.0)


def grouping_metrics(coords, groups, *, probe_diameter: Optional[float] = None,
                     neighbor_count: int = 6) -> GroupingMetrics:
    """Coverage, use counts, spread and disc-overlap metrics of ``groups`` on ``coords``.

    Parameters
    ----------
    coords : array_like of shape (M, 2)
        Finite scan positions (x, y), in the units of ``probe_diameter``.
    groups : array_like of int, shape (B, C)
        Indices into ``coords``; column 0 is the seed.
    probe_diameter : float, optional
        ``D`` of the overlap metrics; without it they are ``None``.
    neighbor_count : int, default 6
        Neighbours per position of metric 2 (the specification's default).

    Returns
    -------
    GroupingMetrics
    """
    pos = check_coords(coords)
    m = pos.shape[0]
    idx = _check_groups(groups, m)
    neighbor_count = check_scalar(neighbor_count, "neighbor_count", numbers.Integral, min_val=1)
    diameter = None if probe_diameter is None else _check_diameter(probe_diameter)
    b, c = idx.shape

    use = np.bincount(idx.ravel(), minlength=m)
    mean_use = float(use.mean())
    members = pos[idx]                                   # (B, C, 2)
    centre = members.mean(axis=1)                        # (B, 2)
    to_centre = _norm(members - centre[:, None, :])
    to_seed = _norm(members[:, 1:] - members[:, :1]) if c > 1 else None

    m1 = m2 = m3 = None
    unique = np.unique(pos + 0.0, axis=0)  # + 0.0: -0.0 and 0.0 are one position
    if diameter is not None:
        if c > 1:
            m1 = float(disc_overlap_fraction(to_seed, diameter).mean(axis=1).mean())
        m2 = _image_based(unique, neighbor_count, diameter)
        m3 = _group_to_group(centre, diameter)
    return GroupingMetrics(
        n_points=m, n_groups=b, group_size=c,
        n_used=int(np.count_nonzero(use)), used_fraction=float(np.count_nonzero(use) / m),
        use_count_min=int(use.min()), use_count_mean=mean_use, use_count_max=int(use.max()),
        use_count_cv=float(use.std() / mean_use),
        use_count_histogram=tuple(int(v) for v in np.bincount(use)),
        seed_distance_mean=None if to_seed is None else float(to_seed.mean()),
        seed_distance_max=None if to_seed is None else float(to_seed.max()),
        centre_distance_mean=float(to_centre.mean()), centre_distance_max=float(to_centre.max()),
        probe_diameter=diameter, neighbor_count=neighbor_count,
        n_unique_positions=int(unique.shape[0]),
        metric_1_group_based_avg=m1, metric_2_image_based_avg=m2,
        metric_3_group_to_group_avg=m3)


def _norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt(v[..., 0] ** 2 + v[..., 1] ** 2)


def _image_based(unique: np.ndarray, k: int, diameter: float) -> float:
    u = unique.shape[0]
    if u < 2:
        return 0.0
    k = min(k, u - 1)
    # Unique positions are distinct, so each is the only one at distance 0
    # from itself: the query's first column is the point itself.
    _, nn = kd_tree(unique).query(unique, k=k + 1)
    nn = nn.reshape(u, k + 1)
    self_col = nn == np.arange(u)[:, None]
    # Should rounding ever order another point first, drop self by index.
    keep = np.where(self_col.any(axis=1)[:, None], ~self_col, np.arange(k + 1) < k)
    nbrs = nn[keep].reshape(u, k)
    d = _norm(unique[nbrs] - unique[:, None, :])
    return float(disc_overlap_fraction(d, diameter).mean(axis=1).mean())


def _group_to_group(centre: np.ndarray, diameter: float) -> float:
    b = centre.shape[0]
    tree = kd_tree(centre)
    # Ordered pairs within D, self included: sizes the blocks so that no
    # block holds more than _PAIR_BLOCK pairs.
    n_pairs = int(tree.count_neighbors(tree, diameter))
    block = max(1, int(b * _PAIR_BLOCK // max(n_pairs, 1)))
    total = np.zeros(b)
    count = np.zeros(b, dtype=np.int64)
    for start in range(0, b, block):
        stop = min(b, start + block)
        sub = kd_tree(centre[start:stop])
        pairs = sub.sparse_distance_matrix(tree, diameter, output_type="ndarray")
        i = pairs["i"].astype(np.intp) + start
        j = pairs["j"].astype(np.intp)
        d = _norm(centre[i] - centre[j])
        keep = (i != j) & (d < diameter)  # other groups only, strictly closer than D
        i, d = i[keep], d[keep]
        total += np.bincount(i, weights=disc_overlap_fraction(d, diameter), minlength=b)
        count += np.bincount(i, minlength=b)
    per_group = np.divide(total, count, out=np.zeros(b), where=count > 0)
    return float(per_group.mean())


def _check_diameter(diameter) -> float:
    what = "a finite real number > 0"
    value = check_scalar(diameter, "probe_diameter", numbers.Real, min_val=0.0,
                         include_boundaries="neither", description=what)
    if not math.isfinite(value):
        raise ValueError(f"probe_diameter must be {what}, got {diameter!r}")
    return value


def _check_groups(groups, n_points: int) -> np.ndarray:
    arr = np.asarray(groups)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"groups must hold integer indices, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"groups must have shape (n_groups, group_size) with both >= 1, "
                         f"got {arr.shape}")
    if arr.min() < 0 or arr.max() >= n_points:
        raise ValueError(f"groups must hold indices in [0, {n_points}), got values from "
                         f"{arr.min()} to {arr.max()}")
    return arr.astype(np.intp, copy=False)
