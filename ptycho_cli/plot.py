"""``ptycho-group plot``: scan positions with a sample of groups drawn."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ptycho_grouping.atomic_write import atomic_write


#: What ``color_by`` may be: one colour for every used position, or its use count.
COLOR_BY = ("group", "use-count")


def plot_groups(x, y, groups, path, *, show=40, title="", seed=0, color_by="group"):
    """Save a PNG of all positions and ``show`` of the groups, with a legend.

    Each drawn group has its own colour: the seed is a star, the members dots
    joined to it. Positions that no group uses (of all ``groups``, drawn or
    not) are marked apart. The title says how many of the groups are drawn,
    after ``title`` when one is given. ``color_by="use-count"`` colours every
    position by how many groups use it, with a colour bar (see :func:`draw_groups`).

    Needs matplotlib (the ``plot`` extra); raises ``ImportError`` with the
    install command when it is missing.
    """
    fig = draw_groups(x, y, groups, show=show, title=title, seed=seed, color_by=color_by)
    import matplotlib.pyplot as plt
    try:
        with atomic_write(Path(path)) as tmp, open(tmp, "wb") as fh:
            fig.savefig(fh, format="png")
    finally:
        plt.close(fig)


def use_counts(groups, n_points: int) -> np.ndarray:
    """How many of ``groups`` use each of the ``n_points`` positions (a position twice in a
    group counts twice)."""
    return np.bincount(np.asarray(groups).ravel(), minlength=n_points)


def draw_groups(x, y, groups, *, show=40, title="", seed=0, color_by="group"):
    """The figure :func:`plot_groups` saves (the caller closes it).

    With ``color_by="use-count"`` the positions are one scatter (the axes'
    first collection) whose colour values are :func:`use_counts`, on a
    colour map whose lowest colour is reserved for 0 so that unused positions
    stand out (they are also crossed in red), with a colour bar.
    """
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {', '.join(COLOR_BY)}, got {color_by!r}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'ptycho-grouping[plot]'") from None
    x, y = np.asarray(x), np.asarray(y)
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    pick = groups[rng.choice(len(groups), min(show, len(groups)), replace=False)]
    counts = use_counts(groups, len(x))
    used = counts > 0
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    if color_by == "use-count":
        top = max(int(counts.max()), 1)
        # One colour per count; 0 (unused) gets red so that holes stand out.
        colours = plt.get_cmap("viridis", top)(np.arange(top))
        cmap = matplotlib.colors.ListedColormap(np.vstack([[0.85, 0.1, 0.1, 1.0], colours]))
        norm = matplotlib.colors.BoundaryNorm(np.arange(-0.5, top + 1), cmap.N)
        dots = ax.scatter(x, y, s=4, c=counts, cmap=cmap, norm=norm, linewidths=0)
        bar = fig.colorbar(dots, ax=ax, shrink=0.8, ticks=_count_ticks(top))
        bar.set_label("groups using the position (0: unused)")
    else:
        ax.scatter(x[used], y[used], s=2, c="0.6", linewidths=0)
    ax.scatter(x[~used], y[~used], s=6, c="tab:red", marker="x", linewidths=0.6)
    colours = plt.cm.tab20(np.linspace(0, 1, len(pick)))
    for group, colour in zip(pick, colours):
        gx, gy = x[group], y[group]
        for member in range(1, len(group)):
            ax.plot([gx[0], gx[member]], [gy[0], gy[member]], color=colour, lw=1.2)
        ax.scatter(gx[1:], gy[1:], s=14, color=colour, zorder=3)
        ax.scatter(gx[:1], gy[:1], s=50, marker="*", color=colour, edgecolors="k",
                   linewidths=0.5, zorder=4)
    # Proxy artists: one legend entry per kind of mark, not per group.
    handles = [
        Line2D([], [], ls="", marker="*", ms=10, mfc="0.4", mec="k", label="seed of a drawn group"),
        Line2D([], [], color="0.4", marker="o", ms=4, label="members (joined to their seed)"),
        Line2D([], [], ls="", marker="o", ms=3, mfc="0.6", mec="none",
               label="scan positions in some group" if color_by == "group"
               else "scan positions, coloured by use count"),
        Line2D([], [], ls="", marker="x", ms=5, color="tab:red",
               label=f"scan positions in no group ({int(np.count_nonzero(~used))})"),
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9)
    ax.set_aspect("equal")
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    drawn = f"{len(pick)} of {len(groups)} groups drawn"
    ax.set_title(f"{title}\n{drawn}" if title else drawn)
    fig.tight_layout()
    return fig


def _count_ticks(top: int) -> np.ndarray:
    """At most about ten integer ticks from 0 to ``top``."""
    return np.arange(0, top + 1, max(1, -(-top // 10)))
