"""Shared test configuration: hypothesis profiles, the command run in-process, demo data.

Hypothesis: ``HYPOTHESIS_PROFILE=thorough`` for more examples.

The command: :func:`run_cli` (the ``cli`` fixture) runs ``ptycho_cli.main(argv)``
in this process, as the ``ptycho-group`` script would run it in a fresh one:
in a working directory, with stdout/stderr captured (stderr optionally a
terminal), Python's default warning filters, and the exit status of a
process (argparse's and SIGTERM's ``SystemExit`` codes, 1 and a traceback
for an uncaught exception). A real process costs about a second of imports;
tests that need one (install, signals, ``python -m``, memory limits) say so
with the ``real_process`` marker.
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import sys
import traceback
import warnings
from typing import NamedTuple, Optional

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, max_examples=40,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=400)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# -- the slow marker on tests in files whose owners have not added it yet --------------

#: Node ids (file::test, any parametrisation) of slow tests in files this
#: conftest does not own: the pip-install, mount and wheel tests. Move the
#: ``@pytest.mark.slow`` into those files when they are next edited.
SLOW_ELSEWHERE = (
    "tests/test_migration_guide.py::test_every_block_runs",
    "tests/test_atomic_write.py::test_full_disk_hdf5_on_a_12_mib_tmpfs",
)


#: The longest test (a 2-worker Dask cluster writes about 6 GB; 25-36 s alone, depending
#: on the disk): started first, so that the suite does not wait for it at the end.
FIRST = "tests/test_dask_cluster.py::test_two_workers_of_512_mib_group_a_store_four_times_larger"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("[", 1)[0] in SLOW_ELSEWHERE:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.nodeid != FIRST)  # stable: the rest keep their order


# -- test processes (pytest-xdist; addopts has ``-n auto``) -----------------------------------

def pytest_xdist_auto_num_workers(config):
    """One test process per core, at most 4: the heaviest tests start Dask clusters of two
    worker processes or search on every core themselves, and one writes 6 GiB."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


# -- the command, in-process ---------------------------------------------------------------

class CliResult(NamedTuple):
    """What a finished ``ptycho-group`` run left: as ``subprocess.CompletedProcess`` names it."""

    returncode: int
    stdout: str
    stderr: str


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal (what progress bars are decided on)."""

    def isatty(self) -> bool:
        return True


def _exit_status(code) -> int:
    # What the interpreter makes of SystemExit(code).
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def _environment(changes: dict):
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _python_default_warning_filters() -> None:
    """The filters of an interpreter started without ``-W``: pytest's are not the user's."""
    warnings.resetwarnings()
    for category in (ResourceWarning, ImportWarning, PendingDeprecationWarning,
                     DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")


def run_cli(*args, cwd, check: bool = True, env: Optional[dict] = None,
            tty: bool = False) -> CliResult:
    """Run ``ptycho-group ARGS`` in-process, in directory ``cwd``.

    Parameters
    ----------
    *args
        The command line after ``ptycho-group`` (converted with ``str``).
    cwd : path
        The working directory of the run (restored afterwards).
    check : bool
        Raise ``AssertionError`` (with stderr) on a non-zero exit status.
    env : dict, optional
        Environment changes for the run; ``None`` as a value unsets a variable.
        ``COLUMNS`` is 80 unless given, as on a pipe.
    tty : bool
        stderr reports itself a terminal, as a pseudo-terminal would.
    """
    from ptycho_cli import main

    out, err = io.StringIO(), (_Terminal() if tty else io.StringIO())
    argv = [str(a) for a in args]
    old_cwd = os.getcwd()
    # The script's frame is a __main__ module: warnings attributed to the
    # caller meet the default filters exactly as they do under ptycho-group.
    namespace = {"__name__": "__main__", "main": main, "argv": argv}
    os.chdir(cwd)
    try:
        with _environment({"COLUMNS": "80", **(env or {})}), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            saved_stdin, sys.stdin = sys.stdin, io.StringIO()  # as stdin=DEVNULL
            _python_default_warning_filters()
            try:
                exec("status = main(argv)", namespace)
                status = _exit_status(namespace["status"])
            except SystemExit as exc:  # SIGTERM's handler, or a command exiting itself
                status = _exit_status(exc.code)
            except BaseException:  # what the interpreter does with an uncaught exception
                traceback.print_exc()
                status = 1
            finally:
                sys.stdin = saved_stdin
    finally:
        os.chdir(old_cwd)
    result = CliResult(status, out.getvalue(), err.getvalue())
    if check and status != 0:
        raise AssertionError(f"exit {status}: {result.stderr}")
    return result


@pytest.fixture(scope="session")
def cli():
    """:func:`run_cli`: ``cli("group", "in.npz", "-o", "g.npz", cwd=tmp_path)``."""
    return run_cli


# -- demo data ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """Make a directory holding a demo dataset: ``demo_dir(name, points, seed=, pattern=, file=)``.

    Each call is a new directory (tests write their outputs beside the file),
    meant for a module-scoped fixture.
    """
    from ptycho_cli.demo import make_demo

    def make(name: str, points: int, *, seed: int = 0, pattern: str = "raster",
             file: str = "demo.npz"):
        d = tmp_path_factory.mktemp(name)
        make_demo(points=points, seed=seed, pattern=pattern).to_file(d / file)
        return d

    return make


# -- one tiny `bench` run, shared -----------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory):
    """``ptycho-group bench`` at toy sizes, with ``--io``: ``(JSON report, stdout, files left)``.

    Run once for the tests of the command (tests/test_cli.py) and of its I/O rows
    (tests/test_bench_io.py): each run is some 30 child processes. One timed run per
    I/O row (``run_io_bench(repeat=1)``; the command has no flag for it): how many
    runs the fastest is picked from is a figure, not a behaviour.
    """
    from ptycho_cli import bench_io
    from ptycho_cli.commands import bench as bench_command

    d = tmp_path_factory.mktemp("tiny-bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench_command, "run_io_bench",
                   functools.partial(bench_io.run_io_bench, repeat=1))
        out = run_cli("bench", "--sizes", 1500, "--repeat", 1, "--e2e-N", 8, "--json", "b.json",
                      "--io", "--io-points", 2000, "--io-groups", 300, "--io-dir", ".", "-q",
                      cwd=d)
    return json.loads((d / "b.json").read_text()), out.stdout, sorted(p.name for p in d.iterdir())
