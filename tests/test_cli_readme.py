"""README's transcript of ``group`` is what the command prints; its CI blocks are there.

That every README block runs is tests/test_readme.py's.
"""
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def blocks(text: str, lang: str):
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def run(cli, line: str, cwd):
    """One line of a block, run in-process (the ``cli`` fixture)."""
    argv = shlex.split(line, comments=True)
    assert argv[0] == "ptycho-group", line
    return cli(*argv[1:], cwd=cwd, check=False)


def test_the_transcript_matches_the_command(tmp_path, cli):
    transcript = blocks(section("The command"), "text")[0].splitlines()
    command = transcript[0].removeprefix("$ ")
    # The same command on a smaller request (the labels and notes, not the timings, are checked).
    run(cli, "ptycho-group demo-data -o demo.npz", tmp_path)
    small = command.replace("--groups 4000", "--groups 60")
    proc = run(cli, small + " --progress", tmp_path)
    assert proc.returncode == 0, proc.stderr
    note = next(line for line in transcript if line.startswith("ptycho-group: note:"))
    assert note in proc.stderr.splitlines()
    bar_label = next(line for line in transcript if "%|" in line).split(":")[0]
    assert bar_label + ":" in proc.stderr
    labels = [line.split()[0] for line in transcript[1:] if not line.startswith(
        ("opening", "ptycho-group:", "grouping"))]
    assert labels == [line.split()[0] for line in proc.stdout.splitlines()]
    shown = dict(line.split(None, 1) for line in transcript if line.startswith("groups "))
    got = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert got["groups"] == shown["groups"].replace("4000 x 9", "60 x 9")


def _missing(module: str) -> bool:
    try:
        __import__(module)
        return False
    except ImportError:
        return True


@pytest.mark.parametrize("marker", ["ci:install", "ci:test"])
def test_ci_blocks_are_still_there(marker):
    text = README.read_text()
    assert f"<!-- {marker} -->\n```bash\n" in text
    if marker == "ci:test":
        assert "pip install -e '.[test,all]'" in text
