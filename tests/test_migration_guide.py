"""Every command and code block in MIGRATION.md runs, in order, in one fresh directory.

Conventions in the guide: a fenced block preceded by ``<!-- file: PATH -->``
is written to PATH instead of run; ``bash`` blocks run line by line in a shell
with this interpreter's scripts on PATH; ``python`` blocks run each in a fresh
interpreter (so ``params`` changes do not leak between blocks); ``text`` and
``toml`` blocks without a file marker are illustrations and are checked
against the code where they quote it.

The plugin example is never installed into the test environment: the guide's
own ``pip install`` line runs with ``--target`` a temporary directory (and
``--no-build-isolation --no-index``, so nothing is downloaded), and every
later command sees it through ``PYTHONPATH``. When this environment cannot
build the plugin offline (setuptools older than 70.1 needs the ``wheel``
package for that), the guide's files are installed into that directory by
hand instead, as ``tests/test_registry.py`` does. Until then, a line that is
one plain ``ptycho-group`` command runs in-process (``doc_blocks.run_bash_line``).
"""
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from doc_blocks import run_bash_line

GUIDE = Path(__file__).resolve().parents[1] / "MIGRATION.md"
BLOCK = re.compile(r"(?:<!-- file: (?P<file>\S+) -->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.S)


def blocks():
    return [(m["file"], m["lang"], m["body"]) for m in BLOCK.finditer(GUIDE.read_text())]


def test_guide_has_the_sections_users_need():
    text = GUIDE.read_text()
    for heading in ("## What changed and why", "## Reproducibility", "## Switching back",
                    "## Cleaning up old cache files", "## Deprecated functions",
                    "## Writing your own strategy"):
        assert heading in text
    langs = [lang for _, lang, _ in blocks()]
    assert langs.count("python") >= 5 and langs.count("bash") >= 4


def test_quoted_warning_matches_the_code():
    from ptycho_grouping.legacy import DEPRECATION_MESSAGE, REMOVAL_VERSION
    quoted = next(body for f, lang, body in blocks() if lang == "text")
    quoted = " ".join(quoted.replace("DeprecationWarning:", "").split())
    head, tail = quoted.split("...")
    assert DEPRECATION_MESSAGE.startswith(head.strip())
    assert DEPRECATION_MESSAGE.endswith(tail.strip())
    assert f"removed in ptycho-grouping {REMOVAL_VERSION}" in GUIDE.read_text()


def run_line(line: str, work: Path, env: dict, site: Path):
    """One line of a bash block; ``pip install`` goes to ``site``, offline."""
    if not line.startswith("pip install") and not any(site.iterdir()):
        # Until the plugin is installed (into site, seen through PYTHONPATH by
        # later processes only), plain ptycho-group lines run in-process.
        return run_bash_line(line, work, env)
    if line.startswith("pip install"):
        # Offline: setuptools >= 70.1 (the test extra) builds without downloads.
        line = line.replace("pip install", f"python -m pip install --no-build-isolation "
                                           f"--no-index --target {site}", 1)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=work, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_every_block_runs(tmp_path):
    work, site = tmp_path / "work", tmp_path / "site"
    work.mkdir()
    site.mkdir()
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONWARNINGS"] = "default"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    ran, dry_runs = 0, 0
    for file, lang, body in blocks():
        if file:
            target = work / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            continue
        if lang == "bash":
            for line in filter(None, (line.strip() for line in body.splitlines())):
                caches = sorted(p.name for p in work.glob("*.groups_cache.npz"))
                proc = run_line(line, work, env, site)
                if line.startswith("ptycho-group clean-cache --dry-run"):
                    # The guide's legacy examples made a cache, and the dry run lists it.
                    assert caches == ["scan.g2k4.groups_cache.npz"]
                    assert f"would remove {caches[0]} (" in proc.stdout
                    assert f"would remove {len(caches)} file(s), freeing" in proc.stdout
                    assert (work / caches[0]).is_file()
                    dry_runs += 1
                ran += 1
        elif lang == "python":
            proc = subprocess.run([sys.executable, "-c", body], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, f"{body}\n{proc.stderr}"
            ran += 1
    runnable = sum(len([l for l in body.splitlines() if l.strip()]) if lang == "bash" else 1
                   for file, lang, body in blocks() if not file and lang in ("bash", "python"))
    assert ran == runnable >= 14 and dry_runs == 1
    # What the guide promised happened: the plugin is listed, caches are gone.
    listed = subprocess.run([sys.executable, "-m", "ptycho_cli", "strategies"], cwd=work,
                            env=env, capture_output=True, text=True).stdout
    assert "strided_nearest" in listed and "my-strategy-plugin" in listed
    assert not list(work.glob("*.groups_cache.npz"))
    assert (work / "strided.npz").is_file() and (work / "old-groups.npz").is_file()
    # ... and nothing was installed into this environment.
    assert "my-strategy-plugin" not in {d.metadata["Name"] for d in importlib.metadata.distributions()}


# -- the before/after table quotes docs/benchmarks.md --------------------------------

BENCH = GUIDE.parent / "docs" / "benchmarks.md"
UNIT = {"ms": 1e-3, "s": 1.0}
BENCH_ROW = re.compile(r"^\s*(?P<points>\d+)\s+(?P<g>\d+)\s+(?P<strategy>\w+)\s+"
                       r"(?P<mode>first run \(uncached\)|cached|one-shot|tree reused)\s+"
                       r"(?P<time>[\d.,]+) (?P<unit>m?s)\s+(?P<mib>[\d.]+)", re.M)
GUIDE_ROW = re.compile(r"^\| first run, 10\^(?P<exp>\d) points,[^|]*"
                       r"\| (?P<old_t>[\d.]+) (?P<old_u>m?s), (?P<old_m>[\d.]+) MiB "
                       r"\| (?P<new_t>[\d.]+) (?P<new_u>m?s), (?P<new_m>[\d.]+) MiB \|", re.M)


def agrees(quoted: str, measured: float, scale: float = 1.0) -> bool:
    """``quoted`` (in units of ``scale``) is ``measured`` rounded to the digits it shows."""
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    return abs(float(quoted) * scale - measured) <= 0.5 * 10 ** -decimals * scale * (1 + 1e-9)


def test_before_after_table_matches_the_benchmarks():
    measured = {}
    for m in BENCH_ROW.finditer(BENCH.read_text()):
        key = (int(m["points"]), int(m["g"]), m["strategy"], m["mode"])
        measured[key] = (float(m["time"].replace(",", "")) * UNIT[m["unit"]], float(m["mib"]))
    rows = list(GUIDE_ROW.finditer(GUIDE.read_text()))
    assert [int(r["exp"]) for r in rows] == [5, 6]
    for row in rows:
        points = 10 ** int(row["exp"])
        for side, key in (("old", (points, 2, "legacy_group_then_sample", "first run (uncached)")),
                          ("new", (points, 2, "sample_then_group", "one-shot"))):
            seconds, mib = measured[key]
            assert agrees(row[f"{side}_t"], seconds, UNIT[row[f"{side}_u"]]), (row[0], key)
            assert agrees(row[f"{side}_m"], mib), (row[0], key)


@pytest.mark.parametrize("quoted, measured, scale, ok", [
    ("2.55", 2.55, 1, True), ("8.0", 7.95e-3, 1e-3, True), ("103", 102.7, 1, True),
    ("72", 71.88e-3, 1e-3, True), ("8.0", 7.94e-3, 1e-3, False), ("26.2", 26.26, 1, False),
    ("36", 35.4, 1, False),
])
def test_agreement_rule(quoted, measured, scale, ok):
    assert agrees(quoted, measured, scale) is ok
