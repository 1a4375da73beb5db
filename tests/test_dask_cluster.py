"""group --dask: the workers' Zarr store equals the single-process NPZ output, whatever the cluster."""
import os
import signal

import numpy as np
import pytest

from grouped_outputs import assert_same_arrays, npz_arrays, zarr_arrays
from ptycho_cli import main
from ptycho_data.grouped_writer import streamed_scale
from ptycho_data.pattern_store import gather_frames
from ptycho_data.raw_data import RawData

pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")
from distributed import Client, LocalCluster, WorkerPlugin  # noqa: E402

ARGS = ["--groups", 400, "--seed", 7, "--gridsize", 2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("dask")
    assert main(["-q", "demo-data", "-o", str(d / "demo.npz"), "--points", "2000"]) == 0
    assert main(["-q", "group", str(d / "demo.npz"), "-o", str(d / "expected.npz"), *map(str, ARGS)]) == 0
    return d


def group(*argv):
    return main(["-q", "group", *map(str, argv)])


def same_as_npz(demo, store):
    expected, npz_record = npz_arrays(demo / "expected.npz")
    got, record = zarr_arrays(store)
    assert_same_arrays(got, expected)
    assert record["groups_sha256"] == npz_record["groups_sha256"]
    assert record["input"] == npz_record["input"]


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("chunk", [37, 256])
def test_any_number_of_workers_and_chunk_size_gives_the_npz_output(demo, tmp_path, workers,
                                                                   chunk):
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster:
        out = tmp_path / "g.zarr"
        assert group(demo / "demo.npz", "-o", out, *ARGS, "--dask", cluster.scheduler_address,
                     "--chunk-groups", chunk) == 0
    same_as_npz(demo, out)
    import zarr
    assert zarr.open_group(str(out), mode="r")["X_full"].chunks[0] == chunk
    assert os.listdir(tmp_path) == ["g.zarr"]


def test_local_cluster_of_worker_processes_and_its_summary(demo, tmp_path, capsys):
    out = tmp_path / "g.zarr"
    assert main(["group", str(demo / "demo.npz"), "-o", str(out), *map(str, ARGS),
                 "--dask", "local:2", "--dask-memory-limit", "400MiB", "--no-progress"]) == 0
    same_as_npz(demo, out)
    text = capsys.readouterr().out
    assert "cluster     local:2 (2 workers, 400 MiB limit each)" in text
    peaks = text.split("worker peak ")[1].split(" MiB")[0].split(" / ")
    assert len(peaks) == 2 and all(0 < float(p) < 400 for p in peaks)


def test_an_in_memory_input_travels_by_path_too(tmp_path):
    # The built-in demo is made in memory; the workers read it from a spilled .npy.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster:
        assert group("--points", 800, "-o", tmp_path / "d.zarr", "--groups", 100,
                     "--dask", cluster.scheduler_address) == 0
    assert group("--points", 800, "-o", tmp_path / "d.npz", "--groups", 100) == 0
    assert_same_arrays(zarr_arrays(tmp_path / "d.zarr")[0], npz_arrays(tmp_path / "d.npz")[0])
    assert sorted(os.listdir(tmp_path)) == ["d.npz", "d.zarr"]  # no spilled input left


def test_bad_dask_flags_are_usage_errors(demo, tmp_path, capsys):
    assert group(demo / "demo.npz", "-o", tmp_path / "g.npz", "--dask", "local") == 2
    assert "--dask writes a Zarr store: give -o OUT.zarr" in capsys.readouterr().err
    assert group(demo / "demo.npz", "-o", tmp_path / "g.zarr", "--dask", "local:0") == 2
    assert "--dask local:N needs N >= 1" in capsys.readouterr().err
    assert group(demo / "demo.npz", "-o", tmp_path / "g.zarr", "--dask", "local",
                 "--dask-memory-limit", "lots") == 2
    assert "--dask-memory-limit must be a size such as 512MiB" in capsys.readouterr().err
    assert group(demo / "demo.npz", "-o", tmp_path / "g.zarr",
                 "--dask-memory-limit", "1GB") == 2
    assert os.listdir(tmp_path) == []


class KillAfterFirstBlock(WorkerPlugin):
    """SIGKILLs its worker process when a block of patterns has just been written.

    ``times`` kills in all (across restarts), counted in files under ``marks``.
    """

    def __init__(self, marks, times):
        self.marks, self.times = str(marks), times

    def transition(self, key, start, finish, **kwargs):
        if finish == "memory" and str(key).startswith("ptycho-diffraction-"):
            for i in range(self.times):
                try:
                    os.close(os.open(os.path.join(self.marks, str(i)),
                                     os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    continue
                os.kill(os.getpid(), signal.SIGKILL)


def run_with_killer(demo, tmp_path, times, allowed_failures=3):
    import dask
    marks = tmp_path / "marks"
    marks.mkdir()
    out = tmp_path / "out" / "g.zarr"
    out.parent.mkdir()
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=":0") as cluster, Client(cluster) as client:
        client.register_plugin(KillAfterFirstBlock(marks, times))
        rc = group(demo / "demo.npz", "-o", out, *ARGS, "--dask", cluster.scheduler_address,
                   "--chunk-groups", 20)
    return rc, out, len(os.listdir(marks))


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_the_output_complete(demo, tmp_path):
    rc, out, kills = run_with_killer(demo, tmp_path, times=1)
    assert kills == 1 and rc == 0
    same_as_npz(demo, out)
    assert os.listdir(out.parent) == ["g.zarr"]


@pytest.mark.slow
def test_workers_killed_every_time_fail_in_one_line_and_leave_nothing(demo, tmp_path, capsys):
    rc, out, kills = run_with_killer(demo, tmp_path, times=50, allowed_failures=1)
    ours = [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("ptycho-group:")]  # distributed logs its restarts too
    assert rc == 1 and kills >= 2
    assert len(ours) == 1 and ours[0].startswith("ptycho-group: error: KilledWorker: ")
    assert os.listdir(out.parent) == []  # no store, no temporary, no lock


@pytest.mark.slow
def test_two_workers_of_512_mib_group_a_store_four_times_larger(tmp_path):
    import shutil
    import zarr
    from ptycho_cli.bench_out_of_core import write_store
    limit, N = 512, 64
    frames = (4 * limit + 64) * 2**20 // (N * N * 4)   # 2112 MiB of float32 patterns
    if shutil.disk_usage(tmp_path).free < 14 << 30:
        pytest.skip("needs about 14 GB of free disk")
    store = tmp_path / "store.npz"
    write_store(store, frames, N)
    assert store.stat().st_size >= 4 * limit * 2**20
    # The overlap metrics (a record, not compared here) are not what this test is about:
    # with the probe's own diameter (~60 steps of this dense raster) they counted ~27M
    # pairs, about 10 s in each run; a 2-step disc keeps them cheap. The arrays are the same.
    # The default chunk (256 groups, 1024 scattered frames a task): read through the
    # memory map, its pages counted against the workers' limit, so that they were paused and
    # restarted without end; --chunk-groups 64 used to be needed.
    groups = frames // 4
    args = ["--groups", groups, "--seed", 1, "--gridsize", 2, "--neighbors", 7,
            "--probe-diameter", 2]
    assert main(["-q", "group", str(store), "-o", str(tmp_path / "g.zarr"), *map(str, args),
                 "--dask", "local:2", "--dask-memory-limit", f"{limit}MiB"]) == 0
    # The oracle is the store itself, read in chunks (bounded memory), not the NPZ writer's
    # output: that cost another 4.2 GB written and read back. Equality with the NPZ
    # writer, key by key and bit by bit, is what the tests above check on the demo.
    source = RawData.from_file(store, mmap=True)
    nn = source.group_indices(N, K=7, nsamples=groups, seed=1, gridsize=2)
    got = zarr.open_group(str(tmp_path / "g.zarr"), mode="r")
    assert sorted(got.array_keys()) == sorted(
        ["nn_indices", "diffraction", "X_full", "coords_nn", "coords_offsets",
         "coords_relative", "coords_start_nn", "coords_start_offsets", "coords_start_relative"])
    assert np.array_equal(got["nn_indices"][:], nn)
    xy = np.stack([source.xcoords, source.ycoords])[None]  # (1, 2, M)
    coords_nn = np.moveaxis(xy[:, :, nn], 2, 0)            # (B, 1, 2, C)
    assert np.array_equal(got["coords_nn"][:], coords_nn)
    offsets = got["coords_offsets"][:]
    assert np.allclose(offsets, coords_nn.mean(axis=3, keepdims=True), rtol=0, atol=1e-9)
    assert np.array_equal(got["coords_relative"][:], -(coords_nn - offsets))  # DESIGN.md
    for key in ("nn", "offsets", "relative"):  # no start coordinates: they are the positions
        assert np.array_equal(got[f"coords_start_{key}"][:], got[f"coords_{key}"][:]), key
    scale = np.float32(streamed_scale(source, nn, N, 256))
    for start in range(0, groups, 2048):  # bounded memory
        rows = nn[start:start + 2048]
        frames_ = gather_frames(source.diff3d, rows.ravel()).reshape(*rows.shape, N, N)
        diffraction = got["diffraction"][start:start + 2048]
        assert np.array_equal(diffraction, np.moveaxis(frames_, 1, 3)), start
        assert np.array_equal(got["X_full"][start:start + 2048], diffraction * scale), start
