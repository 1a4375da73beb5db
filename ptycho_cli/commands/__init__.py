"""The subcommands of ``ptycho-group``, one module each, all registered the same way.

Each module has ``NAME``, ``HELP`` (one line for the command list),
``DESCRIPTION`` (for its ``--help``), ``add_arguments(parser)`` and
``run(args) -> exit status``. :data:`COMMANDS` is the order ``--help`` lists them in.
"""
from . import adopt, bench, clean_cache, demo_data, group, info, plot, strategies

COMMANDS = (group, demo_data, info, strategies, plot, bench, clean_cache, adopt)

__all__ = ["COMMANDS"]
