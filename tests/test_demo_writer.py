"""demo-data written chunk by chunk: the in-memory demo's arrays, in bounded memory."""
import os
import tracemalloc

import numpy as np
import pytest

from ptycho_cli import demo


def arrays(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.parametrize("pattern", demo.PATTERNS)
def test_written_demo_equals_the_in_memory_demo(tmp_path, monkeypatch, pattern):
    monkeypatch.setattr(demo, "CHUNK_POINTS", 700)  # several chunks, the last partial
    monkeypatch.setattr(demo, "_OBJECT_ROWS", 13)
    written = demo.write_demo(tmp_path / "w", points=3000, pattern=pattern, N=16, seed=7)
    assert written == tmp_path / "w.npz"  # .npz appended, as RawData.to_file does
    demo.make_demo(points=3000, pattern=pattern, N=16, seed=7).to_file(tmp_path / "m.npz")
    got, want = arrays(written), arrays(tmp_path / "m.npz")
    assert set(got) == set(want)
    for key in want:
        assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key]), key
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "w.npz"]


def test_memory_does_not_grow_with_the_number_of_points(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "CHUNK_POINTS", 256)
    peaks = {}
    for points in (2_000, 40_000):
        tracemalloc.start()
        try:
            demo.write_demo(tmp_path / f"d{points}.npz", points=points, N=16)
            peaks[points] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # 20x the points (and 20x the 20 MiB of patterns): the peak grows only by
    # the positions (a few arrays of 16 bytes per point) and the object's row width.
    assert (tmp_path / "d40000.npz").stat().st_size > 40 << 20
    assert peaks[40_000] - peaks[2_000] < 40_000 * 16 * 8, peaks
    assert peaks[40_000] < 12 << 20, peaks


def test_progress_bar_on_request(tmp_path, capsys):
    demo.write_demo(tmp_path / "p.npz", points=500, N=8, progress=True)
    err = capsys.readouterr().err
    assert "demo-data" in err and "500/500" in err
    demo.write_demo(tmp_path / "q.npz", points=500, N=8)
    assert capsys.readouterr().err == ""


def test_bad_points_are_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="points must be a positive integer, got 0"):
        demo.write_demo(tmp_path / "x.npz", points=0)
    assert os.listdir(tmp_path) == []
