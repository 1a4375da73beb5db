"""Put the refactor into a PtychoPINN checkout, or the ``ptycho`` surface into a folder.

The wheel never installs a package named ``ptycho`` (PtychoPINN owns the
name). The PtychoPINN-facing surface, the repository's ``ptycho/`` folder,
ships as data under ``ptycho_data/surface`` (nothing imports it there), and
this module copies it where a user wants it:

* :func:`adopt` on a PtychoPINN checkout replaces ``ptycho/raw_data.py`` with
  the surface's (a thin subclass of :class:`ptycho_data.raw_data.RawData`
  that reads PtychoPINN's own ``ptycho.params``) and adds one field,
  ``grouping_strategy``, to PtychoPINN's ``TrainingConfig`` and
  ``InferenceConfig``. PtychoPINN's ``params.py`` and the rest of its
  ``config`` are kept. Running it again changes nothing.
* :func:`write_standalone` writes the whole surface (``raw_data``,
  ``params``, ``config``) as ``DIR/ptycho`` for users without PtychoPINN.

Files are replaced atomically; nothing is written when a check fails.
"""
from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import List

from ptycho_grouping.atomic_write import atomic_write
from ptycho_grouping.registry import DEFAULT_STRATEGY

__all__ = ["Change", "adopt", "write_standalone", "surface_dir", "FIELD_LINE", "CONFIG_CLASSES"]

#: The package the surface ships as (``package-dir`` in pyproject maps it to ``ptycho/``).
SURFACE_PACKAGE = "ptycho_data.surface"
#: The dataclasses of PtychoPINN's ``ptycho/config/config.py`` that gain the field.
CONFIG_CLASSES = ("TrainingConfig", "InferenceConfig")
#: The line added to each of them (after its last field), indented as its fields are.
FIELD_LINE = (f'grouping_strategy: str = "{DEFAULT_STRATEGY}"  '
              "# ptycho_grouping strategy name; added by ptycho-group adopt")


@dataclass(frozen=True)
class Change:
    """One file :func:`adopt` or :func:`write_standalone` writes, or found already done."""

    path: Path
    what: str
    done: bool  # False: it already was so, nothing written


def surface_dir() -> Path:
    """Where the ``ptycho`` surface's files are, installed or in a checkout (not imported)."""
    spec = importlib.util.find_spec(SURFACE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the ptycho surface ({SURFACE_PACKAGE}) is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def surface_files() -> List[Path]:
    """The surface's ``.py`` files, relative to :func:`surface_dir`."""
    root = surface_dir()
    return sorted(p.relative_to(root) for p in root.rglob("*.py"))


def _with_field(source: str, path: Path) -> str:
    """``source`` of a config module with :data:`FIELD_LINE` in each class of :data:`CONFIG_CLASSES`."""
    tree = ast.parse(source, filename=str(path))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    if "TrainingConfig" not in classes:
        raise ValueError(f"{path} defines no TrainingConfig: is this a PtychoPINN checkout?")
    lines = source.splitlines(keepends=True)
    inserts = []
    for name in CONFIG_CLASSES:
        node = classes.get(name)
        if node is None:
            continue
        fields = [s for s in node.body if isinstance(s, ast.AnnAssign)
                  and isinstance(s.target, ast.Name)]
        if any(f.target.id == "grouping_strategy" for f in fields):
            continue
        if not fields:
            raise ValueError(f"{path}: {name} has no fields to add grouping_strategy after")
        last = fields[-1]
        inserts.append((last.end_lineno, " " * last.col_offset + FIELD_LINE + "\n"))
    for line_no, text in sorted(inserts, reverse=True):  # bottom up: line numbers stay valid
        lines.insert(line_no, text)
    return "".join(lines)


def _apply(pairs, dry_run: bool) -> List[Change]:
    """A :class:`Change` for each ``(path, new text, what)``, ``done`` (and, unless
    ``dry_run``, written atomically) where the file differs."""
    changes = []
    for path, text, what in pairs:
        old = path.read_text(encoding="utf-8") if path.exists() else None
        changes.append(Change(path, what, old != text))
        if old != text and not dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
    return changes


def adopt(checkout, dry_run: bool = False) -> List[Change]:
    """Put the refactor into the PtychoPINN checkout ``checkout``.

    Parameters
    ----------
    checkout : str or os.PathLike
        The checkout's top folder (the one holding ``ptycho/``).
    dry_run : bool, default False
        Report what would change and write nothing.

    Returns
    -------
    list of Change
        ``ptycho/raw_data.py`` and ``ptycho/config/config.py``, each with
        ``done=False`` when it already was adopted.

    Raises
    ------
    FileNotFoundError, ValueError
        ``checkout`` is not a PtychoPINN checkout (no ``ptycho/raw_data.py``,
        ``ptycho/params.py`` or a ``TrainingConfig`` in
        ``ptycho/config/config.py``); nothing is written.
    """
    root = Path(checkout)
    package = root / "ptycho"
    for name in ("raw_data.py", "params.py", "config/config.py"):
        if not (package / name).is_file():
            # Named by its path: the command's PATH and the function's checkout alike.
            raise FileNotFoundError(f"{root} is not a PtychoPINN checkout: it has no "
                                    f"ptycho/{name}")
    config = package / "config" / "config.py"
    pairs = [
        (package / "raw_data.py", (surface_dir() / "raw_data.py").read_text(encoding="utf-8"),
         "RawData on ptycho_data (PtychoPINN's params kept)"),
        (config, _with_field(config.read_text(encoding="utf-8"), config),
         "grouping_strategy added to " + ", ".join(CONFIG_CLASSES)),
    ]
    return _apply(pairs, dry_run)


def write_standalone(directory, dry_run: bool = False) -> List[Change]:
    """Write the ``ptycho`` surface as ``directory/ptycho`` for use without PtychoPINN.

    With ``directory`` on ``sys.path`` (a script run from it, or
    ``PYTHONPATH``), ``from ptycho.raw_data import RawData``, ``ptycho.params``
    and ``ptycho.config.config`` work as in PtychoPINN, on this data layer.
    Refuses a ``directory/ptycho`` that holds anything but the surface (a
    PtychoPINN package, say): use :func:`adopt` there.
    """
    target = Path(directory) / "ptycho"
    source = surface_dir()
    files = surface_files()
    if target.exists():
        foreign = sorted(str(p.relative_to(target)) for p in target.rglob("*.py")
                         if p.relative_to(target) not in files)
        if foreign or not target.is_dir():
            raise FileExistsError(f"{target} exists and is not the ptycho surface (it has "
                                  f"{', '.join(foreign[:3]) or 'a file by that name'}); for a "
                                  "PtychoPINN checkout use 'ptycho-group adopt PATH'")
    pairs = [(target / rel, (source / rel).read_text(encoding="utf-8"), "surface")
             for rel in files]
    return _apply(pairs, dry_run)
