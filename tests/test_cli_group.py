"""group, plot, info and bench as a new user meets them: defaults, messages, checks, summary."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ptycho_data.raw_data import RawData
from ptycho_cli.demo import make_demo


def summary_field(stdout: str, name: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith(name))
    return line[len(name):].strip()


@pytest.fixture(scope="module")
def data(demo_dir):
    return demo_dir("group", 300, seed=2, file="small.npz")


def test_gridsize_3_works_with_the_default_k(data, cli):
    proc = cli("group", "small.npz", "-o", "g3.npz", "--gridsize", 3, "--groups", 40, cwd=data)
    assert "ptycho-group: note: --neighbors defaults to 9 for gridsize 3" in proc.stderr
    assert summary_field(proc.stdout, "groups") == ("40 x 9 (gridsize 3, K 9, strategy "
                                                    "sample_then_group, seed 0)")
    expected = RawData.from_file(data / "small.npz").group_indices(32, K=9, nsamples=40,
                                                                   gridsize=3, seed=0)
    with np.load(data / "g3.npz") as npz:
        assert np.array_equal(npz["nn_indices"], expected)


def test_peak_memory_is_the_commands_own_not_its_starters(tmp_path):
    # A command started from a large process (a notebook's `!ptycho-group`): getrusage's
    # ru_maxrss keeps the starter's peak across fork and exec, so the summary showed 1.5 GiB
    # for a run that used a tenth of it. A real process: exec is what is tested.
    starter = (
        "import subprocess, sys\n"
        "import numpy as np\n"
        "held = np.ones(3 * 2**30 // 16)  # 1.5 GiB, touched\n"
        "run = subprocess.run([sys.executable, '-m', 'ptycho_cli', 'group', '-o', 'g.npz',\n"
        "                      '--points', '2000', '--probe-diameter', '2'],\n"
        "                     capture_output=True, text=True, check=True)\n"
        "print(run.stdout)\n")
    out = subprocess.run([sys.executable, "-c", starter], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    peak_mib = float(summary_field(out, "peak RSS").split()[0])
    assert 20 < peak_mib < 768


def test_peak_memory_without_proc_falls_back_to_getrusage(monkeypatch):
    import resource
    from ptycho_cli import memory
    hwm_mib = memory.peak_rss_mib()
    monkeypatch.setattr(memory, "status_kib", lambda *fields: {})  # no /proc
    fallback = memory.peak_rss_mib()
    # ru_maxrss (KiB here) is at least this process's own peak, VmHWM.
    assert fallback == resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 >= hwm_mib > 10


def test_default_groups_are_capped_at_the_points_with_a_note(data, cli):
    proc = cli("group", "small.npz", "-o", "cap.npz", cwd=data)
    assert "ptycho-group: note: --groups defaults to 512, capped at the 300 scan points" \
        in proc.stderr
    assert summary_field(proc.stdout, "groups").startswith("300 x 4 (gridsize 2, K 7,")
    with np.load(data / "cap.npz") as npz:
        assert npz["nn_indices"].shape == (300, 4)
    # Given explicitly, --groups is not capped: the user hears about --oversample.
    proc = cli("group", "small.npz", "-o", "cap.npz", "--groups", 512, cwd=data, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "ptycho-group: error: small.npz: --groups 512 is larger than the number of scan points "
        "(300); add --oversample to draw several groups per seed point")


def test_capacity_error_speaks_in_flags(data, cli):
    proc = cli("group", "small.npz", "-o", "x.npz", "--groups", 100_000, "--oversample",
               "--pool-size", 5, cwd=data, check=False)
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert line.startswith("ptycho-group: error: small.npz: cannot draw --groups 100000 "
                           "distinct groups of --gridsize 2 (C=4) from 300 scan points")
    assert line.endswith("or raise --pool-size")
    for python_name in ("n_groups", "nsamples", "neighbor_pool_size", "enable_oversampling",
                        "group_size", "K="):
        assert python_name not in line
    assert not (data / "x.npz").exists()


def test_clamped_k_is_reported_as_used(data, cli):
    proc = cli("group", "small.npz", "-o", "k.npz", "--neighbors", 1_000_000_000, "--groups", 20,
               cwd=data)
    assert ("ptycho-group: UserWarning: --neighbors 1000000000 exceeds the 299 other scan "
            "points; using 299") in proc.stderr
    assert "K 299 (--neighbors 1000000000 clamped to the 299 other scan points)" in proc.stdout
    assert "K 1000000000," not in proc.stdout


def test_gridsize_1_says_k_is_unused(data, cli):
    proc = cli("group", "small.npz", "-o", "g1.npz", "--gridsize", 1, "--groups", 30, cwd=data)
    assert summary_field(proc.stdout, "groups") == (
        "30 x 1 (gridsize 1, K 7 (unused: a group is its seed alone), strategy "
        "sample_then_group, seed 0)")


def test_zero_spread_groups_are_warned_about(tmp_path, cli):
    n = 50
    diff3d = np.random.default_rng(0).random((n, 8, 8), dtype=np.float32)
    RawData.from_coords_without_pc(np.full(n, 5.0), np.full(n, 5.0), diff3d,
                                   np.ones((8, 8), np.complex64),
                                   np.zeros(n, np.int64)).to_file(tmp_path / "one_spot.npz")
    proc = cli("group", "one_spot.npz", "-o", "flat.npz", "--groups", 20, cwd=tmp_path)
    assert ("ptycho-group: warning: 20 of 20 groups have zero spread: all their members sit at "
            "one scan position (one_spot.npz has coincident positions)") in proc.stderr
    assert (tmp_path / "flat.npz").is_file()
    # Spread-out positions: no such warning.
    ok = cli("group", "-o", "demo.npz", "--points", 200, "--groups", 20, cwd=tmp_path)
    assert "zero spread" not in ok.stderr


def test_a_directory_as_input_is_named_as_such(tmp_path, cli):
    (tmp_path / "scans").mkdir()
    proc = cli("group", "scans", "-o", "x.npz", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("ptycho-group: error: INPUT scans is a directory, not an NPZ "
                                 "file or a Zarr store")


def test_compressed_input_is_loaded_and_gives_the_same_groups(data, cli):
    raw = RawData.from_file(data / "small.npz")
    np.savez_compressed(data / "packed.npz", xcoords=raw.xcoords, ycoords=raw.ycoords,
                        diff3d=raw.diff3d)
    packed = cli("group", "packed.npz", "-o", "p.npz", "--groups", 50, cwd=data)
    plain = cli("group", "small.npz", "-o", "q.npz", "--groups", 50, cwd=data)
    assert "32x32 float32 patterns)" in packed.stdout  # loaded, not memory-mapped
    assert "32x32 float32 patterns, memory-mapped)" in plain.stdout
    with np.load(data / "p.npz") as a, np.load(data / "q.npz") as b:
        for key in ("nn_indices", "diffraction", "X_full"):
            assert np.array_equal(a[key], b[key]), key


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory ``ro`` in ``tmp_path`` that the command cannot write into.

    Root writes into any mode, so as root the directory is made immutable
    (``chattr +i``; it then fails with "Operation not permitted").
    """
    ro = tmp_path / "ro"
    ro.mkdir()
    make_demo(points=100, seed=0).to_file(tmp_path / "in.npz")
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(ro)]).returncode:
            pytest.skip("running as root without chattr: no directory is read-only to root")
        yield tmp_path
        subprocess.run(["chattr", "-i", str(ro)], check=True)
    else:
        ro.chmod(0o555)
        yield tmp_path
        ro.chmod(0o755)


def test_unwritable_output_directory_is_named_before_any_work(read_only_dir, cli):
    proc = cli("group", "in.npz", "-o", "ro/out.npz", cwd=read_only_dir, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "ptycho-group: error: cannot write -o ro/out.npz: directory ro is not writable (")
    assert lines[0].endswith(("(Permission denied)", "(Operation not permitted)"))
    assert ".out.npz" not in lines[0]  # never the writer's hidden temporary name
    assert proc.stdout == "" and os.listdir(read_only_dir / "ro") == []


def test_bench_json_is_checked_before_the_benchmark(read_only_dir, cli, monkeypatch):
    from ptycho_cli.commands import bench

    started = []
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: started.append(a) or {})
    proc = cli("bench", "--sizes", 100_000, "--json", "ro/b.json", cwd=read_only_dir,
               check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("ptycho-group: error: cannot write --json ro/b.json: "
                                  "directory ro is not writable (")
    assert started == []  # refused before the benchmark began, not after it


def test_bench_prints_a_legend_of_its_columns(tmp_path, cli, monkeypatch):
    from ptycho_cli import bench
    from ptycho_cli.bench import TABLE_LEGEND, format_report

    # The table's layout is tested here; the peak-memory runs (a fresh interpreter
    # per row) are tested by test_cli.py::test_tiny_bench_reports_every_strategy.
    monkeypatch.setattr(bench, "peak_memory_mib", lambda case: 1.0)
    out = cli("bench", "--sizes", 1200, 2400, "--legacy-limit", 1200, "--repeat", 1,
              "--e2e-N", 8, cwd=tmp_path).stdout
    header = next(line for line in out.splitlines() if "vs legacy 1st" in line)
    for column in ("points", "mode", "peak MiB", "vs legacy 1st", "vs cached", "mem vs 1st"):
        assert column in header
        assert any(line.strip().startswith(column + " ") for line in TABLE_LEGEND), column
    assert "\n".join(TABLE_LEGEND) in out
    assert format_report  # the legend is printed by the report, under the table
    assert out.index("columns:") > out.index(header)
    # Beyond --legacy-limit the legacy rows are the largest measured size's, scaled and starred.
    rows = {(r.split()[0], r.split()[1], r.split()[3]): r for r in out.splitlines()
            if "legacy_group_then_sample" in r}
    for g in ("1", "2"):
        for mode in ("first", "cached"):
            assert "*" not in rows[("1200", g, mode)]  # the time of a measured row: no star
            assert "s* " in rows[("2400", g, mode)]
    assert "* extrapolated linearly from the largest size the legacy strategy ran at" in out


def test_plot_has_a_legend_a_count_title_and_groups_shown(data, cli, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    seen = {}
    real = Figure.savefig

    def spy(self, *args, **kwargs):
        ax = self.axes[0]
        seen["title"] = ax.get_title()
        seen["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    proc = cli("plot", data / "small.npz", "-o", data / "p.png", "--groups-shown", 12,
               "--groups", 100, cwd=data)
    assert seen["title"].endswith("\n12 of 100 groups drawn")
    assert seen["title"].startswith(f"{data / 'small.npz'}: sample_then_group, gridsize 2, K 7")
    legend = seen["legend"]
    assert legend[:3] == ["seed of a drawn group", "members (joined to their seed)",
                          "scan positions in some group"]
    used = np.unique(RawData.from_file(data / "small.npz").group_indices(
        32, K=7, nsamples=100, gridsize=2, seed=0))
    assert legend[3] == f"scan positions in no group ({300 - len(used)})"
    assert "wrote " in proc.stdout and "12 of 100 groups drawn" in proc.stdout


def test_info_describes_the_file_and_its_command_works(data, cli):
    raw = RawData.from_file(data / "small.npz")
    out = cli("info", "small.npz", cwd=data).stdout
    rows = {line.split("  ", 1)[0].strip(): line.split("  ", 1)[1].strip()
            for line in out.splitlines()}
    assert rows["positions"] == "300"
    assert rows["patterns"] == "300 x 32 x 32 float32, memory-mapped (read lazily)"
    x, y = raw.xcoords, raw.ycoords
    assert rows["extent"].startswith(f"x {x.min():.6g} .. {x.max():.6g}, y {y.min():.6g} ..")
    # Typical spacing against a brute-force nearest-neighbour distance.
    xy = np.column_stack([x, y])
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert rows["spacing"].startswith(f"{np.median(d.min(axis=1)):.6g} ")
    assert rows["probe"] == "32 x 32 complex64"
    assert rows["object"].endswith("complex64") and rows["Y"] == "absent"
    assert rows["metadata"] == "none"
    command = rows["group it"]
    assert command == "ptycho-group group small.npz -o small-groups.npz --gridsize 2 --groups 300"
    cli(*command.split()[1:], cwd=data)  # the suggested command runs as printed
    assert (data / "small-groups.npz").is_file()


def test_info_on_a_compressed_file_with_metadata(tmp_path, cli):
    raw = make_demo(points=60, seed=0)
    # PtychoPINN's tools store the JSON text as a pickled 0-d object array.
    np.savez_compressed(tmp_path / "meta.npz", xcoords=raw.xcoords, ycoords=raw.ycoords,
                        diff3d=raw.diff3d,
                        _metadata=np.array('{"energy_keV": 8.0}', dtype=object))
    rows = dict(line.split(None, 1) for line in cli("info", "meta.npz", cwd=tmp_path)
                .stdout.splitlines() if not line.startswith("group it"))
    assert rows["patterns"] == "60 x 32 x 32 float32, loaded"
    assert rows["metadata"] == '{"energy_keV": 8.0}'
    assert rows["probe"] == "absent"


def test_cover_scan_defaults_to_the_groups_that_use_every_position(data, cli):
    from ptycho_grouping import GroupingRequest
    from ptycho_grouping.cover import min_groups_for_cover

    raw = RawData.from_file(data / "small.npz")
    need = min_groups_for_cover(np.column_stack([raw.xcoords, raw.ycoords]),
                                GroupingRequest(n_groups=1, group_size=9, neighbors=9, rng=0))
    assert 300 / 9 <= need < 300  # not the default strategy's 512-capped-at-300
    proc = cli("group", "small.npz", "-o", "cover.npz", "--strategy", "cover_scan",
               "--gridsize", 3, cwd=data)
    assert (f"ptycho-group: note: --groups defaults to {need} for strategy cover_scan: the "
            "groups that use every scan position") in proc.stderr
    assert "capped at the 300" not in proc.stderr
    assert summary_field(proc.stdout, "groups").startswith(f"{need} x 9 (gridsize 3, K 9,")
    with np.load(data / "cover.npz") as npz:
        assert npz["nn_indices"].shape == (need, 9)
        assert np.array_equal(np.unique(npz["nn_indices"]), np.arange(300))
    # Given explicitly, --groups is the user's; the default strategy suggests nothing.
    proc = cli("group", "small.npz", "-o", "cover.npz", "--strategy", "cover_scan",
               "--groups", 10, cwd=data)
    assert "--groups defaults" not in proc.stderr
    proc = cli("group", "small.npz", "-o", "cover.npz", cwd=data)
    assert "for strategy" not in proc.stderr
