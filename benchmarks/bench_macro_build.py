"""Macro-graph build time and peak memory on synthetic power-law edges with categories.

    nice -n 10 python benchmarks/bench_macro_build.py --sizes 1e6 1e7 1e8

Per size: users = edges / 20, items = edges / 50, 500 item categories (Zipf), user k-means k = 20.
Timed: R (CSR), user k-means on R·C, the four macro-count products, last-20 recent lists of users
and items. Writes benchmarks/results/macro_build.json with the growth exponent between sizes
(1.0 = linear).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_malloc_thresholds, fmt_bytes, growth_exponent, machine_info, measure, powerlaw_edges, print_table, write_result  # noqa: E402

from recgraph.graph.bipartite import BipartiteGraph  # noqa: E402
from recgraph.graph.macro import build_feature_tables  # noqa: E402


def hyperparameters(a) -> dict:
    return {"how_chosen": "none: systems benchmark, nothing learned or selected",
            "sizes": f"swept: {[int(n) for n in a.sizes]} edges; all points reported, none chosen",
            "fixed": {"users": "edges / 20", "items": "edges / 50", "edge_zipf_alpha": 1.0,
                      "categories": a.categories, "category_zipf": 1.5, "user_kmeans_k": 20,
                      "other": "build_feature_tables defaults (recent 20, max_slots 64, k-means seed 0)"}}


def main():
    pin_malloc_thresholds()  # exact per-call peak RSS (see benchmarks/_common.py)
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7])
    ap.add_argument("--categories", type=int, default=500)
    a = ap.parse_args()
    rows, res = [], []
    for n in map(int, a.sizes):
        nu, ni = max(100, n // 20), max(100, n // 50)
        u, i, t = powerlaw_edges(n, nu, ni, alpha=1.0, seed=0)
        cat = np.random.default_rng(1).zipf(1.5, ni) % a.categories
        build = lambda: build_feature_tables(BipartiteGraph.from_edges(u, i, nu, ni, timestamp=t, dedupe=False),  # noqa: E731
                                             category=cat, user_k=20)
        g, sec, peak = measure(build)
        res.append({"edges": n, "users": nu, "items": ni, "seconds": sec, "peak_bytes": peak, **g.info})
        del g
        rows.append([f"{n:,}", f"{sec:.2f}", fmt_bytes(peak)])
        print(rows[-1], flush=True)
    ex_t = growth_exponent([r["edges"] for r in res], [r["seconds"] for r in res])
    ex_m = growth_exponent([r["edges"] for r in res], [r["peak_bytes"] for r in res])
    print_table("macro-graph build", ["edges", "seconds", "peak extra memory"], rows)
    write_result("macro_build", {"results": res, "time_exponent": ex_t, "memory_exponent": ex_m,
                                 "hyperparameters": hyperparameters(a),
                                 "seeds": {"edges": 0, "categories": 1, "kmeans": 0}, "machine": machine_info()})


if __name__ == "__main__":
    main()
