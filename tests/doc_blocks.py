"""The fenced blocks of a Markdown document, and running them the way a reader would.

A block may be preceded by one marker line:

* ``<!-- file: PATH -->``: written to PATH instead of run;
* ``<!-- not run: REASON -->``: shown only (it needs something a test cannot
  have: a PtychoPINN checkout, a running scheduler); the reason is required;
* ``<!-- ci:install -->`` / ``<!-- ci:test -->``: what CI runs (``.ci/run``),
  not run again here.

``bash`` blocks run line by line in a shell, ``python`` blocks each in a
fresh interpreter, both in one working directory, in document order; other
languages are illustrations. A bash line that is one plain ``ptycho-group``
command (no shell syntax) runs in-process through ``main(argv)`` (conftest's
``run_cli``), as the command's other tests do: the installed script itself is
tests/test_coinstall.py's, and an interpreter start-up per line cost ~0.6 s.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

BLOCK = re.compile(r"(?:<!-- (?P<marker>[^>]*?) -->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.S)


@dataclass(frozen=True)
class Block:
    marker: Optional[str]
    lang: str
    body: str

    @property
    def file(self) -> Optional[str]:
        return self.marker[len("file: "):] if self.marker and self.marker.startswith("file: ") \
            else None

    @property
    def runs(self) -> bool:
        return self.lang in ("bash", "python") and self.marker is None

    def lines(self):
        return [line.strip() for line in self.body.splitlines() if line.strip()]


def blocks(path: Path):
    return [Block(m["marker"], m["lang"], m["body"]) for m in BLOCK.finditer(path.read_text())]


def reader_env(extra_path: Optional[Path] = None) -> dict:
    """This interpreter's scripts first on PATH, warnings shown as a script's would be."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONWARNINGS"] = "default"
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path),
                                                          env.get("PYTHONPATH")]))
    return env


#: Shell syntax that makes a line more than one plain command.
SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?~\\\[\]{}]|^\w+=")


def run_bash_line(line: str, work: Path, env: dict):
    code = line.split("#", 1)[0] if "'" not in line and '"' not in line else line
    if not SHELL_SYNTAX.search(code):
        argv = shlex.split(line, comments=True)
        if argv and argv[0] == "ptycho-group":
            from conftest import run_cli
            proc = run_cli(*argv[1:], cwd=work, check=False)
            assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
            return proc
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=work, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
    return proc


def run_python(body: str, work: Path, env: dict):
    proc = subprocess.run([sys.executable, "-c", body], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{body}\n{proc.stderr}"
    return proc
