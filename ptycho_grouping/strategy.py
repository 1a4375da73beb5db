"""The grouping-strategy interface and the request it answers.

A strategy turns scan coordinates into groups of indices and nothing else::

    groups = strategy.group(coords, request)   # (n_groups, group_size) intp

``coords`` is an ``(M, 2)`` array of finite positions, or a
:class:`~ptycho_grouping.neighbors.NeighborIndex` built from one (which lets
repeated calls reuse the neighbour tree). ``request`` is a
:class:`GroupingRequest`, whose fields are checked once, when it is built.
:meth:`GroupingStrategy.group` checks the request against the points and the
strategy's output before returning it, with the functions of
:mod:`ptycho_grouping.validation`, so every strategy, built-in or plugin,
rejects bad input with the same message and can never hand back a malformed
group.
"""
from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from typing import ClassVar, Optional, Tuple, Union

import numpy as np

from ._warnings import warn
from .errors import InvalidParameterTypeError, ParameterWarning
from .neighbors import NeighborIndex, as_neighbor_index
from .validation import (check_bool, check_groups, check_path, check_positive_int,
                         check_request_fits, check_rng)

__all__ = ["GroupingRequest", "GroupingStrategy", "Resolution", "clamp_to_other_points"]

RNGLike = Union[None, int, np.integer, np.random.Generator, np.random.SeedSequence]


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
    progress : bool, default False
        Show a progress bar (tqdm, on stderr) during long steps. Only
        strategies with such steps draw one (the legacy strategy's enumeration
        of every point's groups); it never changes the groups.
    """

    n_groups: int
    group_size: int = 1
    neighbors: int = 4
    rng: RNGLike = field(default=None, compare=False)
    sequential: bool = False
    enable_oversampling: bool = False
    neighbor_pool_size: Optional[int] = None
    dataset_path: Union[str, os.PathLike, None] = None
    progress: bool = field(default=False, compare=False)

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
        set_("dataset_path", check_path("dataset_path", self.dataset_path))
        set_("progress", check_bool("progress", self.progress))

    def make_rng(self) -> np.random.Generator:
        """The generator for this call (SPEC 7); never NumPy's global state."""
        return np.random.default_rng(self.rng)


@dataclass(frozen=True)
class Resolution:
    """What a strategy will do with a request on ``n_points`` points, from :meth:`GroupingStrategy.resolve`.

    Attributes
    ----------
    n_groups : int
        Groups :meth:`GroupingStrategy.group` returns (may be fewer than asked).
    neighbors : int
        ``K`` used: the request's, or fewer when there are fewer other points.
    pool : int or None
        Neighbour pool used when oversampling, else None.
    notes : tuple of ParameterWarning
        Why a value differs from the request; :meth:`GroupingStrategy.group`
        emits each as a warning.
    """

    n_groups: int
    neighbors: int
    pool: Optional[int] = None
    notes: Tuple[ParameterWarning, ...] = ()


def clamp_to_other_points(k: int, name: str, n_points: int, notes: list) -> int:
    """A neighbour count clamped to the ``n_points - 1`` other points there are.

    For :meth:`GroupingStrategy.resolve` overrides: when ``k`` is clamped, a
    :class:`~ptycho_grouping.errors.ParameterWarning` naming ``name`` is
    appended to ``notes``.
    """
    if k <= n_points - 1:
        return k
    notes.append(ParameterWarning(
        name, k, "at most the {n_other} other scan points", facts={"n_other": n_points - 1},
        template=f"{{{name}}} exceeds the {{n_other}} other scan points; using {{n_other}}"))
    return n_points - 1


class GroupingStrategy(abc.ABC):
    """Base class of every grouping strategy, built-in or from a plugin.

    Subclasses set the class attributes and implement :meth:`_group`. The
    public :meth:`group` checks the request against the points before calling
    it and checks what it returns, so ``_group`` sees valid inputs only and
    its mistakes (float indices, out-of-range indices, a repeated member, a
    wrong shape) are errors naming the strategy, never passed on.

    A strategy states its requirements once: :meth:`min_neighbors` (the
    smallest ``K`` for ``C``), :meth:`check_request` (the rules a request
    must meet) and :meth:`resolve` (the values it will use, and why they
    differ from the request). Validation, ``RawData`` and the command's
    defaults all ask these; none repeats the rules.
    """

    #: Registry name, as given to ``grouping_strategy``.
    name: ClassVar[str]
    #: Deprecated strategies warn when used and are flagged in listings.
    deprecated: ClassVar[bool] = False
    #: One line for ``ptycho-group strategies``.
    summary: ClassVar[str] = ""
    #: True when ``rng=None`` means NumPy's global random state (the legacy
    #: strategy, as the old code did) rather than fresh entropy (SPEC 7).
    uses_global_random_state: ClassVar[bool] = False

    def min_neighbors(self, group_size: int) -> int:
        """Smallest ``K`` allowed for ``group_size > 1`` (default ``K >= C``)."""
        return group_size

    def check_request(self, request: GroupingRequest, n_points: int) -> None:
        """Raise :class:`~ptycho_grouping.errors.InvalidParameterError` if ``request``
        cannot be answered for ``n_points`` points.

        The default checks ``C <= M`` and ``K >= min_neighbors(C)``
        (:func:`~ptycho_grouping.validation.check_request_fits`); an override
        adds its own rules and calls this one.
        """
        check_request_fits(n_points, request.group_size, request.neighbors,
                           self.min_neighbors(request.group_size), self.name)

    def resolve(self, request: GroupingRequest, n_points: int) -> Resolution:
        """The values this strategy uses for ``request`` on ``n_points`` points.

        Runs :meth:`check_request` (so it raises what that raises), then says
        what will be used. The default uses the request as it is; a strategy
        that clamps or caps a value overrides it and adds a note saying so.
        """
        self.check_request(request, n_points)
        return self._resolve_checked(request, n_points)

    def _resolve_checked(self, request: GroupingRequest, n_points: int) -> Resolution:
        """:meth:`resolve` after :meth:`check_request` passed (for ``_group``, which
        runs after the checks and must not repeat them)."""
        return Resolution(request.n_groups, request.neighbors)

    def suggested_groups(self, coords, request: GroupingRequest) -> Optional[int]:
        """A group count for these points when the caller gives none, or None.

        ``request.n_groups`` is ignored. The default has no suggestion; a
        strategy whose natural count depends on the scan (the covering
        strategy: the groups that use every position) returns it, and the
        command uses it for ``--groups``. Notes about the request are not
        emitted here; :meth:`group` emits them.
        """
        return None

    def max_groups(self, request: GroupingRequest, n_points: int) -> int:
        """Most rows :meth:`_group` may return for ``request`` (default ``n_groups``)."""
        return request.n_groups

    def group(self, coords, request: GroupingRequest) -> np.ndarray:
        """Group scan positions.

        Parameters
        ----------
        coords : array_like of shape (M, 2) or NeighborIndex
            Finite scan positions (x, y).
        request : GroupingRequest

        Returns
        -------
        groups : ndarray of shape (n, group_size), dtype intp
            Indices into ``coords``, distinct within each group; column 0 is
            the seed. ``n`` is ``n_groups`` unless the strategy documents
            fewer (or, for the legacy strategy at gridsize 1, every point).

        Raises
        ------
        InvalidParameterTypeError, InvalidParameterError
            Bad coordinates, or a request the points cannot answer
            (``TypeError`` and ``ValueError`` subclasses).
        RuntimeError
            The strategy returned something that is not valid groups.
        """
        if not isinstance(request, GroupingRequest):
            raise InvalidParameterTypeError(
                "request", request, "a GroupingRequest",
                template=f"{{request:name}} must be {{requirement}}, got {type(request).__name__}")
        index = as_neighbor_index(coords)
        for note in self.resolve(request, index.n_points).notes:
            warn(note)
        return check_groups(self._group(index, request), index.n_points, request.group_size,
                            self.max_groups(request, index.n_points), self.name)

    @abc.abstractmethod
    def _group(self, index: NeighborIndex, request: GroupingRequest) -> np.ndarray:
        """Return the groups for validated inputs."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
