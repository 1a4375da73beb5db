"""The legacy global parameter dictionary, as PtychoPINN scripts use it.

``cfg`` is PtychoPINN's ``params.cfg``; ``get``, ``set`` and ``params`` are
its accessors. ``update_legacy_dict(params.cfg, config)`` from
:mod:`ptycho_data.config` (``ptycho.config.config`` in the surface) copies a
dataclass config into it. ``RawData`` reads ``gridsize`` and
``grouping_strategy`` from here when they are not passed (``N`` where a
module-level helper needs it); ``n_subsample`` only ever as an argument.

The defaults are those of PtychoPINN's ``ModelConfig``/``TrainingConfig``
(``N=64``, ``gridsize=1``), not those of PtychoPINN's own ``params.py``
(``N=128``, ``gridsize=2``), so that the dict and a default config agree.
"""
from __future__ import annotations

import copy

from ptycho_grouping.registry import DEFAULT_STRATEGY

__all__ = ["cfg", "DEFAULT_CFG", "get", "set", "params"]

#: The values ``cfg`` starts from.
DEFAULT_CFG = {
    "N": 64,
    "gridsize": 1,
    "offset": 4,
    "nphotons": 1e9,
    "batch_size": 16,
    "output_prefix": "outputs",
    "data_source": "generic",
    "grouping_strategy": DEFAULT_STRATEGY,
    "n_groups": 512,
    "neighbor_count": 4,
    "sequential_sampling": False,
    "enable_oversampling": False,
    "neighbor_pool_size": None,
    "n_subsample": None,
    "subsample_seed": None,
}

#: Global parameters (PtychoPINN's ``params.cfg``).
cfg = dict(DEFAULT_CFG)

_NO_DEFAULT = object()


def get(key, default=_NO_DEFAULT):
    """``cfg[key]``; ``default`` when given and the key is absent, else ``KeyError`` naming it."""
    if default is not _NO_DEFAULT:
        return cfg.get(key, default)
    try:
        return cfg[key]
    except KeyError:
        raise KeyError(f"params.cfg has no key {key!r}") from None


def set(key, value):  # noqa: A001 - the legacy API's name
    """Set ``cfg[key] = value``."""
    cfg[key] = value


def params() -> dict:
    """A copy of :data:`cfg` (changing it does not change the parameters)."""
    return copy.copy(cfg)
