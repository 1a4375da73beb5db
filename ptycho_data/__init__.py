"""The data layer: PtychoPINN's ``RawData`` on the sample-then-group engine.

``ptycho_data.raw_data.RawData.generate_grouped_data`` groups scan positions
with a strategy from :mod:`ptycho_grouping` (``sample_then_group`` by
default) and returns the dictionary PtychoPINN consumers read. The package is
named so that it installs beside PtychoPINN's ``ptycho``; the thin
PtychoPINN-facing ``ptycho.raw_data`` (``ptycho-group adopt``) subclasses it.
"""
