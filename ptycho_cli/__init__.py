"""The ``ptycho-group`` command: group scans, make demo data, describe, list, bench, plot.

It lives beside :mod:`ptycho_grouping` rather than inside it because it needs
the data layer :mod:`ptycho_data`, which the engine must never import. Each
subcommand is a module of :mod:`ptycho_cli.commands`; :mod:`ptycho_cli.main`
builds the parser from them and is the one place that turns errors into exit
statuses.
"""
from .main import main

__all__ = ["main"]
