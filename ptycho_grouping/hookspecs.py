"""Hook specifications for grouping-strategy plugins.

A plugin is a module (or object) with a function marked ``@hookimpl`` named
``ptycho_grouping_strategies``, announced through an entry point in the group
``ptycho_grouping``::

    # my_plugin.py
    from ptycho_grouping import GroupingStrategy, hookimpl

    class Mine(GroupingStrategy):
        name = "mine"
        def _group(self, index, request): ...

    @hookimpl
    def ptycho_grouping_strategies():
        return [Mine]

    # pyproject.toml
    [project.entry-points.ptycho_grouping]
    mine = "my_plugin"

The built-in strategies implement this same hook; they are registered from
``ptycho_grouping.registry.BUILTIN_PLUGINS`` rather than from entry points,
so a source checkout without package metadata has them as well.

The entry-point name (``mine`` above) only labels the plugin: if another
distribution uses the same one, this plugin is registered as
``"<distribution>:mine"`` and its strategies still count. The strategy
``name`` is what users select, so it must be unique: a name claimed by two
strategies is reported with a warning, and selecting it is a ``ValueError``
naming both sources until one is removed.
"""
import pluggy

PROJECT_NAME = "ptycho_grouping"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def ptycho_grouping_strategies():
    """Return the :class:`~ptycho_grouping.GroupingStrategy` subclasses this
    plugin contributes (a list; each with a unique ``name``)."""
