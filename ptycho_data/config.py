"""PtychoPINN's configuration dataclasses, for scripts that import them.

``from ptycho.config.config import ModelConfig, TrainingConfig,
InferenceConfig, update_legacy_dict`` works as in PtychoPINN: the classes have
PtychoPINN's field names, order, defaults and mutability (``ModelConfig`` is
frozen, the other two are not), so a script written for PtychoPINN constructs
them unchanged, model and training options this package never reads
included. One field is added at the end of ``TrainingConfig`` and
``InferenceConfig``: ``grouping_strategy``, the registry name of the grouping
strategy, checked when the config is made.

Two deliberate differences, both permissive: fields PtychoPINN requires
(``model``; ``model_path`` and ``test_data_file`` of ``InferenceConfig``)
have defaults here, since data preparation needs no model; and
:func:`update_legacy_dict` always writes ``n_subsample`` and
``subsample_seed``, even when None (see its docstring).
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from ptycho_grouping.registry import DEFAULT_STRATEGY, default_registry

__all__ = ["ModelConfig", "TrainingConfig", "InferenceConfig", "update_legacy_dict",
           "dataclass_to_legacy_dict", "KEY_MAPPINGS"]

#: Field names whose legacy ``params.cfg`` key differs (PtychoPINN's mapping).
KEY_MAPPINGS = {
    "object_big": "object.big",
    "probe_big": "probe.big",
    "probe_mask": "probe.mask",
    "probe_trainable": "probe.trainable",
    "intensity_scale_trainable": "intensity_scale.trainable",
    "positions_provided": "positions.provided",
    "output_dir": "output_prefix",
    "train_data_file": "train_data_file_path",
    "test_data_file": "test_data_file_path",
}

#: Keys :func:`update_legacy_dict` writes even when None, so that one
#: config's subsample never outlives it in ``params.cfg``.
ALWAYS_WRITTEN = ("n_subsample", "subsample_seed")


@dataclass(frozen=True)
class ModelConfig:
    """Model geometry and architecture. Data preparation reads ``N`` and ``gridsize``
    (``C = gridsize**2`` patterns per group); the rest is kept for PtychoPINN."""

    N: int = 64
    gridsize: int = 1
    n_filters_scale: int = 2
    model_type: str = "pinn"
    architecture: str = "cnn"
    fno_modes: int = 12
    fno_width: int = 32
    fno_blocks: int = 4
    fno_cnn_blocks: int = 2
    learned_input_channels: int = 1
    max_hidden_channels: Optional[int] = None
    resnet_width: Optional[int] = None
    fno_input_transform: str = "none"
    generator_output_mode: str = "real_imag"
    amp_activation: str = "sigmoid"
    object_big: bool = True
    probe_big: bool = True
    probe_mask: bool = False
    probe_mask_sigma: float = 1.0
    probe_mask_diameter: Optional[float] = None
    pad_object: bool = True
    probe_scale: float = 4.0
    gaussian_smoothing_sigma: float = 0.0


def _resolve_n_groups(config, default: Optional[int]) -> None:
    """PtychoPINN's ``n_images`` -> ``n_groups`` migration, with its warning."""
    if config.n_images is not None and config.n_groups is None:
        warnings.warn("Parameter 'n_images' is deprecated and will be removed in a future "
                      "version. Use 'n_groups' instead, which always means the number of "
                      "groups regardless of gridsize.", DeprecationWarning, stacklevel=4)
        config.n_groups = config.n_images
    if config.n_groups is None:
        config.n_groups = default


def _check_strategy(name) -> None:
    # Raises ValueError listing the registered names for an unknown one.
    default_registry().get(name)


@dataclass
class TrainingConfig:
    """Training configuration; the grouping fields are what data preparation reads.

    ``n_groups`` (default 512) is the number of groups; ``n_images`` its
    deprecated alias. ``n_subsample`` scan points are drawn with
    ``subsample_seed`` before grouping when set. ``neighbor_count`` is ``K``.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    train_data_file: Optional[Path] = None
    test_data_file: Optional[Path] = None
    batch_size: int = 16
    nepochs: int = 50
    mae_weight: float = 0.0
    nll_weight: float = 1.0
    realspace_mae_weight: float = 0.0
    realspace_weight: float = 0.0
    nphotons: float = 1e9
    n_groups: Optional[int] = None
    n_images: Optional[int] = None
    n_subsample: Optional[int] = None
    subsample_seed: Optional[int] = None
    neighbor_count: int = 4
    enable_oversampling: bool = False
    neighbor_pool_size: Optional[int] = None
    positions_provided: bool = True
    probe_trainable: bool = False
    intensity_scale_trainable: bool = True
    output_dir: Path = Path("training_outputs")
    sequential_sampling: bool = False
    backend: str = "tensorflow"
    torch_loss_mode: str = "poisson"
    torch_mae_pred_l2_match_target: bool = False
    gradient_clip_val: Optional[float] = None
    gradient_clip_algorithm: str = "norm"
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    scheduler: str = "Default"
    lr_warmup_epochs: int = 0
    lr_min_ratio: float = 0.1
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    plateau_min_lr: float = 5e-5
    plateau_threshold: float = 0.0
    grouping_strategy: str = DEFAULT_STRATEGY

    def __post_init__(self):
        _resolve_n_groups(self, default=512)
        _check_strategy(self.grouping_strategy)


@dataclass
class InferenceConfig:
    """Inference configuration. ``n_groups`` None means every group (PtychoPINN's default)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    model_path: Optional[Path] = None
    test_data_file: Optional[Path] = None
    n_groups: Optional[int] = None
    n_images: Optional[int] = None
    n_subsample: Optional[int] = None
    subsample_seed: Optional[int] = None
    neighbor_count: int = 4
    enable_oversampling: bool = False
    neighbor_pool_size: Optional[int] = None
    debug: bool = False
    output_dir: Path = Path("inference_outputs")
    backend: str = "tensorflow"
    grouping_strategy: str = DEFAULT_STRATEGY

    def __post_init__(self):
        _resolve_n_groups(self, default=None)
        _check_strategy(self.grouping_strategy)


def dataclass_to_legacy_dict(obj: Any) -> Dict[str, Any]:
    """``obj``'s fields as legacy ``params.cfg`` entries.

    The nested ``model`` is flattened into the same dict, names in
    :data:`KEY_MAPPINGS` are renamed (``object_big`` -> ``object.big``,
    ``output_dir`` -> ``output_prefix``, ...) and ``Path`` values become
    strings. None values are kept (:func:`update_legacy_dict` skips them).
    """
    flat = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            flat.update(dataclass_to_legacy_dict(value))
        else:
            flat[f.name] = value
    return {KEY_MAPPINGS.get(key, key): str(value) if isinstance(value, Path) else value
            for key, value in flat.items()}


def update_legacy_dict(cfg: Dict[str, Any], dataclass_obj: Any) -> None:
    """Copy a config into the legacy dict ``cfg`` (``ptycho.params.cfg``) in place.

    As in PtychoPINN, None values are skipped so that a config which leaves a
    field unset does not erase an earlier value. The exception is
    :data:`ALWAYS_WRITTEN` (``n_subsample``, ``subsample_seed``): they are
    written even when None, because a subsample left over from an earlier
    config would otherwise silently shrink every later dataset grouped through
    ``params.cfg``.
    """
    for key, value in dataclass_to_legacy_dict(dataclass_obj).items():
        if value is not None or key in ALWAYS_WRITTEN:
            cfg[key] = value
