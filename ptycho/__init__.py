"""PtychoPINN's ``ptycho`` names for scripts run without PtychoPINN.

This folder is the PtychoPINN-facing surface of the refactor and is not part
of the ``ptycho-grouping`` wheel, which never installs a package named
``ptycho`` (PtychoPINN owns that name). ``ptycho-group adopt PATH`` puts
``raw_data.py`` into a PtychoPINN checkout; ``ptycho-group adopt --standalone
DIR`` writes this whole folder into ``DIR`` for users without PtychoPINN.
The implementation is :mod:`ptycho_data`.
"""
