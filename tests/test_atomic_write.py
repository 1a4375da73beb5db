"""atomic_write / atomic_hdf5: all or nothing, on a full disk and after kill -9."""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ptycho_grouping import atomic_write as aw
from ptycho_grouping.atomic_hdf5 import atomic_hdf5
from ptycho_grouping.atomic_write import atomic_write

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
        stale = is_stale(tmp)
    if mode == "unnamed":
        assert str(tmp).startswith("/proc/self/fd/") and listed == []
    else:
        assert tmp.parent == tmp_path and listed == [tmp.name]
        assert aw.is_temporary_of(tmp.name, "out.bin")
    assert not stale  # its writer holds the lock


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
        assert aw.is_temporary_of(tmp.name, "out.bin")
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

def is_stale(path) -> bool:
    """What a cleaner would decide: can the writer's lock on ``path`` be taken?"""
    fd = os.open(path, os.O_RDONLY)
    try:
        return aw.lock_if_stale(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize("name, target, ok", [
    (".scan.npz.x7ghq2a1.tmp", "scan.npz", True),                       # 0.1: mkstemp
    (".scan.npz.4242-98765-4026531836@node-7.0123abcd.tmp", "scan.npz", True),  # late 0.1, 0.2
    (".scan.npz.de5f20b4.tmp", "scan.npz", True),                       # today's form
    (".a.b.npz.1-2-3@h.0123abcd.tmp", "a.b.npz", True),
    (".scan.npz.x7ghq2a1.tmp", "scan", False),                          # another target's
    (".scan.npz.notes.tmp", "scan.npz", False),                         # not a writer's tag
    ("scan.npz.x7ghq2a1.tmp", "scan.npz", False),
    (".scan.npz.x7ghq2a1.tmp\n", "scan.npz", False),
])
def test_temporary_names_of_every_release(name, target, ok):
    # (A name drawn at collection time would differ between pytest-xdist workers.)
    assert aw.is_temporary_of(name, target) is ok
    if ok:
        assert aw.TEMP_NAME_RE.match(name)


def test_todays_temporary_names_are_recognised():
    names = {aw.temporary_name("scan.npz") for _ in range(20)}
    assert len(names) == 20 and all(aw.is_temporary_of(n, "scan.npz") for n in names)


HOLDING_WRITER = textwrap.dedent("""
    import os, sys
    del os.O_TMPFILE                      # a named temporary file
    from ptycho_grouping.atomic_write import atomic_write
    with atomic_write(sys.argv[1]) as tmp, open(tmp, "wb") as fh:
        fh.write(b"partial")
        fh.flush()
        print(tmp, flush=True)
        sys.stdin.readline()               # held open until told (or killed)
""")


def start_holding_writer(target: Path) -> tuple:
    """A real writer process inside ``atomic_write(target)``; ``(process, its temporary)``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDING_WRITER, str(target)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return proc, Path(proc.stdout.readline().decode().strip())


def test_a_live_writers_temporary_is_kept_a_sigkilled_ones_is_stale(tmp_path):
    target = tmp_path / "out.bin"
    proc, tmp = start_holding_writer(target)
    try:
        assert tmp.parent == tmp_path and tmp.read_bytes() == b"partial"
        assert not is_stale(tmp)
        assert aw.remove_stale_temporaries(target) == [] and tmp.exists()
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert is_stale(tmp)  # the kernel dropped the lock with the process
    assert aw.remove_stale_temporaries(target) == [tmp] and os.listdir(tmp_path) == []


def test_cleanup_removes_only_stale_temporaries_of_the_same_target(tmp_path):
    target = tmp_path / "out.bin"
    proc, live = start_holding_writer(target)
    try:
        stale = [tmp_path / ".out.bin.x7ghq2a1.tmp",                         # 0.1
                 tmp_path / ".out.bin.4242-1-2@node.0123abcd.tmp",           # 0.2
                 tmp_path / aw.temporary_name("out.bin")]                   # today's, killed
        kept = [tmp_path / ".other.bin.x7ghq2a1.tmp", tmp_path / ".out.bin.notes.tmp",
                tmp_path / "out.bin.x7ghq2a1.tmp"]
        for path in stale + kept:
            path.write_bytes(b"partial")
        (tmp_path / aw.temporary_name("out.bin")).mkdir()                  # a directory: never
        (tmp_path / aw.temporary_name("out.bin")).symlink_to(stale[0])     # a link: never
        before = set(os.listdir(tmp_path))
        write_bytes(target, b"new")
        assert set(os.listdir(tmp_path)) == before - {p.name for p in stale} | {"out.bin"}
        assert live.exists() and target.read_bytes() == b"new"
    finally:
        proc.kill()
        proc.wait()


def test_a_new_file_that_a_cleaner_removed_before_it_was_locked_is_replaced(tmp_path, monkeypatch):
    # A named temporary file exists, unlocked, between open() and flock(): a
    # cleaner may find it stale there. The writer then sees it has no name
    # left and takes another.
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    target, real_lock, raced = tmp_path / "out.bin", aw._lock, []

    def lock_after_a_cleaner(fd):
        if not raced:
            raced.extend(aw.remove_stale_temporaries(target))
        real_lock(fd)

    monkeypatch.setattr(aw, "_lock", lock_after_a_cleaner)
    with atomic_write(target) as tmp, open(tmp, "wb") as fh:
        fh.write(b"data")
        assert tmp.exists() and tmp not in raced and not is_stale(tmp)
    assert len(raced) == 1 and target.read_bytes() == b"data"
    assert os.listdir(tmp_path) == ["out.bin"]


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
            # The float bits as integers: incompressible, which deflates about 4x
            # faster than random integers below 1e9 (the first 16 MiB block, which
            # reaches the file only once compressed, in ~0.5 s instead of ~1.8 s).
            write_cache(target, big.view(np.int64).reshape(-1, 4), "abc", 2, 4)
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
        assert len(leftovers) == 1 and aw.is_temporary_of(leftovers[0], name)
        assert is_stale(tmp_path / leftovers[0])
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
    from ptycho_grouping.atomic_hdf5 import atomic_hdf5
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
