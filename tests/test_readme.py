"""Every README block runs as written, in order, in an empty directory (tests/doc_blocks.py).

Shown-only blocks carry a ``<!-- not run: REASON -->`` marker; the quick
start's install and test blocks are what CI runs. Python blocks that print a
value say what it is in a comment (``# (512, 32, 32, 4)``): the printed line
must show it.
"""
import re
from pathlib import Path

import pytest

from doc_blocks import blocks, reader_env, run_bash_line, run_python

README = Path(__file__).resolve().parents[1] / "README.md"
EXPECTED = re.compile(r"print\(.*\)\s+#\s*(?P<shown>[(\[0-9].*)$")


def test_shown_only_blocks_say_why():
    markers = [b.marker for b in blocks(README) if b.marker]
    assert {"ci:install", "ci:test"} <= set(markers)
    for marker in markers:
        assert marker in ("ci:install", "ci:test") or re.fullmatch(
            r"not run: \w.{5,}", marker), marker


def test_every_block_runs_in_order(tmp_path):
    pytest.importorskip("h5py")
    pytest.importorskip("dask")
    pytest.importorskip("matplotlib")
    env = reader_env()
    ran = 0
    for block in blocks(README):
        if not block.runs:
            continue
        if block.lang == "bash":
            for line in block.lines():
                run_bash_line(line, tmp_path, env)
                ran += 1
            continue
        out = run_python(block.body, tmp_path, env).stdout.splitlines()
        shown = [m["shown"] for m in map(EXPECTED.match, block.lines()) if m]
        printed = iter(out)
        for expected in shown:  # each promised value appears, in order, in the printed lines
            assert any(expected.split("  ")[0] in line for line in printed), (expected, out)
        ran += 1
    assert ran >= 15
    made = {p.name for p in tmp_path.iterdir()}
    assert {"demo.npz", "groups.npz", "cover.npz", "groups.zarr", "big-groups.npz", "ptycho"} <= made
