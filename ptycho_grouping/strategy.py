"""The grouping-strategy interface and the one place where inputs are validated.

A strategy turns scan coordinates into groups of indices and nothing else::

    groups = strategy.group(coords, request)   # (n_groups, group_size) intp

``coords`` is an ``(M, 2)`` array of finite positions, or a
:class:`~ptycho_grouping.neighbors.NeighborIndex` built from one (which lets
repeated calls reuse the neighbour tree). ``request`` is a
:class:`GroupingRequest`. Every check of types, ranges, the neighbour count
against the group size and the coordinates happens here, so every strategy
rejects bad input with the same message.
"""
from __future__ import annotations

import abc
import numbers
import os
from dataclasses import dataclass, field
from typing import ClassVar, Optional, Union

import numpy as np

from .neighbors import NeighborIndex, as_neighbor_index

__all__ = [
    "GroupingRequest",
    "GroupingStrategy",
    "check_bool",
    "check_positive_int",
    "check_rng",
    "validate_request",
]

RNGLike = Union[None, int, np.integer, np.random.Generator, np.random.SeedSequence]


def check_positive_int(name: str, value, *, allow_none: bool = False):
    """Return ``value`` as a Python int, or raise naming ``name`` and the value.

    Booleans and floats are rejected even when integral (``2.0``): a count
    given as a float usually means a unit mix-up upstream.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r} "
                        f"of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_rng(name: str, rng):
    """Return a SPEC 7 ``rng`` argument (None, non-negative int, Generator or
    SeedSequence), or raise naming ``name`` and the value."""
    if rng is None or isinstance(rng, (np.random.Generator, np.random.SeedSequence)):
        return rng
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, numbers.Integral):
        raise TypeError(f"{name} must be None, a non-negative int or a numpy.random.Generator, "
                        f"got {rng!r} of type {type(rng).__name__}")
    if rng < 0:
        raise ValueError(f"{name} must be a non-negative int seed, got {rng!r}")
    return int(rng)


def check_bool(name: str, value) -> bool:
    """Return ``value`` as a bool, or raise naming ``name`` and the value."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


@dataclass(frozen=True)
class GroupingRequest:
    """What to group, validated on construction.

    Parameters
    ----------
    n_groups : int
        Number of groups wanted (``nsamples`` in PtychoPINN).
    group_size : int, default 1
        Members per group, ``C = gridsize**2``.
    neighbors : int, default 4
        ``K``: members are drawn from the seed's ``K`` nearest neighbours.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Source of randomness, passed through :func:`numpy.random.default_rng`
        (Scientific Python SPEC 7). An int gives the same groups every call; a
        Generator is advanced by the call.
    sequential : bool, default False
        Deterministic mode: the first points are the seeds and the members are
        their nearest neighbours.
    enable_oversampling : bool, default False
        Allow ``n_groups`` larger than the number of points (``group_size > 1``).
    neighbor_pool_size : int or None
        Neighbour pool used when oversampling; ``None`` means ``neighbors``.
    dataset_path : str, os.PathLike or None
        Only read by strategies that keep files next to the dataset (legacy).
    """

    n_groups: int
    group_size: int = 1
    neighbors: int = 4
    rng: RNGLike = field(default=None, compare=False)
    sequential: bool = False
    enable_oversampling: bool = False
    neighbor_pool_size: Optional[int] = None
    dataset_path: Union[str, os.PathLike, None] = None

    def __post_init__(self):
        set_ = object.__setattr__.__get__(self)
        set_("n_groups", check_positive_int("n_groups", self.n_groups))
        set_("group_size", check_positive_int("group_size", self.group_size))
        set_("neighbors", check_positive_int("neighbors", self.neighbors))
        set_("neighbor_pool_size", check_positive_int(
            "neighbor_pool_size", self.neighbor_pool_size, allow_none=True))
        set_("rng", check_rng("rng", self.rng))
        set_("sequential", check_bool("sequential", self.sequential))
        set_("enable_oversampling", check_bool("enable_oversampling", self.enable_oversampling))
        if self.dataset_path is not None and not isinstance(self.dataset_path, (str, os.PathLike)):
            raise TypeError(f"dataset_path must be a path or None, got {self.dataset_path!r}")

    def make_rng(self) -> np.random.Generator:
        """The generator for this call (SPEC 7); never NumPy's global state."""
        return np.random.default_rng(self.rng)


def validate_request(index: NeighborIndex, request: GroupingRequest,
                     strategy: "GroupingStrategy") -> None:
    """Check a request against the points it will group.

    Raises ``ValueError`` naming the parameter and the value when the group
    size exceeds the number of points, or when the neighbour count is too small
    for the group size under ``strategy``'s rule.
    """
    if not isinstance(request, GroupingRequest):
        raise TypeError(f"request must be a GroupingRequest, got {type(request).__name__}")
    n_points, c = index.n_points, request.group_size
    if c > n_points:
        raise ValueError(f"group_size={c} is larger than the number of scan points "
                         f"({n_points}): a group needs {c} distinct points")
    if c > 1:
        k_min = strategy.min_neighbors(c)
        if request.neighbors < k_min:
            raise ValueError(f"neighbors (K={request.neighbors}) must be at least "
                             f"{k_min} for group_size (C={c}) with strategy "
                             f"{strategy.name!r}")


class GroupingStrategy(abc.ABC):
    """Base class of every grouping strategy, built-in or from a plugin.

    Subclasses set the class attributes and implement :meth:`_group`, which
    receives inputs already validated by :meth:`group`.
    """

    #: Registry name, as given to ``grouping_strategy``.
    name: ClassVar[str]
    #: Deprecated strategies warn when used and are flagged in listings.
    deprecated: ClassVar[bool] = False
    #: One line for ``ptycho-group strategies``.
    summary: ClassVar[str] = ""

    def min_neighbors(self, group_size: int) -> int:
        """Smallest ``K`` allowed for ``group_size > 1`` (default ``K >= C``)."""
        return group_size

    def group(self, coords, request: GroupingRequest) -> np.ndarray:
        """Group scan positions.

        Parameters
        ----------
        coords : array_like of shape (M, 2) or NeighborIndex
            Finite scan positions (x, y).
        request : GroupingRequest

        Returns
        -------
        groups : ndarray of shape (n_groups, group_size), dtype intp
            Indices into ``coords``; column 0 is the seed.
        """
        index = as_neighbor_index(coords)
        validate_request(index, request, self)
        groups = np.asarray(self._group(index, request))
        if groups.ndim != 2 or groups.shape[1] != request.group_size:
            raise RuntimeError(f"strategy {self.name!r} returned shape {groups.shape}, "
                               f"expected (n, {request.group_size})")
        return groups.astype(np.intp, copy=False)

    @abc.abstractmethod
    def _group(self, index: NeighborIndex, request: GroupingRequest) -> np.ndarray:
        """Return the groups for validated inputs."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
