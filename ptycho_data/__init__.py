"""Drop-in data layer for PtychoPINN-style scripts.

``ptycho.raw_data.RawData.generate_grouped_data`` groups scan positions with
a strategy from :mod:`ptycho_grouping` (``sample_then_group`` by default) and
returns the dictionary PtychoPINN consumers read.
"""
