"""Cost of building the user–item graph (recgraph.graph.BipartiteGraph) on power-law edges.

For each size: synthetic Zipf-like edges (ids int32, timestamps int64), then
``BipartiteGraph.from_edges(..., dedupe=True)`` and ``normalized_adjacency()`` (the LightGCN
operator). Reports build seconds, peak RSS growth of the build, final bytes per edge, and the
growth exponent ``b`` (time ∝ E^b, memory ∝ E^b) between successive sizes.

    python benchmarks/bench_graph_build.py --sizes 1M,10M,100M
    python benchmarks/bench_graph_build.py --sizes 100k --out-name graph_build_smoke

Sizes predicted (from the previous size's bytes/edge) to push this process past ``--max-rss``
are skipped and reported as skipped, not silently dropped.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (pin_malloc_thresholds, current_rss, fmt_bytes, growth_exponent, measure, peak_rss, powerlaw_edges,  # noqa: E402
                     print_table, write_result)

from recgraph.graph import BipartiteGraph  # noqa: E402

_SUFFIX = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def parse_size(s: str) -> int:
    s = s.strip().lower().replace("_", "")
    mult = _SUFFIX.get(s[-1], 1)
    return int(float(s[:-1] if s[-1] in _SUFFIX else s) * mult)


def parse_bytes(s: str) -> int:
    s = s.strip().lower().rstrip("b").rstrip("i")
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    return int(float(s[:-1]) * units[s[-1]]) if s[-1] in units else int(float(s))


def mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_size(n_edges: int, args) -> dict:
    n_users = max(1000, n_edges // args.edges_per_user)
    n_items = max(1000, n_edges // args.edges_per_item)
    t0 = time.perf_counter()
    user, item, ts = powerlaw_edges(n_edges, n_users, n_items, alpha=(args.alpha_user, args.alpha_item),
                                    seed=args.seed)
    gen_s = time.perf_counter() - t0
    input_bytes = user.nbytes + item.nbytes + ts.nbytes
    rss_before = current_rss()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    cpu0 = time.process_time()
    g, build_s, build_peak = measure(BipartiteGraph.from_edges, user, item, n_users, n_items, timestamp=ts,
                                     dedupe=True, order=args.order)
    build_cpu = time.process_time() - cpu0
    proc_peak = rss_before + build_peak
    del user, item, ts
    gc.collect()
    row = {
        "n_edges_in": n_edges, "n_edges": g.n_edges, "n_users": n_users, "n_items": n_items,
        "users_with_edges": int(np.count_nonzero(g.user_degree)),
        "items_with_edges": int(np.count_nonzero(g.item_degree)),
        "max_user_degree": int(g.user_degree.max()), "max_item_degree": int(g.item_degree.max()),
        "input_bytes": input_bytes, "gen_seconds": gen_s,
        "build_seconds": build_s, "build_cpu_seconds": build_cpu, "build_edges_per_second": n_edges / build_s,
        "loadavg_1min_before_build": load,
        "build_peak_rss_delta_bytes": build_peak,
        "build_peak_rss_delta_bytes_per_input_edge": build_peak / n_edges,
        "graph_nbytes": g.nbytes, "bytes_per_edge": g.nbytes / max(1, g.n_edges),
        "index_dtype": str(g.u_indices.dtype),
    }
    if not args.skip_adj:
        rss0 = current_rss()
        cpu0 = time.process_time()
        adj, adj_s, adj_peak = measure(g.normalized_adjacency)
        adj_cpu = time.process_time() - cpu0
        proc_peak = max(proc_peak, rss0 + adj_peak)
        row.update(adj_seconds=adj_s, adj_cpu_seconds=adj_cpu, adj_peak_rss_delta_bytes=adj_peak,
                   adj_nbytes=sum(t.numel() * t.element_size() for t in (adj.crow_indices(), adj.col_indices(),
                                                                         adj.values())))
        del adj
    row["process_peak_rss_bytes"] = max(proc_peak, peak_rss())
    del g
    gc.collect()
    return row


def hyperparameters(args, sizes) -> dict:
    return {"how_chosen": "none: systems benchmark, nothing learned or selected",
            "sizes": f"swept: {sizes} edges; all points reported (over-budget sizes listed as skipped), none chosen",
            "fixed": {"edges_per_user": args.edges_per_user, "edges_per_item": args.edges_per_item,
                      "alpha_user": args.alpha_user, "alpha_item": args.alpha_item, "order": args.order,
                      "dedupe": True, "normalized_adjacency": not args.skip_adj, "max_rss": args.max_rss}}


def main(argv=None) -> int:
    pin_malloc_thresholds()  # exact per-call peak RSS (see benchmarks/_common.py)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1M,10M", help="comma-separated edge counts, e.g. 1M,10M,100M")
    ap.add_argument("--edges-per-user", type=int, default=10, help="n_users = E / this")
    ap.add_argument("--edges-per-item", type=int, default=50, help="n_items = E / this")
    ap.add_argument("--alpha-user", type=float, default=0.8, help="Zipf exponent of user degrees")
    ap.add_argument("--alpha-item", type=float, default=1.0, help="Zipf exponent of item degrees")
    ap.add_argument("--order", choices=("item", "time"), default="item", help="edge order within a row")
    ap.add_argument("--skip-adj", action="store_true", help="do not time normalized_adjacency()")
    ap.add_argument("--max-rss", default="9G", help="skip sizes predicted to exceed this process RSS")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-name", default="graph_build", help="results/NAME.json")
    args = ap.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    max_rss = parse_bytes(args.max_rss)

    # compile the numba kernels (cached on disk) outside the timed region
    wu, wi, wt = powerlaw_edges(1000, 100, 100, seed=1)  # same dtypes as the timed runs
    BipartiteGraph.from_edges(wu, wi, 100, 100, timestamp=wt, order=args.order).normalized_adjacency()

    rows, skipped = [], []
    bytes_per_edge_est = 80.0  # process bytes per input edge before any measurement (conservative)
    for n in sizes:
        need = current_rss() + bytes_per_edge_est * n
        avail = mem_available()
        if need > max_rss or (avail is not None and need > avail + current_rss()):
            reason = (f"predicted peak {fmt_bytes(need)} exceeds the budget {fmt_bytes(max_rss)}"
                      f" (available {fmt_bytes(avail)})")
            print(f"skip {n:,} edges: {reason}", flush=True)
            skipped.append({"n_edges_in": n, "reason": reason, "predicted_peak_rss_bytes": need})
            continue
        print(f"building {n:,} edges ...", flush=True)
        row = run_size(n, args)
        rows.append(row)
        bytes_per_edge_est = 1.1 * row["process_peak_rss_bytes"] / n
        print(f"  build {row['build_seconds']:.2f}s, peak +{fmt_bytes(row['build_peak_rss_delta_bytes'])}, "
              f"{row['bytes_per_edge']:.1f} B/edge", flush=True)

    ns = [r["n_edges_in"] for r in rows]
    for key, col in (("build_seconds", "b_time"), ("build_cpu_seconds", "b_cpu"),
                     ("build_peak_rss_delta_bytes", "b_mem"), ("adj_seconds", "b_adj_time")):
        if rows and key in rows[0]:
            exps = [None] + growth_exponent(ns, [r[key] for r in rows])
            for r, b in zip(rows, exps):
                r[col] = b

    def f(x, spec):
        return "-" if x is None else format(x, spec)

    columns = ["edges in", "edges", "users", "items", "build s", "cpu s", "Medges/s", "build peak ΔRSS", "graph",
               "B/edge", "adj s", "adj peak ΔRSS", "proc peak RSS", "b time", "b cpu", "b mem"]
    table_rows = [[f"{r['n_edges_in']:,}", f"{r['n_edges']:,}", f"{r['n_users']:,}", f"{r['n_items']:,}",
                   f(r["build_seconds"], ".2f"), f(r["build_cpu_seconds"], ".2f"),
                   f(r["build_edges_per_second"] / 1e6, ".1f"),
                   fmt_bytes(r["build_peak_rss_delta_bytes"]), fmt_bytes(r["graph_nbytes"]),
                   f(r["bytes_per_edge"], ".1f"), f(r.get("adj_seconds"), ".2f"),
                   fmt_bytes(r.get("adj_peak_rss_delta_bytes")), fmt_bytes(r["process_peak_rss_bytes"]),
                   f(r.get("b_time"), ".2f"), f(r.get("b_cpu"), ".2f"), f(r.get("b_mem"), ".2f")] for r in rows]
    table_rows += [[f"{s['n_edges_in']:,}", "skipped", *["-"] * (len(columns) - 2)] for s in skipped]
    plain = print_table(f"BipartiteGraph.from_edges (dedupe, order={args.order}) on power-law edges",
                        columns, table_rows)
    path = write_result(args.out_name, {
        "params": {k: v for k, v in vars(args).items()},
        "what": "BipartiteGraph.from_edges(dedupe=True) + normalized_adjacency() on synthetic power-law edges "
                "(int32 ids, int64 timestamps); peak RSS delta measured with a reset VmHWM per call; "
                "cpu s = process CPU time of the build (single-threaded numba: the uncontended wall time)",
        "rows": rows, "skipped": skipped, "table": plain,
        "hyperparameters": hyperparameters(args, sizes), "seeds": {"edges": args.seed, "jit_warmup": 1},
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
