"""PtychoPINN's data path on an adopted checkout, against PtychoPINN's own RawData.

Run from the top of a PtychoPINN checkout that ``ptycho-group adopt`` changed,
with the pre-refactor ``raw_data.py`` given as the first argument and an NPZ
dataset as the second (``ptycho-group demo-data`` makes one)::

    python tests/ptychopinn_e2e.py ORIGINAL_RAW_DATA.py demo.npz [--train ours|theirs]

It groups the dataset through PtychoPINN's own workflow
(``create_ptycho_data_container`` -> adopted ``generate_grouped_data`` ->
``loader.load``), then hands *the same groups* to PtychoPINN's original
``RawData._generate_dataset_from_groups`` and the same loader, and prints
one JSON line comparing every array of the two containers (shape, dtype,
largest difference). It also checks, through PtychoPINN's ``load_data``,
that a subsampled file is not subsampled again and that ``np.random.seed``
makes the groups reproducible. ``--train ours`` (or ``theirs``) trains one
epoch of PtychoPINN's model on that container (TensorFlow, CPU; the model
is built once per process, so the two run in separate processes) and
reports its loss. Used by ``tests/test_adoption.py`` when ``PTYCHOPINN_SRC`` is set;
see docs/ptychopinn.md.
"""
import importlib.util
import json
import os
import sys

import numpy as np


def load_original(path):
    spec = importlib.util.spec_from_file_location("ptychopinn_original_raw_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def arrays(container):
    names = ("X", "Y_I", "Y_phi", "norm_Y_I", "coords_nominal", "coords_true", "nn_indices",
             "global_offsets", "local_offsets", "probe")
    out = {}
    for name in names:
        value = getattr(container, f"_{name}_np", None)
        if value is None:
            value = getattr(container, name, None)
        if value is not None:
            out[name] = np.asarray(value)
    return out


def compare(ours, theirs):
    report = {}
    for name in sorted(set(ours) | set(theirs)):
        a, b = ours.get(name), theirs.get(name)
        if a is None or b is None:
            report[name] = {"missing": "ours" if a is None else "theirs"}
            continue
        entry = {"shape": [list(a.shape), list(b.shape)], "dtype": [str(a.dtype), str(b.dtype)]}
        if a.shape == b.shape:
            diff = np.abs(a.astype(np.complex128) - b.astype(np.complex128))
            entry["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
            entry["equal"] = bool(np.array_equal(a, b))
        report[name] = entry
    return report


def main(argv):
    original_path, data_file = argv[0], argv[1]
    sys.path.insert(0, os.getcwd())  # the adopted checkout's ptycho, not this folder
    if "--train" in argv:
        # PtychoPINN builds its model when ptycho.model is first imported: seed and
        # make TensorFlow deterministic before that, or two runs train differently.
        import tensorflow as tf

        tf.keras.utils.set_random_seed(0)
        tf.config.experimental.enable_op_determinism()
    from ptycho import params
    from ptycho.config.config import ModelConfig, TrainingConfig, update_legacy_dict
    from ptycho.raw_data import RawData
    from ptycho import loader
    from ptycho.workflows import components

    with np.load(data_file, allow_pickle=False) as f:
        n = int(f["diff3d"].shape[1])
    config = TrainingConfig(model=ModelConfig(N=n, gridsize=2), train_data_file=data_file,
                            n_groups=64, neighbor_count=7, nepochs=1, batch_size=16)
    update_legacy_dict(params.cfg, config)
    result = {"N": n}

    raw = RawData.from_file(data_file)
    np.random.seed(0)
    ours = components.create_ptycho_data_container(raw, config)
    groups = np.asarray(ours.nn_indices)

    original = load_original(original_path)
    theirs_raw = original.RawData.from_file(data_file)
    dset = theirs_raw._generate_dataset_from_groups(groups, n, config.neighbor_count, 2)
    theirs = loader.load(lambda: dset, theirs_raw.probeGuess, which=None, create_split=False)
    result["containers"] = compare(arrays(ours), arrays(theirs))

    np.random.seed(0)
    again = components.create_ptycho_data_container(RawData.from_file(data_file), config)
    result["seeded_runs_identical"] = bool(np.array_equal(np.asarray(again.nn_indices), groups))

    # PtychoPINN's loader subsamples at load time and writes n_subsample to params.cfg.
    sub_config = TrainingConfig(model=ModelConfig(N=n, gridsize=2), n_groups=64,
                                n_subsample=40, subsample_seed=1, neighbor_count=7)
    update_legacy_dict(params.cfg, sub_config)
    sub_raw = components.load_data(data_file, n_subsample=40, subsample_seed=1)
    sub = sub_raw.generate_grouped_data(n, K=7, nsamples=40, gridsize=2, seed=0)
    result["subsampled_file"] = {"points": len(sub_raw.xcoords),
                                 "groups": list(sub["nn_indices"].shape),
                                 "params_cfg_n_subsample": params.cfg.get("n_subsample")}

    if "--train" in argv:
        which = argv[argv.index("--train") + 1]
        update_legacy_dict(params.cfg, config)
        out = components.train_cdi_model({"ours": ours, "theirs": theirs}[which], None, config)
        history = getattr(out["history"], "history", out["history"])
        result["one_epoch_loss"] = {which: float(history["loss"][-1])}
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
