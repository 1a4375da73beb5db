"""Bad input is refused in one place with a message naming parameter and value."""
import numpy as np
import pytest

from ptycho_grouping import GroupingRequest, NeighborIndex, get_strategy
from ptycho_grouping.neighbors import validate_coords

XY = np.random.default_rng(0).uniform(0, 10, (50, 2))


@pytest.mark.parametrize("field", ["n_groups", "group_size", "neighbors", "neighbor_pool_size"])
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_counts(field, value):
    kwargs = {"n_groups": 4, field: value}
    with pytest.raises(ValueError, match=rf"{field} must be a positive integer, got {value}"):
        GroupingRequest(**kwargs)


@pytest.mark.parametrize("field", ["n_groups", "group_size", "neighbors", "neighbor_pool_size"])
@pytest.mark.parametrize("value", [2.0, 2.5, "4", True])
def test_non_integer_counts(field, value):
    kwargs = {"n_groups": 4, field: value}
    with pytest.raises(TypeError, match=rf"{field} must be a positive integer, got {value!r}"):
        GroupingRequest(**kwargs)


def test_numpy_integers_are_accepted_and_normalised():
    req = GroupingRequest(n_groups=np.int64(5), group_size=np.int32(4), neighbors=np.uint8(6))
    assert (req.n_groups, req.group_size, req.neighbors) == (5, 4, 6)
    assert type(req.n_groups) is int


@pytest.mark.parametrize("rng", [1.5, "seed", [1, 2]])
def test_bad_rng_type(rng):
    with pytest.raises(TypeError, match="rng must be"):
        GroupingRequest(n_groups=1, rng=rng)


def test_negative_seed():
    with pytest.raises(ValueError, match="rng must be a non-negative int seed, got -1"):
        GroupingRequest(n_groups=1, rng=-1)


@pytest.mark.parametrize("field", ["sequential", "enable_oversampling"])
def test_flags_must_be_bool(field):
    with pytest.raises(TypeError, match=rf"{field} must be True or False, got 'yes'"):
        GroupingRequest(n_groups=1, **{field: "yes"})


@pytest.mark.parametrize("bad, exc, message", [
    (np.zeros((5, 3)), ValueError, r"coords must have shape \(M, 2\), got \(5, 3\)"),
    (np.zeros(10), ValueError, r"coords must have shape \(M, 2\), got \(10,\)"),
    (np.zeros((0, 2)), ValueError, r"at least one point"),
    (np.array([[0.0, 1.0], [np.nan, 2.0]]), ValueError, r"finite: 1 non-finite point.*index 1"),
    (np.array([[0.0, np.inf]]), ValueError, r"finite.*index 0"),
    (np.array([["a", "b"]]), TypeError, r"real numeric array, got dtype <U1"),
    (np.zeros((3, 2), complex), TypeError, r"real numeric array"),
    ([[0.0, 1.0], [2.0]], ValueError, r"coords must have shape \(M, 2\), but its rows differ"),
    ([[0.0, 1.0], [2.0, [3.0]]], ValueError, r"coords must have shape \(M, 2\), but its rows"),
])
def test_bad_coordinates(bad, exc, message):
    with pytest.raises(exc, match=message):
        validate_coords(bad)
    with pytest.raises(exc, match=message):
        get_strategy().group(bad, GroupingRequest(n_groups=1))


def test_fewer_points_than_group_size():
    with pytest.raises(ValueError, match=r"group_size=9 is larger than the number of scan points \(5\)"):
        get_strategy().group(XY[:5], GroupingRequest(n_groups=1, group_size=9, neighbors=9))


def test_k_smaller_than_c_names_both():
    with pytest.raises(ValueError, match=r"neighbors \(K=3\) must be at least 4 for group_size \(C=4\)"):
        get_strategy().group(XY, GroupingRequest(n_groups=1, group_size=4, neighbors=3))


def test_k_is_irrelevant_for_single_point_groups():
    groups = get_strategy().group(XY, GroupingRequest(n_groups=3, group_size=1, neighbors=1, rng=0))
    assert groups.shape == (3, 1)


def test_unknown_strategy_lists_registered_names():
    with pytest.raises(ValueError, match=r"unknown grouping_strategy 'nope'; registered strategies: .*sample_then_group"):
        get_strategy("nope")


def test_request_must_be_a_grouping_request():
    with pytest.raises(TypeError, match="request must be a GroupingRequest, got dict"):
        get_strategy().group(XY, {"n_groups": 3})


def test_integer_coordinates_are_accepted_as_float():
    index = NeighborIndex(np.arange(20).reshape(10, 2))
    assert index.coords.dtype == np.float64
    assert index.coords[3, 1] == 7.0
