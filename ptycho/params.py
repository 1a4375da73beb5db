"""The legacy global parameter dictionary, as PtychoPINN scripts use it.

Prefer the dataclasses in :mod:`ptycho.config`; ``update_legacy_dict`` copies
them into :data:`cfg` for code that still reads it.
"""

#: Global parameters. Grouping reads ``gridsize`` and ``grouping_strategy``.
cfg = {
    "N": 64,
    "gridsize": 1,
    "grouping_strategy": "sample_then_group",
    "n_groups": 512,
    "neighbor_count": 4,
    "sequential_sampling": False,
    "enable_oversampling": False,
    "neighbor_pool_size": None,
    "subsample_seed": None,
}


def get(key):
    """Value of ``key`` in :data:`cfg` (``KeyError`` naming the key if absent)."""
    try:
        return cfg[key]
    except KeyError:
        raise KeyError(f"params.cfg has no key {key!r}") from None


def set(key, value):  # noqa: A001 - the legacy API's name
    """Set ``cfg[key] = value``."""
    cfg[key] = value
