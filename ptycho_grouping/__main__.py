"""``python -m ptycho_grouping``: the ``ptycho-group`` command.

Only ``python -m`` executes this file; ``import ptycho_grouping`` never does,
so the engine still never imports the data layer. The command itself lives
in :mod:`ptycho_cli`, beside the engine, because it needs :mod:`ptycho`.
"""
import sys

from ptycho_cli import main

sys.exit(main())
