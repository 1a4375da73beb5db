"""One structured error for a bad parameter, spelled by each layer in its caller's names.

The engine raises :class:`InvalidParameterError` (a ``ValueError``) carrying
the parameter, its value and the requirement; ``RawData`` re-raises the same
class in PtychoPINN's argument names (with PtychoPINN's own phrases where its
rules apply), the command in flags. No layer reads another's message text.
"""
import ast
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import ptycho_cli.grouping
import ptycho_data.raw_data
from ptycho_cli.main import main
from ptycho_data.parameter_names import CALLER_NAMES
from ptycho_data.raw_data import RawData
from ptycho_grouping import GroupingRequest, GroupingStrategy, NeighborIndex, get_strategy
from ptycho_grouping.errors import (InvalidParameterError, InvalidParameterTypeError, Names,
                                    ParameterDeprecationWarning, ParameterIssue,
                                    ParameterWarning, Rename)
from ptycho_grouping.validation import check_coords, check_scalar

ROOT = Path(__file__).resolve().parents[1]
XY = np.random.default_rng(0).uniform(0, 10, (50, 2))
LEGACY = "legacy_group_then_sample"


# -- the error object -----------------------------------------------------------------

def test_fields_carry_name_value_requirement_and_related():
    exc = InvalidParameterError(
        "neighbors", 3, "at least {min_neighbors} for {group_size}",
        related={"group_size": 4}, facts={"min_neighbors": 4},
        template="{neighbors} must be {requirement}", code="too_few_neighbors")
    assert isinstance(exc, ValueError) and isinstance(exc, ParameterIssue)
    assert (exc.param, exc.value, exc.code) == ("neighbors", 3, "too_few_neighbors")
    assert exc.requirement == "at least 4 for group_size=4"
    assert exc.related == {"group_size": 4}
    assert str(exc) == "neighbors=3 must be at least 4 for group_size=4"


def test_default_message_names_parameter_requirement_and_value():
    exc = InvalidParameterError("n_groups", 0, "a positive integer")
    assert str(exc) == "n_groups must be a positive integer, got 0"
    typed = InvalidParameterTypeError("n_groups", "4", "a positive integer")
    assert isinstance(typed, TypeError) and str(typed) == "n_groups must be a positive integer, got '4'"


def test_renamed_is_the_same_class_with_the_callers_names_and_values():
    class Custom(InvalidParameterError):
        def __init__(self, only_one_argument):  # a constructor unlike the base's
            super().__init__("group_size", only_one_argument, "at most 4",
                             template="{group_size} is too large")

    exc = Custom(9)
    theirs = exc.renamed(CALLER_NAMES, addendum=" (theirs)")
    assert type(theirs) is Custom
    assert (theirs.param, theirs.value) == ("gridsize", 3)  # C=9 is gridsize 3
    assert str(theirs) == "gridsize=3 (C=9) is too large (theirs)"
    flags = Names({"gridsize": "--gridsize"}, flags=True)
    assert str(theirs.renamed(flags)) == "--gridsize 3 (C=9) is too large"  # addendum dropped
    assert str(exc) == "group_size=9 is too large"  # the original is unchanged


def test_braces_in_values_and_requirements_are_words_not_fields():
    with pytest.raises(InvalidParameterTypeError) as info:
        check_scalar({"a": 1}, "f", int, description="a {count}")
    assert str(info.value) == "f must be a {count}, got {'a': 1} of type dict"
    assert str(info.value.renamed(CALLER_NAMES)) == str(info.value)


def test_flag_style_spells_booleans_as_flags_and_instructions():
    exc = InvalidParameterError(
        "nsamples", 60, "x", related={"enable_oversampling": False},
        template="{nsamples} is too many; {enable_oversampling:set}, not {enable_oversampling}")
    flags = Names({"nsamples": "--groups", "enable_oversampling": Rename("--oversample")},
                  flags=True)
    assert str(exc) == ("nsamples=60 is too many; set enable_oversampling=True, "
                        "not enable_oversampling=False")
    assert str(exc.renamed(flags)) == "--groups 60 is too many; add --oversample, not no --oversample"


def test_pickled_error_keeps_its_class_and_text():
    exc = InvalidParameterError("n_groups", 0, "a positive integer")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is InvalidParameterError and str(back) == str(exc)


def test_warning_carries_the_same_fields():
    w = ParameterWarning("neighbors", 7, "at most 4", template="{neighbors} exceeds 4")
    assert isinstance(w, UserWarning) and (w.param, w.value) == ("neighbors", 7)
    assert str(w.renamed(CALLER_NAMES)) == "K=7 exceeds 4"


# -- every engine check raises it, naming the parameter ----------------------------------

def _legacy(coords, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return get_strategy(LEGACY).group(coords, GroupingRequest(**kwargs))


ENGINE_CHECKS = [
    ("n_groups", 0, lambda: GroupingRequest(n_groups=0)),
    ("group_size", -1, lambda: GroupingRequest(n_groups=1, group_size=-1)),
    ("neighbors", 0, lambda: GroupingRequest(n_groups=1, neighbors=0)),
    ("neighbor_pool_size", 0, lambda: GroupingRequest(n_groups=1, neighbor_pool_size=0)),
    ("rng", -1, lambda: GroupingRequest(n_groups=1, rng=-1)),
    ("group_size", 9, lambda: get_strategy().group(XY[:5], GroupingRequest(
        n_groups=1, group_size=9, neighbors=9))),
    ("neighbors", 3, lambda: get_strategy().group(XY, GroupingRequest(
        n_groups=1, group_size=4, neighbors=3))),
    ("n_groups", 60, lambda: get_strategy().group(XY, GroupingRequest(
        n_groups=60, group_size=4, neighbors=4))),
    ("neighbor_pool_size", 3, lambda: get_strategy().group(XY, GroupingRequest(
        n_groups=60, group_size=4, neighbors=4, enable_oversampling=True,
        neighbor_pool_size=3))),
    ("neighbors", 4, lambda: get_strategy().group(XY[:4], GroupingRequest(
        n_groups=5, group_size=4, neighbors=4, enable_oversampling=True))),
    ("n_groups", 10_000, lambda: get_strategy().group(XY[:6], GroupingRequest(
        n_groups=10_000, group_size=4, neighbors=5, enable_oversampling=True))),
    ("group_size", 3, lambda: _legacy(XY, n_groups=1, group_size=3, neighbors=4)),
    ("neighbors", 6, lambda: _legacy(XY[:5], n_groups=1, group_size=4, neighbors=6)),
    ("rng", 2 ** 40, lambda: _legacy(XY, n_groups=1, group_size=4, neighbors=4, rng=2 ** 40)),
    ("grouping_strategy", "nope", lambda: get_strategy("nope")),
    ("coords", None, lambda: check_coords(np.zeros((5, 3)))),
    ("coords", None, lambda: check_coords(np.array([[0.0, np.nan]]))),
    ("k", 50, lambda: NeighborIndex(XY).neighbors([0], 50)),
    ("method", "kd", lambda: NeighborIndex(XY).neighbors([0], 3, method="kd")),
    ("include_boundaries", "up", lambda: check_scalar(1, "x", int, include_boundaries="up")),
]


@pytest.mark.parametrize("param, value, call", ENGINE_CHECKS,
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(ENGINE_CHECKS)])
def test_every_engine_value_check_raises_invalid_parameter_error(param, value, call):
    with pytest.raises(InvalidParameterError) as info:
        call()
    assert info.value.param == param
    if value is not None:
        assert info.value.value == value
    assert param in str(info.value) or f"{param}=" in str(info.value)


TYPE_CHECKS = [
    ("n_groups", 2.0, lambda: GroupingRequest(n_groups=2.0)),
    ("sequential", "yes", lambda: GroupingRequest(n_groups=1, sequential="yes")),
    ("rng", "seed", lambda: GroupingRequest(n_groups=1, rng="seed")),
    ("dataset_path", 3, lambda: GroupingRequest(n_groups=1, dataset_path=3)),
    ("grouping_strategy", 3, lambda: get_strategy(3)),
    ("request", {"n_groups": 3}, lambda: get_strategy().group(XY, {"n_groups": 3})),
]


@pytest.mark.parametrize("param, value, call", TYPE_CHECKS, ids=[c[0] for c in TYPE_CHECKS])
def test_every_engine_type_check_raises_invalid_parameter_type_error(param, value, call):
    with pytest.raises(InvalidParameterTypeError) as info:
        call()
    assert (info.value.param, info.value.value) == (param, value)


def test_no_plain_value_or_type_error_is_raised_by_the_grouping_modules():
    # The files' own content (cache members, NPZ members) is not a parameter; these are.
    modules = ["validation", "strategy", "sample_then_group", "_oversampling", "legacy",
               "registry", "neighbors"]
    plain = []
    for name in modules:
        tree = ast.parse((ROOT / "ptycho_grouping" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                    and getattr(node.exc.func, "id", None) in ("ValueError", "TypeError")):
                plain.append(f"{name}.py:{node.lineno}")
    assert plain == []


def test_no_module_rewrites_message_text():
    for package in ("ptycho_grouping", "ptycho_data", "ptycho_cli"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert "caller_terms" not in text and "_REWRITES" not in text, path
    assert not (ROOT / "ptycho_data" / "caller_terms.py").exists()
    assert not (ROOT / "ptycho_cli" / "messages.py").exists()


def test_engine_warnings_carry_the_parameter():
    with pytest.warns(ParameterWarning) as record:
        get_strategy().group(XY[:5], GroupingRequest(n_groups=3, group_size=4, neighbors=7))
    assert [(w.message.param, w.message.value) for w in record] == [("neighbors", 7)]
    with pytest.warns(ParameterWarning) as record:
        get_strategy().group(XY[:5], GroupingRequest(n_groups=8))
    assert str(record[0].message) == ("n_groups=8 exceeds the number of scan points (5) for "
                                      "group_size=1; returning 5 groups")
    with pytest.warns((ParameterDeprecationWarning, ParameterWarning)) as record:
        _legacy_warned = get_strategy(LEGACY).group(XY, GroupingRequest(n_groups=3))
    assert [(w.category, w.message.param) for w in record] == [
        (ParameterDeprecationWarning, "grouping_strategy"), (ParameterWarning, "n_groups")]
    assert len(_legacy_warned) == 50


# -- each strategy states its requirements once ---------------------------------------

def test_resolve_says_what_is_used_and_why():
    stg = get_strategy()
    plan = stg.resolve(GroupingRequest(n_groups=3, group_size=4, neighbors=9), 6)
    assert (plan.n_groups, plan.neighbors, plan.pool) == (3, 5, None)
    assert [str(n) for n in plan.notes] == ["neighbors=9 exceeds the 5 other scan points; using 5"]
    plan = stg.resolve(GroupingRequest(n_groups=9, group_size=1), 6)
    assert (plan.n_groups, len(plan.notes)) == (6, 1)
    plan = stg.resolve(GroupingRequest(n_groups=20, group_size=4, neighbors=4,
                                       enable_oversampling=True, neighbor_pool_size=8), 6)
    assert (plan.pool, plan.notes[0].param) == (5, "neighbor_pool_size")
    with pytest.raises(InvalidParameterError, match="neighbors=3 must be at least 4"):
        stg.resolve(GroupingRequest(n_groups=1, group_size=4, neighbors=3), 50)
    assert get_strategy(LEGACY).resolve(GroupingRequest(n_groups=1, group_size=4, neighbors=3),
                                        50).neighbors == 3  # its own minimum, C - 1


class Wide(GroupingStrategy):
    """A plugin whose minimum K is C + 2: RawData and the command must ask it, not assume C."""

    name = "wide"

    def min_neighbors(self, group_size):
        return group_size + 2

    def _group(self, index, request):
        seeds = np.arange(request.n_groups)
        return np.column_stack([seeds, index.neighbors(seeds, request.group_size - 1)])


@pytest.fixture
def wide(monkeypatch):
    def lookup(name=None):
        return Wide() if name == "wide" else get_strategy(name)
    monkeypatch.setattr(ptycho_data.raw_data, "get_strategy", lookup)
    monkeypatch.setattr(ptycho_cli.grouping, "get_strategy", lookup)


def test_a_strategys_own_minimum_reaches_rawdata_and_the_command(wide, tmp_path, capsys):
    raw = RawData.from_coords_without_pc(XY[:, 0], XY[:, 1], np.ones((50, 4, 4), np.float32),
                                         np.ones((4, 4), np.complex64), np.zeros(50, np.int64))
    with pytest.raises(InvalidParameterError) as info:
        raw.group_indices(4, K=5, nsamples=3, gridsize=2, grouping_strategy="wide")
    assert str(info.value) == "K=5 must be at least 6 for gridsize=2 (C=4) with grouping_strategy='wide'"
    assert raw.group_indices(4, K=6, nsamples=3, gridsize=2, grouping_strategy="wide").shape == (3, 4)
    raw.to_file(tmp_path / "d.npz")
    assert main(["group", str(tmp_path / "d.npz"), "-o", str(tmp_path / "g.npz"), "--strategy",
                 "wide", "--gridsize", "3", "--groups", "5"]) == 0
    err = capsys.readouterr().err
    assert "note: --neighbors defaults to 11 for gridsize 3 (strategy wide needs K >= 11)" in err


# -- RawData: PtychoPINN's names and phrases --------------------------------------------

def make_raw(m=100):
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 30, m), rng.uniform(0, 30, m)
    return RawData.from_coords_without_pc(x, y, np.ones((m, 4, 4), np.float32),
                                          np.ones((4, 4), np.complex64), np.zeros(m, np.int64))


@pytest.mark.parametrize("kwargs, param, value, phrases", [
    (dict(K=3, gridsize=2), "K", 3,
     ["K=3 must be at least 4 for gridsize=2 (C=4)", "K=3 must be >= C=4"]),
    (dict(K=7, nsamples=200), "nsamples", 200,
     ["nsamples=200 is larger than the number of scan points (100)", "enable_oversampling",
      "K choose C oversampling", "OVERSAMPLING-001"]),
    (dict(K=4, nsamples=200, enable_oversampling=True, neighbor_pool_size=3),
     "neighbor_pool_size", 3,
     ["neighbor_pool_size=3 must be at least C=4", "neighbor_pool_size >= C",
      "K choose C oversampling", "OVERSAMPLING-001"]),
    (dict(gridsize=11), "gridsize", 11, ["gridsize=11 needs C=121 distinct positions"]),
    (dict(seed=2 ** 40, grouping_strategy=LEGACY), "seed", 2 ** 40,
     ["seed=1099511627776 is out of range"]),
])
def test_rawdata_errors_use_the_callers_names_and_ptychopinns_phrases(kwargs, param, value,
                                                                      phrases):
    args = dict(nsamples=10, seed=42, gridsize=2) | kwargs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(InvalidParameterError) as info:
            make_raw().generate_grouped_data(4, **args)
    exc = info.value
    assert (exc.param, exc.value) == (param, value)
    for phrase in phrases:
        assert phrase in str(exc)
    assert not re.search(r"\b(n_groups|group_size|neighbors|rng)\b", str(exc))
    assert isinstance(exc.__cause__, InvalidParameterError)  # the engine's, chained
    assert exc.__cause__.param in ("neighbors", "n_groups", "neighbor_pool_size", "group_size",
                                   "rng")


def test_legacy_minimum_is_not_worded_as_ptychopinns_k_ge_c():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(InvalidParameterError) as info:
            make_raw().group_indices(4, K=7, gridsize=3, grouping_strategy=LEGACY)
    assert str(info.value) == ("K=7 must be at least 8 for gridsize=3 (C=9) with "
                               "grouping_strategy='legacy_group_then_sample'")


def test_rawdata_warnings_use_the_callers_names():
    with pytest.warns(ParameterWarning) as record:
        make_raw(5).group_indices(4, K=7, nsamples=3, gridsize=2, seed=0)
    assert [str(w.message) for w in record] == ["K=7 exceeds the 4 other scan points; using 4"]
    assert (record[0].message.param, record[0].message.value) == ("K", 7)


def test_an_exception_with_another_constructor_passes_through_unchanged(monkeypatch):
    class Odd(ValueError):
        def __init__(self, a, b):
            super().__init__(f"odd {a} {b}")

    raised = Odd(1, 2)

    class Raising(GroupingStrategy):
        name = "raising"

        def _group(self, index, request):
            raise raised

    monkeypatch.setattr(ptycho_data.raw_data, "get_strategy", lambda name=None: Raising())
    with pytest.raises(Odd) as info:
        make_raw().group_indices(4, nsamples=3, gridsize=2, neighbor_pool_size=None)
    assert info.value is raised and str(info.value) == "odd 1 2"


# -- the command: flags ---------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("errors")
    make_raw(300).to_file(d / "d.npz")
    return d


@pytest.mark.parametrize("flags, expected", [
    (["--neighbors", "3"], "d.npz: --neighbors 3 must be at least 4 for --gridsize 2 (C=4) "
                           "with --strategy sample_then_group"),
    (["--groups", "512"], "d.npz: --groups 512 is larger than the number of scan points (300); "
                          "add --oversample to draw several groups per seed point"),
    (["--groups", "600", "--oversample", "--pool-size", "3"],
     "d.npz: --pool-size 3 must be at least C=4 (the group size) when oversampling"),
    (["--gridsize", "18"], "d.npz: --gridsize 18 needs C=324 distinct positions per group, "
                           "more than the 300 scan points"),
    (["--strategy", "nope"], "unknown --strategy 'nope'; registered strategies: "),
])
def test_command_errors_name_the_flags(demo, capsys, flags, expected):
    rc = main(["group", str(demo / "d.npz"), "-o", str(demo / "out.npz")] + flags)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("ptycho-group: error: ")
    line = err[len("ptycho-group: error: "):].replace(str(demo) + "/", "")
    assert line.startswith(expected)
    assert not re.search(r"\b(n_groups|nsamples|group_size|neighbor_pool_size|"
                         r"enable_oversampling|grouping_strategy)\b|\bK=|OVERSAMPLING-001", line)


def test_command_warnings_name_the_flags(demo, capsys):
    assert main(["group", str(demo / "d.npz"), "-o", str(demo / "w.npz"), "--neighbors",
                 "400", "--groups", "5"]) == 0
    assert ("ptycho-group: UserWarning: --neighbors 400 exceeds the 299 other scan points; "
            "using 299") in capsys.readouterr().err


def test_command_table_comes_from_the_options():
    from ptycho_cli.grouping import COMMAND_NAMES
    from ptycho_cli.main import build_parser

    spelled = {arg: COMMAND_NAMES.spell(arg, 1)[0] for arg in
               ("nsamples", "gridsize", "K", "seed", "sequential_sampling",
                "enable_oversampling", "neighbor_pool_size", "grouping_strategy")}
    assert spelled == {"nsamples": "--groups", "gridsize": "--gridsize", "K": "--neighbors",
                       "seed": "--seed", "sequential_sampling": "--sequential",
                       "enable_oversampling": "--oversample", "neighbor_pool_size": "--pool-size",
                       "grouping_strategy": "--strategy"}
    parser = build_parser()
    for flag in spelled.values():  # each is an option the command really takes
        value = [] if flag in ("--sequential", "--oversample") else ["2"]
        parser.parse_args(["group", "-o", "x.npz", flag, *value])
