"""ptycho-group as a user runs it: in-process through ``main(argv)`` (the ``cli`` fixture),
and in a real process where the process itself is tested (``real_process``)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from ptycho_data.raw_data import RawData


@pytest.fixture(scope="module")
def demo(demo_dir):
    return demo_dir("cli", 1500, pattern="spiral")


def test_demo_data_is_a_loadable_dataset(demo, cli):
    # The command writes the arrays of the library's demo (the fixture's file).
    out = cli("demo-data", "-o", "again.npz", "--points", 1500, "--pattern", "spiral", cwd=demo)
    assert "1500 spiral positions" in out.stdout
    rd = RawData.from_file(demo / "again.npz")
    assert len(rd) == 1500 and rd.diff3d.shape == (1500, 32, 32)
    assert rd.diff3d.dtype == np.float32 and rd.diff3d.std() > 0
    assert rd.objectGuess is not None and np.iscomplexobj(rd.objectGuess)
    # Deterministic: the same command writes the same data.
    cli("demo-data", "-o", "again2.npz", "--points", 1500, "--pattern", "spiral", cwd=demo)
    again = RawData.from_file(demo / "again2.npz")
    assert np.array_equal(again.diff3d, rd.diff3d) and np.array_equal(again.xcoords, rd.xcoords)
    with np.load(demo / "demo.npz") as made, np.load(demo / "again.npz") as written:
        assert sorted(made.files) == sorted(written.files)
        assert all(np.array_equal(made[k], written[k]) for k in made.files)
    (demo / "again.npz").unlink()
    (demo / "again2.npz").unlink()


def test_group_on_a_file_matches_the_library(demo, cli):
    out = cli("group", "demo.npz", "-o", "groups.npz", "--gridsize", 2, "--groups", 64,
              "--neighbors", 6, "--seed", 3, cwd=demo)
    assert "64 x 4" in out.stdout and "distinct scan points" in out.stdout
    expected = RawData.from_file(demo / "demo.npz").generate_grouped_data(
        32, K=6, nsamples=64, gridsize=2, seed=3, dataset_path=str(demo / "demo.npz"))
    with np.load(demo / "groups.npz", allow_pickle=False) as npz:
        record = json.loads(str(npz["provenance"]))
        metrics = json.loads(str(npz["grouping_metrics"]))
        # The records say how the file was made and what the groups use.
        assert record["groups"] == [64, 4] and record["N"] == 32
        assert (record["grouping"]["seed"], record["grouping"]["K"]) == (3, 6)
        assert record["grouping"]["grouping_strategy"] == "sample_then_group"
        assert metrics["n_groups"] == 64
        assert metrics["n_used"] == np.unique(expected["nn_indices"]).size
        records = {"provenance", "grouping_metrics"}
        assert set(npz.files) - records == {k for k, v in expected.items() if v is not None}
        for key in set(npz.files) - records:
            assert np.array_equal(npz[key], expected[key]), key
            assert npz[key].dtype == expected[key].dtype, key


def test_group_on_the_builtin_demo(tmp_path, cli):
    from ptycho_cli.demo import make_demo

    out = cli("group", "-o", "demo-groups.npz", "--points", 2000, cwd=tmp_path)
    assert "built-in demo (2000 points" in out.stdout
    expected = make_demo(points=2000, seed=0).generate_grouped_data(32, K=7, nsamples=512,
                                                                     gridsize=2, seed=0)
    with np.load(tmp_path / "demo-groups.npz", allow_pickle=False) as npz:
        assert npz["nn_indices"].shape == (512, 4) and npz["X_full"].shape == (512, 32, 32, 4)
        for key in ("nn_indices", "X_full", "Y", "coords_offsets"):
            assert np.array_equal(npz[key], expected[key]) and npz[key].dtype == expected[key].dtype
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-groups.npz"]


def test_group_with_the_legacy_strategy_warns_and_writes_its_cache(demo, cli):
    out = cli("group", "demo.npz", "-o", "legacy.npz", "--strategy", "legacy_group_then_sample",
              "--groups", 20, "--neighbors", 4, cwd=demo)
    assert "DeprecationWarning" in out.stderr and "sample_then_group" in out.stderr
    assert (demo / "demo.g2k4.groups_cache.npz").is_file()
    (demo / "demo.g2k4.groups_cache.npz").unlink()


def test_strategies_lists_both_builtins(tmp_path, cli):
    out = cli("strategies", cwd=tmp_path).stdout.splitlines()
    rows = {line.split()[0]: line for line in out[1:]}
    assert "deprecated" in rows["legacy_group_then_sample"]
    assert "built-in" in rows["sample_then_group"] and "deprecated" not in rows["sample_then_group"]


@pytest.mark.xdist_group("tiny_bench")  # one worker runs the shared session fixture
def test_tiny_bench_reports_every_strategy(tiny_bench):
    report, stdout, left = tiny_bench  # bench --sizes 1500 --e2e-N 8 --io ... (conftest.py)
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
    assert "vs legacy 1st" in stdout
    # Coincident positions (the figure tests/test_neighbors.py no longer times).
    engine = report["engine"][0]
    assert engine["coincident_s"] > 0 and engine["coincident_oversampling_s"] > 0
    assert engine["coincident_over_one_shot"] == pytest.approx(
        engine["coincident_s"] / engine["one_shot_s"])
    assert engine["coincident_oversampling_over_spread"] == pytest.approx(
        engine["coincident_oversampling_s"] / engine["oversampling_s"])
    assert (f"M=1500, all positions coincident: 512 groups {engine['coincident_s'] * 1e3:.2f} ms"
            in stdout)
    io = {r["row"]: r for r in report["io"]["rows"]}
    assert set(io) == {"warm", "cold", "warm + Y"} and report["io"]["groups"] == 300
    assert "grouped output vs plain copy: 300 groups of 4 from 2000 patterns" in stdout
    # no caches, stores or copies left behind
    assert left == ["b.json"]


def test_plot_writes_a_non_blank_png(demo, cli):
    pytest.importorskip("matplotlib")
    import matplotlib.image as mpimg
    cli("plot", "demo.npz", "-o", "groups.png", "--show", 20, cwd=demo)
    image = mpimg.imread(demo / "groups.png")
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert image[..., :3].std() > 0.01


def test_plot_without_matplotlib_is_a_one_line_error(demo, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    proc = cli("plot", "demo.npz", "-o", "x.png", cwd=demo, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("ptycho-group: error: plotting needs matplotlib: "
                                   "pip install 'ptycho-grouping[plot]'")
    assert not (demo / "x.png").exists()


@pytest.mark.parametrize("args, message", [
    (["group", "missing.npz", "-o", "x.npz"], "input file not found: missing.npz"),
    (["group", "-o", "no/such/dir/x.npz"], "output directory does not exist"),
    (["group", "demo.npz", "-o", "x.npz", "--neighbors", "3"],
     "demo.npz: --neighbors 3 must be at least 4 for --gridsize 2 (C=4)"),
    (["group", "demo.npz", "-o", "x.npz", "--strategy", "nope"], "unknown --strategy 'nope'"),
    (["group", "demo.npz", "-o", "x.npz", "--groups", "2000"],
     "demo.npz: --groups 2000 is larger than the number of scan points (1500); add --oversample"),
    (["group", "demo.npz", "-o", "x.npz", "--pool-size", "9"], "--pool-size only applies with --oversample"),
    (["group", "not_npz.txt", "-o", "x.npz"], "not_npz.txt is not an NPZ (zip) archive"),
])
def test_bad_input_is_one_line_and_exit_2(demo, args, message, cli):
    (demo / "not_npz.txt").write_text("hello")
    proc = cli(*args, cwd=demo, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
    assert not (demo / "x.npz").exists()


@pytest.mark.parametrize("args", [["group", "-o", "x.npz", "--groups", "0"],
                                  ["group", "-o", "x.npz", "--gridsize", "two"],
                                  ["frobnicate"], ["group"]])
def test_bad_flags_exit_2(tmp_path, args, cli):
    proc = cli(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "--help" in lines[0]


def test_debug_shows_the_traceback(demo, cli):
    proc = cli("--debug", "group", "missing.npz", "-o", "x.npz", cwd=demo, check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_help_on_every_subcommand(tmp_path, cli):
    for sub in ("group", "demo-data", "strategies", "bench", "plot"):
        out = cli(sub, "--help", cwd=tmp_path)
        assert "usage: ptycho-group " + sub in out.stdout


def test_group_streams_hdf5_from_a_memory_mapped_input(demo, cli):
    h5py = pytest.importorskip("h5py")
    cli("group", "demo.npz", "-o", "g.h5", "--out-format", "hdf5", "--mmap", "--chunk-groups", 50,
        "--groups", 120, "--seed", 2, cwd=demo)
    expected = RawData.from_file(demo / "demo.npz").generate_grouped_data(
        32, K=7, nsamples=120, gridsize=2, seed=2)
    with h5py.File(demo / "g.h5", "r") as f:
        assert np.array_equal(f["X_full"][()], expected["X_full"])
        assert np.array_equal(f["nn_indices"][()], expected["nn_indices"])


@pytest.mark.real_process
def test_python_m_ptycho_grouping_is_not_a_command(tmp_path, cli):
    # The engine never imports the command, not even from a __main__ module;
    # the command is 'ptycho-group' or 'python -m ptycho_cli'.
    proc = subprocess.run([sys.executable, "-m", "ptycho_grouping", "strategies"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "cannot be directly executed" in proc.stderr
    assert "legacy_group_then_sample" in cli("strategies", cwd=tmp_path).stdout


@pytest.mark.parametrize("flags", [["-q"], ["-v"], ["--debug"], ["-q", "--debug"]])
@pytest.mark.parametrize("where", ["before", "after"])
def test_shared_options_on_clean_cache(demo, flags, where, cli):
    cli("group", "demo.npz", "-o", "legacy-for-cache.npz", "--strategy",
        "legacy_group_then_sample", "--groups", 20, "--neighbors", 4, "-q", cwd=demo)
    cache = demo / "demo.g2k4.groups_cache.npz"
    assert cache.is_file()
    plain = cli("clean-cache", "--dry-run", ".", cwd=demo)
    args = [*flags, "clean-cache", "--dry-run", "."] if where == "before" else \
        ["clean-cache", "--dry-run", ".", *flags]
    proc = cli(*args, cwd=demo)
    # A dry run's list is the answer asked for: printed under -q too.
    assert proc.stdout == plain.stdout
    assert f"would remove {cache.name} (" in proc.stdout.replace("./", "")
    assert "would remove 1 file(s), freeing" in proc.stdout
    assert "Traceback" not in proc.stderr and cache.is_file()
    if "-q" in flags and where == "after":
        # Removal under -q: errors only, the cache gone.
        removed = cli("clean-cache", "--yes", ".", *flags, cwd=demo)
        assert removed.stdout == "" and not cache.exists()
    else:
        cache.unlink()
    (demo / "legacy-for-cache.npz").unlink()


def test_output_may_not_be_the_input(demo, cli):
    before = (demo / "demo.npz").read_bytes()
    proc = cli("group", "./demo.npz", "-o", "demo.npz", cwd=demo, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("ptycho-group: error: output demo.npz is the input file: "
                                   "writing it would replace the dataset")
    assert (demo / "demo.npz").read_bytes() == before


def test_output_may_not_be_a_directory(demo, tmp_path, cli):
    proc = cli("group", "demo.npz", "-o", tmp_path, cwd=demo, check=False)
    assert proc.returncode == 2 and f"output path is a directory: {tmp_path}" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_points_applies_to_the_demo_only(demo, cli):
    proc = cli("group", "demo.npz", "-o", "x.npz", "--points", 50, cwd=demo, check=False)
    assert proc.returncode == 2
    assert "--points applies to the built-in demo only" in proc.stderr
    assert not (demo / "x.npz").exists()


def test_bench_checks_the_json_path_before_running(tmp_path, cli):
    proc = cli("bench", "--sizes", 1500, "--json", "missing/b.json", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "ptycho-group: error: output directory does not exist: missing"


def test_library_warnings_are_one_line(demo, cli):
    proc = cli("group", "demo.npz", "-o", "legacy1.npz", "--strategy", "legacy_group_then_sample",
               "--groups", 20, "--neighbors", 4, "-q", "--gridsize", 1, cwd=demo)
    assert proc.stderr == ""  # -q: errors only
    proc = cli("group", "demo.npz", "-o", "legacy1.npz", "--strategy", "legacy_group_then_sample",
               "--groups", 20, "--neighbors", 4, "--gridsize", 1, cwd=demo)
    warning_lines = [line for line in proc.stderr.splitlines() if "Warning" in line]
    assert len(warning_lines) == 2 and proc.stderr.count("is deprecated and will be removed") == 1
    assert warning_lines[0].startswith("ptycho-group: DeprecationWarning: --strategy "
                                       "'legacy_group_then_sample' is deprecated")
    # The old code ignored --groups at gridsize 1; the legacy strategy says so, in flags.
    assert warning_lines[1].startswith("ptycho-group: UserWarning: --groups 20 is ignored by "
                                       "the legacy strategy at --gridsize 1 (C=1)")
    assert "sys.exit" not in proc.stderr


@pytest.mark.real_process
def test_sigterm_mid_write_leaves_nothing_behind(demo, tmp_path):
    # The signal arrives while the second chunk is being written.
    code = f"""
import os, signal, sys
from ptycho_data import grouped_writer
calls = []
original = grouped_writer.NpzSink.write
def write(self, key, span, value):
    calls.append(key)
    if len(calls) == 20:
        os.kill(os.getpid(), signal.SIGTERM)
    return original(self, key, span, value)
grouped_writer.NpzSink.write = write
from ptycho_cli import main
sys.exit(main(["group", {str(demo / "demo.npz")!r}, "-o", "out.npz", "--chunk-groups", "16",
               "--groups", "200"]))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 128 + 15, proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.real_process
def test_out_of_core_bench_groups_under_a_memory_limit(tmp_path):
    from ptycho_cli.bench_out_of_core import format_out_of_core, run_out_of_core

    # A store this small proves nothing (allow_small): this tests the machinery, fast.
    report = run_out_of_core(store_mib=8, limit_mib=320, N=16, workdir=tmp_path, allow_small=True)
    assert report["ok"] and report["output_checked"], report
    assert report["output_checks"] == {"nn_indices": True, "diffraction": True, "X_full": True}
    assert report["frames"] == (8 << 20) // (16 * 16 * 4)
    assert report["groups"] == report["frames"] // 8
    assert report["output_mib"] > 0 and report["peak_rss_mib"] > 0
    # The grouping time is the child's own, without interpreter start-up.
    assert 0 < report["group_time_s"] < report["process_time_s"]
    text = format_out_of_core(report)
    assert "output matches the store (nn_indices, diffraction, X_full scale)" in text
    assert f"grouping {report['group_time_s']:.1f} s" in text
    assert list(tmp_path.iterdir()) == []  # the store and outputs are temporary


@pytest.mark.parametrize("break_key", ["nn_indices", "X_full", "diffraction"])
def test_out_of_core_output_check_catches_a_wrong_array(tmp_path, break_key):
    from ptycho_cli import bench_out_of_core as ooc
    from ptycho_grouping.npz_io import atomic_savez

    store, out = tmp_path / "store.npz", tmp_path / "out.npz"
    ooc.write_store(store, 200, 8)
    grouping = dict(K=6, nsamples=30, seed=0, gridsize=2)
    raw = RawData.from_file(store)
    grouped = {k: v for k, v in raw.generate_grouped_data(8, **grouping).items() if v is not None}
    atomic_savez(out, grouped)
    assert ooc._check_output(store, out, 8, 7, grouping) == {
        "nn_indices": True, "diffraction": True, "X_full": True}
    if break_key == "nn_indices":  # another draw: its rows match the store, the groups do not
        other = raw.generate_grouped_data(8, **dict(grouping, seed=1))
        grouped.update(nn_indices=other["nn_indices"], diffraction=other["diffraction"])
    elif break_key == "X_full":  # each row normalised alone, not with the scale of all groups
        nn = grouped["nn_indices"]
        grouped["X_full"] = np.concatenate([raw._grouped(nn[i:i + 1], 8)["X_full"]
                                            for i in range(len(nn))])
    else:
        grouped["diffraction"] = grouped["diffraction"][::-1]
    atomic_savez(out, grouped)
    checks = ooc._check_output(store, out, 8, 7, grouping)
    assert not checks[break_key] and not all(checks.values())


@pytest.mark.parametrize("store, limit", [(512, 384), (767, 384), (100, 257)])
def test_out_of_core_refuses_a_store_smaller_than_twice_the_limit(tmp_path, store, limit, cli):
    from ptycho_cli.bench_out_of_core import check_sizes, run_out_of_core

    with pytest.raises(ValueError, match=f"store_mib={store} and limit_mib={limit}"):
        run_out_of_core(store_mib=store, limit_mib=limit, workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    check_sizes(2 * limit, limit)  # the rule's edge is allowed
    # The CLI refuses before the (long) main benchmark runs.
    proc = cli("bench", "--sizes", 1500, "--out-of-core", "--store-mib", store, "--limit-mib",
               limit, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (f"ptycho-group: error: --store-mib must be at least 2x "
                                   f"--limit-mib for an out-of-core run, got --store-mib={store} "
                                   f"and --limit-mib={limit}")


@pytest.mark.slow
@pytest.mark.real_process
def test_the_in_memory_control_fails_where_the_command_streams(tmp_path):
    from ptycho_cli.bench_out_of_core import _run_limited, write_store

    write_store(tmp_path / "store.npz", 6400, 128)  # 400 MiB of patterns
    grouping = json.dumps(dict(K=7, nsamples=1600, seed=0, gridsize=2))
    control = _run_limited(300, [str(tmp_path / "store.npz"), "128", grouping], tmp_path,
                           mode="in-memory")
    assert control["rc"] == "MemoryError"
    streamed = _run_limited(300, ["group", "store.npz", "-o", "out.npz", "--groups", "1600",
                                  "--chunk-groups", "64"], tmp_path)
    assert streamed["rc"] == 0 and (tmp_path / "out.npz").stat().st_size > 800 << 20


@pytest.mark.slow
@pytest.mark.real_process
def test_the_memory_limit_binds(tmp_path):
    from ptycho_cli.bench_out_of_core import _run_limited

    # 400k demo positions of 32x32 float32 patterns need ~1.6 GB: far over 300 MiB.
    result = _run_limited(300, ["demo-data", "-o", "big.npz", "--points", "400000"], tmp_path)
    assert result["rc"] != 0
    assert not (tmp_path / "big.npz").exists()


def test_mmap_is_accepted_and_changes_nothing(demo, cli):
    # The command always memory-maps an uncompressed INPUT now; --mmap stays for old scripts.
    with_flag = cli("group", "demo.npz", "-o", "m1.npz", "--groups", 30, "--mmap", cwd=demo)
    without = cli("group", "demo.npz", "-o", "m2.npz", "--groups", 30, cwd=demo)
    for out in (with_flag, without):
        assert "32x32 float32 patterns, memory-mapped)" in out.stdout
    with np.load(demo / "m1.npz") as a, np.load(demo / "m2.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    help_text = " ".join(cli("group", "--help", cwd=demo).stdout.split())
    assert "no effect, kept for old scripts" in help_text
    (demo / "m1.npz").unlink()
    (demo / "m2.npz").unlink()


@pytest.mark.parametrize("fmt, name, warned", [
    ("hdf5", "y.npz", True), ("npz", "y.h5", True), ("npz", "y", True),
    ("hdf5", "y.h5", False), ("hdf5", "y.HDF5", False), ("npz", "y.npz", False),
])
def test_output_name_that_does_not_match_the_format_warns(demo, fmt, name, warned, cli):
    if fmt == "hdf5":
        pytest.importorskip("h5py")
    proc = cli("group", "demo.npz", "-o", name, "--out-format", fmt, "--groups", 10, cwd=demo)
    lines = [line for line in proc.stderr.splitlines() if "does not end in" in line]
    expected = ".npz" if fmt == "npz" else ".h5 or .hdf5"
    assert lines == ([f"ptycho-group: warning: --out-format {fmt} writes {fmt.upper()}, but {name} "
                      f"does not end in {expected}"] if warned else [])
    assert (demo / name).is_file()  # a warning, not an error: the file is written
    (demo / name).unlink()


def test_group_help_states_the_library_chunk_budget(tmp_path, cli):
    from ptycho_data import grouped_writer

    out = " ".join(cli("group", "--help", cwd=tmp_path).stdout.split())
    assert f"as many as hold {grouped_writer.DEFAULT_CHUNK_MIB} MiB of diffraction" in out


def test_group_default_chunks_by_bytes(demo, cli, monkeypatch):
    # Without --chunk-groups the CLI leaves the choice to write_grouped's byte budget.
    from ptycho_cli.commands import group

    real, seen = group.write_grouped, []

    def spy(*args, **kwargs):
        seen.append(kwargs["chunk_groups"])
        return real(*args, **kwargs)

    monkeypatch.setattr(group, "write_grouped", spy)
    for extra, expected in (([], None), (["--chunk-groups", "7"], 7)):
        seen.clear()
        cli("group", "demo.npz", "-o", "bytes.npz", "--groups", "20", *extra, cwd=demo)
        assert seen == [expected]
    (demo / "bytes.npz").unlink()


def test_main_returns_the_status_and_leaves_the_process_as_it_found_it(tmp_path, capsys):
    import logging
    import signal
    import warnings

    from ptycho_cli import main

    root = logging.getLogger()
    before = (root.handlers[:], root.level, warnings.showwarning,
              signal.getsignal(signal.SIGTERM))
    assert main(["-v", "strategies"]) == 0
    assert main(["--version"]) == 0 and main(["frobnicate"]) == 2  # argparse's exits, returned
    assert main(["group", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "x.npz")]) == 2
    after = (root.handlers[:], root.level, warnings.showwarning,
             signal.getsignal(signal.SIGTERM))
    assert after == before
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err and "input file not found" in err
