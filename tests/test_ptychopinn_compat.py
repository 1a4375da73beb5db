"""A PtychoPINN data-preparation script and PtychoPINN's files work unchanged.

Everything here goes through the import paths PtychoPINN scripts use:
``from ptycho.config.config import ...``, ``from ptycho.raw_data import ...``
and ``from ptycho import params``.
"""
import dataclasses
import json
import logging
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ptycho import params
from ptycho.config.config import (InferenceConfig, ModelConfig, TrainingConfig,
                                  dataclass_to_legacy_dict, update_legacy_dict)
from ptycho.raw_data import (RawData, get_image_patches, get_relative_coords, key_coords_offsets,
                             key_coords_relative, local_offset_sign, normalize_data)

N = 8


@pytest.fixture(autouse=True)
def clean_params(monkeypatch):
    monkeypatch.setattr(params, "cfg", dict(params.cfg))


def raster(side):
    yy, xx = np.divmod(np.arange(side * side), side)
    return xx.astype(float) * 3.0, yy.astype(float) * 3.0


def make_raw(m_side=6, dtype=np.float32, obj=False, seed=0):
    x, y = raster(m_side)
    m = len(x)
    rng = np.random.default_rng(seed)
    diff = (rng.random((m, N, N)) * 100).astype(dtype)
    objectGuess = ((rng.random((40, 40)) + 1j * rng.random((40, 40))).astype(np.complex64)
                   if obj else None)
    return RawData(x, y, x + 0.5, y - 0.25, diff, np.ones((N, N), np.complex64),
                   np.zeros(m, int), objectGuess=objectGuess)


# -- configuration ------------------------------------------------------------------

# Every field of PtychoPINN's classes (ptycho/config/config.py), with a value
# that is not the default: a script may set any of them.
PTYCHOPINN_MODEL_FIELDS = dict(
    N=128, gridsize=2, n_filters_scale=3, model_type="supervised", architecture="fno",
    fno_modes=8, fno_width=16, fno_blocks=2, fno_cnn_blocks=1, learned_input_channels=2,
    max_hidden_channels=64, resnet_width=32, fno_input_transform="sqrt",
    generator_output_mode="amp_phase", amp_activation="swish", object_big=False,
    probe_big=False, probe_mask=True, probe_mask_sigma=2.0, probe_mask_diameter=30.0,
    pad_object=False, probe_scale=2.0, gaussian_smoothing_sigma=0.5)
PTYCHOPINN_TRAINING_FIELDS = dict(
    train_data_file=Path("train.npz"), test_data_file=Path("test.npz"), batch_size=32,
    nepochs=5, mae_weight=0.5, nll_weight=0.5, realspace_mae_weight=0.1, realspace_weight=0.1,
    nphotons=1e6, n_groups=100, n_subsample=50, subsample_seed=7, neighbor_count=7,
    enable_oversampling=True, neighbor_pool_size=9, positions_provided=False,
    probe_trainable=True, intensity_scale_trainable=False, output_dir=Path("out"),
    sequential_sampling=True, backend="pytorch", torch_loss_mode="mae",
    torch_mae_pred_l2_match_target=True, gradient_clip_val=1.0, gradient_clip_algorithm="value",
    optimizer="sgd", momentum=0.5, weight_decay=0.1, adam_beta1=0.8, adam_beta2=0.99,
    scheduler="Exponential", lr_warmup_epochs=2, lr_min_ratio=0.2, plateau_factor=0.3,
    plateau_patience=4, plateau_min_lr=1e-5, plateau_threshold=0.1)
PTYCHOPINN_INFERENCE_FIELDS = dict(
    model_path=Path("model"), test_data_file=Path("test.npz"), n_groups=10, n_subsample=20,
    subsample_seed=1, neighbor_count=6, enable_oversampling=True, neighbor_pool_size=8,
    debug=True, output_dir=Path("inf"), backend="pytorch")


def test_both_import_paths_give_the_same_classes():
    import ptycho_data.config as package
    assert package.TrainingConfig is TrainingConfig and package.ModelConfig is ModelConfig
    assert package.InferenceConfig is InferenceConfig
    assert package.update_legacy_dict is update_legacy_dict


def test_every_ptychopinn_field_is_accepted_and_kept():
    model = ModelConfig(**PTYCHOPINN_MODEL_FIELDS)
    training = TrainingConfig(model=model, **PTYCHOPINN_TRAINING_FIELDS)
    inference = InferenceConfig(model=model, **PTYCHOPINN_INFERENCE_FIELDS)
    for config, fields in ((model, PTYCHOPINN_MODEL_FIELDS), (training, PTYCHOPINN_TRAINING_FIELDS),
                           (inference, PTYCHOPINN_INFERENCE_FIELDS)):
        assert {k: getattr(config, k) for k in fields} == fields
    # Positional order is PtychoPINN's too.
    assert [f.name for f in dataclasses.fields(TrainingConfig)][:4] == [
        "model", "train_data_file", "test_data_file", "batch_size"]
    assert [f.name for f in dataclasses.fields(InferenceConfig)][:3] == [
        "model", "model_path", "test_data_file"]


def test_ptychopinn_defaults():
    model, inference = ModelConfig(), InferenceConfig()
    training = TrainingConfig(model=ModelConfig())
    assert (model.N, model.gridsize, model.object_big, model.probe_big) == (64, 1, True, True)
    assert training.n_groups == 512 and inference.n_groups is None
    assert (training.neighbor_count, training.enable_oversampling, training.neighbor_pool_size,
            training.n_subsample, training.subsample_seed, training.sequential_sampling,
            training.nphotons, training.output_dir) == (4, False, None, None, None, False, 1e9,
                                                        Path("training_outputs"))
    assert inference.output_dir == Path("inference_outputs")
    assert training.grouping_strategy == inference.grouping_strategy == "sample_then_group"


@pytest.mark.parametrize("cls", [TrainingConfig, InferenceConfig])
def test_n_images_is_the_deprecated_alias_of_n_groups(cls):
    with pytest.warns(DeprecationWarning, match="'n_images' is deprecated") as record:
        config = cls(model=ModelConfig(), n_images=77)
    assert config.n_groups == 77 and record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cls(model=ModelConfig(), n_groups=5, n_images=77).n_groups == 5  # n_groups wins


def test_update_legacy_dict_flattens_maps_and_stringifies():
    config = TrainingConfig(model=ModelConfig(N=32, gridsize=2, object_big=False),
                            train_data_file=Path("/data/train.npz"), output_dir=Path("runs/a"),
                            probe_trainable=True, neighbor_count=7)
    update_legacy_dict(params.cfg, config)
    cfg = params.params()
    assert (cfg["N"], cfg["gridsize"]) == (32, 2)
    assert (cfg["object.big"], cfg["probe.trainable"]) == (False, True)
    assert cfg["train_data_file_path"] == "/data/train.npz" and cfg["output_prefix"] == "runs/a"
    assert cfg["neighbor_count"] == 7 and cfg["intensity_scale.trainable"] is True
    for gone in ("model", "object_big", "output_dir", "train_data_file"):
        assert gone not in cfg
    legacy = dataclass_to_legacy_dict(config)
    assert legacy["positions.provided"] is True and legacy["test_data_file_path"] is None


def test_update_legacy_dict_skips_none_values():
    update_legacy_dict(params.cfg, TrainingConfig(model=ModelConfig(), neighbor_pool_size=7,
                                                  test_data_file=Path("t.npz")))
    update_legacy_dict(params.cfg, TrainingConfig(model=ModelConfig()))
    assert params.get("neighbor_pool_size") == 7 and params.get("test_data_file_path") == "t.npz"


def test_a_later_config_clears_an_earlier_subsample():
    update_legacy_dict(params.cfg, TrainingConfig(model=ModelConfig(), n_subsample=10,
                                                  subsample_seed=3))
    assert (params.get("n_subsample"), params.get("subsample_seed")) == (10, 3)
    update_legacy_dict(params.cfg, InferenceConfig())
    assert params.get("n_subsample") is None and params.get("subsample_seed") is None


def test_params_accessors():
    assert params.get("gridsize") == 1 and params.get("N") == 64
    assert params.get("no_such_key", 5) == 5 and params.get("no_such_key", None) is None
    with pytest.raises(KeyError, match="no_such_key"):
        params.get("no_such_key")
    params.set("gridsize", 2)
    snapshot = params.params()
    snapshot["gridsize"] = 3
    assert params.get("gridsize") == 2 and params.cfg is not snapshot


def test_a_ptychopinn_preparation_script_runs_unchanged(tmp_path):
    """The data part of PtychoPINN's training workflow, line for line."""
    make_raw(obj=True).to_file(tmp_path / "train.npz")
    config = TrainingConfig(model=ModelConfig(N=N, gridsize=2),
                            train_data_file=tmp_path / "train.npz", n_groups=20,
                            neighbor_count=5, nphotons=1e9)
    update_legacy_dict(params.cfg, config)
    train = RawData.from_file(str(config.train_data_file))
    dataset = train.generate_grouped_data(config.model.N, K=config.neighbor_count,
                                          nsamples=config.n_groups, seed=0)
    assert dataset["X_full"].shape == (20, N, N, 4) and dataset["X_full"].dtype == np.float32
    assert dataset[key_coords_offsets].shape == (20, 1, 2, 1)
    assert dataset[key_coords_relative].shape == (20, 1, 2, 4)
    assert dataset["Y"].shape == (20, N, N, 4) and dataset["Y"].dtype == np.complex64


# -- n_subsample ---------------------------------------------------------------------

def subsample_of(m, n, seed):
    return np.sort(np.random.default_rng(seed).choice(m, size=n, replace=False))


@settings(max_examples=25, deadline=None)
@given(n_sub=st.integers(4, 36), sub_seed=st.integers(0, 2**32), seed=st.integers(0, 99),
       gridsize=st.integers(1, 2))
def test_n_subsample_groups_only_the_drawn_points(n_sub, sub_seed, seed, gridsize):
    raw = make_raw()
    state = np.random.get_state()
    args = dict(K=4, nsamples=min(n_sub, 3), seed=seed, gridsize=gridsize, n_subsample=n_sub,
                subsample_seed=sub_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # K clamped on 4 subsampled points
        nn = raw.group_indices(N, **args)
        again = raw.group_indices(N, **args)
    assert np.array_equal(np.random.get_state()[1], state[1])  # global RNG untouched
    drawn = subsample_of(36, n_sub, sub_seed) if n_sub < 36 else np.arange(36)
    assert set(nn.ravel()) <= set(drawn.tolist())  # indices into the full dataset
    if gridsize == 1:
        assert set(nn.ravel()) < set(drawn.tolist()) or n_sub <= 3
    assert np.array_equal(nn, again)


def test_n_subsample_is_independent_of_the_group_seed():
    raw = make_raw()
    seen = set()
    for seed in range(30):
        seen |= set(raw.group_indices(N, nsamples=5, seed=seed, gridsize=1, n_subsample=5,
                                      subsample_seed=11).ravel().tolist())
    assert seen == set(subsample_of(36, 5, 11).tolist())
    # All 5 of 5 subsampled points, in the draw of the group seed, for any group seed.
    out = raw.generate_grouped_data(N, nsamples=5, seed=1, gridsize=1, n_subsample=5,
                                    subsample_seed=11)
    assert np.array_equal(np.sort(out["nn_indices"][:, 0]), subsample_of(36, 5, 11))
    assert np.array_equal(out["coords_nn"][:, 0, 0, 0], raw.xcoords[out["nn_indices"][:, 0]])


def test_n_subsample_only_as_an_argument_never_from_params_cfg():
    """PtychoPINN's workflow writes n_subsample into params.cfg and subsamples at load
    time; reading it again here would subsample the (already subsampled) data twice."""
    raw = make_raw()
    update_legacy_dict(params.cfg, TrainingConfig(model=ModelConfig(), n_subsample=4,
                                                  subsample_seed=2))
    assert params.get("n_subsample") == 4
    nn = raw.group_indices(N, nsamples=36, seed=0)
    assert nn.shape == (36, 1) and set(nn.ravel()) == set(range(36))
    nn = raw.group_indices(N, nsamples=6, seed=0, n_subsample=6, subsample_seed=9)
    assert set(nn.ravel()) == set(subsample_of(36, 6, 9).tolist())


def test_n_subsample_at_least_m_means_every_point():
    raw = make_raw()
    a = raw.group_indices(N, nsamples=10, seed=3, gridsize=2, n_subsample=36, subsample_seed=0)
    b = raw.group_indices(N, nsamples=10, seed=3, gridsize=2)
    assert np.array_equal(a, b)


# -- metadata -----------------------------------------------------------------------------

METADATA = {"schema_version": "1.0.0",
            "physics_parameters": {"nphotons": 1e6, "gridsize": 2, "N": N, "model_type": "pinn"},
            "training_parameters": {"n_images": 100, "batch_size": 16, "nepochs": 50},
            "data_transformations": []}


def save_with_metadata(path, raw, metadata):
    """What PtychoPINN's MetadataManager.save_with_metadata writes."""
    arrays = dict(xcoords=raw.xcoords, ycoords=raw.ycoords, xcoords_start=raw.xcoords_start,
                  ycoords_start=raw.ycoords_start, diff3d=raw.diff3d, probeGuess=raw.probeGuess,
                  scan_index=raw.scan_index)
    arrays["_metadata"] = np.array(json.dumps(metadata, indent=2), dtype=object)
    np.savez_compressed(path, **arrays)


def ptychopinn_load_with_metadata(path):
    """What PtychoPINN's MetadataManager.load_with_metadata reads."""
    with np.load(path, allow_pickle=True) as data:
        metadata = json.loads(str(data["_metadata"].item())) if "_metadata" in data.files else None
        return {k: data[k] for k in data.files if k != "_metadata"}, metadata


def test_file_written_by_ptychopinns_metadata_manager_loads(tmp_path):
    raw = make_raw()
    save_with_metadata(tmp_path / "sim.npz", raw, METADATA)
    back = RawData.from_file(tmp_path / "sim.npz")
    assert back.metadata == METADATA
    assert np.array_equal(back.diff3d, raw.diff3d)
    assert "metadata: data_transformations, physics_parameters" in str(back)


def test_to_file_metadata_is_read_by_ptychopinns_loader_and_is_no_pickle(tmp_path):
    raw = make_raw()
    raw.metadata = dict(METADATA, extra={"seed": np.int64(3), "shift": np.array([1.5, 2.0])})
    raw.to_file(file_path=tmp_path / "ours.npz")
    data, metadata = ptychopinn_load_with_metadata(tmp_path / "ours.npz")
    assert metadata == dict(METADATA, extra={"seed": 3, "shift": [1.5, 2.0]})
    assert np.array_equal(data["diff3d"], raw.diff3d)
    with np.load(tmp_path / "ours.npz", allow_pickle=False) as npz:  # no pickle anywhere
        assert npz["_metadata"].dtype.kind == "U" and npz["_metadata"].shape == ()
    assert RawData.from_file(train_data_file_path=tmp_path / "ours.npz").metadata == metadata


def test_no_metadata_no_member(tmp_path):
    make_raw().to_file(tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as npz:
        assert "_metadata" not in npz.files
    assert RawData.from_file(tmp_path / "plain.npz").metadata is None


class CreatesAFile:
    """A pickle payload that creates ``path`` when unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("payload", ["reduce", "list", "dict", "bytes_in_object", "bad_json"])
def test_other_metadata_is_skipped_with_a_warning_and_never_unpickled(tmp_path, payload):
    raw = make_raw()
    marker = tmp_path / "pwned"
    members = {
        "reduce": np.array(CreatesAFile(marker), dtype=object),
        "list": np.array(["a", "b"], dtype=object),
        "dict": np.array({"physics_parameters": {}}, dtype=object),
        "bytes_in_object": np.array(b"{}", dtype=object),
        "bad_json": np.array("{not json", dtype=object),
    }
    np.savez(tmp_path / "evil.npz", xcoords=raw.xcoords, ycoords=raw.ycoords,
             diff3d=raw.diff3d, _metadata=members[payload])
    with pytest.warns(UserWarning, match=re.escape(str(tmp_path / "evil.npz"))):
        back = RawData.from_file(tmp_path / "evil.npz")
    assert back.metadata is None and np.array_equal(back.diff3d, raw.diff3d)
    assert not marker.exists()
    if payload == "reduce":  # the payload is live: unpickling it would have made the file
        pickle.loads(pickle.dumps(CreatesAFile(tmp_path / "proof"))).close()
        assert (tmp_path / "proof").exists()


def test_a_y_that_does_not_fit_the_patterns_does_not_stop_the_file_loading(tmp_path):
    raw = make_raw()
    y4 = (np.arange(36 * N * N) * 1j).reshape(36, N, N, 1).astype(np.complex64)
    np.savez(tmp_path / "channel.npz", xcoords=raw.xcoords, ycoords=raw.ycoords,
             diff3d=raw.diff3d, Y=y4)
    for mmap in (False, True):
        assert np.array_equal(RawData.from_file(tmp_path / "channel.npz", mmap=mmap).Y, y4[..., 0])
    np.savez(tmp_path / "placeholder.npz", xcoords=raw.xcoords, ycoords=raw.ycoords,
             diff3d=raw.diff3d, Y=np.ones((1, N, N, 1), np.complex64))
    with pytest.warns(UserWarning, match=r"Y has shape \(1, 8, 8\), not \(36, 8, 8\)"):
        back = RawData.from_file(tmp_path / "placeholder.npz")
    assert back.Y is None and np.array_equal(back.diff3d, raw.diff3d)


def test_validate_config_logs_each_mismatch(tmp_path, caplog):
    save_with_metadata(tmp_path / "sim.npz", make_raw(), METADATA)
    matching = TrainingConfig(model=ModelConfig(N=N, gridsize=2), nphotons=1e6)
    with caplog.at_level(logging.WARNING, logger="ptycho.raw_data"):
        RawData.from_file(tmp_path / "sim.npz", validate_config=True, current_config=matching)
    assert not caplog.records
    other = TrainingConfig(model=ModelConfig(N=16, gridsize=1), nphotons=1e9)
    with caplog.at_level(logging.WARNING, logger="ptycho.raw_data"):
        RawData.from_file(tmp_path / "sim.npz", validate_config=True, current_config=other)
        RawData.from_file(tmp_path / "sim.npz", current_config=other)  # not asked: silent
    text = [r.getMessage() for r in caplog.records]
    assert len(text) == 3
    assert any("nphotons mismatch: dataset=1000000.0, config=1000000000.0" in t for t in text)
    assert any("N mismatch: dataset=8, config=16" in t for t in text)
    assert any("gridsize mismatch: dataset=2, config=1" in t for t in text)


# -- the data layer -------------------------------------------------------------------

def test_coordinates_only_rawdata_groups_and_refuses_patterns():
    x, y = raster(6)
    raw = RawData(x, y, x, y, None, None, None)
    nn = raw.group_indices(N, K=4, nsamples=10, gridsize=2, seed=0)
    assert nn.shape == (10, 4)
    with pytest.raises(ValueError, match="diff3d is None: this RawData holds scan positions only"):
        raw.generate_grouped_data(N, K=4, nsamples=10, gridsize=2, seed=0)
    assert "no diffraction patterns" in str(raw) and "diff3d: None" in str(raw)


def test_sample_indices_are_carried_into_the_output():
    raw = make_raw()
    assert "sample_indices" not in raw.generate_grouped_data(N, nsamples=3, seed=0)
    raw.sample_indices = np.arange(100, 136)
    out = raw.generate_grouped_data(N, nsamples=3, seed=0)
    assert np.array_equal(out["sample_indices"], np.arange(100, 136))
    assert out["sample_indices"] is not raw.sample_indices


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float16, np.float32, np.float64])
def test_x_full_is_float32_and_diffraction_keeps_its_dtype(dtype):
    raw = make_raw(dtype=dtype)
    out = raw.generate_grouped_data(N, K=4, nsamples=10, gridsize=2, seed=0)
    assert out["X_full"].dtype == np.float32 and out["diffraction"].dtype == dtype
    reference = normalize_data(out, N)  # PtychoPINN's formula: float32 before scaling
    # float16 patterns are scaled in float16 by the gathering code, then widened.
    rtol = 4 * np.finfo(np.float16).eps if dtype == np.float16 else 1e-5
    assert np.allclose(out["X_full"], reference, rtol=rtol)


def test_normalize_data_matches_the_formula_and_does_not_overflow_uint16():
    diffraction = np.full((3, N, N, 4), 60000, np.uint16)  # 60000**2 overflows uint16/int32
    diffraction[0] = 1000
    X = normalize_data({"diffraction": diffraction}, N)
    d = diffraction.astype(np.float64)
    expected = d * np.sqrt((N / 2) ** 2 / np.mean(np.sum(d ** 2, axis=(1, 2))))
    assert X.dtype == np.float32 and np.allclose(X, expected, rtol=1e-6)


def test_relative_coords_and_constants_are_ptychopinns():
    assert (local_offset_sign, key_coords_offsets, key_coords_relative) == (
        -1, "coords_start_offsets", "coords_start_relative")
    out = make_raw().generate_grouped_data(N, K=4, nsamples=10, gridsize=2, seed=0)
    for prefix in ("coords", "coords_start"):
        offsets, relative = get_relative_coords(out[f"{prefix}_nn"])
        assert np.allclose(offsets, out[f"{prefix}_offsets"])
        assert np.allclose(relative, out[f"{prefix}_relative"])
        assert np.allclose(relative, -(out[f"{prefix}_nn"] - offsets))
    with pytest.raises(ValueError, match=r"coords_nn must be 4-D"):
        get_relative_coords(np.zeros((3, 2, 4)))


@pytest.mark.parametrize("gridsize", [1, 2])
def test_get_image_patches_are_the_output_patches(gridsize):
    raw = make_raw(obj=True)
    out = raw.generate_grouped_data(N, K=4, nsamples=7, gridsize=gridsize, seed=2)
    patches = get_image_patches(raw.objectGuess, out["coords_offsets"], out["coords_relative"],
                                N=N, gridsize=gridsize)
    assert patches.dtype == np.complex64 and patches.shape == (7, N, N, gridsize ** 2)
    assert np.array_equal(patches, out["Y"])
    params.set("N", N)
    params.set("gridsize", gridsize)  # defaults from params, as PtychoPINN's
    assert np.array_equal(get_image_patches(raw.objectGuess, out["coords_offsets"],
                                            out["coords_relative"]), patches)
    with pytest.raises(ValueError, match=r"must have shape \(B, 1, 2, 9\) for gridsize=3"):
        get_image_patches(raw.objectGuess, out["coords_offsets"], out["coords_relative"],
                          N=N, gridsize=3)


def test_str_summarises_counts_shapes_and_ranges():
    text = str(make_raw())
    assert text.startswith("RawData: 36 scan positions, 8x8 diffraction patterns")
    assert "xcoords: (36,) float64, range [0, 15]" in text
    assert "ycoords_start: (36,) float64, range [-0.25, 14.75]" in text
    assert "diff3d: (36, 8, 8) float32" in text and "objectGuess: None" in text


# -- errors name the caller's parameters ------------------------------------------------

ENGINE_NAMES = re.compile(r"\b(n_groups|group_size|neighbors|rng|sequential)\s*[=(]")
CALLER_NAMES = re.compile(r"\b(nsamples|gridsize|K|neighbor_pool_size|enable_oversampling|seed|"
                          r"sequential_sampling|n_subsample|subsample_seed|N)\b")
LEGACY = "legacy_group_then_sample"


@pytest.mark.parametrize("m_side, kwargs, names", [
    (2, dict(gridsize=3), "gridsize=3 needs C=9"),
    (6, dict(gridsize=2, K=3), r"K=3 must be at least 4 for gridsize=2 \(C=4\)"),
    (6, dict(gridsize=3, K=7, grouping_strategy=LEGACY), r"K=7 must be at least 8 for gridsize=3"),
    (6, dict(gridsize=2, nsamples=100), "nsamples=100 is larger than .*enable_oversampling=True"),
    (6, dict(gridsize=2, nsamples=100, enable_oversampling=True, neighbor_pool_size=3),
     r"neighbor_pool_size=3 must be at least C=4 \(the group size\) when oversampling"),
    (6, dict(gridsize=2, nsamples=100, enable_oversampling=True, K=3),
     r"K=3 must be at least 4 for gridsize=2"),
    (6, dict(gridsize=2, nsamples=10000, enable_oversampling=True),
     r"cannot draw nsamples=10000 distinct groups of gridsize=2 \(C=4\).*raise K"),
    (6, dict(gridsize=2, nsamples=10000, enable_oversampling=True, neighbor_pool_size=5),
     r"cannot draw nsamples=10000 .*raise neighbor_pool_size"),
    (2, dict(gridsize=2, K=4, grouping_strategy=LEGACY), r"K=4 needs at least K\+1=5 scan points"),
    (6, dict(gridsize=2, seed=2**40, grouping_strategy=LEGACY),
     r"seed=1099511627776 is out of range"),
    (6, dict(n_subsample=0), "n_subsample must be a positive integer, got 0"),
    (6, dict(n_subsample=3, gridsize=2),
     r"gridsize=2 needs C=4 .*3 scan points drawn by n_subsample"),
    (6, dict(n_subsample=5, subsample_seed=-2), "subsample_seed must be a non-negative int seed"),
    (6, dict(enable_oversampling="yes"), "enable_oversampling must be True or False"),
    (6, dict(neighbor_pool_size=0), "neighbor_pool_size must be a positive integer"),
    (6, dict(sequential_sampling=None), "sequential_sampling must be True or False"),
])
@pytest.mark.parametrize("entry", ["generate_grouped_data", "group_indices"])
def test_errors_name_the_callers_parameters(tmp_path, m_side, kwargs, names, entry):
    raw = make_raw(m_side)
    args = dict(nsamples=2, seed=0, dataset_path=str(tmp_path / "scan.npz")) | kwargs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy strategy's deprecation, clamped K
        with pytest.raises((ValueError, TypeError)) as info:
            getattr(raw, entry)(N, **args)
    message = str(info.value)
    assert re.search(names, message), message
    assert not ENGINE_NAMES.search(message), message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 30), gridsize=st.integers(1, 3), K=st.integers(1, 10),
       nsamples=st.integers(1, 400), oversampling=st.booleans(),
       pool=st.none() | st.integers(1, 12), sequential=st.booleans(),
       legacy=st.booleans(), n_subsample=st.none() | st.integers(1, 30))
def test_any_refused_request_is_explained_in_the_callers_terms(
        tmp_path_factory, m, gridsize, K, nsamples, oversampling, pool, sequential, legacy,
        n_subsample):
    rng = np.random.default_rng(m)
    x, y = rng.uniform(0, 20, m), rng.uniform(0, 20, m)
    raw = RawData(x, y, x, y, None, None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nn = raw.group_indices(
                N, K=K, nsamples=nsamples, seed=0, gridsize=gridsize,
                enable_oversampling=oversampling, neighbor_pool_size=pool,
                sequential_sampling=sequential, n_subsample=n_subsample, subsample_seed=1,
                grouping_strategy=LEGACY if legacy else None,
                dataset_path=str(tmp_path_factory.getbasetemp() / f"scan{m}.npz"))
        except (ValueError, TypeError) as exc:
            message = str(exc)
            assert not ENGINE_NAMES.search(message), message
            assert CALLER_NAMES.search(message), message
        else:
            assert nn.shape[1] == gridsize ** 2 and ((0 <= nn) & (nn < m)).all()


# -- the pickle reader behind _metadata ------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@given(text=st.text(max_size=300))
def test_pickled_text_recovers_any_string_in_every_protocol(protocol, text):
    from ptycho_grouping.npz_io import pickled_text
    assert pickled_text(pickle.dumps(np.array(text, dtype=object), protocol=protocol)) == text


@pytest.mark.parametrize("obj, reason", [
    (np.array(None, dtype=object), "something other than a string"),
    (np.array(3, dtype=object), "something other than a string"),
    (np.array(["a"], dtype=object), r"shape \(1,\)"),
    (np.array("abc"), "not an object array"),
    ("abc", "not a pickled NumPy array"),
    ({"a": 1}, "opcode"),
])
def test_pickled_text_refuses_everything_else(obj, reason):
    from ptycho_grouping.npz_io import pickled_text
    with pytest.raises(ValueError, match=reason):
        pickled_text(pickle.dumps(obj, protocol=4))


def test_pickled_text_refuses_truncated_streams():
    from ptycho_grouping.npz_io import pickled_text
    stream = pickle.dumps(np.array("hello", dtype=object), protocol=4)
    for cut in range(0, len(stream) - 1, 7):
        with pytest.raises(ValueError):
            pickled_text(stream[:cut])
