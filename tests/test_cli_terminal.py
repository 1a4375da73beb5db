"""ptycho-group for a person at a terminal: progress bars, -q, --version, shared options, --help.

In-process, stderr is a terminal when ``cli(..., tty=True)`` says so; one
test runs the command on a real pseudo-terminal (``real_process``).
"""
import os
import subprocess
import sys

import pytest

from ptycho_cli.main import build_parser

COMMANDS = ("group", "demo-data", "info", "strategies", "plot", "bench", "clean-cache")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(extra)
    return env


def run_with_terminal_stderr(args, cwd, env):
    """Run the command with stderr on a pseudo-terminal: ``(returncode, stdout, terminal text)``."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ptycho_cli", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    stdout = proc.stdout.read().decode()
    proc.stdout.close()
    os.close(master)
    return proc.wait(timeout=300), stdout, b"".join(chunks).decode(errors="replace")


#: Not in a CI log, whatever runs the tests (CI hides bars).
NO_CI = {"CI": None}


def on_terminal(cli, args, cwd, env=NO_CI):
    """``(returncode, stdout, terminal text)``: the command in-process, stderr a terminal."""
    proc = cli(*args, cwd=cwd, env=env, check=False, tty=True)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def demo(demo_dir):
    return demo_dir("terminal", 800, seed=1)


GROUP = ["group", "demo.npz", "-o", "g.npz", "--groups", 300, "--chunk-groups", 50]


@pytest.mark.real_process
def test_progress_bar_on_a_terminal_not_on_a_pipe(demo, cli):
    rc, stdout, terminal = run_with_terminal_stderr(GROUP, demo, _env())
    assert rc == 0, terminal
    # tqdm's bar: redrawn in place with carriage returns, up to the total.
    assert "grouping and writing g.npz" in terminal and "100%|" in terminal
    assert "\r" in terminal and "opening demo.npz" in terminal
    assert "300 x 4" in stdout  # the summary still goes to stdout

    piped = cli(*GROUP, cwd=demo, env=NO_CI)
    assert piped.returncode == 0
    assert piped.stderr == ""  # no bar, no stray line
    assert "300 x 4" in piped.stdout


@pytest.mark.parametrize("extra, env, shown", [
    (["-q"], {}, False),                    # errors only
    (["--no-progress"], {}, False),         # refused
    ([], {"CI": "true"}, False),            # a CI log, even on a terminal
    (["--progress"], {"CI": "true"}, True),  # asked for
])
def test_progress_rule_on_a_terminal(demo, extra, env, shown, cli):
    rc, stdout, terminal = on_terminal(cli, GROUP + extra, demo, dict(NO_CI, **env))
    assert rc == 0, terminal
    assert ("grouping and writing g.npz: 100%|" in terminal) is shown
    if "-q" in extra:
        assert terminal == "" and stdout == ""


def test_progress_can_be_asked_for_when_piped(demo, cli):
    proc = cli(*GROUP, "--progress", cwd=demo, env=NO_CI, check=False)
    assert proc.returncode == 0 and "grouping and writing g.npz: 100%|" in proc.stderr


def test_log_lines_print_above_the_bar_not_through_it(demo, cli):
    rc, _, terminal = on_terminal(cli, GROUP + ["-v"], demo)
    assert rc == 0
    # Each log line is whole, on its own line, although a bar was being redrawn.
    wrote = [line for line in terminal.replace("\r", "\n").splitlines()
             if "INFO ptycho_data.grouped_writer: wrote 300 groups" in line]
    assert len(wrote) == 1 and wrote[0].startswith("INFO")


def test_quiet_prints_errors_only(demo, cli):
    ok = cli("-q", *GROUP, cwd=demo, env=NO_CI, check=False)
    assert ok.returncode == 0 and ok.stdout == "" and ok.stderr == ""
    bad = cli("group", "demo.npz", "-o", "g.npz", "--groups", 5000, "-q", cwd=demo, env=NO_CI,
              check=False)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("ptycho-group: error: demo.npz: --groups 5000 is larger")
    demo_data = cli("demo-data", "-o", "d.npz", "--points", 50, "-q", cwd=demo, env=NO_CI,
                    check=False)
    assert demo_data.returncode == 0 and demo_data.stdout == demo_data.stderr == ""
    assert (demo / "d.npz").is_file()


def test_version(tmp_path, cli):
    from ptycho_grouping import __version__

    proc = cli("--version", cwd=tmp_path, env=NO_CI, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == f"ptycho-group {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_shared_options_after_every_subcommand(tmp_path, command, cli):
    parser = build_parser()
    for flags in (["-q"], ["-v", "-v"], ["--debug"], ["--progress"], ["--no-progress"]):
        tail = {"group": ["-o", "x.npz"], "demo-data": ["-o", "x.npz"], "info": ["x.npz"],
                "plot": ["-o", "x.png"], "clean-cache": ["."]}.get(command, [])
        args = parser.parse_args([command, *tail, *flags])
        assert args.command == command
        given = {"-q": ("quiet", True), "-v": ("verbose", 2), "--debug": ("debug", True),
                 "--progress": ("progress", True), "--no-progress": ("progress", False)}
        name, value = given[flags[0]]
        assert getattr(args, name) == value
    # And through the command: the shared options are listed in every --help.
    out = cli(command, "--help", cwd=tmp_path, env=NO_CI, check=False).stdout
    for option in ("-v, --verbose", "-q, --quiet", "--debug", "--progress, --no-progress"):
        assert option in out, (command, option)


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_every_default(tmp_path, command, cli):
    out = " ".join(cli(command, "--help", cwd=tmp_path, env=NO_CI, check=False).stdout.split())
    sub = _subparsers()[command]
    checked = 0
    for action in sub._actions:
        default = action.default
        if not action.option_strings or default is None or default is False \
                or default == "==SUPPRESS==":
            continue
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        assert f"(default: {shown})" in out, (command, action.option_strings)
        checked += 1
    # Options whose default depends on the data say what it is in words.
    if command in ("group", "plot"):
        assert "--neighbors" in out and "(default: 7, or the smallest K the strategy" in out
        assert "(default: 512, or the number of scan points when there are fewer;" in out
        assert "cover_scan: the groups that use every position)" in out
    if command == "group":  # --out-format follows OUT's ending, said in words
        assert "(default: from OUT's ending, .h5/.hdf5 or .zarr, else npz)" in out
    assert checked >= {"group": 3, "demo-data": 3, "bench": 8, "plot": 4}.get(command, 0)


def test_help_on_demo_data_describes_pattern_and_seed(tmp_path, cli):
    out = " ".join(cli("demo-data", "--help", cwd=tmp_path, env=NO_CI).stdout.split())
    assert "Simulate a ptychography scan" in out
    assert "Fermat spiral" in out and "(default: raster)" in out
    assert "random seed of the jitter, the positions and the object (default: 0)" in out


def test_demo_data_and_cache_scan_show_progress_on_a_terminal(demo, cli):
    rc, stdout, terminal = on_terminal(
        cli, ["demo-data", "-o", "bar.npz", "--points", 300], demo)
    assert rc == 0 and "simulating 300 raster positions into bar.npz" in terminal
    assert "300/300" in terminal and "wrote bar.npz" in stdout
    for i in range(1200):  # enough files for the scan to report a count
        (demo / f"f{i}.txt").touch()
    rc, stdout, terminal = on_terminal(cli, ["clean-cache", "--dry-run", "."], demo)
    assert rc == 0 and "scanning:" in terminal and " files" in terminal
    assert stdout == "no legacy cache files found\n"
    piped = cli("clean-cache", "--dry-run", ".", cwd=demo, env=NO_CI, check=False)
    assert piped.stderr == "" and piped.stdout == stdout
