"""Every check of the grouping engine's inputs and of a strategy's output.

In the style of scikit-learn's ``utils/validation.py``: small functions that
return the value they were given (normalised: NumPy integers become ``int``)
or raise an :class:`~ptycho_grouping.errors.InvalidParameterTypeError` /
:class:`~ptycho_grouping.errors.InvalidParameterError` (``TypeError`` /
``ValueError`` subclasses) carrying the parameter's name, value and
requirement, so that each layer words it in its own caller's names.
:class:`~ptycho_grouping.strategy.GroupingRequest` runs the per-field checks
once, on construction; :meth:`GroupingStrategy.group
<ptycho_grouping.strategy.GroupingStrategy.group>` runs the checks that need
the points (:func:`check_request_fits`, and a strategy's own rules such as
:func:`check_legacy_request`) once per call, and :func:`check_groups` on
what the strategy returned before anyone sees it.

:func:`check_scalar` takes ``(x, name, ...)`` as scikit-learn's does; the
older helpers :func:`check_positive_int`, :func:`check_bool` and
:func:`check_rng` take the name first, as the data layer calls them.

This module imports only :mod:`~ptycho_grouping.errors` from the rest of
the package, so every other module may use it.
"""
from __future__ import annotations

import math
import numbers
import os

import numpy as np

from .errors import InvalidParameterError, InvalidParameterTypeError

__all__ = [
    "check_bool",
    "check_coords",
    "check_groups",
    "check_legacy_request",
    "check_oversampling_request",
    "check_path",
    "check_positive_int",
    "check_request_fits",
    "check_rng",
    "check_scalar",
]

_BRACKETS = {"both": "[]", "left": "[)", "right": "(]", "neither": "()"}
# numpy.random.RandomState takes seeds below this; the legacy strategy seeds one.
_RANDOMSTATE_SEED_LIMIT = 2 ** 32


def _esc(text: str) -> str:
    """``text`` as literal words inside a message template."""
    return str(text).replace("{", "{{").replace("}", "}}")


def _type_error(name: str, value, requirement: str) -> InvalidParameterTypeError:
    return InvalidParameterTypeError(
        name, value, _esc(requirement),
        template=f"{{{name}:name}} must be {{requirement}}, got {{{name}:value}} of type "
                 f"{_esc(type(value).__name__)}")


def _is_bool(x) -> bool:
    return isinstance(x, (bool, np.bool_))


def _describe(target_type, min_val, max_val, include_boundaries: str) -> str:
    """``a positive integer``, ``an integer in [0, 10)``, ``a real number >= 0.5`` ..."""
    integral = issubclass(target_type, numbers.Integral)
    noun = "integer" if integral else "real number"
    if integral and max_val is None and min_val in (0, 1) and include_boundaries in ("both", "left"):
        return f"a {'positive' if min_val == 1 else 'non-negative'} integer"
    article = "an" if integral else "a"
    if min_val is None and max_val is None:
        return f"{article} {noun}"
    if max_val is None:
        op = ">=" if include_boundaries in ("both", "left") else ">"
        return f"{article} {noun} {op} {min_val}"
    if min_val is None:
        op = "<=" if include_boundaries in ("both", "right") else "<"
        return f"{article} {noun} {op} {max_val}"
    left, right = _BRACKETS[include_boundaries]
    return f"{article} {noun} in {left}{min_val}, {max_val}{right}"


def check_scalar(x, name: str, target_type, *, min_val=None, max_val=None,
                 include_boundaries: str = "both", allow_none: bool = False,
                 description: str | None = None):
    """Validate a scalar parameter's type and range, as scikit-learn's ``check_scalar``.

    Parameters
    ----------
    x : object
        The value to check.
    name : str
        The parameter's name, used in the error message.
    target_type : type or tuple of types
        Accepted types, e.g. ``numbers.Integral`` or ``numbers.Real``. Booleans
        are refused for numeric types even though ``bool`` subclasses ``int``:
        ``neighbors=True`` is a mistake, not a count of one.
    min_val, max_val : number, optional
        Bounds; ``None`` means unbounded on that side.
    include_boundaries : {"both", "left", "right", "neither"}
        Which of the bounds are allowed values.
    allow_none : bool, default False
        Accept (and return) ``None``.
    description : str, optional
        What the value must be, for the message (e.g. ``"a non-negative int
        seed"``); by default derived from the type and the bounds.

    Returns
    -------
    x
        ``int(x)`` for an integral target type, ``float(x)`` for a real one,
        else ``x`` unchanged.

    Raises
    ------
    TypeError
        ``x`` is not of ``target_type`` (``"{name} must be ..., got {x!r} of
        type ..."``).
    ValueError
        ``x`` is out of range (``"{name} must be ..., got {x!r}"``).
    """
    if include_boundaries not in _BRACKETS:
        raise InvalidParameterError("include_boundaries", include_boundaries,
                                    _esc(f"one of {sorted(_BRACKETS)}"))
    if x is None and allow_none:
        return None
    types = target_type if isinstance(target_type, tuple) else (target_type,)
    what = description or _describe(types[0], min_val, max_val, include_boundaries)
    numeric = any(issubclass(t, numbers.Number) for t in types)
    if not isinstance(x, types) or (numeric and _is_bool(x)):
        raise _type_error(name, x, what)
    low_ok = (min_val is None or x > min_val
              or (x == min_val and include_boundaries in ("both", "left")))
    high_ok = (max_val is None or x < max_val
               or (x == max_val and include_boundaries in ("both", "right")))
    if not (low_ok and high_ok) or (isinstance(x, numbers.Real) and math.isnan(x)):
        raise InvalidParameterError(name, x, _esc(what))
    if issubclass(types[0], numbers.Integral):
        return int(x)
    if issubclass(types[0], numbers.Real):
        return float(x)
    return x


def check_positive_int(name: str, value, *, allow_none: bool = False):
    """``value`` as a Python int >= 1, or raise naming ``name`` and the value.

    Floats are refused even when integral (``2.0``): a count given as a float
    usually means a unit mix-up upstream.
    """
    return check_scalar(value, name, numbers.Integral, min_val=1, allow_none=allow_none)


def check_bool(name: str, value) -> bool:
    """``value`` as a bool (NumPy's included), or a ``TypeError`` naming ``name``."""
    if not _is_bool(value):
        raise InvalidParameterTypeError(name, value, "True or False")
    return bool(value)


def check_rng(name: str, rng):
    """A SPEC 7 ``rng`` argument: None, a non-negative int, a Generator or a SeedSequence.

    Returned as given (an int as a Python int); anything else is a
    ``TypeError`` or ``ValueError`` naming ``name`` and the value.
    """
    if rng is None or isinstance(rng, (np.random.Generator, np.random.SeedSequence)):
        return rng
    if _is_bool(rng) or not isinstance(rng, numbers.Integral):
        raise _type_error(name, rng, "None, a non-negative int or a numpy.random.Generator")
    return check_scalar(rng, name, numbers.Integral, min_val=0,
                        description="a non-negative int seed")


def check_path(name: str, value):
    """``value`` if it is a path (``str`` or ``os.PathLike``) or None, else a ``TypeError``."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise InvalidParameterTypeError(name, value, "a path or None")
    return value


def check_request_fits(n_points: int, group_size: int, neighbors: int, min_neighbors: int,
                       strategy: str) -> None:
    """Check a request against the number of points it will group.

    Parameters
    ----------
    n_points : int
        Scan points available, ``M``.
    group_size, neighbors : int
        The request's ``C`` and ``K``.
    min_neighbors : int
        Smallest ``K`` the strategy allows for this ``C`` (used when ``C > 1``).
    strategy : str
        The strategy's name, for the message.

    Raises
    ------
    InvalidParameterError
        ``C > M`` (a group needs ``C`` distinct points; code
        ``"group_larger_than_points"``), or ``K`` below the strategy's minimum
        for ``C`` (code ``"too_few_neighbors"``, relating ``neighbors``,
        ``group_size`` and ``grouping_strategy``). This is the one place
        that compares ``K`` with the strategy's minimum.
    """
    if group_size > n_points:
        raise InvalidParameterError(
            "group_size", group_size, "at most the number of scan points ({n_points})",
            facts={"n_points": n_points, "C": group_size}, code="group_larger_than_points",
            template="{group_size:bare} needs C={C} distinct positions per group, more than the "
                     "{n_points} scan points")
    if group_size > 1 and neighbors < min_neighbors:
        raise InvalidParameterError(
            "neighbors", neighbors,
            "at least {min_neighbors} for {group_size} with {grouping_strategy}",
            related={"group_size": group_size, "grouping_strategy": strategy},
            facts={"min_neighbors": min_neighbors, "C": group_size},
            template="{neighbors} must be {requirement}", code="too_few_neighbors")


def check_coords(coords, name: str = "coords") -> np.ndarray:
    """Return ``coords`` as a C-contiguous float64 ``(M, 2)`` array.

    Raises :class:`~ptycho_grouping.errors.InvalidParameterTypeError` for
    non-numeric input and :class:`~ptycho_grouping.errors.InvalidParameterError`
    for a wrong shape (including ragged nested lists), no points, or
    non-finite values (naming the first bad row). The error's ``value`` is
    what was passed; the message describes it (shape, dtype) rather than
    printing it.
    """
    def bad(requirement, described, cls=InvalidParameterError):
        return cls(name, coords, _esc(requirement),
                   template=f"{{{name}:name}} must {_esc(described)}")

    try:
        arr = np.asarray(coords)
    except ValueError as exc:  # ragged nested sequences: NumPy's message names no parameter
        raise bad("an (M, 2) array", "have shape (M, 2), but its rows differ in length or "
                  f"nesting and do not form an array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   and not np.issubdtype(arr.dtype, np.complexfloating)):
        raise bad("a real numeric array", f"be a real numeric array, got dtype {arr.dtype}",
                  InvalidParameterTypeError)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise bad("an (M, 2) array", f"have shape (M, 2), got {arr.shape}")
    if arr.shape[0] == 0:
        raise bad("at least one point", f"contain at least one point, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():  # fast path; the row search only on failure
        rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise bad("finite", f"be finite: {rows.size} non-finite point(s), first at index "
                  f"{rows[0]}: {tuple(arr[rows[0]])}")
    return arr


def check_oversampling_request(request, n_points: int) -> None:
    """The rules of a request for more groups than scan points (``group_size > 1``).

    ``request`` is a :class:`~ptycho_grouping.strategy.GroupingRequest` (its
    fields already checked): oversampling must be asked for, and the pool
    members are drawn from (``neighbor_pool_size``, default ``neighbors``),
    once clamped to the other scan points, must hold a group's other members.
    """
    n, c = request.n_groups, request.group_size
    if not request.enable_oversampling:
        raise InvalidParameterError(
            "n_groups", n, "at most the number of scan points ({n_points}) unless "
            "{enable_oversampling:set}",
            related={"enable_oversampling": False, "group_size": c},
            facts={"n_points": n_points, "C": c}, code="oversampling_disabled",
            template="{n_groups} is larger than the number of scan points ({n_points}); "
                     "{enable_oversampling:set} to draw several groups per seed point")
    pool_name = "neighbor_pool_size" if request.neighbor_pool_size else "neighbors"
    wanted = request.neighbor_pool_size or request.neighbors
    pool = {"related": {"group_size": c}, "code": "pool_too_small",
            "facts": {"C": c, "n_points": n_points, "n_other": n_points - 1}}
    if wanted < c:
        raise InvalidParameterError(
            pool_name, wanted, "at least C={C} (the group size) when oversampling",
            template=f"{{{pool_name}}} must be {{requirement}}", **pool)
    if n_points - 1 < c:  # then n_points == c: the points form one group only
        raise InvalidParameterError(
            pool_name, wanted, "at most the {n_other} other scan points, and at least C={C}",
            template=f"{{{pool_name}}} was clamped to {{n_other}} because only {{n_other}} "
                     "other scan points exist, but oversampling needs a pool of at least "
                     "C={C}: the {n_points} points form a single group", **pool)


def check_legacy_request(request, n_points: int) -> None:
    """The pre-refactor code's own limits, checked before it runs.

    ``request`` is a :class:`~ptycho_grouping.strategy.GroupingRequest` (its
    fields already checked). The old code grouped ``gridsize x gridsize``
    patterns, queried ``K + 1`` neighbours of every point and seeded a
    ``numpy.random.RandomState``, hence: ``group_size`` a perfect square;
    for ``group_size > 1``, at least ``K + 1`` points; an int ``rng`` below
    ``2**32``. (``K >= C - 1`` is the strategy's ``min_neighbors`` rule,
    checked by :func:`check_request_fits`.)
    """
    c, k, rng = request.group_size, request.neighbors, request.rng
    if math.isqrt(c) ** 2 != c:
        raise InvalidParameterError(
            "group_size", c, "a perfect square (gridsize**2) for the legacy strategy",
            template="{group_size} must be {requirement}")
    if c > 1 and n_points < k + 1:
        raise InvalidParameterError(
            "neighbors", k, "at most the number of scan points minus one",
            related={"group_size": c}, facts={"k1": k + 1, "n_points": n_points},
            template="{neighbors} needs at least K+1={k1} scan points, got {n_points}")
    if isinstance(rng, int) and rng >= _RANDOMSTATE_SEED_LIMIT:
        raise InvalidParameterError(
            "rng", rng, "below 2**32 for the legacy strategy",
            template="{rng} is out of range for the legacy strategy: its seed goes to "
                     "numpy.random.RandomState, which takes 0 <= seed < 2**32")


def check_groups(groups, n_points: int, group_size: int, max_groups: int,
                 strategy: str) -> np.ndarray:
    """A strategy's output, checked completely, as an ``intp`` array.

    Nothing is cast silently: floats (even integral ones), booleans and
    objects are refused, since truncating ``0.7`` to ``0`` would hand the
    caller a group the strategy never meant.

    Parameters
    ----------
    groups : array_like
        What the strategy's ``_group`` returned.
    n_points : int
        ``M``; every index must be in ``[0, M)``.
    group_size : int
        ``C``, the number of columns.
    max_groups : int
        Most rows the strategy may return for this request (at least one row
        is required).
    strategy : str
        The strategy's name, for the message.

    Returns
    -------
    ndarray of shape (n, group_size), dtype intp

    Raises
    ------
    RuntimeError
        Naming the strategy, when the dtype is not integer, the shape is not
        ``(n, C)`` with ``1 <= n <= max_groups``, an index is out of range, or
        a group repeats a point (so column 0, the seed, is never among its
        own members).
    """
    who = f"grouping strategy {strategy!r}"
    try:
        arr = np.asarray(groups)
    except ValueError as exc:  # ragged rows
        raise RuntimeError(f"{who} returned groups that do not form an array: {exc}") from None
    if not np.issubdtype(arr.dtype, np.integer):
        head = f" (first row {arr.reshape(-1)[:group_size].tolist()})" if arr.size else ""
        raise RuntimeError(f"{who} returned {type(groups).__name__} of dtype {arr.dtype}"
                           f"{head}; group indices must be integers")
    if arr.ndim != 2 or arr.shape[1] != group_size or not 1 <= arr.shape[0] <= max_groups:
        raise RuntimeError(f"{who} returned shape {arr.shape}, expected (n, {group_size}) "
                           f"with 1 <= n <= {max_groups}")
    if arr.min() < 0 or arr.max() >= n_points:
        row, col = np.argwhere((arr < 0) | (arr >= n_points))[0]
        raise RuntimeError(f"{who} returned index {arr[row, col]} in group {row}, outside "
                           f"[0, {n_points}) for {n_points} scan points")
    if group_size > 1:
        ordered = np.sort(arr, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if repeated.any():
            row = int(np.flatnonzero(repeated)[0])
            raise RuntimeError(f"{who} returned group {row} = {arr[row].tolist()}, which "
                               "repeats a point; the members of a group must be distinct")
    return arr.astype(np.intp, copy=False)
