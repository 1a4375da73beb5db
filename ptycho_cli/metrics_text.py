"""The grouping metrics as summary lines: what ``group`` prints and ``info`` shows again."""
from __future__ import annotations

__all__ = ["metric_lines", "metric_rows"]


def metric_rows(m: dict) -> list:
    """``(label, text)`` rows (coverage, use counts, spread, overlap) of a ``grouping_metrics`` record."""
    hist = m["use_count_histogram"]
    seed = "-" if m["seed_distance_mean"] is None else f"{m['seed_distance_mean']:.4g}"
    rows = [("coverage", f"{m['n_used']} distinct scan points ({100 * m['used_fraction']:.1f}%)"),
            ("use counts", f"min {m['use_count_min']}, mean {m['use_count_mean']:.2f}, "
                           f"max {m['use_count_max']}, CV {m['use_count_cv']:.2f}; unused "
                           f"{hist[0] if hist else 0}"),
            ("spread", f"member-seed mean {seed}, member-centre mean "
                       f"{m['centre_distance_mean']:.4g}")]
    if m["probe_diameter"] is None:
        rows.append(("overlap", f"not measured ({m['probe_diameter_source']}; "
                                "give --probe-diameter)"))
    else:
        m1 = m["metric_1_group_based_avg"]
        rows.append(("overlap", f"group {'-' if m1 is None else f'{m1:.3f}'}, image "
                                f"{m['metric_2_image_based_avg']:.3f}, group-to-group "
                                f"{m['metric_3_group_to_group_avg']:.3f} (probe diameter "
                                f"{m['probe_diameter']:.4g}: {m['probe_diameter_source']})"))
    return rows


def metric_lines(m: dict) -> list:
    """:func:`metric_rows` as the summary lines of ``group`` (labels padded to 12 columns)."""
    return [f"{label:<12}{text}" for label, text in metric_rows(m)]
