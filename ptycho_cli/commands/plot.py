"""``ptycho-group plot``: a picture of the scan positions and some of the groups."""
from __future__ import annotations

from ..grouping import add_grouping_options, check_grouping_flags, naming, plan_grouping
from ..inputs import open_input
from ..options import check_output_path, positive_int
from ..output import note, summary
from ..plot import COLOR_BY, plot_groups
from ..progress import stage

NAME = "plot"
HELP = "draw scan positions and a sample of groups (needs matplotlib)"
DESCRIPTION = ("Group INPUT (or the built-in demo) as 'group' would and draw the scan positions "
               "with some of the groups: each group's seed as a star, its members joined to it, "
               "positions no group uses marked apart; --color-by use-count colours every "
               "position by how many groups use it. The title says how many groups are drawn "
               "of how many.")


def add_arguments(p) -> None:
    p.add_argument("input", nargs="?", metavar="INPUT.npz", help="dataset (default: built-in demo)")
    p.add_argument("-o", "--output", required=True, metavar="groups.png", help="PNG to write")
    p.add_argument("--groups-shown", "--show", dest="groups_shown", type=positive_int, default=40,
                   help="how many of the groups to draw (a random sample of them)")
    p.add_argument("--color-by", choices=COLOR_BY, default="group",
                   help="colour of the scan positions: 'group' grey when some group uses them, "
                        "'use-count' by how many groups use each, with a colour bar (unused "
                        "positions, 0, in red) (default: group)")
    add_grouping_options(p)


def run(args) -> int:
    check_grouping_flags(args)
    out_path = check_output_path(args.output, args.input)
    raw, _, source = open_input(args)
    with naming(args.input):
        plan = plan_grouping(args, len(raw), raw.neighbor_index)
        for text in plan.notes:
            note(args, text)
        # Only the indices: a picture needs no patterns gathered.
        nn = raw.group_indices(raw.diff3d.shape[1], **plan.library_kwargs(args, args.input))
    shown = min(args.groups_shown, len(nn))
    with stage(args.show_progress, f"drawing {out_path}"):
        plot_groups(raw.xcoords, raw.ycoords, nn, out_path, show=shown, seed=args.seed,
                    color_by=args.color_by,
                    title=f"{source}: {plan.strategy}, gridsize "
                          f"{plan.gridsize}, {plan.describe_k()}")
    summary(args, f"wrote {out_path}: {shown} of {len(nn)} groups drawn")
    return 0
