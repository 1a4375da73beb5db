"""``ptycho-group bench --sampling``: the covering strategy's bars, measured as the bench measures them."""
import json

import numpy as np

from ptycho_cli.bench_sampling import CASES, PATTERNS, POINTS, format_sampling
from ptycho_cli.demo import scan_positions
from ptycho_grouping import GroupingRequest, get_strategy


def test_sampling_rows_are_what_they_claim(tmp_path, cli):
    out = tmp_path / "sampling.json"
    proc = cli("bench", "--sampling-only", "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())["sampling"]
    rows = report["rows"]
    assert [(r["pattern"], r["gridsize"], r["neighbors"]) for r in rows] == [
        (p, g, k) for p in PATTERNS for g, k in CASES]
    cover = get_strategy("cover_scan")
    for r in rows:
        c = r["gridsize"] ** 2
        coords = scan_positions(POINTS, r["pattern"], step=1.0, rng=0)
        # The count the row reports does cover the scan, and one group fewer does not.
        request = GroupingRequest(n_groups=r["cover_groups"], group_size=c,
                                  neighbors=r["neighbors"], rng=0)
        assert np.unique(cover.group(coords, request)).size == POINTS
        fewer = GroupingRequest(n_groups=r["cover_groups"] - 1, group_size=c,
                                neighbors=r["neighbors"], rng=0)
        assert np.unique(cover.group(coords, fewer)).size < POINTS
        assert r["cover_over_m_over_c"] == r["cover_groups"] / -(-POINTS // c)
        # Bars that hold on every scan: half the groups cover >= 95% of what they can,
        # and the groups stay as compact as the default's (<= 1.3x).
        assert r["half_covered_share"] >= 0.95 and r["spread_ratio"] <= 1.3
        assert r["cover"]["n_used"] > r["default"]["n_used"]
        if r["gridsize"] == 2:  # the full-cover bar, met at gridsize 2 (docs/strategies.md)
            assert r["cover_over_m_over_c"] <= 1.2
    table = format_sampling(report).splitlines()
    assert sum(line.startswith(f"| {p} |") for line in table for p in PATTERNS) == len(rows)
    assert table[-1].startswith("bars: ") and table[-1] in proc.stdout
