"""Dataclass configuration, mirroring PtychoPINN's ``ptycho.config.config``.

Only the fields that drive grouping are modelled. ``grouping_strategy`` picks
the strategy by its registry name; an unknown name is refused when the config
is made, with the list of registered names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ptycho_grouping.registry import DEFAULT_STRATEGY, default_registry

__all__ = ["ModelConfig", "TrainingConfig", "InferenceConfig", "update_legacy_dict"]


@dataclass(frozen=True)
class ModelConfig:
    """Model geometry: pattern size ``N`` and ``gridsize`` (C = gridsize**2)."""

    N: int = 64
    gridsize: int = 1


@dataclass(frozen=True)
class _GroupingFields:
    model: ModelConfig = field(default_factory=ModelConfig)
    n_groups: int = 512
    neighbor_count: int = 4
    sequential_sampling: bool = False
    enable_oversampling: bool = False
    neighbor_pool_size: Optional[int] = None
    subsample_seed: Optional[int] = None
    grouping_strategy: str = DEFAULT_STRATEGY

    def __post_init__(self):
        # Raises ValueError listing the registered names for an unknown one.
        default_registry().get(self.grouping_strategy)


@dataclass(frozen=True)
class TrainingConfig(_GroupingFields):
    """Training-time grouping configuration."""

    train_data_file: Optional[str] = None
    test_data_file: Optional[str] = None


@dataclass(frozen=True)
class InferenceConfig(_GroupingFields):
    """Inference-time grouping configuration."""

    test_data_file: Optional[str] = None


_MODEL_KEYS = ("N", "gridsize")
_GROUPING_KEYS = ("n_groups", "neighbor_count", "sequential_sampling", "enable_oversampling",
                  "neighbor_pool_size", "subsample_seed", "grouping_strategy")


def update_legacy_dict(cfg: dict, config) -> None:
    """Copy ``config`` (and its ``model``) into the legacy dict ``cfg`` in place."""
    for key in _MODEL_KEYS:
        cfg[key] = getattr(config.model, key)
    for key in _GROUPING_KEYS:
        cfg[key] = getattr(config, key)
