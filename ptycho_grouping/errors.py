"""A bad parameter as a structured object, so that every layer words it in its caller's names.

In the style of scikit-learn's ``InvalidParameterError``: a ``ValueError``
subclass, raised wherever the engine refuses a parameter. Unlike a plain
message it carries the parameter's name, its value, the requirement it
failed and the other parameters the rule relates it to (``neighbors`` and
``group_size`` for "K must be at least C"). Its text is a template whose
fields are parameters; :meth:`ParameterIssue.renamed` returns the same
error (same class, same fields) spelled through another layer's
:class:`Names` table, so that ``RawData`` says ``nsamples`` and the command
says ``--groups`` without anyone parsing anyone's message.

A bad type stays a ``TypeError`` (:class:`InvalidParameterTypeError`), and a
warning about a parameter a ``UserWarning`` (:class:`ParameterWarning`):
both share the fields through the :class:`ParameterIssue` mixin, so a
caller catches what it always caught and a layer renames all three alike.
"""
from __future__ import annotations

import contextlib
import contextvars
import string
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Mapping, Optional, Tuple

__all__ = ["Names", "Rename", "ParameterIssue", "InvalidParameterError",
           "InvalidParameterTypeError", "ParameterWarning",
           "ParameterDeprecationWarning", "warning_names", "current_names"]


@dataclass(frozen=True)
class Rename:
    """One entry of a :class:`Names` table: the caller's name for a parameter.

    ``value`` turns the engine's value into the caller's (``group_size`` 4 ->
    ``gridsize`` 2); ``note``, given the value before that, adds what the
    caller's value hides (``" (C=4)"``).
    """

    name: str
    value: Callable[[object], object] = staticmethod(lambda v: v)
    note: Callable[[object], str] = staticmethod(lambda v: "")


class Names:
    """How one layer spells parameters: a table ``name -> Rename`` and a style.

    Names not in the table pass through unchanged, so a table may be applied
    to an error already in its own names (it changes nothing). ``flags=True``
    is the command line's style (``--groups 60``, a set boolean as ``--oversample``);
    otherwise Python's (``nsamples=60``).
    """

    def __init__(self, table: Mapping[str, object] = (), *, flags: bool = False):
        self.table: Dict[str, Rename] = {
            k: v if isinstance(v, Rename) else Rename(v) for k, v in dict(table).items()}
        self.flags = flags

    def spell(self, param: str, value):
        """``(name, value, note)`` of ``param`` in this layer's words."""
        entry = self.table.get(param)
        if entry is None:
            return param, value, ""
        return entry.name, entry.value(value), entry.note(value)

    def ref(self, name: str, value, note: str = "") -> str:
        if self.flags:
            if isinstance(value, bool):
                return name if value else f"no {name}"
            return f"{name} {value}{note}"
        shown = repr(value) if isinstance(value, str) else value
        return f"{name}={shown}{note}"

    def set(self, name: str, value) -> str:
        """The instruction to give ``name`` the value ``value``."""
        if self.flags and value is True:
            return f"add {name}"
        return f"set {self.ref(name, value)}"


#: The engine's own spelling: its parameter names as they are.
ENGINE_NAMES = Names()


class _Formatter(string.Formatter):
    """Renders a template: a field that is a parameter becomes its reference.

    Format specs on parameters: none (``n_groups=60``, ``gridsize=2 (C=4)``),
    ``bare`` (the same without a layer's note: ``gridsize=2``), ``name``
    (``n_groups``), ``value`` (``60``), ``set`` (``set enable_oversampling=True``).
    """

    def __init__(self, issue: "ParameterIssue"):
        self.issue = issue

    def get_value(self, key, args, kwargs):
        if key in self.issue.params:
            return _Param(key, self.issue.params[key])
        return self.issue.facts[key]

    def format_field(self, obj, spec):
        if not isinstance(obj, _Param):
            return format(obj, spec)
        name, value, note = self.issue._spelled(obj.key, obj.value)
        style = self.issue.names[-1] if self.issue.names else ENGINE_NAMES
        if spec == "name":
            return name
        if spec == "value":
            return repr(value)
        if spec == "bare":
            return style.ref(name, value)
        if spec == "set":
            return style.set(name, True if isinstance(value, bool) else value)
        return style.ref(name, value, note)


@dataclass(frozen=True)
class _Param:
    key: str
    value: object


class ParameterIssue(Exception):
    """What an error or warning about a parameter carries (the base of the classes below).

    An ``Exception`` so that ``except ParameterIssue`` is allowed; the
    concrete classes add ``ValueError``, ``TypeError`` or ``UserWarning``.

    Parameters
    ----------
    param : str
        The parameter refused, in the raising layer's name (``n_groups``).
    value : object
        Its value.
    requirement : str
        What it must be (``"a positive integer"``); may name the related
        parameters as template fields (``"at least {group_size}"``).
    related : dict, optional
        Other parameters the rule involves, name -> value.
    facts : dict, optional
        Numbers the message quotes that are not parameters (``n_points``).
    template : str, optional
        The whole message. Default ``"{param} must be {requirement}, got
        {value}"``. Fields naming a parameter (``{n_groups}``) are rendered
        in the current layer's words; see :class:`Names`.
    code : str, optional
        A stable identifier of the rule (``"too_few_neighbors"``) for layers
        that add words of their own to particular errors.

    Attributes
    ----------
    names : tuple of Names
        The tables the message is spelled through, innermost first (empty: the
        engine's names).
    addendum, prefix : str
        Words one layer added after or before its own rendering (dropped by
        the next rename).
    """

    def __init__(self, param: str, value, requirement: str, *, related=None, facts=None,
                 template: Optional[str] = None, code: Optional[str] = None):
        self._param, self._value, self.code = param, value, code
        self.params = {param: value, **dict(related or {})}
        self.facts = dict(facts or {})
        self._requirement = requirement
        self.facts.setdefault("requirement", "")
        self.template = template if template is not None else (
            f"{{{param}:name}} must be {{requirement}}, got {{{param}:value}}")
        self.names: Tuple[Names, ...] = ()
        self.addendum = self.prefix = ""
        super().__init__(self.message())

    @property
    def param(self) -> str:
        """The parameter's name as this error's layer spells it (``nsamples``, ``--groups``)."""
        name, _, _ = self._spelled(self._param)
        return name

    @property
    def value(self):
        """The parameter's value as this error's layer takes it (``gridsize`` 2, not C=4)."""
        return self._spelled(self._param)[1]

    @property
    def requirement(self) -> str:
        return _Formatter(self).vformat(self._requirement, (), {})

    @property
    def related(self) -> Dict[str, object]:
        """The other parameters of the rule, name -> value, in this layer's names."""
        out = {}
        for key, value in self.params.items():
            if key != self._param:
                name, value, _ = self._spelled(key, value)
                out[name] = value
        return out

    def _spelled(self, key, value=None):
        name, value, note = key, self.params[key] if value is None else value, ""
        for names in self.names:
            name, value, own = names.spell(name, value)
            note = own or note  # an outer layer keeps what an inner one noted (C=4)
        return name, value, note

    def message(self) -> str:
        """The message in this error's names (what ``str()`` gives)."""
        fmt = _Formatter(self)
        self.facts["requirement"] = fmt.vformat(self._requirement, (), {})
        return self.prefix + fmt.vformat(self.template, (), {}) + self.addendum

    def renamed(self, names: Names, addendum: str = "", prefix: str = ""):
        """The same error or warning, its message spelled through ``names`` as well.

        Returns a new instance of the same class with the same fields; raise
        it ``from`` this one. ``addendum`` and ``prefix`` (say, the file the
        command read) frame this rendering only; a further rename drops them.
        """
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.params, new.facts = dict(self.params), dict(self.facts)
        new.names = self.names + (names,)
        new.addendum, new.prefix = addendum, prefix
        new.args = (new.message(),)
        return new

    def __str__(self) -> str:
        return self.args[0] if self.args else ""

    def __reduce__(self):  # pickling (multiprocessing) keeps the text, not the templates
        return (_rebuilt, (type(self), self.args))


def _rebuilt(cls, args):
    obj = cls.__new__(cls)
    obj.args = args
    return obj


class InvalidParameterError(ParameterIssue, ValueError):
    """A parameter's value is refused: a ``ValueError`` carrying name, value and requirement."""


class InvalidParameterTypeError(ParameterIssue, TypeError):
    """A parameter has the wrong type: a ``TypeError`` with the same fields."""


class ParameterWarning(ParameterIssue, UserWarning):
    """A parameter's value was changed or ignored (a clamp, a cap): a ``UserWarning`` with its fields."""


class ParameterDeprecationWarning(ParameterIssue, DeprecationWarning):
    """A parameter's value is deprecated (the legacy strategy's name): a ``DeprecationWarning``."""


_WARNING_NAMES: contextvars.ContextVar[Tuple[Names, ...]] = contextvars.ContextVar(
    "ptycho_grouping_warning_names", default=())


@contextlib.contextmanager
def warning_names(names: Names) -> Iterator[None]:
    """Spell the engine's :class:`ParameterWarning` through ``names`` inside the block.

    A warning cannot be caught and re-issued without changing global state
    (``warnings.catch_warnings`` is not thread-safe), so a layer states its
    table for the duration of its call instead; a context variable keeps
    threads and tasks apart.
    """
    token = _WARNING_NAMES.set(_WARNING_NAMES.get() + (names,))
    try:
        yield
    finally:
        _WARNING_NAMES.reset(token)


def current_names() -> Tuple[Names, ...]:
    """The tables :func:`warning_names` set in this context, innermost first."""
    return _WARNING_NAMES.get()
