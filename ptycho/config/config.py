"""``ptycho.config.config`` without PtychoPINN: the data layer's dataclasses.

They carry PtychoPINN's field names and defaults plus ``grouping_strategy``;
inside PtychoPINN, ``ptycho-group adopt`` adds that one field to PtychoPINN's
own ``TrainingConfig`` instead.
"""
from ptycho_data.config import (KEY_MAPPINGS, InferenceConfig, ModelConfig, TrainingConfig,
                                dataclass_to_legacy_dict, update_legacy_dict)

__all__ = ["InferenceConfig", "KEY_MAPPINGS", "ModelConfig", "TrainingConfig",
           "dataclass_to_legacy_dict", "update_legacy_dict"]
