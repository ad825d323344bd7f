"""PPR and propagation over an out-of-core graph, with and without ``--memory-budget``.

    python benchmarks/bench_graph_budget.py --graph GRAPH_DIR --stage ppr --budgets none 2GB 2GB:map
    python benchmarks/bench_graph_budget.py --graph GRAPH_DIR --stage propagation --budgets 2GB
    python benchmarks/bench_graph_budget.py --graph GRAPH_DIR --stage macro --budgets none 2GB

``GRAPH_DIR``: a graph folder written by ``recgraph graph build`` / ``build_graph`` (e.g. the 1B graph
of ``bench_scale.py``). Sources as ``bench_scale.py`` draws them (seed 0: half users, half items);
top-32, alpha 0.2, eps 1e-4. Each budget runs in a fresh subprocess
(``streaming.graph_ppr(memory_budget=...)``: rows read with ``pread``; ``BUDGET:map`` reads them through the
mapping instead; ``none`` = the dense workspace, rows through the mapping), which
reports its time, its peak RSS (``VmHWM``, exact) and the peaks of the anonymous and the file-backed
part of its RSS (``RssAnon`` / ``RssFile``, sampled every 20 ms), and a sha256 of the rows: every
budget must give the same rows. ``--stage propagation``: 2 hops of 16-d float32 random features (seed 0,
written to ``.npy`` in row chunks and passed memory-mapped, as ``bench_scale.py``), ``propagate(...,
memory_budget=..., out_dir=...)``; the sha256 is over the hop files. ``--stage macro``: MacGNN's four
macro slot tables (``u1 u2 i1 i2``: 500 Zipf categories drawn as ``bench_scale.py`` draws them, user
k-means k = 20, top-64 slots, int32 ids, no recent lists: the graph may have no timestamps) streamed to
disk, ragged (``build_macro_graph_from_graph(recent=0, out_dir=..., memory_budget=...)``; ``none``: ``R·C``
and ``Rᵀ·U`` in RAM, chunks of 16M edges; a budget: the products on disk too, gathered chunk by chunk);
reports the time of each step (``build_seconds`` / ``build_peak_rss``: the tables; ``seconds`` / ``peak_rss``
add hashing them), the bytes
on disk per table and per edge, a sha256 of the row offsets
(``rows_sha256``, comparable with older results) and of every table file (``files_sha256``).
Writes benchmarks/results/<--name>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_bytes, machine_info, print_table, write_result  # noqa: E402


def _status() -> dict:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key = line.split(":")[0]
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) * 1024
    return out


def worker(a) -> None:
    from recgraph.graph.external import open_graph, parse_bytes

    spec = a.budget.partition(":")[0]
    budget = None if spec == "none" else parse_bytes(spec)
    g = open_graph(a.graph)
    run = {"ppr": _ppr, "propagation": _propagation, "macro": _macro}[a.stage]
    prep = run(g, a, budget, None)  # inputs (not measured)
    peaks = {"RssAnon": 0, "RssFile": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            st = _status()
            for k in peaks:
                peaks[k] = max(peaks[k], st.get(k, 0))
            time.sleep(0.02)

    with open("/proc/self/clear_refs", "w") as fh:  # VmHWM from here on: the stage alone, not the inputs
        fh.write("5")
    before = _status()
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    info = run(g, a, budget, prep)
    seconds = time.perf_counter() - t0
    stop.set()
    th.join()
    shutil.rmtree(a.workdir, ignore_errors=True)
    print(json.dumps({"stage": a.stage, "budget": a.budget, "memory_budget_bytes": budget, "seconds": seconds,
                      "peak_rss": _status()["VmHWM"], "rss_before": before["VmRSS"],
                      "peak_rss_anon_sampled": peaks["RssAnon"], "peak_rss_file_sampled": peaks["RssFile"],
                      "nodes": int(g.n_users + g.n_items), "edges": int(g.n_edges), **info}))


def _ppr(g, a, budget, prep):
    """prep None: draw the sources; else run PPR for them."""
    from recgraph.graph.streaming import graph_ppr

    if prep is None:
        rng = np.random.default_rng(0)
        return (rng.choice(g.n_users, a.sources // 2, replace=False),
                rng.choice(g.n_items, a.sources - a.sources // 2, replace=False))
    read_rows = a.budget.partition(":")[2]
    rows = {"read_rows": read_rows} if read_rows else {}
    pu, pi = graph_ppr(g, *prep, workdir=Path(a.workdir) / "ppr", topk=32, eps=1e-4, alpha=0.2,
                       memory_budget=budget, **rows)
    h = hashlib.sha256()
    for x in (pu.indices, pu.scores, pi.indices, pi.scores):
        h.update(np.ascontiguousarray(x).tobytes())
    return {"sources": a.sources, "pushes": int(pu.num_pushes), "rows_sha256": h.hexdigest(),
            "mean_neighbours": float(np.concatenate([pu.counts(), pi.counts()]).mean())}


def _propagation(g, a, budget, prep):
    """prep None: write the input features; else propagate them."""
    from recgraph.graph.propagation import propagate
    from recgraph.io import atomic_npy_writer

    if prep is None:
        rng, xs = np.random.default_rng(0), []
        for side, rows in (("user", g.n_users), ("item", g.n_items)):
            path = Path(a.workdir) / "in" / f"{side}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_npy_writer(path, np.float32, (rows, 16)) as w:
                for r0 in range(0, rows, 1 << 22):
                    w.write(rng.standard_normal((min(rows, r0 + (1 << 22)) - r0, 16), dtype=np.float32))
            xs.append(np.load(path, mmap_mode="r"))
        return xs
    f = propagate(g, prep[0], prep[1], 2, memory_budget=budget, out_dir=Path(a.workdir) / "prop")
    h = hashlib.sha256()
    for name in ("user.npy", "item.npy"):
        with open(f.path / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    meta = json.loads((f.path / "meta.json").read_text())
    return {"hops": 2, "dim": 16, "feature_slices": meta.get("feature_slices", 1), "rows_sha256": h.hexdigest(),
            "output_bytes": int(f.nbytes)}


def _macro(g, a, budget, prep):
    """prep None: draw the item categories; else build the slot tables to disk and measure them."""
    from recgraph.graph.streaming import build_macro_graph_from_graph

    if prep is None:
        return np.random.default_rng(1).zipf(1.5, g.n_items) % 500  # the bench_macro_build categories
    out, steps, t0 = Path(a.workdir) / "macro", [], time.perf_counter()
    progress = Path(a.workdir).parent / "macro.log"  # follow a long run: tail -f SCRATCH/macro.log
    progress.parent.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        st = _status()
        steps.append({"step": msg, "seconds": time.perf_counter() - t0, "rss": st["VmRSS"], "peak_rss": st["VmHWM"]})
        with open(progress, "a") as fh:
            fh.write(json.dumps(steps[-1]) + "\n")

    m = build_macro_graph_from_graph(g, category=prep, user_k=20, recent=0, max_slots=64, id_dtype=np.int32,
                                     out_dir=out, memory_budget=budget, log=log)
    build_seconds = time.perf_counter() - t0
    log("tables done")
    build_peak = _status()["VmHWM"]  # before the hashing below reads the tables back
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    disk = sum(files.values())
    slots = {t: int(m.slot_ptr[t][-1]) if t in m.slot_ptr else int(np.prod(getattr(m, f"{t}_ids").shape))
             for t in ("u1", "u2", "i1", "i2")}
    h = hashlib.sha256()
    for t in ("u1", "u2", "i1", "i2"):  # the offsets and the counts' total fingerprint the tables cheaply
        if t in m.slot_ptr:
            h.update(np.ascontiguousarray(m.slot_ptr[t]).tobytes())
    whole = hashlib.sha256()  # every table file, in name order (not timed: after the tables are done)
    for p in sorted(out.iterdir()):
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                whole.update(block)
    return {"macro_info": m.info, "steps": steps, "files_bytes": files, "disk_bytes": disk,
            "disk_bytes_per_edge": disk / g.n_edges, "slots_stored": slots,
            "slots_if_padded": {t: (g.n_users if t[0] == "u" else g.n_items) * 64 for t in slots},
            "rows_sha256": h.hexdigest(), "files_sha256": whole.hexdigest(), "build_seconds": build_seconds,
            "build_peak_rss": build_peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", required=True)
    ap.add_argument("--stage", choices=["ppr", "propagation", "macro"], default="ppr")
    ap.add_argument("--sources", type=int, default=10_000)
    ap.add_argument("--budgets", nargs="+", default=["none", "2GB"])
    ap.add_argument("--scratch", default="/tmp/recgraph-bench-ppr")
    ap.add_argument("--name", default=None, help="default <stage>_budget")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--budget")
    ap.add_argument("--workdir")
    a = ap.parse_args()
    if a.worker:
        worker(a)
        return
    rows, results = [], []
    for b in a.budgets:
        args = [sys.executable, __file__, "--worker", "--stage", a.stage, "--graph", a.graph, "--sources",
                str(a.sources), "--budget", b,
                "--workdir", str(Path(a.scratch) / f"{a.stage}-{b}")]
        p = subprocess.run(args, capture_output=True, text=True)
        if p.returncode:
            res = {"budget": b, "error": f"exit {p.returncode}", "stderr": p.stderr[-3000:]}
        else:
            res = json.loads(p.stdout.strip().splitlines()[-1])
        results.append(res)
        print(json.dumps(res), flush=True)
        rows.append([b, f"{res.get('build_seconds', res.get('seconds', float('nan'))):.1f}", fmt_bytes(res.get("peak_rss")),
                     fmt_bytes(res.get("peak_rss_anon_sampled")), fmt_bytes(res.get("peak_rss_file_sampled")),
                     res.get("pushes", res.get("feature_slices", fmt_bytes(res.get("disk_bytes"))))])
    key = "files_sha256" if a.stage == "macro" else "rows_sha256"
    hashes = {r.get(key) for r in results if key in r}
    print_table(f"{a.stage} over {a.graph}", ["budget", "seconds", "peak RSS", "peak anon", "peak file-backed",
                                              {"ppr": "pushes", "propagation": "feature slices",
                                               "macro": "tables on disk"}[a.stage]], rows)
    print(f"identical output across budgets: {len(hashes) == 1}")
    write_result(a.name or f"{a.stage}_budget", {
                          "command": "python " + " ".join(sys.argv), "stage": a.stage, "graph": a.graph,
                          "sources": a.sources,
                          "seed": 0, "alpha": 0.2, "eps": 1e-4, "topk": 32,
                          "results": results, "identical_rows": len(hashes) == 1 and len(results) > 1,
                          "hyperparameters": "nothing tuned or selected: alpha, eps, topk, hops, dim chosen "
                                             "as in bench_scale.py; budgets swept, all reported",
                          "machine": machine_info()})


if __name__ == "__main__":
    main()
