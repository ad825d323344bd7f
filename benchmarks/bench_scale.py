"""Graph build past RAM: in-memory vs out-of-core vs Ray-local, 10M → 100M (→ 1B) power-law edges.

    nice -n 10 python benchmarks/bench_scale.py --sizes 1e7 1e8 --memory-budget 2GB

Per size: synthetic power-law edges (users = E/20, items = E/50, Zipf α = 1 on both sides, int64
timestamps; ``_common.powerlaw_edges``, one seed per 10M-row partition) are written as Parquet
partitions (not timed). Then, each engine in its own subprocess (so peak RSS is that engine's alone):

* ``memory``: read every partition into RAM, ``BipartiteGraph.from_edges`` (dedupe, item order);
* ``ooc``: ``graph.external.build_graph`` with ``--memory-budget``, then on the memory-mapped result:
  PPR top-32 for ``--ppr-sources`` sources (half users, half items; α 0.2, ε 1e-4) within the budget
  (``streaming.graph_ppr(memory_budget=)``: hash workspace, mapped pages dropped per batch) and the degree arrays;
* ``ray``: ``distributed.ray.build_graph_ray`` (local Ray, 2 CPUs, the same total budget);
* ``macro``: the macro features (categories, user k-means k=20, the four slot tables, last-20 lists)
  from a time-ordered ``dedupe=False`` out-of-core graph (``streaming.build_macro_graph_from_graph``;
  ``macro-compact``: the same with int32 ids; ``macro-disk``: int32 ids and every table streamed to
  ``.npy`` files (``out_dir``) instead of RAM), and at sizes ≤ ``--old-macro-max`` the in-memory
  ``macro.build_feature_tables`` on the in-memory graph (``macro-old``). ``macro_peak_extra``: peak RSS
  of the macro call minus RSS just before it (graph already built / loaded).

Peak RSS: the engine process's ``VmHWM`` (exact) and, sampled every 0.1 s, the RSS summed over its
whole process tree (Ray's raylet and workers included). Every engine's arrays are hashed
(sha256 of the raw array bytes): ``identical`` says whether ooc and Ray equal the in-memory build.
Writes benchmarks/results/scale.json (the command, git commit, seeds are recorded there).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_bytes, growth_exponent, machine_info, powerlaw_edges, print_table, write_result  # noqa: E402

FIELDS = ("u_indptr", "u_indices", "i_indptr", "i_indices", "i_edge", "u_timestamp", "i_timestamp")
PART_ROWS = 10_000_000


def _hash(a: np.ndarray, chunk: int = 1 << 24) -> str:
    from recgraph.graph.external import read_slice

    h = hashlib.sha256()
    for s in range(0, a.shape[0], chunk):
        h.update(np.ascontiguousarray(read_slice(a, s, min(a.shape[0], s + chunk))).tobytes())
    return h.hexdigest()


def _vmhwm() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


# ---------------------------------------------------------------------------------------------- workers


def _ooc_stages(g, out: Path, budget: int, log=lambda s: None, only: tuple[str, ...] = ()) -> dict:
    """The stages after the build, over the memory-mapped graph, each timed with its own peak RSS (VmHWM
    reset before it): popularity subsampling (keep 0.5, β 0.5), the middle half of the time range as a
    slice, and 2 hops of DC-GNN propagation of 16-d random features (hops written to disk)."""
    from recgraph.graph.external import read_slice
    from recgraph.graph.propagation import propagate
    from recgraph.graph.streaming import subsample_to_disk, time_slice_to_disk

    stages = {}

    def timed(name, fn):
        log(f"{name} start")
        _reset_hwm()
        before = _rss()
        t = time.perf_counter()
        info = fn() or {}
        stages[name] = {"seconds": time.perf_counter() - t, "peak_rss_self": _vmhwm(),
                        "peak_extra": _vmhwm() - before, **info}

    def sub():
        s, summary = subsample_to_disk(g, out / "sub", keep_rate=0.5, beta=0.5, seed=0, memory_budget=budget)
        return {"kept": s.n_edges, "scale": summary["scale"], "disk_bytes": _dir_bytes(out / "sub")}

    def sl():
        ts = read_slice(g.u_timestamp, 0, min(g.n_edges, 1 << 20))
        lo, hi = np.quantile(ts, [0.25, 0.75]).astype(np.int64)
        s = time_slice_to_disk(g, out / "slice", int(lo), int(hi), memory_budget=budget)
        return {"kept": s.n_edges, "window": [int(lo), int(hi)]}

    def prop():
        # the input features are written to .npy files in row chunks and passed memory-mapped (a caller with
        # 70M x 16 float32 features keeps them on disk too); propagate reads them with pread, column slices
        from recgraph.io import atomic_npy_writer

        rng = np.random.default_rng(0)
        xs = []
        for side, rows in (("user", g.n_users), ("item", g.n_items)):
            path = out / "prop_in" / f"{side}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_npy_writer(path, np.float32, (rows, 16)) as w:
                for r0 in range(0, rows, 1 << 22):
                    w.write(rng.standard_normal((min(rows, r0 + (1 << 22)) - r0, 16), dtype=np.float32))
            xs.append(np.load(path, mmap_mode="r"))
        log("propagation features written")
        f = propagate(g, xs[0], xs[1], 2, memory_budget=budget, out_dir=out / "prop")
        slices = json.loads((out / "prop" / "meta.json").read_text()).get("feature_slices", 1)
        shutil.rmtree(out / "prop_in", ignore_errors=True)
        return {"hops": 2, "dim": 16, "feature_bytes": int(f.user.nbytes + f.item.nbytes), "feature_slices": slices,
                "inputs": "float32 .npy, memory-mapped"}

    for name, fn, folder in (("subsample", sub, "sub"), ("time_slice", sl, "slice"), ("propagation", prop, "prop")):
        if only and name not in only:
            continue
        timed(name, fn)
        stages[name]["output_disk_bytes"] = _dir_bytes(out / folder)
        shutil.rmtree(out / folder, ignore_errors=True)  # one stage's output on disk at a time (1B: ~10 GB each)
    return stages


def worker(a) -> dict:
    """One engine in this (sub)process; prints a JSON line."""
    from recgraph.graph.bipartite import BipartiteGraph
    from recgraph.graph.external import BuildOptions, build_graph, parse_bytes

    inp, out = Path(a.input), Path(a.out)
    budget = parse_bytes(a.memory_budget)
    res: dict = {"engine": a.worker, "idle_rss": _rss()}  # the process after imports, before any work
    t0 = time.perf_counter()
    steps: list[dict] = []

    def log(msg: str) -> None:
        """A build step's log line with the time and this process's RSS / peak RSS (also to stderr, so a
        killed worker leaves its last steps in the engine's log file)."""
        steps.append({"seconds": round(time.perf_counter() - t0, 2), "rss": _rss(), "peak_rss": _vmhwm(), "msg": msg})
        print(json.dumps(steps[-1]), file=sys.stderr, flush=True)
    if a.worker == "memory":
        import pyarrow.parquet as pq

        files = sorted(inp.glob("*.parquet"))
        tabs = [pq.read_table(f) for f in files]
        cols = {c: np.concatenate([t.column(c).to_numpy() for t in tabs]) for c in ("user", "item", "timestamp")}
        del tabs
        res["read_seconds"] = time.perf_counter() - t0
        g = BipartiteGraph.from_edges(cols["user"], cols["item"], a.n_users, a.n_items, timestamp=cols["timestamp"])
        del cols
        res["seconds"] = time.perf_counter() - t0
        res["build_seconds"] = res["seconds"] - res["read_seconds"]
        res["graph_bytes"] = g.nbytes
    elif a.worker in ("ooc", "ray"):
        opt = BuildOptions(timestamp_col="timestamp", n_users=a.n_users, n_items=a.n_items, memory_budget=budget)
        if a.worker == "ooc":
            g = build_graph(inp, out, opt, log=log)
        else:
            from recgraph.distributed.ray import build_graph_ray

            g = build_graph_ray(inp, out, opt, num_cpus=2)
        res["seconds"] = time.perf_counter() - t0
        res["disk_bytes"] = _dir_bytes(out)
        res["graph_bytes"] = g.nbytes
        res["build_peak_rss_self"] = _vmhwm()
        if a.drop_input and a.worker == "ooc":
            shutil.rmtree(inp)
            log("input deleted (--drop-input)")
        if a.worker == "ooc" and a.ppr_sources:
            from recgraph.graph.streaming import graph_ppr

            log("ppr start")
            t1 = time.perf_counter()
            rng = np.random.default_rng(0)
            us = rng.choice(a.n_users, a.ppr_sources // 2, replace=False)
            its = rng.choice(a.n_items, a.ppr_sources - a.ppr_sources // 2, replace=False)
            pu, pi = graph_ppr(g, us, its, workdir=out / "ppr", topk=32, eps=1e-4, alpha=0.2, memory_budget=budget)
            res["ppr"] = {"sources": int(a.ppr_sources), "seconds": time.perf_counter() - t1, "eps": 1e-4,
                          "alpha": 0.2, "topk": 32, "pushes": int(pu.num_pushes), "memory_budget": budget,
                          "mean_neighbours": float(np.concatenate([pu.counts(), pi.counts()]).mean()),
                          "joint_disk_bytes": _dir_bytes(out / "ppr")}
            shutil.rmtree(out / "ppr", ignore_errors=True)  # the joint adjacency (8 bytes per edge) is a temporary
            t1 = time.perf_counter()
            du, di = g.user_degree, g.item_degree
            res["degrees"] = {"seconds": time.perf_counter() - t1, "user_max": int(du.max()),
                              "item_max": int(di.max())}
        if a.worker == "ooc" and a.stages:
            res["stages"] = _ooc_stages(g, out, budget, log, tuple(a.stage_list.split(",")) if a.stage_list else ())
    elif a.worker in ("macro", "macro-compact", "macro-disk", "macro-old"):
        cat = np.random.default_rng(1).zipf(1.5, a.n_items) % 500  # the bench_macro_build categories
        if a.worker != "macro-old":
            from recgraph.graph.streaming import build_macro_graph_from_graph

            opt = BuildOptions(timestamp_col="timestamp", n_users=a.n_users, n_items=a.n_items, memory_budget=budget,
                               dedupe=False, order="time")
            g = build_graph(inp, out, opt, log=log)
            res["graph_seconds"] = time.perf_counter() - t0
            res["graph_peak_rss_self"] = _vmhwm()
            res["rss_before"] = _rss()
            _reset_hwm()
            t1 = time.perf_counter()
            log("macro start")
            disk = a.worker == "macro-disk"
            m = build_macro_graph_from_graph(g, category=cat, user_k=20, recent=a.macro_recent, max_slots=a.macro_slots,
                                             id_dtype=np.int64 if a.worker == "macro" else np.int32,
                                             out_dir=out / "macro" if disk else None, log=log)
            res["seconds"] = time.perf_counter() - t1
            if disk:
                res["output_disk_bytes"] = _dir_bytes(out / "macro")
                res["graph_disk_bytes"] = _dir_bytes(out) - res["output_disk_bytes"]
        else:
            import pyarrow.parquet as pq

            from recgraph.graph.macro import build_feature_tables

            tabs = [pq.read_table(f) for f in sorted(inp.glob("*.parquet"))]
            u, i, t = (np.concatenate([tb.column(c).to_numpy() for tb in tabs]) for c in ("user", "item", "timestamp"))
            del tabs
            g = BipartiteGraph.from_edges(u, i, a.n_users, a.n_items, timestamp=t, dedupe=False)
            del u, i, t
            res["rss_before"] = _rss()
            _reset_hwm()
            t1 = time.perf_counter()
            m = build_feature_tables(g, category=cat, user_k=20, recent=a.macro_recent, max_slots=a.macro_slots)
            res["seconds"] = time.perf_counter() - t1
        res["macro_info"] = m.info
        res["output_bytes"] = m.nbytes()
        res["macro_peak_extra"] = _vmhwm() - res["rss_before"]
    res["peak_rss_self"] = _vmhwm()
    res["build_log"] = steps
    if a.worker in ("memory", "ooc", "ray"):
        res["hashes"] = {f: _hash(getattr(g, f)) for f in FIELDS}
        res["n_edges"] = g.n_edges
    print("RESULT " + json.dumps(res), flush=True)
    return res


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_hwm() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------- driver


def _tree_rss(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/statm") as fh:
                rss[int(d)] = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    total, stack = 0, [root]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def run_engine(args: list[str], timeout: float, log_path: Path) -> dict:
    """Run one worker subprocess, sampling its process tree's RSS every 0.1 s; its stderr (the step log)
    goes to ``log_path``, whose tail is returned if the worker fails."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    errf = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=errf,
                            text=True, env=env)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        stop.set()
        errf.close()
        return {"error": f"timed out after {timeout:.0f} s", "stderr": log_path.read_text()[-3000:],
                "peak_rss_tree": peak[0]}
    stop.set()
    th.join()
    errf.close()
    err = log_path.read_text()
    for line in out.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            res["peak_rss_tree"] = peak[0]
            return res
    return {"error": f"exit {proc.returncode}", "stderr": err[-3000:], "peak_rss_tree": peak[0]}


def write_input(folder: Path, n: int, n_users: int, n_items: int, seed: int) -> bool:
    """Write the ``n``-edge input (False: a complete one of the same size and seed is already there,
    marked by ``_input.json``, which the builds skip as a leading-underscore name)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    marker = folder / "_input.json"
    spec = {"edges": n, "users": n_users, "items": n_items, "seed": seed, "part_rows": PART_ROWS}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return False
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    for p, a in enumerate(range(0, n, PART_ROWS)):
        rows = min(PART_ROWS, n - a)
        u, i, t = powerlaw_edges(rows, n_users, n_items, alpha=1.0, seed=seed * 100_003 + p)
        pq.write_table(pa.table({"user": u, "item": i, "timestamp": t}), folder / f"part-{p:05d}.parquet",
                       row_group_size=1 << 20)
    marker.write_text(json.dumps(spec))
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e7, 1e8])
    ap.add_argument("--engines", nargs="+", default=["memory", "ooc", "ray", "macro", "macro-compact", "macro-old"])
    ap.add_argument("--memory-budget", default="2GB")
    ap.add_argument("--ppr-sources", type=int, default=10_000)
    ap.add_argument("--stages", type=int, default=1, help="1: after the ooc build, also subsample / slice / "
                                                            "propagate over the mapped graph")
    ap.add_argument("--stage-list", default="", help="with --stages 1: only these stages (comma-separated "
                                                     "subsample,time_slice,propagation); default all")
    ap.add_argument("--macro-slots", type=int, default=64, help="macro slot width (build_feature_tables' max_slots)")
    ap.add_argument("--macro-recent", type=int, default=20, help="recent-list length of the macro features")
    ap.add_argument("--old-macro-max", type=float, default=1e7, help="largest size for the in-memory macro build")
    ap.add_argument("--memory-max", type=float, default=1e8, help="largest size for the in-memory engine")
    ap.add_argument("--scratch", default="/tmp/recgraph-bench-scale")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--keep-input", action="store_true", help="keep the written inputs in --scratch and reuse "
                                                               "a complete one of the same size and seed")
    ap.add_argument("--drop-input", action="store_true", help="ooc: delete the input once the graph is built, "
                    "before PPR and the stages (disk: at 1B the input is 12 GB; it is written again next time)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="scale")
    ap.add_argument("--worker", default=None)
    ap.add_argument("--input")
    ap.add_argument("--out")
    ap.add_argument("--n-users", type=int)
    ap.add_argument("--n-items", type=int)
    a = ap.parse_args()
    if a.worker:
        worker(a)
        return
    scratch = Path(a.scratch)
    results = []
    for n in map(int, a.sizes):
        nu, ni = max(100, n // 20), max(100, n // 50)
        inp = scratch / f"in-{n}"
        t0 = time.perf_counter()
        written = write_input(inp, n, nu, ni, a.seed)
        row = {"edges": n, "users": nu, "items": ni, "partitions": len(list(inp.glob("*.parquet"))),
               "input_bytes": _dir_bytes(inp), "input_seconds": time.perf_counter() - t0 if written else None,
               "engines": {}}
        print(f"{n:,} edges: input {fmt_bytes(row['input_bytes'])} "
              + (f"in {row['input_seconds']:.0f} s" if written else "(kept from an earlier run)"), flush=True)
        for eng in a.engines:
            if (eng == "macro-old" and n > a.old_macro_max) or (eng == "memory" and n > a.memory_max):
                row["engines"][eng] = _skipped(eng, n, a, results)
                print(f"  {eng}: {row['engines'][eng]['skipped']}", flush=True)
                continue
            out = scratch / f"out-{eng}-{n}"
            shutil.rmtree(out, ignore_errors=True)
            args = ["--worker", eng, "--input", str(inp), "--out", str(out), "--n-users", str(nu),
                    "--n-items", str(ni), "--memory-budget", a.memory_budget, "--ppr-sources", str(a.ppr_sources),
                    "--stages", str(a.stages), "--stage-list", a.stage_list, "--macro-slots", str(a.macro_slots), "--macro-recent", str(a.macro_recent)] + (["--drop-input"] if a.drop_input else [])
            res = run_engine(args, a.timeout, scratch / f"log-{eng}-{n}.txt")
            shutil.rmtree(out, ignore_errors=True)
            row["engines"][eng] = res
            print(f"  {eng}: " + json.dumps({k: v for k, v in res.items() if k != "hashes"}), flush=True)
        ref = row["engines"].get("memory", {}).get("hashes")
        for eng in ("ooc", "ray"):
            h = row["engines"].get(eng, {}).get("hashes")
            if ref and h:
                row["engines"][eng]["identical_to_memory"] = h == ref
        if not ref and row["engines"].get("ooc", {}).get("hashes") and row["engines"].get("ray", {}).get("hashes"):
            row["engines"]["ray"]["identical_to_ooc"] = row["engines"]["ray"]["hashes"] == row["engines"]["ooc"]["hashes"]
        if not a.keep_input:
            shutil.rmtree(inp, ignore_errors=True)
        results.append(row)
        write_result(a.name, _payload(a, results))
    _report(results)


def _skipped(eng: str, n: int, a, results: list) -> dict:
    """The record of an engine not run at this size (above its cap), with the RAM it would need at the
    bytes per event measured at the largest size it did run."""
    cap = a.memory_max if eng == "memory" else a.old_macro_max
    done = [r for r in results if "peak_rss_tree" in r["engines"].get(eng, {})]
    need = ""
    if done:
        per_event = done[-1]["engines"][eng]["peak_rss_tree"] / done[-1]["edges"]
        need = (f"; at the {per_event:.0f} bytes/event measured at {done[-1]['edges']:.0e} events it would need "
                f"~{per_event * n / 2**30:.1f} GiB")
    return {"skipped": f"not run: above --{'memory-max' if eng == 'memory' else 'old-macro-max'} {cap:.0e}{need}"}


def _payload(a, results) -> dict:
    sizes = [r["edges"] for r in results]
    exps = {}
    for eng in ("memory", "ooc", "ray", "macro", "macro-disk"):
        pts = [(r["edges"], r["engines"][eng]) for r in results if "seconds" in r["engines"].get(eng, {})]
        if len(pts) > 1:
            exps[eng] = {"time": growth_exponent([p[0] for p in pts], [p[1]["seconds"] for p in pts]),
                         "peak_rss": growth_exponent([p[0] for p in pts], [p[1]["peak_rss_tree"] for p in pts])}
    return {"command": "python " + " ".join(sys.argv), "sizes": sizes, "results": results,
            "growth_exponents": exps, "seed": a.seed, "memory_budget": a.memory_budget,
            "protocol": ("synthetic power-law edges (users=E/20, items=E/50, Zipf 1.0, int64 timestamps), "
                         f"{PART_ROWS:,}-row Parquet partitions, each engine in its own subprocess; dedupe=True, "
                         "order=item (macro: dedupe=False, order=time)"),
            "hyperparameters": "none selected: sizes, budget, PPR (alpha 0.2, eps 1e-4, top-32), subsampling "
                               "(keep 0.5, beta 0.5) and propagation (2 hops, d 16) are fixed settings, no tuning",
            "machine": machine_info()}


def _report(results) -> None:
    rows = []
    for r in results:
        for eng, res in r["engines"].items():
            if "seconds" not in res:
                rows.append([f"{r['edges']:,}", eng, "skipped" if "skipped" in res else "error",
                             res.get("skipped", res.get("error")), "", "", ""])
                continue
            disk = res.get("disk_bytes")
            same = res.get("identical_to_memory", res.get("identical_to_ooc"))
            rows.append([f"{r['edges']:,}", eng, f"{res['seconds']:.1f}", fmt_bytes(res.get("peak_rss_tree")),
                         f"{res.get('peak_rss_tree', 0) / r['edges']:.1f}",
                         "-" if disk is None else f"{disk / r['edges']:.1f}",
                         "-" if same is None else ("memory: " if "identical_to_memory" in res else "ooc: ") + str(same)])
    print_table("graph build past RAM", ["edges", "engine", "seconds", "peak RSS (tree)", "RSS B/edge",
                                          "disk B/edge", "identical"], rows)
    rows = [[f"{r['edges']:,}", name, f"{st['seconds']:.1f}", fmt_bytes(st["peak_rss_self"]), fmt_bytes(st["peak_extra"])]
            for r in results for name, st in r["engines"].get("ooc", {}).get("stages", {}).items()]
    if rows:
        print_table("stages over the memory-mapped graph", ["edges", "stage", "seconds", "peak RSS", "peak extra"], rows)


if __name__ == "__main__":
    main()
