"""Benchmark: where a U2I search over the 1M-item synthetic catalogue spends its time, in-process.

Run after ``bench_serve.py`` (it reuses that script's run folder and saved indexes under
``--work``, and reads the nprobe each index was served at from ``results/serve.json``, i.e. the
nprobe chosen by its recall sweep). For each index — exact (Flat), Faiss IVF, the post-hoc RQ
index, and the RQ index searched the way it was before its vectors were stored in cluster order
("rq-gather": the candidates' rows gathered by id from id-ordered vectors, then one GEMV) — one
query at a time on 200 seeded users (seed 2): candidates scored per query, the cluster-size spread,
the wall and CPU time of the index search, and of the whole engine request (lookup → search →
seen-item filter → merge).

Usage:
    python benchmarks/bench_serve_breakdown.py [--work /tmp/recgraph-bench-serve]
Writes benchmarks/results/serve_breakdown.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, git_commit, machine_info, print_table, write_result  # noqa: E402
from bench_serve import _pct  # noqa: E402


def _sizes(sz: np.ndarray) -> dict:
    return {"n": int(len(sz)), "empty": int((sz == 0).sum()), "max": int(sz.max()), "p50": float(np.median(sz)),
            "p99": float(np.percentile(sz, 99))}


class _GatherRQ:
    """The RQ search before the cluster-order layout (for comparison): gather the probed clusters'
    members by id from the id-ordered vectors, score them with one GEMV, top-k."""

    def __init__(self, rq):
        self.rq, self.vectors, self.stats = rq, rq.vectors.contiguous(), {}

    def describe(self) -> str:
        return self.rq.describe() + " (gather by id, previous search)"

    def search(self, q, k):
        from recgraph.index.base import topk_over_candidates

        indptr, cand = self.rq.members(self.rq.probe(q).numpy())
        D, I = topk_over_candidates(q, self.vectors, indptr, cand, k)
        self.stats = {"candidates_per_query": cand.shape[0] / q.shape[0]}
        return D.numpy(), I.numpy()


def index_breakdown(run_dir: Path, folders: dict, k: int, n_users: int = 200) -> list[dict]:
    """For each ``name -> (folder or "Flat", nprobe)``: see the module docstring."""
    import torch

    from recgraph.serve.recommend import Engine, load_run

    torch.set_num_threads(1)
    run = load_run(run_dir)
    users = np.random.default_rng(2).choice(run.n_users, n_users, replace=False)
    out = []
    for name, (folder, nprobe) in folders.items():
        gather = name.endswith("-gather")
        e = Engine(run, index=folder, nprobe=nprobe)
        idx = _GatherRQ(e.index) if gather else e.index
        if gather:
            e.index = idx  # the engine's U2I path searches through it
        q = e.user_vecs[torch.from_numpy(users)]
        for j in range(10):  # warm caches
            idx.search(q[j:j + 1], k + 20)
        cand, search_ms, search_cpu, req_ms, req_cpu = [], [], [], [], []
        for j, u in enumerate(users):
            t0, c0 = time.perf_counter(), time.thread_time()
            idx.search(q[j:j + 1], k + 20)
            search_ms.append((time.perf_counter() - t0) * 1e3)
            search_cpu.append((time.thread_time() - c0) * 1e3)
            cand.append(idx.stats.get("candidates_per_query", float("nan")))
            t0, c0 = time.perf_counter(), time.thread_time()
            e.recommend(user=run.users.to_raw([u])[0], k=k)
            req_ms.append((time.perf_counter() - t0) * 1e3)
            req_cpu.append((time.thread_time() - c0) * 1e3)
        row = {"name": name, "index": idx.describe(), "nprobe": nprobe,
               "candidates_per_query_mean": float(np.mean(cand)),
               "search_ms": {"p50": _pct(search_ms, 50), "p99": _pct(search_ms, 99)},
               "search_cpu_ms": {"p50": _pct(search_cpu, 50), "p99": _pct(search_cpu, 99)},
               "search_cpu_us_per_candidate": float(np.median(np.asarray(search_cpu) / np.maximum(cand, 1)) * 1e3),
               "engine_request_ms": {"p50": _pct(req_ms, 50), "p99": _pct(req_ms, 99)},
               "engine_request_cpu_ms": {"p50": _pct(req_cpu, 50), "p99": _pct(req_cpu, 99)},
               "loadavg_1min": os.getloadavg()[0]}
        base = idx.rq if gather else idx
        if hasattr(base, "cluster_sizes"):
            row["cluster_sizes"] = _sizes(base.cluster_sizes())
        elif hasattr(base, "index") and hasattr(base.index, "invlists"):
            il = base.index.invlists
            row["cluster_sizes"] = _sizes(np.array([il.list_size(i) for i in range(base.nlist)]))
        out.append(row)
        print(f"  {row['index']}: {row['candidates_per_query_mean']:.0f} candidates/query, search p50 "
              f"{row['search_ms']['p50']:.2f} ms (CPU {row['search_cpu_ms']['p50']:.2f}), request p50 "
              f"{row['engine_request_ms']['p50']:.2f} ms, clusters {row.get('cluster_sizes')}", flush=True)
        del e, idx
    return out


def served_nprobe(serve_json: Path, target: str = "synthetic-1m") -> dict:
    """``{"ivf": nprobe, "rq": nprobe}`` served in ``serve_json`` (chosen by its recall sweep)."""
    from recgraph.io import read_json

    out = {}
    for row in read_json(serve_json)["recall_sweeps"].get(target, []):
        if row["served"] and row["nprobe"] is not None:
            out[row["index"][:2].lower()] = (row["index_dir"], row["nprobe"], row["recall"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/recgraph-bench-serve", help="bench_serve.py's work folder")
    ap.add_argument("--serve-json", default=str(RESULTS_DIR / "serve.json"))
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--users", type=int, default=200)
    args = ap.parse_args()
    served = served_nprobe(Path(args.serve_json))
    folders = {"exact": ("Flat", None)}
    if "iv" in served:
        folders["ivf"] = served["iv"][:2]
    if "rq" in served:
        folders["rq"] = served["rq"][:2]
        folders["rq-gather"] = served["rq"][:2]
        folders["rq-nprobe8"] = (served["rq"][0], 8)
    rows = index_breakdown(Path(args.work) / "synthetic-1m", folders, args.k, args.users)
    print_table("U2I search over 1M items, one query at a time (in-process)",
                ["index", "cand/query", "search p50 ms", "search CPU p50 ms", "CPU µs/cand", "request p50 ms"],
                [[r["index"], round(r["candidates_per_query_mean"]), round(r["search_ms"]["p50"], 3),
                  round(r["search_cpu_ms"]["p50"], 3), round(r["search_cpu_us_per_candidate"], 4),
                  round(r["engine_request_ms"]["p50"], 3)] for r in rows])
    write_result("serve_breakdown", {
        "benchmark": "serve index breakdown", "code_commit": git_commit(), "machine": machine_info(),
        "hyperparameters": {"how_chosen": "nprobe as served by bench_serve.py (chosen there by a recall sweep "
                                          "against exact search on seeded users, not on test data); rq-nprobe8 "
                                          "fixed for a cost-per-candidate reading; nothing else tuned",
                            "served": {k: {"folder": v[0], "nprobe": v[1], "recall_vs_exact": v[2]}
                                       for k, v in served.items()}},
        "protocol": {"users": args.users, "user_seed": 2, "k": args.k, "search_k": args.k + 20,
                     "threads": "torch / Faiss 1", "warmup": "10 searches per index",
                     "serve_json": str(args.serve_json)},
        "k": args.k, "rows": rows})


if __name__ == "__main__":
    main()
