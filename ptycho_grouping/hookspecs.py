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

The built-in strategies are registered through this same hook.
"""
import pluggy

PROJECT_NAME = "ptycho_grouping"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def ptycho_grouping_strategies():
    """Return the :class:`~ptycho_grouping.GroupingStrategy` subclasses this
    plugin contributes (a list; each with a unique ``name``)."""
