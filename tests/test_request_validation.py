"""Bad input is refused in one place with a message naming parameter and value;
a strategy's output is checked before anyone sees it."""
import numbers
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ptycho_grouping import GroupingRequest, GroupingStrategy, NeighborIndex, get_strategy, validation
from ptycho_grouping.validation import check_coords

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
        check_coords(bad)
    with pytest.raises(exc, match=message):
        get_strategy().group(bad, GroupingRequest(n_groups=1))


def test_fewer_points_than_group_size():
    with pytest.raises(ValueError, match=r"group_size=9 needs C=9 distinct positions per group, more than the 5 scan points"):
        get_strategy().group(XY[:5], GroupingRequest(n_groups=1, group_size=9, neighbors=9))


def test_k_smaller_than_c_names_both():
    with pytest.raises(ValueError, match=r"neighbors=3 must be at least 4 for group_size=4 with grouping_strategy='sample_then_group'"):
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


# -- validation.py: the scalar checks ---------------------------------------------

@pytest.mark.parametrize("x, kwargs, exc, message", [
    (0, dict(min_val=1), ValueError, "n must be a positive integer, got 0"),
    (-1, dict(min_val=0), ValueError, "n must be a non-negative integer, got -1"),
    (10, dict(min_val=0, max_val=10, include_boundaries="left"), ValueError,
     r"n must be an integer in \[0, 10\), got 10"),
    (0, dict(min_val=0, max_val=10, include_boundaries="right"), ValueError,
     r"n must be an integer in \(0, 10\], got 0"),
    (3, dict(max_val=2), ValueError, "n must be an integer <= 2, got 3"),
    (2, dict(max_val=2, include_boundaries="neither"), ValueError, "n must be an integer < 2, got 2"),
    (1, dict(min_val=1, include_boundaries="neither"), ValueError, "n must be an integer > 1, got 1"),
    (2.5, dict(), TypeError, "n must be an integer, got 2.5 of type float"),
    (True, dict(), TypeError, "n must be an integer, got True of type bool"),
    (np.bool_(True), dict(min_val=1), TypeError, "n must be a positive integer, got .*bool"),
])
def test_check_scalar_messages_name_parameter_and_value(x, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        validation.check_scalar(x, "n", numbers.Integral, **kwargs)


def test_check_scalar_real_numbers():
    assert validation.check_scalar(np.float32(0.5), "f", numbers.Real, min_val=0) == 0.5
    assert type(validation.check_scalar(np.float32(0.5), "f", numbers.Real)) is float
    with pytest.raises(ValueError, match=r"f must be a real number in \[0, 1\], got nan"):
        validation.check_scalar(float("nan"), "f", numbers.Real, min_val=0, max_val=1)
    with pytest.raises(ValueError, match="f must be a real number, got nan"):
        validation.check_scalar(float("nan"), "f", numbers.Real)
    with pytest.raises(TypeError, match="f must be a real number >= 0, got '1' of type str"):
        validation.check_scalar("1", "f", numbers.Real, min_val=0)
    assert validation.check_scalar(None, "f", numbers.Real, allow_none=True) is None
    assert validation.check_scalar("ab", "s", str) == "ab"  # not numeric: returned as given
    with pytest.raises(ValueError, match="include_boundaries must be one of"):
        validation.check_scalar(1, "f", numbers.Real, include_boundaries="inner")


BOUNDARIES = ["both", "left", "right", "neither"]


@given(x=st.integers(-20, 20), low=st.none() | st.integers(-10, 10),
       high=st.none() | st.integers(-10, 10), inclusive=st.sampled_from(BOUNDARIES))
def test_check_scalar_accepts_exactly_the_interval(x, low, high, inclusive):
    left_closed, right_closed = inclusive in ("both", "left"), inclusive in ("both", "right")
    inside = ((low is None or x > low or (left_closed and x == low))
              and (high is None or x < high or (right_closed and x == high)))
    if inside:
        got = validation.check_scalar(np.int16(x), "x", numbers.Integral, min_val=low,
                                      max_val=high, include_boundaries=inclusive)
        assert got == x and type(got) is int
    else:
        with pytest.raises(ValueError, match=rf"x must be .*, got {x}$"):
            validation.check_scalar(x, "x", numbers.Integral, min_val=low, max_val=high,
                                    include_boundaries=inclusive)


def test_the_data_layer_keeps_importing_the_checks_from_strategy():
    from ptycho_grouping import strategy
    for name in ("check_bool", "check_positive_int", "check_rng"):
        assert getattr(strategy, name) is getattr(validation, name)


def test_rng_accepts_the_spec7_kinds_unchanged():
    gen, seq = np.random.default_rng(1), np.random.SeedSequence(2)
    assert GroupingRequest(n_groups=1, rng=gen).rng is gen
    assert GroupingRequest(n_groups=1, rng=seq).rng is seq
    assert type(GroupingRequest(n_groups=1, rng=np.uint8(7)).rng) is int


def test_dataset_path_must_be_a_path():
    with pytest.raises(TypeError, match="dataset_path must be a path or None, got 3"):
        GroupingRequest(n_groups=1, dataset_path=3)


# -- validation.py: a strategy's output -------------------------------------------

def fixed_strategy(output, name="fixed"):
    """A strategy instance that returns ``output`` whatever it is asked."""
    cls = type("Fixed", (GroupingStrategy,), {"name": name, "_group": lambda self, i, r: output})
    return cls()


LINE = np.column_stack([np.arange(10.0), np.zeros(10)])


@pytest.mark.parametrize("output, message", [
    ([[0.7, 1.9], [2.5, 99.0]], (r"returned list of dtype float64 \(first row \[0.7, 1.9\]\); "
                                 r"group indices must be integers")),
    (np.array([[0.0, 1.0]]), "returned ndarray of dtype float64"),
    (np.array([[True, False]]), "returned ndarray of dtype bool"),
    (None, "returned NoneType of dtype object"),
    ([[0, 1], [2]], "returned groups that do not form an array"),
    ([[0, 1, 2]], r"returned shape \(1, 3\), expected \(n, 2\) with 1 <= n <= 2"),
    ([0, 1], r"returned shape \(2,\), expected \(n, 2\)"),
    (np.empty((0, 2), int), r"returned shape \(0, 2\), expected \(n, 2\) with 1 <= n"),
    ([[0, 1], [2, 3], [4, 5]], r"returned shape \(3, 2\), expected \(n, 2\) with 1 <= n <= 2"),
    ([[0, 1], [2, 10]], r"returned index 10 in group 1, outside \[0, 10\) for 10 scan points"),
    ([[-1, 1]], r"returned index -1 in group 0, outside \[0, 10\)"),
    ([[0, 1], [3, 3]], r"returned group 1 = \[3, 3\], which repeats a point"),
])
def test_malformed_output_is_an_error_naming_the_strategy(output, message):
    request = GroupingRequest(n_groups=2, group_size=2, neighbors=2)
    with pytest.raises(RuntimeError, match=r"grouping strategy 'fixed' " + message):
        fixed_strategy(output).group(LINE, request)


def test_float_groups_from_a_plugin_are_refused_not_cast():
    # Through the registry, as a third-party plugin would deliver them.
    from ptycho_grouping.hookspecs import hookimpl
    from ptycho_grouping.registry import StrategyRegistry

    floats = fixed_strategy([[0.7, 1.9], [2.5, 99.0]], name="float_plugin")

    class Plugin:
        @staticmethod
        @hookimpl
        def ptycho_grouping_strategies():
            return [type(floats)]

    reg = StrategyRegistry(load_entry_points=False)
    reg.register(Plugin(), "floaty")
    with pytest.raises(RuntimeError, match="grouping strategy 'float_plugin' returned list of "
                                           "dtype float64"):
        reg.get("float_plugin").group(LINE, GroupingRequest(n_groups=2, group_size=2, neighbors=2))


def test_valid_output_of_any_integer_dtype_comes_back_as_intp():
    got = fixed_strategy(np.array([[9, 0], [4, 5]], np.uint8)).group(
        LINE, GroupingRequest(n_groups=2, group_size=2, neighbors=2))
    assert got.dtype == np.intp and got.tolist() == [[9, 0], [4, 5]]


@given(groups=st.lists(st.lists(st.integers(-2, 12), min_size=3, max_size=3),
                       min_size=0, max_size=6),
       max_groups=st.integers(1, 5))
def test_check_groups_accepts_exactly_the_valid_groups(groups, max_groups):
    valid = (1 <= len(groups) <= max_groups
             and all(0 <= i < 10 for row in groups for i in row)
             and all(len(set(row)) == 3 for row in groups))
    arr = np.array(groups, dtype=np.int64).reshape(len(groups), 3)
    if valid:
        got = validation.check_groups(arr, 10, 3, max_groups, "s")
        assert got.dtype == np.intp and np.array_equal(got, arr)
    else:
        with pytest.raises(RuntimeError, match="grouping strategy 's' returned"):
            validation.check_groups(arr, 10, 3, max_groups, "s")


# -- each check once per call ---------------------------------------------------------

def count_calls(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


@pytest.mark.parametrize("strategy_name", ["sample_then_group", "legacy_group_then_sample"])
def test_every_check_runs_once_per_call(monkeypatch, tmp_path, strategy_name):
    from ptycho_grouping import legacy, neighbors, strategy

    scalars = count_calls(monkeypatch, validation, "check_scalar")
    request = GroupingRequest(n_groups=5, group_size=4, neighbors=5, neighbor_pool_size=6,
                              rng=3, dataset_path=str(tmp_path / "d.npz"))
    # Each field once, when the request is built.
    assert sorted(args[1] for args in scalars) == [
        "group_size", "n_groups", "neighbor_pool_size", "neighbors", "rng"]
    scalars.clear()
    coords = count_calls(monkeypatch, neighbors, "check_coords")
    fits = count_calls(monkeypatch, strategy, "check_request_fits")
    outputs = count_calls(monkeypatch, strategy, "check_groups")
    legacy_rules = count_calls(monkeypatch, legacy, "check_legacy_request")
    chosen = get_strategy(strategy_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy deprecation and ignored-option warnings
        chosen.group(XY, request)
    assert (len(coords), len(fits), len(outputs)) == (1, 1, 1)
    assert len(legacy_rules) == (strategy_name == "legacy_group_then_sample")
    assert scalars == []  # the request's fields are not checked again
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chosen.group(NeighborIndex(XY), request)
    assert len(coords) == 2 and len(fits) == 2  # the index was built (and checked) once
