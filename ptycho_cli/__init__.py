"""The ``ptycho-group`` command: group scans, make demo data, list, bench, plot.

It lives beside :mod:`ptycho_grouping` rather than inside it because it needs
the data layer :mod:`ptycho`, which the engine must never import.
"""
from .main import main

__all__ = ["main"]
