"""``ptycho-group bench --sampling``: how well each strategy samples a scan.

For the covering strategy (``cover_scan``) against the default, on 10^4-point
jittered-raster, Fermat-spiral and uniform scans at gridsize 2 and 3:

* the groups full coverage needs, as a ratio to ``ceil(M / C)`` (bar 1.2);
* the positions covered by ``ceil(M / C) / 2`` groups, as a share of the
  ``n * C`` they could cover (bar 0.95);
* the mean member-to-seed distance over the default's (bar 1.3), and the
  overlap metrics of both (probe diameter 2x the scan step);
* with ``large``, the time of ``ceil(M / C)`` groups at 10^6 points over the
  default's time for the same number (bar 5).
"""
from __future__ import annotations

import math
import time

from ptycho_grouping import GroupingRequest, NeighborIndex, get_strategy
from ptycho_grouping.cover import CoverScan
from ptycho_grouping.metrics import grouping_metrics

from .demo import scan_positions

COVER = CoverScan.name
DEFAULT = "sample_then_group"
PATTERNS = ("raster", "spiral", "random")
#: (gridsize, K) pairs measured; gridsize 3 needs K >= 9.
CASES = ((2, 7), (2, 9), (3, 9))
POINTS = 10_000
LARGE = 1_000_000
#: Probe diameter of the overlap metrics, in scan steps.
DIAMETER_STEPS = 2.0


def _metrics(coords, groups):
    return grouping_metrics(coords, groups, probe_diameter=DIAMETER_STEPS, neighbor_count=6)


def run_sampling_bench(*, large: bool = False, repeat: int = 3, say=None) -> dict:
    """Measure the sampling bars; return a JSON-ready dict."""
    say = say or (lambda msg: None)
    cover, default = get_strategy(COVER), get_strategy(DEFAULT)
    rows = []
    for pattern in PATTERNS:
        coords = scan_positions(POINTS, pattern, step=1.0, rng=0)
        index = NeighborIndex(coords)
        for g, k in CASES:
            c = g * g
            say(f"sampling {pattern} gridsize {g} K {k}")
            base = math.ceil(POINTS / c)
            need = cover.min_groups_for_cover(index, GroupingRequest(
                n_groups=1, group_size=c, neighbors=k, rng=0))
            half = base // 2
            req_half = GroupingRequest(n_groups=half, group_size=c, neighbors=k, rng=0)
            req_base = GroupingRequest(n_groups=base, group_size=c, neighbors=k, rng=0)
            m_half = _metrics(coords, cover.group(index, req_half))
            m_cover = _metrics(coords, cover.group(index, req_base))
            m_default = _metrics(coords, default.group(index, req_base))
            rows.append(dict(
                pattern=pattern, points=POINTS, gridsize=g, neighbors=k,
                cover_groups=need, cover_over_m_over_c=need / base,
                half_groups=half, half_covered_share=m_half.n_used / min(POINTS, half * c),
                spread_ratio=m_cover.seed_distance_mean / m_default.seed_distance_mean,
                cover=m_cover.to_dict(), default=m_default.to_dict()))
    out = dict(rows=rows, probe_diameter_steps=DIAMETER_STEPS, speed=[])
    if large:
        coords = scan_positions(LARGE, "raster", step=1.0, rng=0)
        for g, k in ((2, 7), (3, 9)):
            c = g * g
            n = math.ceil(LARGE / c)
            say(f"sampling speed, {LARGE} points, {n} groups, gridsize {g}")
            req = GroupingRequest(n_groups=n, group_size=c, neighbors=k, rng=0)
            t_def = _median(lambda: default.group(coords, req), repeat)
            t_cov = _median(lambda: cover.group(coords, req), repeat)
            out["speed"].append(dict(points=LARGE, gridsize=g, neighbors=k, groups=n,
                                     default_s=t_def, cover_s=t_cov, ratio=t_cov / t_def))
    return out


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def format_sampling(report: dict) -> str:
    """The table of :func:`run_sampling_bench` (a Markdown table, as docs/strategies.md uses)."""
    d = report["probe_diameter_steps"]
    lines = ["", f"sampling on {POINTS}-point scans (cover_scan vs sample_then_group; overlap "
                 f"metrics with probe diameter {d:g} scan steps, metric 2 over K=6):", "",
             "| scan | g | K | cover groups / ceil(M/C) | covered at half | spread vs default "
             "| used (default, M/C groups) | m1 cover / default | m3 cover / default |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        cv, df = r["cover"], r["default"]
        lines.append(
            f"| {r['pattern']} | {r['gridsize']} | {r['neighbors']} | "
            f"{r['cover_over_m_over_c']:.3f} | {100 * r['half_covered_share']:.1f}% | "
            f"{r['spread_ratio']:.2f}x | {100 * df['used_fraction']:.1f}% | "
            f"{cv['metric_1_group_based_avg']:.3f} / {df['metric_1_group_based_avg']:.3f} | "
            f"{cv['metric_3_group_to_group_avg']:.3f} / {df['metric_3_group_to_group_avg']:.3f} |")
    lines.append("bars: cover groups / ceil(M/C) <= 1.2; covered at half >= 95%; spread <= 1.3x")
    for s in report["speed"]:
        lines.append(f"speed at {s['points']} points, gridsize {s['gridsize']}, {s['groups']} "
                     f"groups: cover_scan {s['cover_s']:.2f} s, default {s['default_s']:.2f} s, "
                     f"ratio {s['ratio']:.1f}x (bar 5x)")
    return "\n".join(lines)
