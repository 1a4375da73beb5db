"""Dataclass configs, the legacy params dict, and their precedence."""
import dataclasses

import numpy as np
import pytest

from ptycho_data import params
from ptycho_data.config import InferenceConfig, ModelConfig, TrainingConfig, update_legacy_dict
from ptycho_data.raw_data import RawData


@pytest.fixture(autouse=True)
def clean_params(monkeypatch):
    monkeypatch.setattr(params, "cfg", dict(params.cfg))


def test_defaults():
    cfg = TrainingConfig()
    assert cfg.grouping_strategy == "sample_then_group"
    assert cfg.model == ModelConfig(N=64, gridsize=1)
    assert InferenceConfig().grouping_strategy == "sample_then_group"
    assert params.get("gridsize") == 1 and params.get("grouping_strategy") == "sample_then_group"


def test_unknown_strategy_in_config_lists_registered_names():
    with pytest.raises(ValueError, match="unknown grouping_strategy 'fast'; registered strategies: .*sample_then_group"):
        TrainingConfig(grouping_strategy="fast")


def test_update_legacy_dict_copies_grouping_fields():
    cfg = TrainingConfig(model=ModelConfig(N=32, gridsize=2), n_groups=100, neighbor_count=7,
                         sequential_sampling=True, enable_oversampling=True,
                         neighbor_pool_size=9, subsample_seed=3)
    update_legacy_dict(params.cfg, cfg)
    assert {k: params.get(k) for k in ("N", "gridsize", "n_groups", "neighbor_count",
                                       "sequential_sampling", "enable_oversampling",
                                       "neighbor_pool_size", "subsample_seed",
                                       "grouping_strategy")} == {
        "N": 32, "gridsize": 2, "n_groups": 100, "neighbor_count": 7,
        "sequential_sampling": True, "enable_oversampling": True, "neighbor_pool_size": 9,
        "subsample_seed": 3, "grouping_strategy": "sample_then_group"}


def test_config_gridsize_drives_grouping_and_argument_wins():
    x = np.arange(36.0) % 6
    y = np.arange(36.0) // 6
    rd = RawData.from_coords_without_pc(x, y, np.ones((36, 4, 4)), np.ones((4, 4)), np.zeros(36))
    update_legacy_dict(params.cfg, TrainingConfig(model=ModelConfig(N=4, gridsize=2)))
    assert rd.generate_grouped_data(4, nsamples=5, seed=0)["nn_indices"].shape == (5, 4)
    assert rd.generate_grouped_data(4, nsamples=5, seed=0, gridsize=1)["nn_indices"].shape == (5, 1)


def test_params_get_missing_key_names_it():
    with pytest.raises(KeyError, match="no key 'nope'"):
        params.get("nope")


def test_mutability_is_ptychopinns():
    """ModelConfig is frozen; TrainingConfig and InferenceConfig are not (as in PtychoPINN)."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().gridsize = 2
    training, inference = TrainingConfig(), InferenceConfig()
    training.n_groups = inference.n_groups = 3
    assert training.n_groups == inference.n_groups == 3
