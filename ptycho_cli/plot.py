"""``ptycho-group plot``: scan positions with a sample of groups drawn."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ptycho_grouping.atomic_write import atomic_write


def plot_groups(x, y, groups, path, *, show=40, title="", seed=0):
    """Save a PNG of all positions and ``show`` groups (seed marked, members joined).

    Needs matplotlib (the ``plot`` extra); raises ``ImportError`` with the
    install command when it is missing.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'ptycho-grouping[plot]'") from None
    x, y = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(seed)
    pick = groups[rng.choice(len(groups), min(show, len(groups)), replace=False)]
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    ax.scatter(x, y, s=2, c="0.75", linewidths=0, label="scan positions")
    colours = plt.cm.tab20(np.linspace(0, 1, len(pick)))
    for group, colour in zip(pick, colours):
        gx, gy = x[group], y[group]
        for member in range(1, len(group)):
            ax.plot([gx[0], gx[member]], [gy[0], gy[member]], color=colour, lw=1.2)
        ax.scatter(gx[1:], gy[1:], s=14, color=colour, zorder=3)
        ax.scatter(gx[:1], gy[:1], s=50, marker="*", color=colour, edgecolors="k",
                   linewidths=0.5, zorder=4)
    ax.set_aspect("equal")
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(title or f"{len(pick)} of {len(groups)} groups (star = seed)")
    fig.tight_layout()
    try:
        with atomic_write(Path(path)) as tmp, open(tmp, "wb") as fh:
            fig.savefig(fh, format="png")
    finally:
        plt.close(fig)
