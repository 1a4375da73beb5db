"""The old module-level functions still import, warn, and forward to the legacy path."""
import sys

import numpy as np
import pytest

from ptycho import params
from ptycho.raw_data import RawData

from scan_patterns import make_coords


@pytest.fixture
def coords():
    xy = make_coords("jittered_raster", 64)
    return xy[:, 0], xy[:, 1]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the legacy path writes temp_dataset_* caches to cwd
    monkeypatch.setattr(params, "cfg", dict(params.cfg))


def test_default_path_does_not_load_the_shim():
    import subprocess
    code = ("import sys, numpy as np; from ptycho.raw_data import RawData; "
            "rd = RawData.from_coords_without_pc(np.arange(9.), np.zeros(9), np.ones((9, 2, 2)), "
            "np.ones((2, 2)), np.zeros(9)); rd.generate_grouped_data(2, nsamples=3, gridsize=2, seed=0); "
            "print('ptycho._deprecated' in sys.modules, 'ptycho_grouping.legacy' in sys.modules)")
    out = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code],
                         capture_output=True, text=True, check=True).stdout.split()
    # The registry imports the legacy module to list it; the shim stays unloaded.
    assert out[0] == "False"
    import ptycho.raw_data
    with pytest.raises(AttributeError, match="has no attribute 'no_such_function'"):
        getattr(ptycho.raw_data, "no_such_function")


def test_group_coords_warns_and_equals_the_legacy_strategy(coords):
    from ptycho.raw_data import group_coords
    from ptycho_grouping import GroupingRequest, get_strategy
    x, y = coords
    np.random.seed(1)
    with pytest.warns(DeprecationWarning, match="group_coords is deprecated.*generate_grouped_data") as rec:
        nn, coords_nn = group_coords(x, y, K=4, C=4, nsamples=10)
    assert rec[0].filename == __file__
    import pathlib
    for cache in pathlib.Path.cwd().glob("temp_dataset_*.g2k4.groups_cache.npz"):
        cache.unlink()  # so that the strategy draws all groups again, as the shim did
    np.random.seed(1)
    with pytest.warns(DeprecationWarning):
        expected = get_strategy("legacy_group_then_sample").group(
            np.column_stack([x, y]), GroupingRequest(n_groups=10, group_size=4, neighbors=4))
    assert np.array_equal(nn, expected)
    assert coords_nn.shape == (10, 1, 2, 4)
    assert np.array_equal(coords_nn[:, 0, 0], x[nn])


def test_calculate_relative_coords(coords):
    from ptycho.raw_data import calculate_relative_coords
    x, y = coords
    params.set("gridsize", 2)
    with pytest.warns(DeprecationWarning, match="calculate_relative_coords"):
        offsets, relative, nn = calculate_relative_coords(x, y, K=5, nsamples=6)
    assert nn.shape == (6, 4) and offsets.shape == (6, 1, 2, 1) and relative.shape == (6, 1, 2, 4)
    assert np.allclose(offsets[:, 0, 0, 0], x[nn].mean(axis=1))
    assert np.allclose(relative.sum(axis=3), 0)


def test_neighbor_helpers(coords):
    from ptycho.raw_data import get_neighbor_indices, get_neighbor_self_indices, sample_rows
    x, y = coords
    with pytest.warns(DeprecationWarning):
        nn = get_neighbor_indices(x, y, K=3)
    assert nn.shape == (64, 4) and (nn[:, 0] == np.arange(64)).all()
    with pytest.warns(DeprecationWarning):
        assert np.array_equal(get_neighbor_self_indices(x, y), np.arange(64)[:, None])
    np.random.seed(0)
    with pytest.warns(DeprecationWarning):
        rows = sample_rows(nn, 2, 3)
    assert rows.shape == (64, 3, 2)
    assert all(set(rows[i].ravel()) <= set(nn[i]) for i in range(64))


def test_get_neighbor_diffraction_and_positions(coords):
    from ptycho.raw_data import get_neighbor_diffraction_and_positions
    x, y = coords
    rd = RawData.from_coords_without_pc(x, y, np.ones((64, 4, 4)), np.ones((4, 4)), np.zeros(64))
    with pytest.warns(DeprecationWarning, match="get_neighbor_diffraction_and_positions"):
        out = get_neighbor_diffraction_and_positions(rd, 4, K=4, C=4, nsamples=5)
    assert out["diffraction"].shape == (5, 4, 4, 4)
