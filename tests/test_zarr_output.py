"""Zarr output of the streaming writer: the NPZ output's arrays, whole chunks, all or nothing."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from grouped_outputs import N, assert_same_arrays, npz_arrays, scan, zarr_arrays
from ptycho_cli import main
from ptycho_data import grouped_writer
from ptycho_data.atomic_directory import atomic_directory, remove_stale_directories
from ptycho_data.provenance import array_sha256, read_provenance
from ptycho_data.raw_data import RawData

zarr = pytest.importorskip("zarr")

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("zarr")
    assert main(["-q", "demo-data", "-o", str(d / "demo.npz"), "--points", "1500"]) == 0
    return d


def group(*argv):
    return main(["-q", "group", *map(str, argv)])


def test_zarr_output_equals_the_npz_output_array_for_array(demo, tmp_path):
    args = [demo / "demo.npz", "--groups", 300, "--seed", 5, "--gridsize", 2]
    assert group(*args, "-o", tmp_path / "g.npz") == 0
    assert group(*args, "-o", tmp_path / "g.zarr", "--chunk-groups", 32) == 0  # by its ending
    assert group(*args, "-o", tmp_path / "h", "--format", "zarr") == 0
    expected, npz_record = npz_arrays(tmp_path / "g.npz")
    assert {"diffraction", "X_full", "Y", "objectGuess", "coords_start_relative"} <= set(expected)
    for name in ("g.zarr", "h"):
        got, record = zarr_arrays(tmp_path / name)
        assert_same_arrays(got, expected)
        # The same record, but for the format named in the command.
        assert record["command"] == npz_record["command"].replace("--out-format npz", "--out-format zarr")
        assert {k: v for k, v in record.items() if k != "command"} == \
            {k: v for k, v in npz_record.items() if k != "command"}
    # Zarr chunks are whole writer chunks: 32 groups of the pattern arrays.
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="r")
    assert g["diffraction"].chunks[0] == 32 and g["X_full"].chunks[0] == 32
    assert g["coords_nn"].chunks[0] == 300  # whole pattern chunks, clamped to the 300 groups
    assert sorted(os.listdir(tmp_path)) == ["g.npz", "g.zarr", "h"]


def test_the_record_says_how_to_make_the_output_again(demo, tmp_path):
    assert group(demo / "demo.npz", "-o", tmp_path / "a.zarr", "--groups", 200, "--seed", 9,
                 "--neighbors", 8) == 0
    record = read_provenance(tmp_path / "a.zarr")
    assert record["grouping"] == {
        "K": 8, "dataset_path": str(demo / "demo.npz"), "enable_oversampling": False,
        "gridsize": 2, "grouping_strategy": "sample_then_group", "neighbor_pool_size": None,
        "nsamples": 200, "seed": 9, "sequential_sampling": False}
    raw = RawData.from_file(demo / "demo.npz")
    assert record["input"]["bytes"] == os.path.getsize(demo / "demo.npz")
    assert record["input"]["coordinates_sha256"] == array_sha256(
        raw.xcoords, raw.ycoords, raw.xcoords_start, raw.ycoords_start)
    nn = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")["nn_indices"][...]
    assert record["groups_sha256"] == array_sha256(nn) and record["groups"] == [200, 4]
    # Running the recorded command again gives the same groups.
    argv = record["command"].split()[1:]
    argv[argv.index("OUT")] = str(tmp_path / "again.npz")
    assert main(["-q", *argv]) == 0
    assert read_provenance(tmp_path / "again.npz")["groups_sha256"] == record["groups_sha256"]


@settings(max_examples=12, deadline=None)
@given(chunk=st.integers(1, 130), m=st.integers(20, 120), with_object=st.booleans())
def test_any_chunk_size_gives_the_in_memory_result(tmp_path_factory, chunk, m, with_object):
    tmp = tmp_path_factory.mktemp("chunks")
    rd = scan(m=m, obj=with_object, seed=m)
    kw = dict(K=6, nsamples=m // 2 + 1, gridsize=2, seed=chunk)
    expected = {k: v for k, v in rd.generate_grouped_data(N, **kw).items() if v is not None}
    grouped_writer.write_grouped(rd, tmp / "g.zarr", N, out_format="zarr", chunk_groups=chunk,
                                 **kw)
    got, record = zarr_arrays(tmp / "g.zarr")
    assert_same_arrays(got, expected)
    assert record["groups_sha256"] == array_sha256(expected["nn_indices"])
    rows = zarr.open_group(str(tmp / "g.zarr"), mode="r")["diffraction"].chunks[0]
    assert rows == min(chunk, kw["nsamples"])


def test_a_failed_write_leaves_the_previous_store_and_no_temporary(tmp_path, monkeypatch):
    rd = scan()
    kw = dict(K=6, nsamples=100, gridsize=2, seed=1)
    target = tmp_path / "g.zarr"
    grouped_writer.write_grouped(rd, target, N, out_format="zarr", **kw)
    before, _ = zarr_arrays(target)

    def broken(self, *args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(grouped_writer._Plan, "_x_full", broken)
    with pytest.raises(OSError, match="No space left"):
        grouped_writer.write_grouped(rd, target, N, out_format="zarr", **dict(kw, seed=2))
    assert os.listdir(tmp_path) == ["g.zarr"]
    assert_same_arrays(zarr_arrays(target)[0], before)
    monkeypatch.undo()
    # A success replaces it.
    grouped_writer.write_grouped(rd, target, N, out_format="zarr", **dict(kw, seed=2))
    assert os.listdir(tmp_path) == ["g.zarr"]
    assert not np.array_equal(zarr_arrays(target)[0]["nn_indices"], before["nn_indices"])


def test_a_directory_that_is_not_a_store_is_never_replaced(demo, tmp_path, capsys):
    mine = tmp_path / "results.zarr"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert group(demo / "demo.npz", "-o", mine, "--groups", 10) == 2
    assert "is a directory that is not a Zarr store" in capsys.readouterr().err
    with pytest.raises(FileExistsError):
        grouped_writer.write_grouped(scan(), mine, N, out_format="zarr", K=6, nsamples=5)
    assert os.listdir(mine) == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["results.zarr"]


KILLED = textwrap.dedent("""
    import os, signal, sys
    from ptycho_data.atomic_directory import atomic_directory
    with atomic_directory(sys.argv[1]) as tmp:
        (tmp / "chunk").write_bytes(b"half")
        print(tmp, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_the_leftovers_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "g.zarr"
    proc = subprocess.run([sys.executable, "-c", KILLED, str(target)], capture_output=True,
                          text=True)
    assert proc.returncode == -signal.SIGKILL
    left = sorted(os.listdir(tmp_path))
    assert len(left) == 2 and all(name.startswith(".g.zarr.") for name in left)  # dir + lock
    assert not target.exists()
    # A writer that is alive is never disturbed.
    with atomic_directory(target) as live:
        assert remove_stale_directories(target) == []
        assert live.exists()
        (live / "zarr.json").write_text("{}")
    assert sorted(os.listdir(tmp_path)) == ["g.zarr"]  # the killed one's leftovers are gone


def test_zarr_and_cxi_inputs_group_like_the_npz(demo, tmp_path):
    h5py = pytest.importorskip("h5py")
    raw = RawData.from_file(demo / "demo.npz")
    store = zarr.open_group(str(tmp_path / "in.zarr"), mode="w")
    for key in ("xcoords", "ycoords", "diff3d", "probeGuess", "objectGuess"):
        store[key] = np.asarray(getattr(raw, key))
    with h5py.File(tmp_path / "in.cxi", "w") as f:
        f["entry_1/data_1/data"] = raw.diff3d
        f["entry_1/sample_1/geometry_1/translation"] = np.stack(
            [raw.xcoords, raw.ycoords, np.zeros(len(raw))], axis=1)
        f["entry_1/instrument_1/source_1/probe"] = raw.probeGuess
        # Geometry making one object pixel one metre: positions keep their values.
        f["entry_1/instrument_1/source_1/energy"] = 6.62607015e-34 * 299792458.0
        f["entry_1/instrument_1/detector_1/distance"] = 32.0
        f["entry_1/instrument_1/detector_1/x_pixel_size"] = 1.0
    args = ["--groups", 100, "--seed", 2]
    assert group(demo / "demo.npz", "-o", tmp_path / "a.npz", *args) == 0
    assert group(tmp_path / "in.zarr", "-o", tmp_path / "b.npz", *args) == 0
    expected, _ = npz_arrays(tmp_path / "a.npz")
    assert_same_arrays(npz_arrays(tmp_path / "b.npz")[0], expected)
    # A CXI file's patterns stay in the file; the same frames are gathered.
    from ptycho_cli.inputs import open_dataset
    cxi, mapped = open_dataset(tmp_path / "in.cxi")
    assert mapped == ("diff3d",) and type(cxi.diff3d).__module__.startswith("h5py")
    cxi.close()
    assert group(tmp_path / "in.cxi", "-o", tmp_path / "c.zarr", *args) == 0
    got, record = zarr_arrays(tmp_path / "c.zarr")
    assert np.array_equal(got["diffraction"], raw.diff3d[got["nn_indices"]].transpose(0, 2, 3, 1))


def test_a_zarr_dataset_needs_the_npz_members_and_accepts_diffraction(tmp_path):
    from ptycho_data.zarr_input import open_zarr_dataset

    group = zarr.open_group(str(tmp_path / "scan.zarr"), mode="w")
    group["xcoords"] = np.arange(5.0)
    with pytest.raises(ValueError, match=r"scan.zarr lacks required key\(s\) ycoords, diff3d "
                                         r"\(found: xcoords\)"):
        open_zarr_dataset(tmp_path / "scan.zarr")
    group["ycoords"] = np.zeros(5)
    group["diffraction"] = np.ones((5, 4, 4), np.float32)
    raw = open_zarr_dataset(tmp_path / "scan.zarr")
    assert raw.diff3d.shape == (5, 4, 4) and not isinstance(raw.diff3d, np.ndarray)  # lazy
