"""``ptycho.config`` without PtychoPINN (PtychoPINN's own is used inside it)."""
from .config import (KEY_MAPPINGS, InferenceConfig, ModelConfig, TrainingConfig,
                     dataclass_to_legacy_dict, update_legacy_dict)

__all__ = ["InferenceConfig", "KEY_MAPPINGS", "ModelConfig", "TrainingConfig",
           "dataclass_to_legacy_dict", "update_legacy_dict"]
