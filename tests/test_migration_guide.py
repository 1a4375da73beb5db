"""Every command and code block in MIGRATION.md runs, in order, in one fresh directory.

Conventions in the guide: a fenced block preceded by ``<!-- file: PATH -->``
is written to PATH instead of run; ``bash`` blocks run line by line in a shell
with this interpreter's scripts on PATH; ``python`` blocks run each in a fresh
interpreter (so ``params`` changes do not leak between blocks); ``text`` and
``toml`` blocks without a file marker are illustrations and are checked
against the code where they quote it. The plugin example is installed for
real into the test environment by the guide's own ``pip install`` line, and
uninstalled again when the test ends.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.fixture
def plugin_uninstalled_afterwards():
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "my-strategy-plugin"],
                   capture_output=True)


def test_every_block_runs(tmp_path, plugin_uninstalled_afterwards):
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONWARNINGS"] = "default"
    ran = 0
    for file, lang, body in blocks():
        if file:
            target = work / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            continue
        if lang == "bash":
            for line in filter(None, (line.strip() for line in body.splitlines())):
                proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=work, env=env,
                                      capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                      timeout=600)
                assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
                ran += 1
        elif lang == "python":
            proc = subprocess.run([sys.executable, "-c", body], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, f"{body}\n{proc.stderr}"
            ran += 1
    runnable = sum(len([l for l in body.splitlines() if l.strip()]) if lang == "bash" else 1
                   for file, lang, body in blocks() if not file and lang in ("bash", "python"))
    assert ran == runnable >= 14
    # What the guide promised happened: the plugin is listed, caches are gone.
    listed = subprocess.run([sys.executable, "-m", "ptycho_cli", "strategies"], cwd=work,
                            env=env, capture_output=True, text=True).stdout
    assert "strided_nearest" in listed and "my-strategy-plugin" in listed
    assert not list(work.glob("*.groups_cache.npz"))
    assert (work / "strided.npz").is_file() and (work / "old-groups.npz").is_file()
