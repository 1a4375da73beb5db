"""``ptycho-group strategies``: the registered grouping strategies."""
from __future__ import annotations

from ptycho_grouping.registry import list_strategies

NAME = "strategies"
HELP = "list registered grouping strategies"
DESCRIPTION = ("List the grouping strategies the registry knows (built-in and from plugins), "
               "with where each comes from and whether it is deprecated.")


def add_arguments(p) -> None:
    """No options of its own."""


def run(args) -> int:
    rows = [(i.name, i.source, "deprecated" if i.deprecated else "", i.summary)
            for i in list_strategies()]
    header = ("name", "source", "status", "summary")
    widths = [max(len(r[j]) for r in rows + [header]) for j in range(3)]
    for row in [header] + rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row[:3], widths)) + "  " + row[3])
    return 0
