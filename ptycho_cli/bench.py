"""``ptycho-group bench``: time and peak memory of every strategy, side by side.

Times are medians of repeated runs. Peak memory is measured in a separate,
untimed run in a fresh interpreter: the growth of its peak resident set
(``VmHWM``, reset through ``/proc/self/clear_refs`` after the inputs are
built) over its resident set before the call. A fresh process matters: in a
long-lived one, memory freed by earlier runs is still resident and hides
what a call needs. Native allocations such as the k-d tree count, and
nothing slows the code being measured. Where ``/proc`` is not writable
(non-Linux), ``tracemalloc`` measures the Python-visible part instead.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
import os
import platform
import statistics
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import scipy
from scipy.spatial import cKDTree

from ptycho_data.raw_data import RawData
from ptycho_grouping import GroupingRequest, NeighborIndex, ParameterWarning, get_strategy
from ptycho_grouping.atomic_write import atomic_write
from ptycho_grouping.registry import default_registry

from .demo import scan_positions
from .memory import run_child, status_kib

LEGACY = "legacy_group_then_sample"
DEFAULT = "sample_then_group"
LEGACY_MODES = ("first run (uncached)", "cached")


# -- measurement ----------------------------------------------------------------

def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Return freed heap to the OS (glibc), so the baseline holds no reusable slack."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _measure_here(fn: Callable[[], object]) -> float:
    """Extra peak memory (MiB) of one call of ``fn`` in this process."""
    _trim_heap()
    before = status_kib("VmRSS").get("VmRSS")
    if before is not None and _reset_peak():
        fn()
        return max(0, status_kib("VmHWM")["VmHWM"] - before) / 1024
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def peak_memory_mib(case: dict) -> float:
    """Extra peak memory (MiB) of one benchmark case, run in a fresh interpreter."""
    code = ("import json, sys; from ptycho_cli.bench import _measure_case; "
            "print(_measure_case(json.loads(sys.argv[1])))")
    # A fixed mmap threshold makes glibc map every large array afresh (and
    # unmap it when freed) instead of reusing resident heap, which would hide
    # it from the peak-RSS growth measured here.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    return float(run_child(code, case, f"memory run for {case}", env=env))


def _fresh_raw(coords, n_pix: int):
    """Flat patterns of ``n_pix`` for ``coords``, and a function making a new RawData of them."""
    diff3d = np.full((len(coords), n_pix, n_pix), 0.5, np.float32)
    probe, scan_index = np.ones((n_pix, n_pix), np.complex64), np.zeros(len(coords), np.int64)
    return diff3d, lambda: RawData.from_coords_without_pc(coords[:, 0], coords[:, 1], diff3d,
                                                          probe, scan_index)


def _flat_tree(coords):
    """The unbalanced cKDTree a tree-based engine builds at the least (the floors' tree)."""
    return cKDTree(coords, balanced_tree=False, compact_nodes=False)


def _request(n_groups: int, k: int, group_size: int = 4, **kw) -> GroupingRequest:
    return GroupingRequest(n_groups=n_groups, group_size=group_size, neighbors=k, rng=0, **kw)


def _measure_case(case: dict) -> float:
    """Build a case's inputs, then measure only the call (child side)."""
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", ParameterWarning)  # the rows ask for what they measure
    coords = scan_positions(case["size"], "raster", step=1.0, rng=0)
    kind = case["kind"]
    if kind == "e2e":
        raw = _fresh_raw(coords, case["N"])[1]()
        get_strategy(DEFAULT)  # registry loaded before the measured call
        return _measure_here(lambda: raw.generate_grouped_data(
            case["N"], K=case["neighbors"], nsamples=case["groups"], gridsize=2, seed=0))
    strategy = get_strategy(case["strategy"])
    request = _request(case["groups"], case["neighbors"], case["gridsize"] ** 2,
                       dataset_path=case.get("dataset_path"))
    arg = coords
    if case.get("mode") == "tree reused":
        arg = NeighborIndex(coords)
        strategy.group(arg, request)
        strategy.group(arg, request)
    return _measure_here(lambda: strategy.group(arg, request))


def median_time(fn: Callable[[], object], repeat: int, setup: Callable[[], object] = None) -> float:
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def one_pass(coords: np.ndarray) -> float:
    """Floor: one vectorised pass over the coordinates (the least of all values)."""
    return float(np.minimum.reduce(coords.ravel()))


def ptychopinn_sample_then_group(coords, n_groups: int, c: int, k: int, seed: int = 0):
    """Baseline: PtychoPINN's current sample-then-group, as it works.

    A balanced cKDTree built in the call, one batched query of the seeds,
    then a Python loop drawing each group's members with ``np.random.choice``
    (here from a local generator, not the global state).
    """
    rng = np.random.default_rng(seed)
    seeds = rng.choice(len(coords), n_groups, replace=False)
    _, nn = cKDTree(coords).query(coords[seeds], k=k + 1)
    out = np.empty((n_groups, c), dtype=np.intp)
    for i, s in enumerate(seeds):
        out[i, 0] = s
        out[i, 1:] = rng.choice(nn[i, 1:], c - 1, replace=False)
    return out


def previous_engine(coords, n_groups: int, c: int, k: int, seed: int = 0):
    """Baseline: this engine before grid pruning (version 0.1).

    An unbalanced cKDTree over all points, one query of the seeds (on every
    core from 4096 seeds), members picked by random keys, vectorised.
    """
    rng = np.random.default_rng(seed)
    seeds = rng.choice(len(coords), n_groups, replace=False)
    _, nn = _flat_tree(coords).query(coords[seeds], k=k + 1, workers=-1 if n_groups >= 4096 else 1)
    cols = np.argsort(rng.random((n_groups, k)), axis=1)[:, :c - 1]
    return np.column_stack([seeds, np.take_along_axis(nn[:, 1:], cols, axis=1)])


def coverage_cv(groups: np.ndarray, n_points: int) -> float:
    """Coefficient of variation of how often each scan point is used."""
    use = np.bincount(groups.ravel(), minlength=n_points)
    return float(use.std() / use.mean())


# -- the benchmark ------------------------------------------------------------------

def _legacy_runner(coords, request_kwargs, workdir: Path):
    strategy = get_strategy(LEGACY)
    dataset = workdir / f"bench_{len(coords)}.npz"
    request = GroupingRequest(dataset_path=str(dataset), **request_kwargs)

    def clear():
        for cache in workdir.glob(f"{dataset.stem}.g*k*.groups_cache.npz"):
            cache.unlink()

    def run():
        np.random.seed(0)
        with warnings.catch_warnings(), _quiet(logging.getLogger("ptycho_grouping.legacy")):
            warnings.simplefilter("ignore", DeprecationWarning)
            # Gridsize 1 returns every point, as the old code did: the row measures that.
            warnings.simplefilter("ignore", ParameterWarning)
            return strategy.group(coords, request)

    return clear, run, dataset


@contextlib.contextmanager
def _quiet(logger: logging.Logger):
    """Silence a logger's progress lines while code is being timed."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _case_kw(kw: dict) -> dict:
    return dict(groups=kw["n_groups"], gridsize=math.isqrt(kw["group_size"]),
                neighbors=kw["neighbors"])


def run_bench(sizes, *, repeat=5, groups=512, neighbors=7, e2e_N=64,
              legacy_limit=1_000_000, progress=None) -> dict:
    """Measure every registered strategy; return a JSON-ready report."""
    say = progress or (lambda msg: None)
    registry = default_registry()
    # A name two plugins claim cannot be selected (get raises): skip it, say so.
    names = [i.name for i in registry.list() if i.name not in registry.conflicts]
    for name in registry.conflicts:
        say(f"skipping strategy {name!r}: more than one plugin registers that name")
    rows, engine, e2e, coverage, fresh = [], [], [], [], []
    legacy_time = {}  # over all sizes: a size beyond --legacy-limit scales the largest measured
    with tempfile.TemporaryDirectory(prefix="ptycho-bench-") as tmp:
        workdir = Path(tmp)
        for m in sizes:
            coords = scan_positions(m, "raster", step=1.0, rng=0)
            for gridsize in (1, 2):
                c = gridsize * gridsize
                kw = dict(n_groups=min(groups, m), group_size=c, neighbors=neighbors, rng=0)
                for name in names:
                    if name == LEGACY:
                        rows += _bench_legacy(coords, kw, gridsize, workdir, repeat,
                                              legacy_limit, legacy_time, say)
                        continue
                    strategy = get_strategy(name)
                    request = GroupingRequest(**kw)
                    say(f"M={m} gridsize={gridsize} {name}")
                    index = NeighborIndex(coords)
                    strategy.group(index, request)  # search structures built outside the
                    strategy.group(index, request)  # timed region for the reused rows
                    for mode, arg in (("one-shot", coords), ("tree reused", index)):
                        t = median_time(lambda: strategy.group(arg, request), repeat)
                        mem = peak_memory_mib(dict(kind="strategy", size=m, strategy=name,
                                                   mode=mode, **_case_kw(kw)))
                        rows.append(_row(m, gridsize, name, mode, t, mem))
            engine.append(_bench_engine(coords, groups, neighbors, repeat, say))
            legacy_first = next((r["time_s"] for r in rows if r["strategy"] == LEGACY
                                 and r["size"] == m and r["gridsize"] == 2
                                 and r["mode"] == LEGACY_MODES[0]), None)
            fresh.append(_bench_fresh_rawdata(coords, groups, neighbors, repeat, say,
                                              legacy_first))
            coverage.append(_bench_coverage(coords, neighbors, workdir, say))
            if m <= 200_000:
                e2e.append(_bench_end_to_end(coords, e2e_N, groups, neighbors, repeat, say))
    _add_ratios(rows)
    return dict(machine=_machine(), parameters=dict(sizes=list(sizes), repeat=repeat,
                                                    groups=groups, neighbors=neighbors,
                                                    e2e_N=e2e_N),
                rows=rows, engine=engine, coverage=coverage, end_to_end=e2e,
                fresh_rawdata=fresh)


def _row(size, gridsize, strategy, mode, time_s, peak_mib, extrapolated=False) -> dict:
    return dict(size=size, gridsize=gridsize, strategy=strategy, mode=mode, time_s=time_s,
                peak_mib=peak_mib, extrapolated=extrapolated)


def _bench_legacy(coords, kw, gridsize, workdir, repeat, legacy_limit, legacy_time, say):
    """The legacy strategy's rows; ``legacy_time[m][(gridsize, mode)]`` keeps (time, memory)."""
    m = len(coords)
    if m > legacy_limit:
        if not legacy_time:
            return []
        # The legacy loop is linear in M: scale the largest measured size.
        base_m = max(legacy_time)
        return [_row(m, gridsize, LEGACY, mode, *(v * m / base_m for v in
                                                  legacy_time[base_m][(gridsize, mode)]), True)
                for mode in LEGACY_MODES]
    clear, run, dataset = _legacy_runner(coords, kw, workdir)
    say(f"M={m} gridsize={gridsize} {LEGACY} (first run, then cached)")
    first_repeat = 1 if m >= 100_000 else min(repeat, 3)
    case = dict(kind="strategy", size=m, strategy=LEGACY, dataset_path=str(dataset),
                **_case_kw(kw))
    t_first = median_time(run, first_repeat, setup=clear)
    clear()
    mem_first = peak_memory_mib(case)  # writes the cache the cached rows read
    t_cached = median_time(run, repeat)
    mem_cached = peak_memory_mib(case)
    clear()
    measured = dict(zip(LEGACY_MODES, ((t_first, mem_first), (t_cached, mem_cached))))
    legacy_time.setdefault(m, {}).update(((gridsize, mode), v) for mode, v in measured.items())
    return [_row(m, gridsize, LEGACY, mode, *v) for mode, v in measured.items()]


def _add_ratios(rows):
    for row in rows:
        ref = {r["mode"]: r for r in rows if r["strategy"] == LEGACY
               and r["size"] == row["size"] and r["gridsize"] == row["gridsize"]}
        first, cached = (ref.get(mode) for mode in LEGACY_MODES)
        row["speedup_vs_legacy_first"] = first["time_s"] / row["time_s"] if first else None
        row["speedup_vs_legacy_cached"] = cached["time_s"] / row["time_s"] if cached else None
        row["memory_ratio_vs_legacy_first"] = (first["peak_mib"] / row["peak_mib"]
                                              if first and row["peak_mib"] > 0 else None)


def _bench_engine(coords, groups, k, repeat, say):
    """The default strategy (gridsize 2) against the floors of its work, in one run.

    Floors: one pass over the coordinates, the unbalanced cKDTree build
    alone, and build + query of the seeds (what a tree-based engine cannot
    avoid). Baselines: this engine before grid pruning, and PtychoPINN's
    current sample-then-group.
    """
    m = len(coords)
    say(f"M={m} engine figures")
    stg = get_strategy(DEFAULT)
    few = min(groups, m)
    seeds = np.random.default_rng(0).choice(m, few, replace=False)
    req = _request(few, k)
    t_pass = median_time(lambda: one_pass(coords), repeat)
    t_tree = median_time(lambda: _flat_tree(coords), repeat)
    t_tree_query = median_time(lambda: _flat_tree(coords).query(coords[seeds], k=k + 1), repeat)
    t_one_shot = median_time(lambda: stg.group(coords, req), repeat)
    index = NeighborIndex(coords)
    stg.group(index, req)
    stg.group(index, req)  # from the second draw on, the bins of all points are kept
    t_reused = median_time(lambda: stg.group(index, req), repeat)
    out = dict(size=m, groups=few, one_pass_s=t_pass, tree_build_s=t_tree,
               tree_build_query_s=t_tree_query, one_shot_s=t_one_shot, reused_s=t_reused,
               speedup_vs_tree_build=t_tree / t_one_shot,
               speedup_vs_tree_build_query=t_tree_query / t_one_shot,
               one_shot_over_one_pass=t_one_shot / t_pass, large=[])
    slow_repeat = max(1, min(repeat, 2))
    for n in sorted({min(100_000, m), m}):
        say(f"M={m} engine: {n} groups")
        req_n = _request(n, k)
        t_ours = median_time(lambda: stg.group(coords, req_n), slow_repeat)
        t_prev = median_time(lambda: previous_engine(coords, n, 4, k), slow_repeat)
        row = dict(groups=n, time_s=t_ours, previous_engine_s=t_prev,
                   speedup_vs_previous=t_prev / t_ours)
        if n <= 100_000:
            t_pinn = median_time(lambda: ptychopinn_sample_then_group(coords, n, 4, k), 1)
            row.update(ptychopinn_s=t_pinn, speedup_vs_ptychopinn=t_pinn / t_ours)
        out["large"].append(row)
    n_over = 4 * m
    say(f"M={m} engine: oversampling {n_over} groups")
    req_over = _request(n_over, k, enable_oversampling=True)
    t_over = median_time(lambda: stg.group(coords, req_over), 1)
    t_all_floor = median_time(lambda: _flat_tree(coords).query(coords, k=k + 1, workers=-1),
                              slow_repeat)
    # Every position the same (a stage that never moved): no grid can split them,
    # so the distinct-position tree answers; it must cost what a spread-out scan does.
    same = np.zeros_like(coords)
    say(f"M={m} engine: all positions coincident")
    t_same = median_time(lambda: stg.group(same, req), repeat)
    t_same_over = median_time(lambda: stg.group(same, req_over), 1)
    out.update(oversampling_groups=n_over, oversampling_s=t_over,
               tree_build_query_all_s=t_all_floor,
               oversampling_over_floor=t_over / t_all_floor,
               coincident_s=t_same, coincident_over_one_shot=t_same / t_one_shot,
               coincident_oversampling_s=t_same_over,
               coincident_oversampling_over_spread=t_same_over / t_over,
               all_groups=min(m, 100_000),
               all_groups_peak_mib=peak_memory_mib(dict(
                   kind="strategy", size=m, strategy=DEFAULT, mode="tree reused",
                   groups=min(m, 100_000), gridsize=2, neighbors=k)))
    return out


def _bench_fresh_rawdata(coords, groups, k, repeat, say, legacy_first_s):
    """512 groups through ``generate_grouped_data`` on a fresh RawData (N 4),
    against the legacy strategy's first run on the same points."""
    m = len(coords)
    say(f"M={m} one-shot generate_grouped_data, N=4")
    fresh = _fresh_raw(coords, 4)[1]

    def run():
        fresh().generate_grouped_data(4, K=k, nsamples=min(groups, m), gridsize=2, seed=0)

    t = median_time(run, repeat)
    return dict(size=m, groups=min(groups, m), time_s=t, legacy_first_s=legacy_first_s,
                speedup_vs_legacy_first=legacy_first_s / t if legacy_first_s else None)


def _bench_coverage(coords, k, workdir, say):
    m = len(coords)
    n = m // 2
    say(f"M={m} coverage at {n} groups")
    stg = get_strategy(DEFAULT).group(coords, _request(n, k))
    clear, run, _ = _legacy_runner(coords, dict(n_groups=n, group_size=4, neighbors=k), workdir)
    clear()
    legacy = run()
    clear()
    return dict(size=m, groups=n, cv_default=coverage_cv(stg, m),
                cv_legacy=coverage_cv(legacy, m),
                unused_default=float(np.mean(np.bincount(stg.ravel(), minlength=m) == 0)),
                unused_legacy=float(np.mean(np.bincount(legacy.ravel(), minlength=m) == 0)))


def _bench_end_to_end(coords, n_pix, groups, k, repeat, say):
    m = len(coords)
    groups = min(groups, m)
    say(f"M={m} end-to-end generate_grouped_data, N={n_pix}")
    diff3d, fresh = _fresh_raw(coords, n_pix)

    def e2e():
        fresh().generate_grouped_data(n_pix, K=k, nsamples=groups, gridsize=2, seed=0)

    nn = get_strategy(DEFAULT).group(coords, _request(groups, k))

    def unavoidable():
        _flat_tree(coords)
        np.take(diff3d, nn.ravel(), axis=0)

    t = median_time(e2e, repeat)
    t_ref = median_time(unavoidable, repeat)
    return dict(size=m, N=n_pix, groups=groups, time_s=t, unavoidable_s=t_ref,
                ratio=t / t_ref,
                peak_mib=peak_memory_mib(dict(kind="e2e", size=m, N=n_pix, groups=groups,
                                              neighbors=k)),
                output_mib=groups * 4 * n_pix * n_pix * 4 * 2 / 2**20)


def _machine() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), python=platform.python_version(),
                numpy=np.__version__, scipy=scipy.__version__, platform=platform.platform())


# -- output -----------------------------------------------------------------------------

def _fmt_ratio(value) -> str:
    return "-" if value is None else (f"{value:,.0f}x" if value >= 100 else f"{value:.1f}x")


#: What each column of the main table means, printed under it.
TABLE_LEGEND = (
    "columns:",
    "  points         scan positions M (jittered raster)",
    "  g              gridsize: groups of g*g members",
    "  mode           one-shot: coordinates given afresh (tree built in the call); tree reused:",
    "                 a prebuilt NeighborIndex; legacy first run: no cache file yet (all groups",
    "                 enumerated and cached); legacy cached: the cache file is read",
    "  time           median wall time of --repeat calls",
    "  peak MiB       extra peak resident memory of one call, in a fresh process",
    "  vs legacy 1st  legacy first-run time / this row's time (how many times faster)",
    "  vs cached      legacy cached time / this row's time",
    "  mem vs 1st     legacy first-run peak memory / this row's peak memory",
)


def format_report(report: dict) -> str:
    """A plain-text table of the report."""
    m = report["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
             f"NumPy {m['numpy']}, SciPy {m['scipy']}", "",
             f"{'points':>9} {'g':>2} {'strategy':<25} {'mode':<21} {'time':>10} "
             f"{'peak MiB':>9} {'vs legacy 1st':>13} {'vs cached':>9} {'mem vs 1st':>10}"]
    for r in report["rows"]:
        t = r["time_s"]
        time_text = f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"
        if r["extrapolated"]:
            time_text += "*"
        lines.append(f"{r['size']:>9} {r['gridsize']:>2} {r['strategy']:<25} {r['mode']:<21} "
                     f"{time_text:>10} {r['peak_mib']:>9.1f} "
                     f"{_fmt_ratio(r['speedup_vs_legacy_first']):>13} "
                     f"{_fmt_ratio(r['speedup_vs_legacy_cached']):>9} "
                     f"{_fmt_ratio(r['memory_ratio_vs_legacy_first']):>10}")
    if any(r["extrapolated"] for r in report["rows"]):
        lines.append("* extrapolated linearly from the largest size the legacy strategy ran at")
    lines += ["", *TABLE_LEGEND]
    lines += ["", "engine (sample_then_group, gridsize 2) against its floors:"]
    for e in report["engine"]:
        ms = {key: e[key] * 1e3 for key in e if key.endswith("_s")}
        lines.append(
            f"  M={e['size']}, {e['groups']} groups: one-shot {ms['one_shot_s']:.2f} ms = "
            f"{e['one_shot_over_one_pass']:.1f}x one pass over the coordinates "
            f"({ms['one_pass_s']:.2f} ms); {e['speedup_vs_tree_build']:.1f}x faster than the "
            f"unbalanced cKDTree build alone ({ms['tree_build_s']:.1f} ms), "
            f"{e['speedup_vs_tree_build_query']:.1f}x than build + query "
            f"({ms['tree_build_query_s']:.1f} ms); second draw {ms['reused_s']:.2f} ms")
        for r in e["large"]:
            pinn = (f", {r['speedup_vs_ptychopinn']:.1f}x faster than PtychoPINN's "
                    f"sample-then-group ({r['ptychopinn_s'] * 1e3:.0f} ms)"
                    if "ptychopinn_s" in r else "")
            lines.append(
                f"  M={e['size']}, {r['groups']} groups: {r['time_s'] * 1e3:.0f} ms, "
                f"{r['speedup_vs_previous']:.2f}x faster than the previous engine "
                f"({r['previous_engine_s'] * 1e3:.0f} ms){pinn}")
        lines.append(
            f"  M={e['size']}, oversampling {e['oversampling_groups']} groups: "
            f"{ms['oversampling_s']:.0f} ms = {e['oversampling_over_floor']:.2f}x cKDTree build + "
            f"query of all points ({ms['tree_build_query_all_s']:.0f} ms); "
            f"{e['all_groups']} groups peak {e['all_groups_peak_mib']:.1f} MiB")
        lines.append(
            f"  M={e['size']}, all positions coincident: {e['groups']} groups "
            f"{ms['coincident_s']:.2f} ms = {e['coincident_over_one_shot']:.2f}x the scan's "
            f"one-shot; oversampling {e['oversampling_groups']} groups "
            f"{ms['coincident_oversampling_s']:.0f} ms = "
            f"{e['coincident_oversampling_over_spread']:.2f}x the scan's")
    if report.get("fresh_rawdata"):
        lines += ["", "one-shot generate_grouped_data on a fresh RawData (N 4, gridsize 2):"]
    for f in report.get("fresh_rawdata", []):
        vs = (f" = legacy first run ({f['legacy_first_s']:.2f} s) / "
              f"{_fmt_ratio(f['speedup_vs_legacy_first'])}" if f["legacy_first_s"] else "")
        lines.append(f"  M={f['size']}, {f['groups']} groups: {f['time_s'] * 1e3:.2f} ms{vs}")
    lines += ["", "coverage (how evenly scan points are used, gridsize 2, groups = M/2):"]
    for c in report["coverage"]:
        lines.append(f"  M={c['size']}: CV default {c['cv_default']:.3f} vs legacy "
                     f"{c['cv_legacy']:.3f}; never used: default {100 * c['unused_default']:.1f}%"
                     f", legacy {100 * c['unused_legacy']:.1f}%")
    if report["end_to_end"]:
        lines += ["", "end to end (generate_grouped_data, gridsize 2, fresh RawData):"]
    for e in report["end_to_end"]:
        lines.append(f"  M={e['size']}, N={e['N']}, {e['groups']} groups: {e['time_s'] * 1e3:.1f} ms"
                     f" vs tree build + one gather {e['unavoidable_s'] * 1e3:.1f} ms "
                     f"({e['ratio']:.2f}x); peak {e['peak_mib']:.0f} MiB "
                     f"(output {e['output_mib']:.0f} MiB)")
    return "\n".join(lines)


def write_json(report: dict, path) -> None:
    """Write the report as JSON, atomically (see :func:`~ptycho_grouping.atomic_write.atomic_write`)."""
    with atomic_write(path) as tmp, open(tmp, "w") as fh:
        json.dump(report, fh, indent=2, default=float)
