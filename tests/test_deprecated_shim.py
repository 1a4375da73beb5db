"""The old module-level functions still import from ptycho_data.raw_data, warn, and do what they did."""
import inspect
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest
from scipy.spatial import cKDTree

from ptycho_data import params
from ptycho_data.raw_data import RawData

from scan_patterns import make_coords

NAMES = ("group_coords", "get_neighbor_diffraction_and_positions", "get_neighbor_indices",
         "sample_rows", "get_neighbor_self_indices", "calculate_relative_coords")

# The signatures of the pre-refactor functions (PtychoPINN's ptycho/raw_data.py).
OLD_SIGNATURES = {
    "group_coords": "(xcoords, ycoords, K, C, nsamples)",
    "get_neighbor_diffraction_and_positions": "(ptycho_data, N, K=6, C=None, nsamples=10)",
    "get_neighbor_indices": "(xcoords, ycoords, K=3)",
    "sample_rows": "(indices, n, m)",
    "get_neighbor_self_indices": "(xcoords, ycoords)",
    "calculate_relative_coords": "(xcoords, ycoords, K=4, C=None, nsamples=10)",
}


# -- the old functions, written plainly (reference) ------------------------------

def old_neighbor_indices(x, y, K):
    points = np.column_stack((x, y))
    return cKDTree(points).query(points, k=K + 1)[1]


def old_sample_rows(indices, n, m):
    result = np.zeros((indices.shape[0], m, n), dtype=int)
    for i in range(indices.shape[0]):
        result[i] = np.array([np.random.choice(indices[i], size=n, replace=False) for _ in range(m)])
    return result


def old_group_coords(x, y, K, C, nsamples):
    if C == 1:
        nn = np.arange(len(x)).reshape(len(x), 1)
    else:
        nn = old_sample_rows(old_neighbor_indices(x, y, K), C, nsamples).reshape(-1, C)
    return nn, np.transpose(np.array([x[nn], y[nn]]), [1, 0, 2])[:, None, :, :]


@pytest.fixture
def coords():
    xy = make_coords("jittered_raster", 64)
    return xy[:, 0], xy[:, 1]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing here should write, but if it did: only here
    monkeypatch.setattr(params, "cfg", dict(params.cfg))


def shim(name):
    import ptycho.raw_data
    return getattr(ptycho.raw_data, name)


def call_warned(fn, *args, **kwargs):
    """Call ``fn`` and return its result and its single DeprecationWarning."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    deprecations = [w for w in record if w.category is DeprecationWarning]
    assert len(deprecations) == 1, [str(w.message) for w in record]
    return out, deprecations[0]


@pytest.mark.parametrize("name", NAMES)
def test_importable_with_the_old_signature(name):
    exec(f"from ptycho_data.raw_data import {name}", {})
    params_ = inspect.signature(shim(name)).parameters.values()
    text = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params_)
    assert f"({text})" == OLD_SIGNATURES[name]


@pytest.mark.real_process  # a fresh interpreter (imports, limits, filters) is what is tested
def test_default_path_does_not_use_the_shim(monkeypatch):
    code = ("import numpy as np; from ptycho_data.raw_data import RawData; "
            "rd = RawData.from_coords_without_pc(np.arange(9.), np.zeros(9), np.ones((9, 2, 2)), "
            "np.ones((2, 2)), np.zeros(9)); "
            "print(rd.generate_grouped_data(2, nsamples=3, gridsize=2, seed=0)['nn_indices'].shape)")
    out = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["(3,", "4)"]
    import ptycho.raw_data
    import ptycho_data._deprecated
    import ptycho_data.raw_data

    def boom(*args, **kwargs):
        raise AssertionError("the default path called the deprecated grouping")

    monkeypatch.setattr(ptycho_data.raw_data, "legacy_group_coords", boom)
    monkeypatch.setattr(ptycho_data._deprecated, "legacy_group_coords", boom)
    rd = make_raw(np.arange(64.0), np.zeros(64))
    assert rd.generate_grouped_data(4, nsamples=5, gridsize=2, seed=0)["nn_indices"].shape == (5, 4)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_function'"):
        getattr(ptycho.raw_data, "no_such_function")


def test_shim_imports_one_way_with_no_function_level_imports():
    """raw_data imports the shim; the shim never imports raw_data, at any level."""
    import ast
    import ptycho_data._deprecated
    tree = ast.parse(open(ptycho_data._deprecated.__file__).read())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names} | {node.module or "" for node in ast.walk(tree)
                                            if isinstance(node, ast.ImportFrom)}
    assert not any("raw_data" in name or name == "RawData" for name in imported), imported
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert functions and not any(isinstance(n, (ast.Import, ast.ImportFrom))
                                 for f in functions for n in ast.walk(f))


@pytest.mark.parametrize("C, K", [(4, 4), (4, 7), (9, 8)])
@pytest.mark.parametrize("seed", [1, 2024])
def test_group_coords_is_the_old_function(coords, C, K, seed):
    x, y = coords
    np.random.seed(seed)
    expected_nn, expected_coords = old_group_coords(x, y, K, C, 3)
    np.random.seed(seed)
    (nn, coords_nn), warning = call_warned(shim("group_coords"), x, y, K=K, C=C, nsamples=3)
    assert warning.filename == __file__
    message = str(warning.message)
    assert "group_coords is deprecated" in message and "generate_grouped_data" in message
    assert "0.3" in message and "MIGRATION.md" in message
    # Every point contributes nsamples groups: M * nsamples rows, as before.
    assert nn.shape == (64 * 3, C)
    assert np.array_equal(nn, expected_nn) and np.array_equal(coords_nn, expected_coords)
    assert coords_nn.shape == (64 * 3, 1, 2, C)


def test_group_coords_defaults_c_from_params_gridsize(coords):
    x, y = coords
    params.set("gridsize", 1)
    (nn, coords_nn), _ = call_warned(shim("group_coords"), x, y, 4, None, 10)
    assert np.array_equal(nn, np.arange(64)[:, None])  # gridsize 1: all points, count ignored
    assert np.array_equal(coords_nn[:, 0, :, 0], np.column_stack([x, y]))
    params.set("gridsize", 2)
    np.random.seed(0)
    expected, _ = old_group_coords(x, y, 4, 4, 2)
    np.random.seed(0)
    (nn, _), _ = call_warned(shim("group_coords"), x, y, 4, None, 2)
    assert np.array_equal(nn, expected)


def test_calculate_relative_coords(coords):
    x, y = coords
    params.set("gridsize", 2)
    np.random.seed(5)
    expected_nn, expected_coords = old_group_coords(x, y, 4, 4, 6)  # old default K=4
    np.random.seed(5)
    (offsets, relative, nn), warning = call_warned(shim("calculate_relative_coords"), x, y, nsamples=6)
    assert "calculate_relative_coords" in str(warning.message) and warning.filename == __file__
    assert np.array_equal(nn, expected_nn)
    assert offsets.shape == (64 * 6, 1, 2, 1) and relative.shape == (64 * 6, 1, 2, 4)
    assert np.allclose(offsets, expected_coords.mean(axis=3, keepdims=True))
    # The data layer's sign convention: coords_relative = -(coords_nn - offsets).
    assert np.allclose(relative, -(expected_coords - offsets))


def test_neighbor_helpers(coords):
    x, y = coords
    nn, warning = call_warned(shim("get_neighbor_indices"), x, y, K=3)
    assert "NeighborIndex" in str(warning.message) and warning.filename == __file__
    assert np.array_equal(nn, old_neighbor_indices(x, y, 3))
    assert nn.shape == (64, 4) and (nn[:, 0] == np.arange(64)).all()
    selves, _ = call_warned(shim("get_neighbor_self_indices"), x, y)
    assert np.array_equal(selves, np.arange(64)[:, None])
    np.random.seed(0)
    expected = old_sample_rows(nn, 2, 3)
    np.random.seed(0)
    rows, _ = call_warned(shim("sample_rows"), nn, 2, 3)
    assert rows.shape == (64, 3, 2) and np.array_equal(rows, expected)
    assert all(set(rows[i].ravel()) <= set(nn[i]) for i in range(64))


def make_raw(x, y):
    diff = np.random.default_rng(0).random((64, 4, 4)).astype(np.float32)
    return RawData.from_coords_without_pc(x, y, diff, np.ones((4, 4)), np.zeros(64))


def test_get_neighbor_diffraction_and_positions(coords):
    x, y = coords
    rd = make_raw(x, y)
    np.random.seed(3)
    expected_nn, expected_coords = old_group_coords(x, y, 6, 4, 5)  # old default K=6
    np.random.seed(3)
    out, warning = call_warned(shim("get_neighbor_diffraction_and_positions"), rd, 4, C=4, nsamples=5)
    assert "get_neighbor_diffraction_and_positions" in str(warning.message)
    assert warning.filename == __file__
    assert np.array_equal(out["nn_indices"], expected_nn)
    assert np.array_equal(out["coords_nn"], expected_coords)
    assert out["diffraction"].shape == (64 * 5, 4, 4, 4)
    assert np.array_equal(out["diffraction"], np.moveaxis(rd.diff3d[expected_nn], 1, 3))
    # The same keys as the unified path returns.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        new = rd.generate_grouped_data(4, K=6, nsamples=5, gridsize=2, seed=0)
    assert set(out) == set(new)


def test_gridsize_1_old_function_equals_the_legacy_strategy(coords):
    # Before the refactor, gridsize 1 went through get_neighbor_diffraction_and_positions.
    x, y = coords
    rd = make_raw(x, y)
    params.set("gridsize", 1)
    old, _ = call_warned(shim("get_neighbor_diffraction_and_positions"), rd, 4, nsamples=7)
    with pytest.warns(DeprecationWarning), pytest.warns(UserWarning, match="nsamples=7 is ignored"):
        new = rd.generate_grouped_data(4, nsamples=7, grouping_strategy="legacy_group_then_sample")
    assert set(old) == set(new)
    for key in old:
        if old[key] is None:
            assert new[key] is None
        else:
            assert np.array_equal(old[key], new[key]), key


def test_accepts_a_rawdata_like_object(coords):
    x, y = coords
    rd = make_raw(x, y)
    like = types.SimpleNamespace(xcoords=x, ycoords=y, diff3d=rd.diff3d)
    np.random.seed(8)
    out, _ = call_warned(shim("get_neighbor_diffraction_and_positions"), like, 4, K=4, C=4, nsamples=2)
    np.random.seed(8)
    expected_nn, _ = old_group_coords(x, y, 4, 4, 2)
    assert np.array_equal(out["nn_indices"], expected_nn)
    assert out["Y"] is None and out["objectGuess"] is None
