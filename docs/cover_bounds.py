"""Exact-cover bounds for cover_scan's candidate groups at gridsize 3, K 9 (issue 20 bar a).

Each seed s has K candidate groups: s plus its K exact nearest (project index and tie rule)
minus one. LP relaxation (HiGHS IPM) gives a lower bound; a full MILP is too big for HiGHS
in minutes, so an upper bound comes from MILPs over consecutive blocks of a strip sweep,
each covering its block's still-uncovered points with any candidate group.
usage: python docs/cover_bounds.py BLOCK TIME_PER_BLOCK [patterns...]   (500 20: about 25 minutes)
"""
import math, sys, time
import numpy as np
from scipy import sparse
from scipy.optimize import linprog, milp, LinearConstraint, Bounds
from ptycho_grouping import NeighborIndex
from ptycho_cli.demo import scan_positions

M, C, K = 10_000, 9, 9
block, tl = int(sys.argv[1]), float(sys.argv[2])
pats = sys.argv[3:] or ["raster", "spiral", "random"]
for pat in pats:
    coords = scan_positions(M, pat, step=1.0, rng=0)
    nb = NeighborIndex(coords).neighbors(np.arange(M), K)
    mem = np.stack([np.column_stack([np.arange(M), np.delete(nb, j, axis=1)])
                    for j in range(K)], axis=1).reshape(M * K, C)   # group g = s*K + j
    A = sparse.csc_matrix((np.ones(mem.size), (mem.ravel(), np.repeat(np.arange(M * K), C))),
                          shape=(M, M * K))
    base = math.ceil(M / C)
    t = time.time()
    lp = linprog(np.ones(M * K), A_ub=-A, b_ub=-np.ones(M), bounds=(0, 1),
                 method="highs-ipm", options=dict(disp=False))
    print(f"{pat}: LP lower bound {lp.fun:.1f} = {lp.fun / base:.4f} x ceil(M/C) = {base} "
          f"({time.time() - t:.0f} s)", flush=True)
    # strip sweep: rows of height ~1 step, boustrophedon
    row = np.floor((coords[:, 1] - coords[:, 1].min()) / 3.0).astype(int)
    order = np.lexsort((np.where(row % 2, -coords[:, 0], coords[:, 0]), row))
    covered = np.zeros(M, bool)
    chosen = []
    Ar = A.tocsr()
    t = time.time()
    for b0 in range(0, M, block):
        u = order[b0:b0 + block]
        u = u[~covered[u]]
        if not u.size:
            continue
        cols = np.unique(Ar[u].indices)
        sub = Ar[u][:, cols]
        # tie-break: prefer groups that also cover uncovered points beyond this block
        extra = (~covered[mem[cols]]).sum(axis=1) - np.asarray(sub.sum(axis=0)).ravel()
        cost = 1 - 1e-3 * extra
        res = milp(cost, constraints=LinearConstraint(sub, lb=1, ub=np.inf),
                   integrality=np.ones(cols.size), bounds=Bounds(0, 1),
                   options=dict(time_limit=tl, disp=False))
        pick = cols[np.flatnonzero(res.x > 0.5)]
        chosen.extend(pick.tolist())
        covered[mem[pick].ravel()] = True
    assert covered.all()
    n = len(chosen)
    print(f"{pat}: block-MILP cover {n} groups = {n / base:.4f} x ceil(M/C) "
          f"(blocks {block}, {tl:g} s each, {time.time() - t:.0f} s)", flush=True)
