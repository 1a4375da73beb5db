"""`ptycho-group group` reports and stores the grouping metrics."""
import json

import numpy as np

from ptycho_cli import main


def test_group_prints_and_stores_metrics(tmp_path, capsys):
    out = tmp_path / "g.npz"
    assert main(["group", "-o", str(out), "--gridsize", "2", "--groups", "700",
                 "--strategy", "cover_scan", "--probe-diameter", "8"]) == 0
    text = capsys.readouterr()
    printed = text.out + text.err
    assert "use counts" in printed and "probe diameter 8: --probe-diameter" in printed
    with np.load(out, allow_pickle=False) as z:
        m = json.loads(str(z["grouping_metrics"]))
        nn = z["nn_indices"]
    assert m["n_groups"] == 700 and m["probe_diameter"] == 8.0
    assert m["n_used"] == len(np.unique(nn)) == 2800  # the cover's first groups are disjoint
    assert m["probe_diameter_source"] == "--probe-diameter"


def test_probe_diameter_derived_from_the_probe(tmp_path, capsys):
    out = tmp_path / "g.npz"
    assert main(["group", "-o", str(out), "--gridsize", "2", "--groups", "50"]) == 0
    with np.load(out, allow_pickle=False) as z:
        m = json.loads(str(z["grouping_metrics"]))
    assert m["probe_diameter"] > 1 and "|probe|^2" in m["probe_diameter_source"]
    assert 0 < m["metric_2_image_based_avg"] <= 1
