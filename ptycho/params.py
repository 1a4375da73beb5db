"""``ptycho.params`` without PtychoPINN: the data layer's ``params.cfg``.

Inside PtychoPINN its own ``params.py`` is used instead; this module exists
for scripts run with the standalone surface (``ptycho-group adopt
--standalone``). It *is* :mod:`ptycho_data.params` (one global dict, whichever
name a script uses to reach it).
"""
import sys

from ptycho_data import params as data_layer_params

sys.modules[__name__] = data_layer_params
