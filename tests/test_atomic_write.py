"""atomic_write / atomic_hdf5: all or nothing, on a full disk and after kill -9."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ptycho_grouping import atomic_write as aw
from ptycho_grouping.atomic_write import atomic_hdf5, atomic_write

HAVE_TMPFILE = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["unnamed", "named"])
def mode(request, monkeypatch):
    """Run a test with O_TMPFILE (where the OS has it) and with named temporaries."""
    if request.param == "unnamed":
        if not HAVE_TMPFILE:
            pytest.skip("no O_TMPFILE here")
    else:
        monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    return request.param


def write_bytes(path, data: bytes):
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


# -- the basic contract -----------------------------------------------------------

def test_writes_and_replaces(tmp_path, mode):
    target = tmp_path / "out.bin"
    write_bytes(target, b"first")
    write_bytes(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_the_yielded_path_is_unnamed_only_with_o_tmpfile(tmp_path, mode):
    with atomic_write(tmp_path / "out.bin") as tmp:
        open(tmp, "wb").close()
        listed = os.listdir(tmp_path)
    if mode == "unnamed":
        assert str(tmp).startswith("/proc/self/fd/") and listed == []
    else:
        assert tmp.parent == tmp_path and listed == [tmp.name]
        m = aw.TEMP_NAME_RE.match(tmp.name)
        assert m["target"] == "out.bin" and int(m["pid"]) == os.getpid()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_file_mode_follows_the_umask_existing_mode_is_kept(tmp_path, mode, umask):
    old = os.umask(umask)
    try:
        write_bytes(tmp_path / "new", b"x")
        (tmp_path / "kept").write_bytes(b"")
        os.chmod(tmp_path / "kept", 0o640)
        write_bytes(tmp_path / "kept", b"y")
    finally:
        os.umask(old)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "kept").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"),
                                 KeyboardInterrupt(), ValueError("bad")])
def test_any_exception_leaves_the_old_file_and_no_temporary(tmp_path, mode, exc):
    target = tmp_path / "out.bin"
    write_bytes(target, b"old")
    with pytest.raises(type(exc)):
        with atomic_write(target) as tmp, open(tmp, "wb") as fh:
            fh.write(b"partial")
            raise exc
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_a_failing_rename_leaves_no_temporary(tmp_path, mode, monkeypatch):
    target = tmp_path / "out.bin"
    write_bytes(target, b"old")

    def refuse(src, dst):
        raise OSError(errno.EXDEV, "cannot rename")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="cannot rename"):
        write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL])
def test_a_filesystem_without_o_tmpfile_gets_a_named_temporary(tmp_path, monkeypatch, code):
    if not HAVE_TMPFILE:
        pytest.skip("no O_TMPFILE here")
    real_open = os.open

    def no_tmpfile(path, flags, *args, **kwargs):
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(code, os.strerror(code))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_tmpfile)
    with atomic_write(tmp_path / "out.bin") as tmp, open(tmp, "wb") as fh:
        fh.write(b"data")
        assert aw.TEMP_NAME_RE.match(tmp.name)
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_a_missing_directory_is_file_not_found(tmp_path, mode):
    with pytest.raises(FileNotFoundError):
        write_bytes(tmp_path / "absent" / "out.bin", b"x")


def test_a_relative_target_is_written_in_the_working_directory(tmp_path, mode, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_bytes("plain.bin", b"here")
    assert (tmp_path / "plain.bin").read_bytes() == b"here"
    assert os.listdir(tmp_path) == ["plain.bin"]


def test_numpy_zipfile_and_h5py_write_through_the_yielded_path(tmp_path, mode):
    arrays = {"a": np.arange(12.0).reshape(3, 4), "b": np.array("text")}
    with atomic_write(tmp_path / "x.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    with np.load(tmp_path / "x.npz", allow_pickle=False) as npz:
        assert np.array_equal(npz["a"], arrays["a"]) and str(npz["b"]) == "text"
    h5py = pytest.importorskip("h5py")
    with atomic_hdf5(tmp_path / "x.h5") as h5:
        h5["a"] = arrays["a"]
    with h5py.File(tmp_path / "x.h5", "r") as h5:
        assert np.array_equal(h5["a"][()], arrays["a"])
    assert sorted(os.listdir(tmp_path)) == ["x.h5", "x.npz"]


# -- writers that were killed ------------------------------------------------------

def identity(pid=None, start=None, pidns=None, host=None, target="out.bin"):
    pid = os.getpid() if pid is None else pid
    start = aw._process_start(pid) if start is None else start
    pidns = aw._pid_namespace() if pidns is None else pidns
    host = aw._host() if host is None else host
    return f".{target}.{pid}-{start}-{pidns}@{host}.0123abcd.tmp"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_names_identify_this_process():
    name = aw.temporary_name("scan.npz")
    m = aw.TEMP_NAME_RE.match(name)
    assert m["target"] == "scan.npz" and int(m["pid"]) == os.getpid()
    assert m["host"] == aw._host() and not aw.writer_is_gone(name)
    if os.path.isdir("/proc/self"):
        assert int(m["start"]) > 0 and int(m["pidns"]) > 0


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_who_counts_as_gone():
    me = os.getpid()
    start = aw._process_start(me)
    assert not aw.writer_is_gone(identity())                      # alive: this process
    assert aw.writer_is_gone(identity(pid=dead_pid()))           # exited
    assert aw.writer_is_gone(identity(start=start + 1))          # PID reused by this process
    assert not aw.writer_is_gone(identity(start=0))              # start unknown: keep
    assert not aw.writer_is_gone(identity(pid=dead_pid(), host="elsewhere"))  # cannot tell
    assert not aw.writer_is_gone(identity(pid=dead_pid(), pidns=1))           # cannot tell
    assert not aw.writer_is_gone(".out.bin.x7ghq2a1.tmp")        # mkstemp's: no writer known


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_only_dead_writers_leftovers_of_the_same_target_are_removed(tmp_path):
    dead, live = identity(pid=dead_pid()), identity()
    other_target = identity(pid=dead_pid(), target="other.bin")
    for name in (dead, live, other_target, "out.bin.notes.tmp", ".out.bin.k2x_9qz1.tmp"):
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / identity(pid=dead_pid(), start=1)).mkdir()      # a directory: never
    (tmp_path / identity(pid=dead_pid(), start=2)).symlink_to(tmp_path / live)
    before = set(os.listdir(tmp_path))
    write_bytes(tmp_path / "out.bin", b"new")
    assert set(os.listdir(tmp_path)) == before - {dead} | {"out.bin"}


KILLED_WRITER = textwrap.dedent("""
    import os, sys
    import numpy as np
    if sys.argv[3] == "named":
        del os.O_TMPFILE
    target, how = sys.argv[1], sys.argv[2]
    big = np.random.default_rng(0).random((1500, 64, 64))      # 47 MiB
    print("ready", flush=True)
    while True:                                                # killed in the middle of one
        if how == "to_file":
            from ptycho_data.raw_data import RawData
            m = len(big)
            RawData(np.arange(m, dtype=float), np.zeros(m), np.arange(m, dtype=float),
                    np.zeros(m), big, np.ones((64, 64), complex), np.arange(m)).to_file(target)
        elif how == "atomic_savez":
            from ptycho_grouping.npz_io import atomic_savez
            atomic_savez(target, {"big": big})
        else:
            from ptycho_grouping.legacy_cache import write_cache
            write_cache(target, (big * 1000).astype(np.int64).reshape(-1, 4096)[:, :4],
                        "abc", 2, 4)
            write_cache(target, (big * 1e9).astype(np.int64).reshape(-1, 4), "abc", 2, 4)
""")


def kill_mid_write(target: Path, how: str, mode: str) -> None:
    """Start a writer of ``target``, SIGKILL it while a temporary file is open and non-empty."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target), how, mode],
                            stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _writing_a_temporary(proc.pid, target):
                break
            time.sleep(0.001)
        else:
            pytest.fail("the writer never opened a temporary file")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _writing_a_temporary(pid: int, target: Path) -> bool:
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(fd)
            size = os.stat(fd).st_size
        except OSError:
            continue
        if link.startswith(f"{target.parent}/") and link != str(target) and size > 1 << 20:
            return True
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/fd")
@pytest.mark.parametrize("how", ["to_file", "atomic_savez", "legacy_cache"])
def test_a_killed_writer_leaves_nothing_after_the_next_write(tmp_path, mode, how):
    name = "scan.g2k4.groups_cache.npz" if how == "legacy_cache" else "scan.npz"
    target = tmp_path / name
    kill_mid_write(target, how, mode)
    leftovers = [n for n in os.listdir(tmp_path) if n != name]
    if mode == "unnamed":
        assert leftovers == []          # the kernel freed the unnamed file
    else:
        assert len(leftovers) == 1 and aw.TEMP_NAME_RE.match(leftovers[0])["target"] == name
        assert aw.writer_is_gone(leftovers[0])
    write_bytes(target, b"the next run")  # any atomic_write to the same target
    assert os.listdir(tmp_path) == [name] and target.read_bytes() == b"the next run"


# -- a full disk ----------------------------------------------------------------------

def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_npz(tmp_path, mode, monkeypatch):
    from ptycho_grouping.npz_io import atomic_savez
    target = tmp_path / "x.npz"
    atomic_savez(target, {"a": np.arange(3)})
    before = target.read_bytes()

    def partial_then_full(fh, **arrays):
        fh.write(b"PK\x03\x04 partial")
        enospc()

    monkeypatch.setattr(np, "savez", partial_then_full)
    with pytest.raises(OSError) as info:
        atomic_savez(target, {"a": np.arange(10 ** 5)})
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["x.npz"]


def test_full_disk_json(tmp_path, mode, monkeypatch):
    from ptycho_cli import bench
    target = tmp_path / "report.json"
    bench.write_json({"old": 1}, target)
    monkeypatch.setattr(json, "dump", lambda obj, fh, **kw: (fh.write('{"par'), enospc()))
    with pytest.raises(OSError) as info:
        bench.write_json({"new": 2}, target)
    assert info.value.errno == errno.ENOSPC
    assert json.loads(target.read_text()) == {"old": 1}
    assert os.listdir(tmp_path) == ["report.json"]


def test_full_disk_png(tmp_path, mode, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    from ptycho_cli.plot import plot_groups
    x, y = np.arange(10.0), np.zeros(10)
    groups = np.arange(10).reshape(5, 2)
    target = tmp_path / "groups.png"
    plot_groups(x, y, groups, target)
    before = target.read_bytes()
    assert before.startswith(b"\x89PNG")
    monkeypatch.setattr(Figure, "savefig", lambda self, fh, **kw: (fh.write(b"\x89PNG"), enospc()))
    with pytest.raises(OSError) as info:
        plot_groups(x, y, groups, target)
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["groups.png"]


FULL_HDF5 = textwrap.dedent("""
    import os, resource, signal, sys
    import numpy as np
    from ptycho_grouping.atomic_write import atomic_hdf5
    target, limit, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "named":
        del os.O_TMPFILE
    if limit:  # a file-size limit fails writes (EFBIG) as a full disk does (ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        with atomic_hdf5(target) as h5:
            ds = h5.create_dataset("x", shape=(4000, 64, 64), dtype="f8", chunks=(32, 64, 64))
            for i in range(0, 4000, 100):
                ds[i:i + 100] = 1.0
    except OSError as exc:
        print("error", exc.errno)
        sys.exit(2)
""")


def run_full_hdf5(target: Path, limit: int, mode: str):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", FULL_HDF5, str(target), str(limit), mode],
                          capture_output=True, env=env, timeout=120)


def write_previous_h5(target: Path):
    h5py = pytest.importorskip("h5py")
    with atomic_hdf5(target) as h5:
        h5["previous"] = np.arange(7)
    return h5py


def test_full_disk_hdf5_file_size_limit(tmp_path, mode):
    # Before atomic_hdf5 this died with a segmentation fault (exit 139) at exit.
    target = tmp_path / "out.h5"
    h5py = write_previous_h5(target)
    proc = run_full_hdf5(target, 8 << 20, mode)
    assert proc.returncode == 2, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().split() == ["error", str(errno.EFBIG)]
    with h5py.File(target, "r") as h5:
        assert np.array_equal(h5["previous"][()], np.arange(7))
    assert os.listdir(tmp_path) == ["out.h5"]


@pytest.fixture
def small_tmpfs(tmp_path):
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        pytest.skip("mounting a tmpfs needs root on Linux")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_full_disk_hdf5_on_a_12_mib_tmpfs(small_tmpfs, mode):
    target = small_tmpfs / "out.h5"
    h5py = write_previous_h5(target)
    proc = run_full_hdf5(target, 0, mode)
    assert proc.returncode == 2, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().split() == ["error", str(errno.ENOSPC)]
    with h5py.File(target, "r") as h5:
        assert np.array_equal(h5["previous"][()], np.arange(7))
    assert os.listdir(small_tmpfs) == ["out.h5"]


def test_an_exception_inside_atomic_hdf5_closes_and_removes(tmp_path, mode):
    target = tmp_path / "out.h5"
    h5py = write_previous_h5(target)
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_hdf5(target) as h5:
            h5["x"] = np.zeros(10)
            raise RuntimeError("boom")
    assert not h5.id.valid  # closed before the exception left the block
    with h5py.File(target, "r") as h5:
        assert list(h5) == ["previous"]
    assert os.listdir(tmp_path) == ["out.h5"]


def test_hostname_is_sanitised(monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "node_7.cluster.example")
    name = aw.temporary_name("a.npz")
    assert aw.TEMP_NAME_RE.match(name)["host"] == "node-7-cluster-example"


def test_the_file_is_on_disk_before_the_rename_and_the_rename_after(tmp_path, mode, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync dir" if os.path.stat.S_ISDIR(st.st_mode) else "fsync", st.st_ino))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_bytes(tmp_path / "out.bin", b"data")
    inode = os.stat(tmp_path / "out.bin").st_ino
    assert events == [("fsync", inode), ("replace", inode), ("fsync dir", tmp_path.stat().st_ino)]
