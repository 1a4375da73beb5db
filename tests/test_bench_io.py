"""bench --io machinery: both runs happen, on the same bytes, and the report says so."""
import numpy as np
import pytest

from ptycho_cli import bench_io
from ptycho_data.raw_data import RawData


@pytest.mark.xdist_group("tiny_bench")  # one worker runs the shared session fixture
def test_io_rows_time_the_grouped_output_and_a_copy_of_the_same_bytes(tiny_bench):
    # The I/O rows of the shared `bench --io --io-points 2000 --io-groups 300` (conftest.py).
    full_report, stdout, left = tiny_bench
    report = full_report["io"]
    assert [r["row"] for r in report["rows"]] == ["warm", "cold", "warm + Y"]
    assert (report["groups"], report["gridsize"], report["N"]) == (300, 2, 32)
    warm, _, with_y = report["rows"]
    # The copy moves exactly the bytes the grouped output wrote.
    for row in report["rows"]:
        assert row["copy"]["bytes"] == row["grouped"]["bytes"] > 0
        assert row["ratio"] == pytest.approx(row["grouped"]["mb_s"] / row["copy"]["mb_s"])
        for run in (row["grouped"], row["copy"]):
            assert run["seconds"] > 0 and 0 < run["peak_anon_mib"] <= run["peak_rss_mib"]
    # Y adds 300 groups x 4 complex64 patches of 32x32.
    assert with_y["grouped"]["bytes"] - warm["grouped"]["bytes"] >= 300 * 4 * 32 * 32 * 8
    text = bench_io.format_io(report)
    assert "warm + Y" in text and "ratio" in text and "MB/s" in text
    assert text in stdout
    assert left == ["b.json"]  # the temporary directory (in --io-dir) is gone


def test_a_subset_of_rows_runs_in_the_order_given(tmp_path, monkeypatch):
    # Which rows run, in which order (the command always asks for all three); no child runs.
    measured = []
    monkeypatch.setattr(bench_io, "_measured", lambda spec, repeat: measured.append(
        (spec["job"], spec["cold"], spec.get("patches"), repeat)) or dict(
        seconds=1.0, bytes=10, mb_s=1e-5, peak_rss_mib=1.0, peak_anon_mib=1.0))
    report = bench_io.run_io_bench(points=300, N=8, groups=40, rows=("warm + Y", "cold"),
                                   repeat=3, workdir=tmp_path)
    assert [r["row"] for r in report["rows"]] == ["warm + Y", "cold"]
    assert measured == [("group", False, True, 3), ("copy", False, None, 3),
                        ("group", True, False, 3), ("copy", True, None, 3)]
    assert list(tmp_path.iterdir()) == []


def test_io_store_is_a_dataset_with_an_object(tmp_path):
    bench_io.write_store(tmp_path / "s.npz", 500, 8, with_object=True)
    raw = RawData.from_file(tmp_path / "s.npz", mmap=True)
    assert raw.diff3d.shape == (500, 8, 8) and isinstance(raw.diff3d, np.memmap)
    assert raw.objectGuess.dtype == np.complex64
    assert raw.xcoords.min() >= 8 and raw.objectGuess.shape[1] >= raw.xcoords.max() + 8


def test_unknown_rows_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"rows must be among .* got \['hot'\]"):
        bench_io.run_io_bench(points=10, N=4, groups=2, rows=("hot",), workdir=tmp_path)
