"""The built wheel installs beside a ``ptycho`` distribution without touching it.

A stand-in for PtychoPINN (a distribution whose top-level package is
``ptycho``, with the files the refactor concerns: ``raw_data.py``,
``params.py``, ``config/config.py``) and this project's wheel are installed
into one fresh virtual environment, in both orders, and this project also as
an editable install. Every stand-in file must be byte-identical to the
stand-in's wheel, ``import ptycho`` must be the stand-in's, and
``ptycho-group`` must run on its own data layer.

The environments are built offline (``--no-index --no-build-isolation``);
they see this environment's numpy, scipy, pluggy and tqdm through a ``.pth``
line, so nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import site
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# One test process runs this file: its builds share the checkout's build/ directory
# (setuptools), and the wheels are built once for the module.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheels")]

STANDIN_FILES = {
    "ptycho/__init__.py": "MARK = 'stand-in'\n",
    "ptycho/params.py": "cfg = {'N': 128, 'gridsize': 2}\n\ndef get_padded_size():\n    return 1\n",
    "ptycho/raw_data.py": "MARK = 'stand-in raw_data'\n",
    "ptycho/loader.py": "from .raw_data import MARK\n",
    "ptycho/config/__init__.py": "",
    "ptycho/config/config.py": "class PyTorchExecutionConfig:\n    pass\n",
}


def run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def build_wheel(source: Path, out: Path) -> Path:
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out), str(source)])
    return next(out.glob("*.whl"))


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    pytest.importorskip("setuptools")
    tmp = tmp_path_factory.mktemp("wheels")
    standin = tmp / "standin"
    for rel, text in STANDIN_FILES.items():
        (standin / rel).parent.mkdir(parents=True, exist_ok=True)
        (standin / rel).write_text(text)
    (standin / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "standin-ptychopinn"
        version = "1.0"
        [tool.setuptools]
        packages = ["ptycho", "ptycho.config"]
        """))
    return {"standin": build_wheel(standin, tmp / "standin-dist"),
            "ours": build_wheel(ROOT, tmp / "ours-dist")}


def wheel_files(wheel: Path) -> dict:
    """Installed path -> bytes, for the package files of a wheel (not its .dist-info)."""
    with zipfile.ZipFile(wheel) as zf:
        return {name: zf.read(name) for name in zf.namelist()
                if ".dist-info/" not in name and not name.endswith("/")}


def make_venv(path: Path) -> Path:
    """A fresh environment (no pip of its own) that sees this one's packages after its own."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    ours = [sysconfig.get_paths()["purelib"]] + site.getsitepackages()
    # Plain path lines: the directories are appended, their own .pth files (this
    # environment's editable-install hook) are not run.
    (Path(purelib.strip()) / "outer.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n")
    return python


def pip_install(python: Path, *args):
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", "--no-build-isolation", *args])


def site_packages(python: Path) -> Path:
    return Path(run([str(python), "-c",
                     "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())


def check_environment(python: Path, standin_wheel: Path, tmp_path: Path):
    sp = site_packages(python)
    expected = wheel_files(standin_wheel)
    assert expected, "the stand-in wheel holds no files"
    changed = [name for name, data in expected.items()
               if hashlib.sha256((sp / name).read_bytes()).digest()
               != hashlib.sha256(data).digest()]
    assert changed == []
    extra = sorted(str(p.relative_to(sp)) for p in (sp / "ptycho").rglob("*.py")
                   if str(p.relative_to(sp)) not in expected)
    assert extra == []          # nothing of ours added under the stand-in's package
    assert not (sp / "migration").exists()
    out = run([str(python), "-c", "import ptycho, ptycho.loader, ptycho.params, ptycho_data; "
               "print(ptycho.MARK, ptycho.loader.MARK, hasattr(ptycho.params, 'get_padded_size'),"
               " ptycho_data.__file__)"], cwd=tmp_path).split()
    assert out[:5] == ["stand-in", "stand-in", "raw_data", "True", out[4]]
    ptycho_group = python.parent / "ptycho-group"
    run([str(ptycho_group), "-q", "group", "--points", "400", "--groups", "16",
         "-o", str(tmp_path / "g.npz")], cwd=tmp_path)
    import numpy as np

    with np.load(tmp_path / "g.npz", allow_pickle=False) as g:
        assert g["nn_indices"].shape == (16, 4) and g["X_full"].dtype == np.float32
    return out[4]


@pytest.mark.parametrize("order", ["standin-first", "ours-first"])
def test_wheel_beside_a_ptycho_distribution_in_either_order(wheels, tmp_path, order):
    python = make_venv(tmp_path / "env")
    first, second = (("standin", "ours") if order == "standin-first" else ("ours", "standin"))
    pip_install(python, str(wheels[first]))
    pip_install(python, str(wheels[second]))
    data_layer = check_environment(python, wheels["standin"], tmp_path)
    assert data_layer.startswith(str(site_packages(python)))


def test_editable_install_beside_a_ptycho_distribution(wheels, tmp_path):
    python = make_venv(tmp_path / "env")
    pip_install(python, str(wheels["standin"]))
    pip_install(python, "-e", str(ROOT))
    data_layer = check_environment(python, wheels["standin"], tmp_path)
    assert data_layer.startswith(str(ROOT))  # the editable install serves the checkout


def test_wheel_ships_no_ptycho_and_no_generic_name(wheels):
    tops = {name.split("/")[0] for name in wheel_files(wheels["ours"])}
    assert tops == {"ptycho_data", "ptycho_grouping", "ptycho_cli"}
    names = wheel_files(wheels["ours"])
    # The surface ships as data for `ptycho-group adopt`, equal to the checkout's ptycho/.
    surface = {n: d for n, d in names.items() if n.startswith("ptycho_data/surface/")}
    assert {n.removeprefix("ptycho_data/surface/") for n in surface} == {
        str(p.relative_to(ROOT / "ptycho")) for p in (ROOT / "ptycho").rglob("*.py")}
    for name, data in surface.items():
        assert (ROOT / "ptycho" / name.removeprefix("ptycho_data/surface/")).read_bytes() == data
