"""The pluggy registry: built-ins, third-party entry points, broken plugins."""
import importlib
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from ptycho_grouping import GroupingRequest, GroupingStrategy, registry
from ptycho_grouping.registry import PluginWarning, StrategyRegistry
from ptycho_grouping.sample_then_group import SampleThenGroup

PLUGIN_SOURCE = '''
import numpy as np
from ptycho_grouping import GroupingStrategy, hookimpl

class EveryOther(GroupingStrategy):
    """Deterministic toy strategy: seeds 0, 2, 4, ... with their nearest neighbours."""
    name = "every_other"
    summary = "toy strategy from a test plugin"

    def _group(self, index, request):
        seeds = np.arange(0, 2 * request.n_groups, 2) % index.n_points
        members = index.neighbors(seeds, request.group_size - 1)
        return np.column_stack([seeds, members])

@hookimpl
def ptycho_grouping_strategies():
    return [EveryOther]
'''


def install_fake_distribution(tmp_path, monkeypatch, dist, modules, entry_points):
    """Make a distribution visible to importlib.metadata, as pip would.

    ``modules`` maps module name to source; ``entry_points`` maps entry-point
    name to its target in the ``ptycho_grouping`` group.
    """
    site = tmp_path / f"site-{dist}"  # one directory per distribution: several may coexist
    site.mkdir()
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[ptycho_grouping]\n{lines}\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return site


def test_builtin_default_is_registered_through_the_hook():
    infos = {i.name: i for i in registry.list_strategies()}
    info = infos["sample_then_group"]
    assert info.cls is SampleThenGroup
    assert info.source == "built-in"
    assert info.deprecated is False
    assert info.plugin == "ptycho_grouping.sample_then_group"
    assert isinstance(registry.get_strategy(), SampleThenGroup)
    assert isinstance(registry.get_strategy(None), SampleThenGroup)
    assert registry.DEFAULT_STRATEGY == SampleThenGroup.name == "sample_then_group"


def test_builtins_are_declared_once_as_hook_implementations():
    # One list in the registry; pyproject.toml declares no entry point of its
    # own, which would announce the built-ins a second time.
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    assert "ptycho_grouping" not in project.get("entry-points", {})
    reg = StrategyRegistry(load_entry_points=False)
    assert sorted(name for name, _ in reg.pm.list_name_plugin()) == [
        "ptycho_grouping.cover", "ptycho_grouping.legacy", "ptycho_grouping.sample_then_group"]
    for module in registry.BUILTIN_PLUGINS:
        # The same hook a third-party module implements, nothing else.
        assert [hc.name for hc in reg.pm.get_hookcallers(module)] == ["ptycho_grouping_strategies"]
    assert {i.name: i.plugin for i in reg.list()} == {
        "cover_scan": "ptycho_grouping.cover",
        "legacy_group_then_sample": "ptycho_grouping.legacy",
        "sample_then_group": "ptycho_grouping.sample_then_group"}


def test_third_party_entry_point_is_discovered_and_selectable(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "ptg-toy-plugin",
                              {"ptg_toy_plugin": PLUGIN_SOURCE},
                              {"every_other": "ptg_toy_plugin"})
    reg = StrategyRegistry()
    info = {i.name: i for i in reg.list()}["every_other"]
    assert info.source == "ptg-toy-plugin"
    assert info.summary == "toy strategy from a test plugin"
    xy = np.column_stack([np.arange(10.0), np.zeros(10)])
    groups = reg.get("every_other").group(xy, GroupingRequest(n_groups=3, group_size=2, neighbors=2))
    # Seeds 0, 2, 4, each with one of its (tied) nearest neighbours on the line.
    assert np.array_equal(groups[:, 0], [0, 2, 4])
    assert (np.abs(groups[:, 1] - groups[:, 0]) == 1).all()
    # The process-wide registry picks it up after a reload.
    monkeypatch.setattr(registry, "_default", None)
    assert type(registry.get_strategy("every_other")).__name__ == "EveryOther"
    monkeypatch.setattr(registry, "_default", None)


def test_plugin_that_fails_to_import_is_skipped_with_a_warning(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "ptg-broken",
                              {"ptg_broken": "raise ImportError('missing dependency xyz')\n"},
                              {"broken": "ptg_broken"})
    with pytest.warns(PluginWarning, match=r"'broken' \(ptg-broken\) skipped: failed to load .*xyz"):
        reg = StrategyRegistry()
    assert "sample_then_group" in reg.strategies
    assert "broken" not in reg.strategies


@pytest.mark.parametrize("body, why", [
    ("return [object]", "is not a GroupingStrategy subclass"),
    ("return SampleThenGroup()", "hook returned SampleThenGroup, expected a list"),
    ("raise RuntimeError('boom')", "hook raised RuntimeError"),
    ("return [Nameless]", "has no string 'name'"),
])
def test_plugin_returning_garbage_is_skipped(tmp_path, monkeypatch, body, why):
    source = f'''
from ptycho_grouping import GroupingStrategy, hookimpl
from ptycho_grouping.sample_then_group import SampleThenGroup

class Nameless(GroupingStrategy):
    def _group(self, index, request):
        return None

@hookimpl
def ptycho_grouping_strategies():
    {body}
'''
    install_fake_distribution(tmp_path, monkeypatch, "ptg-garbage",
                              {"ptg_garbage": source}, {"garbage": "ptg_garbage"})
    reg = StrategyRegistry()
    with pytest.warns(PluginWarning, match=rf"'garbage' \(ptg-garbage\) skipped: .*{why}"):
        names = [i.name for i in reg.list()]
    assert "sample_then_group" in names


def toy_plugin(class_name, strategy_name):
    """Source of a plugin module contributing one strategy."""
    return f'''
from ptycho_grouping import GroupingStrategy, hookimpl

class {class_name}(GroupingStrategy):
    name = {strategy_name!r}
    def _group(self, index, request):
        return None

@hookimpl
def ptycho_grouping_strategies():
    return [{class_name}]
'''


def test_entry_point_name_clashes_drop_no_plugin(tmp_path, monkeypatch):
    # Entry-point names are chosen by each distribution alone: one reuses a
    # built-in's plugin name, two others both say "toy". Every strategy must arrive.
    install_fake_distribution(tmp_path, monkeypatch, "ptg-fancy",
                              {"ptg_fancy_mod": toy_plugin("Fancy", "fancy")},
                              {"ptycho_grouping.sample_then_group": "ptg_fancy_mod"})
    install_fake_distribution(tmp_path, monkeypatch, "ptg-toy-one",
                              {"ptg_toy_one": toy_plugin("ToyOne", "toy_one")},
                              {"toy": "ptg_toy_one"})
    install_fake_distribution(tmp_path, monkeypatch, "ptg-toy-two",
                              {"ptg_toy_two": toy_plugin("ToyTwo", "toy_two")},
                              {"toy": "ptg_toy_two"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        reg = StrategyRegistry()
        infos = {i.name: i for i in reg.list()}
    assert {"fancy", "toy_one", "toy_two", "sample_then_group"} <= set(infos)
    assert infos["fancy"].source == "ptg-fancy"
    assert infos["fancy"].plugin == "ptg-fancy:ptycho_grouping.sample_then_group"
    assert (infos["toy_one"].source, infos["toy_two"].source) == ("ptg-toy-one", "ptg-toy-two")
    # Whichever "toy" came first keeps the name; the other is "<dist>:toy".
    toys = [infos["toy_one"], infos["toy_two"]]
    assert sorted(i.plugin == "toy" for i in toys) == [False, True]
    assert all(i.plugin in ("toy", f"{i.source}:toy") for i in toys)
    # The built-in keeps its own plugin name and module.
    assert infos["sample_then_group"].cls is SampleThenGroup
    assert infos["sample_then_group"].plugin == "ptycho_grouping.sample_then_group"
    assert type(reg.get("toy_two")).__name__ == "ToyTwo"


def test_entry_points_naming_a_builtin_module_add_nothing(tmp_path, monkeypatch):
    # Another distribution (or the metadata of an older install of this one)
    # may name a built-in module: it is the plugin already registered, and
    # is recognised as such without a warning.
    install_fake_distribution(tmp_path, monkeypatch, "ptg-reexport", {},
                              {"stg_again": "ptycho_grouping.sample_then_group",
                               "legacy_group_then_sample": "ptycho_grouping.legacy"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        reg = StrategyRegistry()
        infos = reg.list()
    assert sorted(name for name, _ in reg.pm.list_name_plugin()) == [
        "ptycho_grouping.cover", "ptycho_grouping.legacy", "ptycho_grouping.sample_then_group"]
    assert [i.name for i in infos] == ["cover_scan", "legacy_group_then_sample",
                                       "sample_then_group"]
    assert all(i.source == "built-in" for i in infos)
    assert reg.conflicts == {}


def test_duplicate_names_are_an_error_naming_both_sources(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "ptg-impostor",
                              {"ptg_impostor": toy_plugin("Impostor", "sample_then_group")},
                              {"impostor": "ptg_impostor"})
    reg = StrategyRegistry()
    both = (r"'sample_then_group' is registered twice: by SampleThenGroup from plugin "
            r"'ptycho_grouping.sample_then_group' \(built-in\) and by Impostor from plugin "
            r"'impostor' "
            r"\(ptg-impostor\)")
    with pytest.warns(PluginWarning, match=both + "; listing SampleThenGroup"):
        infos = {i.name: i for i in reg.list()}
    # The listing shows the built-in; asking for the name is the error ...
    assert infos["sample_then_group"].cls is SampleThenGroup
    assert [i.cls.__name__ for i in reg.conflicts["sample_then_group"]] == [
        "SampleThenGroup", "Impostor"]
    with pytest.raises(ValueError, match=both):
        reg.get("sample_then_group")
    with pytest.raises(ValueError, match=both):
        reg.get()  # the default is that name
    # ... and every other name keeps working.
    assert type(reg.get("legacy_group_then_sample")).__name__ == "LegacyGroupThenSample"


def test_duplicate_names_between_two_plugins_keep_the_first_listed(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "ptg-alpha",
                              {"ptg_alpha": toy_plugin("Alpha", "shared")}, {"alpha": "ptg_alpha"})
    install_fake_distribution(tmp_path, monkeypatch, "ptg-beta",
                              {"ptg_beta": toy_plugin("Beta", "shared")}, {"beta": "ptg_beta"})
    with pytest.warns(PluginWarning, match=r"'shared' is registered twice: by (Alpha|Beta) "
                                           r".* and by (Alpha|Beta)"):
        reg = StrategyRegistry()
        listed = {i.name: i for i in reg.list()}["shared"]
    first = reg.conflicts["shared"][0]
    assert listed is first
    with pytest.raises(ValueError, match=r"'shared' is registered twice.*uninstall or rename"):
        reg.get("shared")
    assert isinstance(reg.get("sample_then_group"), SampleThenGroup)


def test_registry_without_entry_points_still_has_builtins():
    reg = StrategyRegistry(load_entry_points=False)
    assert isinstance(reg.get("sample_then_group"), SampleThenGroup)


def plugin_of(*classes, **hookimpl_options):
    """A plugin object whose hook returns ``classes``."""
    class Plugin:
        @staticmethod
        @registry.hookspecs.hookimpl(**hookimpl_options)
        def ptycho_grouping_strategies():
            return list(classes)

    return Plugin()


def test_runtime_registration_of_a_plugin_object():
    class Reverse(GroupingStrategy):
        name = "reverse_seeds"

        def _group(self, index, request):
            return np.arange(index.n_points)[::-1][:request.n_groups, None]

    reg = StrategyRegistry(load_entry_points=False)
    reg.register(plugin_of(Reverse), "reverse")
    info = {i.name: i for i in reg.list()}["reverse_seeds"]
    assert info.source == "registered at run time"
    groups = reg.get("reverse_seeds").group(np.zeros((4, 2)), GroupingRequest(n_groups=2))
    assert groups[:, 0].tolist() == [3, 2]


def test_grouping_strategy_name_must_be_a_string():
    with pytest.raises(TypeError, match="grouping_strategy must be a string, got 3"):
        registry.get_strategy(3)


def test_malformed_entry_point_breaks_nothing(tmp_path, monkeypatch):
    # 'my-plugin' is not a module path: reading the entry point's parts fails.
    install_fake_distribution(tmp_path, monkeypatch, "ptg-malformed", {}, {"hy": "my-plugin"})
    with pytest.warns(PluginWarning, match=r"'hy' \(ptg-malformed\) skipped: failed to load "
                                           r"entry point 'my-plugin'"):
        reg = StrategyRegistry()
    assert {"sample_then_group", "legacy_group_then_sample"} <= set(reg.strategies)
    assert type(reg.get()).__name__ == "SampleThenGroup"


def test_misspelt_hook_is_reported_not_ignored(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "ptg-typo", {"ptg_typo": """
        from ptycho_grouping import hookimpl

        @hookimpl
        def ptycho_grouping_strategy():
            return []
    """}, {"typo": "ptg_typo"})
    with pytest.warns(PluginWarning, match=r"'typo' \(ptg-typo\) skipped: implements no known "
                                           r"hook \(ptycho_grouping_strategy\)"):
        reg = StrategyRegistry()
    assert reg.pm.get_plugin("typo") is None and "sample_then_group" in reg.strategies


def test_a_hook_with_a_wrong_signature_is_skipped(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, monkeypatch, "ptg-signature", {"ptg_signature": """
        from ptycho_grouping import hookimpl

        @hookimpl
        def ptycho_grouping_strategies(config):
            return []
    """}, {"signature": "ptg_signature"})
    with pytest.warns(PluginWarning, match=r"'signature' \(ptg-signature\) skipped: could not "
                                           r"be registered: .*config") as record:
        reg = StrategyRegistry()
    assert "\n" not in str(record[0].message)  # one line, whatever pluggy's message
    assert reg.pm.get_plugin("signature") is None and "sample_then_group" in reg.strategies


def test_a_late_claim_on_a_builtin_name_still_lists_the_builtin():
    class Impostor(GroupingStrategy):
        name = "sample_then_group"

        def _group(self, index, request):
            return None

    reg = StrategyRegistry(load_entry_points=False)
    # trylast puts this implementation before the built-ins in pluggy's list.
    reg.register(plugin_of(Impostor, SampleThenGroup, trylast=True), "early")
    # Offers the built-in class itself, as a re-exporting plugin might.
    reg.register(plugin_of(SampleThenGroup), "again")
    with pytest.warns(PluginWarning, match="listing SampleThenGroup") as record:
        conflicts = reg.conflicts  # conflicts first: they are collected on demand too
    assert len(record) == 1 and "\n" not in str(record[0].message)
    # Offering the built-in class again is no conflict; only Impostor is.
    assert [i.cls for i in conflicts["sample_then_group"]] == [Impostor, SampleThenGroup]
    assert reg.strategies["sample_then_group"].cls is SampleThenGroup
    assert reg.strategies["sample_then_group"].source == "built-in"


def test_reload_picks_up_a_newly_installed_plugin(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_default", None)
    assert "every_other" not in {i.name for i in registry.list_strategies()}
    install_fake_distribution(tmp_path, monkeypatch, "ptg-late", {"ptg_late": PLUGIN_SOURCE},
                              {"every_other": "ptg_late"})
    assert "every_other" not in {i.name for i in registry.list_strategies()}  # cached
    assert registry.reload() is registry.default_registry()
    assert "every_other" in {i.name for i in registry.list_strategies()}
    assert repr(registry.get_strategy("every_other")) == "EveryOther()"
    monkeypatch.setattr(registry, "_default", None)
