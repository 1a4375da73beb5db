"""ptycho-group, run as a user runs it: a subprocess per command."""
import json
import subprocess
import sys

import numpy as np
import pytest

from ptycho.raw_data import RawData


def cli(*args, cwd, check=True):
    proc = subprocess.run([sys.executable, "-m", "ptycho_cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    out = cli("demo-data", "-o", "demo.npz", "--points", 1500, "--pattern", "spiral", cwd=d)
    assert "1500 spiral positions" in out.stdout
    return d


def test_demo_data_is_a_loadable_dataset(demo):
    rd = RawData.from_file(demo / "demo.npz")
    assert len(rd) == 1500 and rd.diff3d.shape == (1500, 32, 32)
    assert rd.diff3d.dtype == np.float32 and rd.diff3d.std() > 0
    assert rd.objectGuess is not None and np.iscomplexobj(rd.objectGuess)
    # Deterministic: the same command writes the same data.
    cli("demo-data", "-o", "again.npz", "--points", 1500, "--pattern", "spiral", cwd=demo)
    again = RawData.from_file(demo / "again.npz")
    assert np.array_equal(again.diff3d, rd.diff3d) and np.array_equal(again.xcoords, rd.xcoords)


def test_group_on_a_file_matches_the_library(demo):
    out = cli("group", "demo.npz", "-o", "groups.npz", "--gridsize", 2, "--groups", 64,
              "--neighbors", 6, "--seed", 3, cwd=demo)
    assert "64 x 4" in out.stdout and "distinct scan points" in out.stdout
    expected = RawData.from_file(demo / "demo.npz").generate_grouped_data(
        32, K=6, nsamples=64, gridsize=2, seed=3, dataset_path=str(demo / "demo.npz"))
    with np.load(demo / "groups.npz", allow_pickle=False) as npz:
        assert set(npz.files) == {k for k, v in expected.items() if v is not None}
        for key in npz.files:
            assert np.array_equal(npz[key], expected[key]), key


def test_group_on_the_builtin_demo(tmp_path):
    out = cli("group", "-o", "demo-groups.npz", "--points", 2000, cwd=tmp_path)
    assert "built-in demo (2000 points" in out.stdout
    with np.load(tmp_path / "demo-groups.npz", allow_pickle=False) as npz:
        assert npz["nn_indices"].shape == (512, 4)
        assert npz["X_full"].shape == (512, 32, 32, 4)
        assert npz["Y"].dtype == np.complex64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-groups.npz"]


def test_group_with_the_legacy_strategy_warns_and_writes_its_cache(demo):
    out = cli("group", "demo.npz", "-o", "legacy.npz", "--strategy", "legacy_group_then_sample",
              "--groups", 20, "--neighbors", 4, cwd=demo)
    assert "DeprecationWarning" in out.stderr and "sample_then_group" in out.stderr
    assert (demo / "demo.g2k4.groups_cache.npz").is_file()
    (demo / "demo.g2k4.groups_cache.npz").unlink()


def test_strategies_lists_both_builtins(tmp_path):
    out = cli("strategies", cwd=tmp_path).stdout.splitlines()
    rows = {line.split()[0]: line for line in out[1:]}
    assert "deprecated" in rows["legacy_group_then_sample"]
    assert "built-in" in rows["sample_then_group"] and "deprecated" not in rows["sample_then_group"]


def test_tiny_bench_reports_every_strategy(tmp_path):
    out = cli("bench", "--sizes", 1500, "--repeat", 1, "--e2e-N", 8, "--json", "b.json",
              "-q", cwd=tmp_path)
    report = json.loads((tmp_path / "b.json").read_text())
    modes = {(r["strategy"], r["mode"], r["gridsize"]) for r in report["rows"]}
    for g in (1, 2):
        assert ("sample_then_group", "one-shot", g) in modes
        assert ("sample_then_group", "tree reused", g) in modes
        assert ("legacy_group_then_sample", "first run (uncached)", g) in modes
        assert ("legacy_group_then_sample", "cached", g) in modes
    row = next(r for r in report["rows"] if r["strategy"] == "sample_then_group"
               and r["gridsize"] == 2 and r["mode"] == "one-shot")
    first = next(r for r in report["rows"] if r["strategy"] == "legacy_group_then_sample"
                 and r["gridsize"] == 2 and r["mode"].startswith("first"))
    assert row["speedup_vs_legacy_first"] == pytest.approx(first["time_s"] / row["time_s"])
    assert report["coverage"][0]["cv_default"] >= 0 and report["end_to_end"][0]["N"] == 8
    assert "vs legacy 1st" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]  # no caches left behind


def test_plot_writes_a_non_blank_png(demo):
    pytest.importorskip("matplotlib")
    import matplotlib.image as mpimg
    cli("plot", "demo.npz", "-o", "groups.png", "--show", 20, cwd=demo)
    image = mpimg.imread(demo / "groups.png")
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert image[..., :3].std() > 0.01


def test_plot_without_matplotlib_is_a_one_line_error(demo, monkeypatch):
    if _has_matplotlib():
        code = ("import sys; sys.modules['matplotlib'] = None; from ptycho_cli import main; "
                f"sys.exit(main(['plot', {str(demo / 'demo.npz')!r}, '-o', 'x.png']))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=demo, capture_output=True, text=True)
    else:
        proc = cli("plot", "demo.npz", "-o", "x.png", cwd=demo, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("ptycho-group: error: plotting needs matplotlib: "
                                   "pip install 'ptycho-grouping[plot]'")


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.mark.parametrize("args, message", [
    (["group", "missing.npz", "-o", "x.npz"], "input file not found: missing.npz"),
    (["group", "-o", "no/such/dir/x.npz"], "output directory does not exist"),
    (["group", "demo.npz", "-o", "x.npz", "--neighbors", "3"], "neighbors (K=3) must be at least 4"),
    (["group", "demo.npz", "-o", "x.npz", "--strategy", "nope"], "unknown grouping_strategy 'nope'"),
    (["group", "demo.npz", "-o", "x.npz", "--groups", "2000"], "enable_oversampling=True"),
    (["group", "demo.npz", "-o", "x.npz", "--pool-size", "9"], "--pool-size only applies with --oversample"),
    (["group", "not_npz.txt", "-o", "x.npz"], "not a readable NPZ file"),
])
def test_bad_input_is_one_line_and_exit_2(demo, args, message):
    (demo / "not_npz.txt").write_text("hello")
    proc = cli(*args, cwd=demo, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
    assert not (demo / "x.npz").exists()


@pytest.mark.parametrize("args", [["group", "-o", "x.npz", "--groups", "0"],
                                  ["group", "-o", "x.npz", "--gridsize", "two"],
                                  ["frobnicate"], ["group"]])
def test_bad_flags_exit_2(tmp_path, args):
    proc = cli(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "--help" in lines[0]


def test_debug_shows_the_traceback(demo):
    proc = cli("--debug", "group", "missing.npz", "-o", "x.npz", cwd=demo, check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_help_on_every_subcommand(tmp_path):
    for sub in ("group", "demo-data", "strategies", "bench", "plot"):
        out = cli(sub, "--help", cwd=tmp_path)
        assert "usage: ptycho-group " + sub in out.stdout


def test_group_streams_hdf5_from_a_memory_mapped_input(demo):
    h5py = pytest.importorskip("h5py")
    cli("group", "demo.npz", "-o", "g.h5", "--out-format", "hdf5", "--mmap", "--chunk-groups", 50,
        "--groups", 120, "--seed", 2, cwd=demo)
    expected = RawData.from_file(demo / "demo.npz").generate_grouped_data(
        32, K=7, nsamples=120, gridsize=2, seed=2)
    with h5py.File(demo / "g.h5", "r") as f:
        assert np.array_equal(f["X_full"][()], expected["X_full"])
        assert np.array_equal(f["nn_indices"][()], expected["nn_indices"])
