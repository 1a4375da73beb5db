"""``ptycho-group bench --cluster`` at a toy size: its rows measure what they name."""
import pytest

from ptycho_cli.bench_cluster import format_cluster, run_cluster_bench

pytest.importorskip("distributed")
pytest.importorskip("zarr")


def test_cluster_rows_write_the_same_bytes_and_report_each_worker(tmp_path):
    report = run_cluster_bench(points=2000, groups=400, N=16, repeat=1, workdir=tmp_path)
    rows = {row["row"]: row for row in report["rows"]}
    assert list(rows) == ["1 process, npz", "1 process, zarr", "dask local:2, zarr"]
    zarr_1, dask = rows["1 process, zarr"], rows["dask local:2, zarr"]
    assert dask["bytes"] == zarr_1["bytes"] > 400 * 4 * 16 * 16 * 4   # the same store, written
    for row in rows.values():
        assert row["mb_s"] == pytest.approx(row["bytes"] / 1e6 / row["seconds"])
        assert row["ratio"] == pytest.approx(row["mb_s"] / zarr_1["mb_s"])
    assert len(dask["worker_peak_mib"]) == 2 and min(dask["worker_peak_mib"]) > 0
    assert list(tmp_path.iterdir()) == []          # its scratch directory is gone
    text = format_cluster(report)
    assert "2 workers of 1 thread and 512 MiB each" in text
    assert text.count(" MiB per worker") == 1
