"""Same groups on any thread; the engine never imports the data layer."""
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ptycho_grouping import GroupingRequest, NeighborIndex, get_strategy
from ptycho_grouping.neighbors import _PARALLEL_QUERY_MIN

from scan_patterns import make_coords


def test_threads_sharing_one_index_get_the_single_threaded_groups():
    xy = make_coords("jittered_raster", 20_000, seed=3)
    n_seeds = 2 * _PARALLEL_QUERY_MIN  # large enough for the multi-worker tree query
    requests = [GroupingRequest(n_groups=n_seeds, group_size=4, neighbors=7, rng=seed)
                for seed in range(8)]
    requests += [GroupingRequest(n_groups=30_000, group_size=4, neighbors=7, rng=seed,
                                 enable_oversampling=True) for seed in range(2)]
    strategy = get_strategy()
    expected = [strategy.group(NeighborIndex(xy), req) for req in requests]

    shared = NeighborIndex(xy)  # one fresh index: its tree is built under contention
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda req: get_strategy().group(shared, req), requests * 3))
    for i, groups in enumerate(got):
        assert np.array_equal(groups, expected[i % len(requests)])
    assert expected[0].shape == (n_seeds, 4)


@pytest.mark.real_process  # a fresh interpreter (imports, limits, filters) is what is tested
def test_engine_import_loads_no_data_layer_module():
    code = """
import json, sys
import ptycho_grouping
from ptycho_grouping import get_strategy, list_strategies
get_strategy()
names = [info.name for info in list_strategies()]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("ptycho", "ptycho_data"))
print(json.dumps({"names": names, "loaded": loaded}))
"""
    root = Path(__file__).resolve().parents[1]  # importable from a source checkout too
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=root)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "sample_then_group" in result["names"]
    assert "legacy_group_then_sample" in result["names"]
    assert result["loaded"] == []


def test_an_index_never_shares_or_freezes_the_callers_buffer():
    class Holder:  # an array-like that hands out its own buffer
        def __init__(self):
            self.a = np.zeros((5, 2))

        def __array__(self, dtype=None, copy=None):
            return self.a

    holder = Holder()
    index = NeighborIndex(holder)
    assert not np.shares_memory(index.coords, holder.a)
    assert holder.a.flags.writeable and not index.coords.flags.writeable
    holder.a[0] = 7.0
    assert index.coords[0, 0] == 0.0
