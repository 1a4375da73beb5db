"""`ptycho-group info` on a grouped output: its arrays, provenance and metrics, not a dataset's."""
import json

import numpy as np
import pytest

from ptycho_data.provenance import read_record

FORMATS = [("g.npz", None), ("g.h5", "h5py"), ("g.zarr", "zarr")]


def _rows(stdout: str) -> dict:
    """``{label: text}`` of info's aligned two-column output."""
    rows = {}
    for line in stdout.splitlines():
        label, _, text = line.partition("  ")
        rows[label.strip()] = text.strip()
    return rows


@pytest.mark.parametrize("name,needs", FORMATS)
def test_info_shows_the_stored_metrics_and_provenance(cli, tmp_path, name, needs):
    if needs:
        pytest.importorskip(needs)
    cli("group", "--points", "600", "-o", name, "--gridsize", "2", "--groups", "90",
        "--strategy", "cover_scan", "--seed", "7", "--probe-diameter", "9", cwd=tmp_path)
    metrics = read_record(tmp_path / name, "grouping_metrics")
    res = cli("info", name, cwd=tmp_path)
    rows = _rows(res.stdout)
    assert "grouped output" in rows["file"]
    assert rows["groups"] == "90 x 4 (gridsize 2, K 7, strategy cover_scan, seed 7)"
    assert rows["arrays"].startswith("nn_indices 90 x 4 int")
    assert "X_full 90 x 32 x 32 x 4 float32" in rows["arrays"]
    params = json.loads(rows["parameters"])
    assert params["grouping_strategy"] == "cover_scan" and params["seed"] == 7
    assert params["nsamples"] == 90 and params["K"] == 7
    assert rows["input"].startswith("600 points")
    # The metrics are the stored record's, not recomputed: 90 cover groups of 4 are disjoint.
    assert metrics["n_used"] == 360
    assert rows["coverage"] == "360 distinct scan points (60.0%)"
    unused = metrics["use_count_histogram"][0]
    assert rows["use counts"].endswith(f"unused {unused}") and unused == 240
    assert f"group-to-group {metrics['metric_3_group_to_group_avg']:.3f}" in rows["overlap"]
    assert "probe diameter 9: --probe-diameter" in rows["overlap"]
    assert "positions" not in rows and "spacing" not in rows  # not described as a dataset


def test_grouped_npz_without_records_says_so(cli, tmp_path):
    cli("group", "--points", "300", "-o", "g.npz", "--gridsize", "2", "--groups", "20",
        cwd=tmp_path)
    with np.load(tmp_path / "g.npz", allow_pickle=False) as z:
        bare = {k: z[k] for k in z.files if k not in ("provenance", "grouping_metrics")}
    np.savez(tmp_path / "bare.npz", **bare)
    rows = _rows(cli("info", "bare.npz", cwd=tmp_path).stdout)
    assert rows["provenance"] == "none stored" and rows["metrics"] == "none stored"
    assert rows["groups"] == "20 x 4"


def test_a_dataset_is_still_described_as_one(cli, tmp_path):
    cli("demo-data", "-o", "d.npz", "--points", "300", cwd=tmp_path)
    rows = _rows(cli("info", "d.npz", cwd=tmp_path).stdout)
    assert rows["positions"] == "300"
    assert "grouped output" not in rows["file"]
