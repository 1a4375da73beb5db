"""The grouping options of ``group`` and ``plot``, and the values a run actually uses.

Defaults come from the library (the registry's default strategy, the
configuration's ``n_groups``) and are fitted to the dataset, so that every
gridsize works without extra flags: ``--neighbors`` defaults to the larger of
:data:`DEFAULT_NEIGHBORS` and the smallest K the strategy allows for the
gridsize, ``--groups`` to the configuration's default capped at the number
of scan points.
"""
from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, field, replace
from typing import Iterator, List, Optional

import numpy as np

from ptycho_data.config import TrainingConfig
from ptycho_data.parameter_names import CALLER_NAMES
from ptycho_grouping import GroupingRequest
from ptycho_grouping.errors import Names, ParameterIssue
from ptycho_grouping.registry import DEFAULT_STRATEGY, get_strategy

from .inputs import DEMO_POINTS
from .options import UsageError, non_negative_int, positive_int

__all__ = ["DEFAULT_NEIGHBORS", "DEFAULT_GROUPS", "add_grouping_options", "GroupingPlan",
           "check_grouping_flags", "plan_grouping", "zero_spread_groups", "naming",
           "COMMAND_NAMES", "in_command_words"]

#: K when ``--neighbors`` is not given and the gridsize allows it: members
#: drawn from a few more neighbours than a 2x2 group needs vary between draws.
DEFAULT_NEIGHBORS = 7
#: The configuration's default ``n_groups`` (resolved when a config is made).
DEFAULT_GROUPS = TrainingConfig().n_groups


def add_grouping_options(p) -> list:
    """The options that choose the groups (shared by ``group`` and ``plot``); returns their actions."""
    g = p.add_argument_group("grouping")
    actions = []

    def add(*flags, **kwargs):
        actions.append(g.add_argument(*flags, **kwargs))

    add("--gridsize", metavar="G", type=positive_int, default=2,
        help="each group has C = gridsize**2 members")
    add("--groups", metavar="B", type=positive_int, default=None,
        help=f"number of groups (default: {DEFAULT_GROUPS}, or the number of scan "
             "points when there are fewer; cover_scan: the groups that use every position)")
    add("--neighbors", "-K", metavar="K", type=positive_int, default=None,
        help="members come from the seed's K nearest neighbours (default: "
             f"{DEFAULT_NEIGHBORS}, or the smallest K the strategy allows for the "
             "gridsize when that is larger: gridsize**2 for the default strategy)")
    add("--seed", metavar="SEED", type=non_negative_int, default=0, help="random seed")
    add("--strategy", metavar="NAME", default=DEFAULT_STRATEGY,
        help="grouping strategy (see 'ptycho-group strategies')")
    add("--sequential", action="store_true",
        help="deterministic: first points as seeds, nearest neighbours as members")
    add("--oversample", action="store_true",
        help="allow more groups than scan points (gridsize > 1)")
    add("--pool-size", metavar="P", type=positive_int, default=None,
        help="neighbour pool when oversampling (default: K)")
    add("--points", metavar="M", type=positive_int, default=None,
        help=f"size of the built-in demo when INPUT is omitted (default: {DEMO_POINTS})")
    return actions


#: The data layer's argument -> the ``dest`` of the option that sets it.
_DEST_OF = {"nsamples": "groups", "gridsize": "gridsize", "K": "neighbors", "seed": "seed",
            "sequential_sampling": "sequential", "enable_oversampling": "oversample",
            "neighbor_pool_size": "pool_size", "grouping_strategy": "strategy"}


def _command_names() -> Names:
    """The data layer's argument names -> the flags, read from the options themselves."""
    flags = {action.dest: next(o for o in action.option_strings if o.startswith("--"))
             for action in add_grouping_options(argparse.ArgumentParser(add_help=False))}
    return Names({arg: flags[dest] for arg, dest in _DEST_OF.items()}, flags=True)


#: How the command spells parameters: ``--groups 60``, ``--gridsize 2 (C=4)``, ``--oversample``.
COMMAND_NAMES = _command_names()


def in_command_words(issue, prefix: str = ""):
    """An error or warning about a parameter, spelled in flags (``prefix`` before it).

    An engine issue goes through the data layer's names first, so that one
    table, keyed by the data layer's arguments, serves both. Anything else
    comes back as it is.
    """
    if not isinstance(issue, ParameterIssue) or COMMAND_NAMES in issue.names:
        return issue
    if CALLER_NAMES not in issue.names:  # raised by the engine to us directly
        issue = issue.renamed(CALLER_NAMES)
    return issue.renamed(COMMAND_NAMES, prefix=prefix)


def check_grouping_flags(args) -> None:
    """Refuse combinations of grouping flags that cannot mean anything, before any work."""
    if args.pool_size is not None and not args.oversample:
        raise UsageError("--pool-size only applies with --oversample")
    get_strategy(args.strategy)  # an unknown name: ValueError listing the registered ones


@dataclass
class GroupingPlan:
    """The values a run uses (after defaults and clamping) and the notes explaining them."""

    gridsize: int
    groups: int
    neighbors: int
    neighbors_used: int
    strategy: str
    notes: List[str] = field(default_factory=list)

    def library_kwargs(self, args, dataset_path: Optional[str]) -> dict:
        """Keyword arguments for ``generate_grouped_data`` / ``write_grouped``."""
        return dict(K=self.neighbors, nsamples=self.groups, seed=args.seed,
                    sequential_sampling=args.sequential, gridsize=self.gridsize,
                    enable_oversampling=args.oversample, neighbor_pool_size=args.pool_size,
                    grouping_strategy=self.strategy, dataset_path=dataset_path)

    def describe_k(self) -> str:
        if self.gridsize == 1:
            return f"K {self.neighbors} (unused: a group is its seed alone)"
        if self.neighbors_used == self.neighbors:
            return f"K {self.neighbors}"
        return (f"K {self.neighbors_used} (--neighbors {self.neighbors} clamped to the "
                f"{self.neighbors_used} other scan points)")


def plan_grouping(args, n_points: int, neighbor_index=None) -> GroupingPlan:
    """Fill in the defaults that depend on the dataset and the strategy.

    ``neighbor_index`` (a callable returning the positions' ``NeighborIndex``,
    e.g. ``RawData.neighbor_index``, which grouping then reuses) lets a
    strategy suggest the group count when ``--groups`` is not given
    (:meth:`~ptycho_grouping.strategy.GroupingStrategy.suggested_groups`);
    it is called only then.
    """
    strategy = get_strategy(args.strategy)
    c = args.gridsize ** 2
    notes = []
    k = args.neighbors
    if k is None:
        k = max(DEFAULT_NEIGHBORS, strategy.min_neighbors(c))
        if k != DEFAULT_NEIGHBORS:
            notes.append(f"--neighbors defaults to {k} for gridsize {args.gridsize} "
                         f"(strategy {args.strategy} needs K >= {strategy.min_neighbors(c)})")
    # The strategy checks the request (so a refusal comes before any writing) and
    # says what it will use: K clamped to the other points there are, which the
    # summary reports. Its notes come as warnings when it groups.
    request = GroupingRequest(n_groups=1, group_size=c, neighbors=k, rng=args.seed,
                              sequential=args.sequential, enable_oversampling=args.oversample,
                              neighbor_pool_size=args.pool_size)
    groups = args.groups
    if groups is None and neighbor_index is not None:
        groups = strategy.suggested_groups(neighbor_index(), request)
        if groups is not None:
            notes.append(f"--groups defaults to {groups} for strategy {args.strategy}: "
                         "the groups that use every scan position")
    if groups is None:
        groups = min(DEFAULT_GROUPS, n_points)
        if groups < DEFAULT_GROUPS:
            notes.append(f"--groups defaults to {DEFAULT_GROUPS}, capped at the {n_points} "
                         "scan points")
    request = replace(request, n_groups=groups)
    k_used = strategy.resolve(request, n_points).neighbors if c > 1 else k
    return GroupingPlan(args.gridsize, groups, k, k_used, args.strategy, notes)


def zero_spread_groups(x, y, nn: np.ndarray) -> int:
    """How many groups of more than one member have all members at one position."""
    if nn.shape[1] < 2:
        return 0
    gx, gy = np.asarray(x)[nn], np.asarray(y)[nn]
    flat = (gx == gx[:, :1]).all(axis=1) & (gy == gy[:, :1]).all(axis=1)
    return int(np.count_nonzero(flat))


@contextlib.contextmanager
def naming(source: Optional[str]) -> Iterator[None]:
    """Errors about the data name the file the user gave (``source``) when they do not already.

    An error about a parameter comes out in flags, the same class, chained
    from the library's.
    """
    try:
        yield
    except ParameterIssue as exc:
        raise in_command_words(exc, prefix=f"{source}: " if source else "") from exc
    except ValueError as exc:
        text = str(exc)
        if source and source not in text:
            raise ValueError(f"{source}: {text}") from exc
        raise
