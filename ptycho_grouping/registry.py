"""The one place that knows every grouping strategy.

Strategies come from plugins through one hook, ``ptycho_grouping_strategies``
(see :mod:`ptycho_grouping.hookspecs`). The built-in strategy modules,
listed once in :data:`BUILTIN_PLUGINS`, implement it exactly as a third-party
module does, and are registered first; then every module named by an entry
point in the group ``ptycho_grouping``. A third-party plugin that fails to
import, raises, or returns something that is not a strategy is reported with
a warning naming it and skipped; the others, built-ins included, are
unaffected.

Two plugins may use the same entry-point name: the later one is registered
as ``"<distribution>:<name>"``, so no plugin is dropped. Two strategies with
one *strategy* name are a conflict: it is reported with a warning naming both
sources, listings show the built-in (or the first registered), and asking for
that name is a ``ValueError`` naming both; every other name keeps working.
"""
from __future__ import annotations

import importlib.metadata
import logging
import threading
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Type

import pluggy

from . import cover, hookspecs, legacy, sample_then_group
from ._warnings import warn
from .errors import InvalidParameterError, InvalidParameterTypeError
from .strategy import GroupingStrategy

__all__ = [
    "BUILTIN_PLUGINS",
    "DEFAULT_STRATEGY",
    "ENTRY_POINT_GROUP",
    "PluginWarning",
    "StrategyInfo",
    "StrategyRegistry",
    "get_strategy",
    "list_strategies",
    "reload",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
DEFAULT_STRATEGY = sample_then_group.SampleThenGroup.name
BUILTIN_SOURCE = "built-in"

#: The modules of the strategies shipped with this package, each registered
#: under its module name. They are declared here only (not as entry points):
#: a source checkout without package metadata has them too.
BUILTIN_PLUGINS = (sample_then_group, cover, legacy)


class PluginWarning(UserWarning):
    """A strategy plugin was skipped, or two strategies claim one name."""


@dataclass(frozen=True)
class StrategyInfo:
    """A registered strategy: its name, class, where it came from."""

    name: str
    cls: Type[GroupingStrategy]
    source: str
    plugin: str

    @property
    def deprecated(self) -> bool:
        return bool(self.cls.deprecated)

    @property
    def summary(self) -> str:
        return self.cls.summary


class StrategyRegistry:
    """A pluggy plugin manager and the strategies its plugins contribute."""

    def __init__(self, *, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._sources: Dict[str, str] = {}
        self._strategies: Optional[Dict[str, StrategyInfo]] = None
        self._conflicts: Dict[str, List[StrategyInfo]] = {}
        for module in BUILTIN_PLUGINS:
            self.register(module, module.__name__, BUILTIN_SOURCE)
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        # One entry point at a time (not pluggy's load_setuptools_entrypoints),
        # so that a broken one is named and skipped instead of stopping the rest.
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            source = ep.dist.name if ep.dist is not None else ep.value
            try:
                self._load_entry_point(ep, source)
            except Exception as exc:  # a broken plugin must not break the others
                self._skip(ep.name, source, f"failed to load entry point {ep.value!r}: {exc!r}")

    def _load_entry_point(self, ep, source: str) -> None:
        name = ep.name
        if self.pm.get_plugin(name) is not None:
            # Entry-point names are chosen by each distribution on its own;
            # a clash must not drop the later plugin's strategies. (importlib
            # lists each distribution name once, so "<dist>:<name>" is free.)
            name = f"{source}:{ep.name}"
        plugin = ep.load()
        if self.pm.is_registered(plugin):
            # Another distribution (or stale metadata of this one) naming a
            # module that is already registered, e.g. a built-in.
            log.debug("entry point %r (%s) names plugin %r, already registered as %r",
                      ep.name, source, ep.value, self.pm.get_name(plugin))
            return
        self.register(plugin, name, source)

    def register(self, plugin, name: str, source: str = "registered at run time") -> None:
        """Register a plugin object (module or instance with the hook)."""
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._skip(name, source, f"could not be registered: {' '.join(str(exc).split())}")
            return
        unknown = [hc.name for hc in self.pm.get_hookcallers(plugin) or () if not hc.has_spec()]
        if unknown:  # a misspelt hook would otherwise contribute nothing, silently
            self.pm.unregister(plugin)
            self._skip(name, source, f"implements no known hook ({', '.join(unknown)}); "
                                     "expected 'ptycho_grouping_strategies'")
            return
        self._sources[name] = source
        self._strategies = None

    @staticmethod
    def _skip(plugin_name: str, source: str, why: str) -> None:
        # Warned, not also logged at WARNING: on a console that showed it twice.
        msg = f"grouping plugin {plugin_name!r} ({source}) skipped: {why}"
        log.debug(msg)
        warn(msg, PluginWarning)

    def _offered(self) -> Iterator[StrategyInfo]:
        """Every valid strategy class each plugin's hook returns, in pluggy's order."""
        # Each implementation is called on its own so that one failing
        # plugin is attributed by name and does not hide the others.
        for impl in self.pm.hook.ptycho_grouping_strategies.get_hookimpls():
            plugin_name = impl.plugin_name
            source = self._sources.get(plugin_name, "unknown")
            try:
                result = impl.function()
            except Exception as exc:
                self._skip(plugin_name, source, f"hook raised {exc!r}")
                continue
            if not isinstance(result, (list, tuple)):
                self._skip(plugin_name, source,
                           f"hook returned {type(result).__name__}, expected a list of "
                           "GroupingStrategy subclasses")
                continue
            for cls in result:
                if not (isinstance(cls, type) and issubclass(cls, GroupingStrategy)):
                    self._skip(plugin_name, source,
                               f"{cls!r} is not a GroupingStrategy subclass")
                    continue
                name = getattr(cls, "name", None)
                if not isinstance(name, str) or not name:
                    self._skip(plugin_name, source, f"{cls.__name__} has no string 'name'")
                    continue
                yield StrategyInfo(name, cls, source, plugin_name)

    def _collect(self) -> None:
        claims: Dict[str, List[StrategyInfo]] = {}
        for info in self._offered():
            same_name = claims.setdefault(info.name, [])
            same_class = [i for i, c in enumerate(same_name) if c.cls is info.cls]
            if not same_class:
                same_name.append(info)
            elif info.source == BUILTIN_SOURCE:
                # One class offered twice is no conflict; it is the built-in one.
                same_name[same_class[0]] = info
        found: Dict[str, StrategyInfo] = {}
        conflicts: Dict[str, List[StrategyInfo]] = {}
        for name, infos in claims.items():
            # A listing shows the built-in, else the first registered.
            found[name] = next((i for i in infos if i.source == BUILTIN_SOURCE), infos[0])
            if len(infos) > 1:
                conflicts[name] = infos
                msg = (f"{_conflict_message(name, infos)}; listing "
                       f"{found[name].cls.__qualname__}, but get_strategy({name!r}) fails "
                       "until one of them is removed")
                log.debug(msg)
                warn(msg, PluginWarning)  # a warning only: a log line too would say it twice
        self._strategies, self._conflicts = found, conflicts

    @property
    def strategies(self) -> Dict[str, StrategyInfo]:
        """Name -> strategy; for a conflicting name, the built-in (else the first)."""
        if self._strategies is None:
            self._collect()
        return self._strategies

    @property
    def conflicts(self) -> Dict[str, List[StrategyInfo]]:
        """Names claimed by more than one strategy class, with every claimant."""
        if self._strategies is None:
            self._collect()
        return self._conflicts

    def list(self) -> List[StrategyInfo]:
        """Registered strategies, sorted by name."""
        return [self.strategies[k] for k in sorted(self.strategies)]

    def get(self, name: Optional[str] = None) -> GroupingStrategy:
        """A new instance of the strategy called ``name`` (default if None)."""
        if name is None:
            name = DEFAULT_STRATEGY
        if not isinstance(name, str):
            raise InvalidParameterTypeError("grouping_strategy", name, "a string",
                                            template="{grouping_strategy:name} must be "
                                                     "{requirement}, got {grouping_strategy:value}")
        try:
            info = self.strategies[name]
        except KeyError:
            known = ", ".join(sorted(self.strategies)) or "none"
            raise InvalidParameterError(
                "grouping_strategy", name, "one of the registered strategies: {known}",
                facts={"known": known},
                template="unknown {grouping_strategy:name} {grouping_strategy:value}; "
                         "registered strategies: {known}") from None
        if name in self._conflicts:
            raise InvalidParameterError(
                "grouping_strategy", name, "a name only one installed strategy claims",
                facts={"conflict": _conflict_message(name, self._conflicts[name])},
                template="{conflict}; uninstall or rename one of them")
        return info.cls()


def _conflict_message(name: str, infos: List[StrategyInfo]) -> str:
    times = "twice" if len(infos) == 2 else f"{len(infos)} times"
    claims = [f"{i.cls.__qualname__} from plugin {i.plugin!r} ({i.source})" for i in infos]
    return (f"strategy name {name!r} is registered {times}: by "
            f"{', by '.join(claims[:-1])} and by {claims[-1]}")


_lock = threading.Lock()
_default: Optional[StrategyRegistry] = None


def default_registry() -> StrategyRegistry:
    """The process-wide registry, built on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = StrategyRegistry()
        return _default


def reload() -> StrategyRegistry:
    """Rebuild the process-wide registry (after installing a plugin)."""
    global _default
    with _lock:
        _default = StrategyRegistry()
        return _default


def get_strategy(name: Optional[str] = None) -> GroupingStrategy:
    """The strategy registered as ``name``; ``None`` gives the default.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the registered names.
    """
    return default_registry().get(name)


def list_strategies() -> List[StrategyInfo]:
    """Every registered strategy with its source, sorted by name."""
    return default_registry().list()
