"""migration/clean_cache.py on real trees: caches, datasets, decoys, links, failures."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from migration import clean_cache
from ptycho_grouping import GroupingRequest, get_strategy

ROOT = Path(__file__).resolve().parents[1]


def legacy_cache_for(dataset: Path, m=40, seed=0):
    """Make a real cache with the legacy strategy, beside ``dataset``."""
    xy = np.random.default_rng(seed).uniform(0, 20, (m, 2))
    with pytest.warns(DeprecationWarning):
        get_strategy("legacy_group_then_sample").group(xy, GroupingRequest(
            n_groups=5, group_size=4, neighbors=4, dataset_path=str(dataset), rng=seed))
    return dataset.parent / f"{dataset.stem}.g2k4.groups_cache.npz"


class Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "data"
    (root / "run1").mkdir(parents=True)
    (root / "run2" / "deep").mkdir(parents=True)
    t = {"root": root}
    t["cache1"] = legacy_cache_for(root / "run1" / "scan.npz")
    t["cache2"] = legacy_cache_for(root / "run2" / "deep" / "other.npz", seed=1)
    t["dataset"] = root / "run1" / "scan.npz"
    np.savez(t["dataset"], xcoords=np.arange(3.0))
    # Decoys named like caches.
    t["wrong_members"] = root / "run1" / "fake.g2k4.groups_cache.npz"
    np.savez(t["wrong_members"], all_groups=np.zeros((2, 4), np.int64), extra=np.zeros(1))
    t["garbage"] = root / "run2" / "junk.g3k8.groups_cache.npz"
    t["garbage"].write_bytes(b"\x00\x01 not a zip")
    # Cache-shaped (exactly the legacy members) but holding a pickle that
    # would write a marker file if anything ever unpickled it: it is a cache
    # by the rule and gets removed, unread.
    t["marker"] = tmp_path / "unpickled"
    t["pickle"] = root / "run2" / "evil.g2k4.groups_cache.npz"
    arr = np.empty(1, dtype=object)
    arr[0] = Evil(str(t["marker"]))
    np.savez(t["pickle"], all_groups=arr, dataset_checksum="c", gridsize=2, overlap_factor=4)
    # A real cache outside the root, linked from inside under a cache name.
    outside = tmp_path / "outside"
    outside.mkdir()
    t["outside_cache"] = legacy_cache_for(outside / "keep.npz", seed=2)
    t["link"] = root / "run1" / "linked.g2k4.groups_cache.npz"
    t["link"].symlink_to(t["outside_cache"])
    (root / "run2" / "outside_dir").symlink_to(outside, target_is_directory=True)
    return t


def run(*args, cwd=None):
    return subprocess.run([sys.executable, str(ROOT / "migration" / "clean_cache.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL)


def test_find_classifies_every_name_match(tree):
    found = {f.path: f for f in clean_cache.find_cache_files([tree["root"]])}
    caches = sorted(p for p, f in found.items() if f.is_cache)
    assert caches == sorted([tree["cache1"], tree["cache2"], tree["pickle"]])
    for decoy in ("wrong_members", "garbage", "link"):
        assert found[tree[decoy]].is_cache is False, decoy
    assert "symbolic link" in found[tree["link"]].reason
    assert "extra" in found[tree["wrong_members"]].reason
    # Nothing under the symlinked directory was visited.
    assert not any("outside_dir" in str(p) for p in found)
    assert found[tree["cache1"]].size == tree["cache1"].stat().st_size > 0


def test_dry_run_removes_nothing_and_totals(tree):
    before = sorted(p for p in tree["root"].rglob("*"))
    proc = run("--dry-run", tree["root"])
    assert proc.returncode == 0
    total = sum(tree[k].stat().st_size for k in ("cache1", "cache2", "pickle"))
    assert "would remove 3 file(s), freeing" in proc.stdout and f"({total} bytes)" in proc.stdout
    assert sorted(p for p in tree["root"].rglob("*")) == before
    assert proc.stdout.count("skipped ") == 3


def test_real_run_removes_exactly_the_caches(tree):
    total = sum(tree[k].stat().st_size for k in ("cache1", "cache2", "pickle"))
    proc = run("--yes", tree["root"])
    assert proc.returncode == 0, proc.stderr
    for gone in ("cache1", "cache2", "pickle"):
        assert not tree[gone].exists(), gone
    for keep in ("dataset", "wrong_members", "garbage", "outside_cache"):
        assert tree[keep].exists(), keep
    assert tree["link"].is_symlink()
    assert not tree["marker"].exists()  # nothing was unpickled
    assert "removed 3 file(s), freed" in proc.stdout and f"({total} bytes)" in proc.stdout
    assert proc.stdout.count("removed ") == 4  # three files and the total line


def test_without_a_terminal_and_without_yes_it_refuses(tree):
    proc = run(tree["root"])
    assert proc.returncode == 2
    assert "refusing to remove 3 file(s)" in proc.stderr
    assert tree["cache1"].exists() and tree["cache2"].exists()


def test_missing_path_is_a_usage_error(tmp_path):
    proc = run("--dry-run", tmp_path / "nope")
    assert proc.returncode == 2 and "no such file or directory" in proc.stderr


def test_removal_failure_is_reported_and_the_run_goes_on(tree, monkeypatch, capsys):
    real_unlink = Path.unlink

    def unlink(self, *a, **kw):
        if self == tree["cache1"]:
            raise PermissionError(13, "Permission denied")
        return real_unlink(self, *a, **kw)

    monkeypatch.setattr(Path, "unlink", unlink)
    status = clean_cache.main(["--yes", str(tree["root"])])
    out, err = capsys.readouterr()
    assert status == 1
    assert f"could not remove {tree['cache1']}: Permission denied" in err
    assert tree["cache1"].exists() and not tree["cache2"].exists()
    assert "removed 2 file(s)" in out and "1 failed" in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable directories")
def test_unreadable_directory_is_reported(tree):
    locked = tree["root"] / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        proc = run("--dry-run", tree["root"])
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 1 and "cannot read" in proc.stderr


def test_a_file_changed_after_the_scan_is_left_alone(tree):
    findings = [f for f in clean_cache.find_cache_files([tree["root"]]) if f.is_cache]
    tree["cache1"].write_bytes(b"now something else")
    result = clean_cache.remove_cache_files(findings)
    assert tree["cache1"].exists() and not tree["cache2"].exists()
    assert [f.path for f, _ in result.failed] == [tree["cache1"]]


def test_progress_counts_files(tmp_path):
    for i in range(2500):
        (tmp_path / f"f{i}.txt").write_bytes(b"")
    counts = []
    assert list(clean_cache.find_cache_files([tmp_path], progress=counts.append)) == []
    assert counts == [1000, 2000]


def test_through_ptycho_group(tree):
    proc = subprocess.run([sys.executable, "-m", "ptycho_cli", "clean-cache", "--dry-run",
                           str(tree["root"])], capture_output=True, text=True)
    assert proc.returncode == 0 and "would remove 3 file(s)" in proc.stdout
    assert tree["cache1"].exists()
