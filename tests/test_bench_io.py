"""bench --io machinery: both runs happen, on the same bytes, and the report says so."""
import numpy as np
import pytest

from ptycho_cli import bench_io
from ptycho_data.raw_data import RawData


def test_io_rows_time_the_grouped_output_and_a_copy_of_the_same_bytes(tmp_path):
    report = bench_io.run_io_bench(points=3000, N=16, groups=400, rows=("warm", "warm + Y"),
                                   repeat=1, workdir=tmp_path)
    assert [r["row"] for r in report["rows"]] == ["warm", "warm + Y"]
    warm, with_y = report["rows"]
    # The copy moves exactly the bytes the grouped output wrote.
    for row in report["rows"]:
        assert row["copy"]["bytes"] == row["grouped"]["bytes"] > 0
        assert row["ratio"] == pytest.approx(row["grouped"]["mb_s"] / row["copy"]["mb_s"])
        for run in (row["grouped"], row["copy"]):
            assert run["seconds"] > 0 and 0 < run["peak_anon_mib"] <= run["peak_rss_mib"]
    # Y adds 400 groups x 4 complex64 patches of 16x16.
    assert with_y["grouped"]["bytes"] - warm["grouped"]["bytes"] >= 400 * 4 * 16 * 16 * 8
    text = bench_io.format_io(report)
    assert "warm + Y" in text and "ratio" in text and "MB/s" in text
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone


def test_io_store_is_a_dataset_with_an_object(tmp_path):
    bench_io.write_store(tmp_path / "s.npz", 500, 8, with_object=True)
    raw = RawData.from_file(tmp_path / "s.npz", mmap=True)
    assert raw.diff3d.shape == (500, 8, 8) and isinstance(raw.diff3d, np.memmap)
    assert raw.objectGuess.dtype == np.complex64
    assert raw.xcoords.min() >= 8 and raw.objectGuess.shape[1] >= raw.xcoords.max() + 8


def test_unknown_rows_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"rows must be among .* got \['hot'\]"):
        bench_io.run_io_bench(points=10, N=4, groups=2, rows=("hot",), workdir=tmp_path)
