"""Benchmark: `recgraph serve` under load, on loopback only.

For each target a real run folder is served by ``recgraph serve`` in its own process (one uvicorn
worker, ``OMP_NUM_THREADS=1``) on 127.0.0.1, and an httpx async client sends a bounded number of
``POST /recommend {"user": id, "k": K}`` requests (known users drawn uniformly, seeded) at
concurrency 1, 10 and 100, after a warm-up of 200 requests. Per cell: requests, errors (any
non-200, must be 0), throughput, client-side latency p50 / p90 / p99 / max, the server's own
per-stage timings (``timings_ms`` of every response: lookup, query, retrieve per path, merge,
rank, total), the HTTP + framework + JSON overhead (client latency minus the server's total) and
the server process' CPU time per request.

Targets:

1. ``ml100k-lightgcn``: LightGCN on MovieLens-100K (random 8:1:1 split, seed 0), exact U2I;
   ``ml100k-lightgcn-din``: the same with a DIN ranker (MacGNN quantile protocol, 3 epochs)
   re-scoring the top-100 candidates (k = 20 returned).
2. ``ml100k-rankgraph``: RankGraph-2 on MovieLens-100K: U2I through its co-learned RQ index +
   U2I2I + U2U2I merged (the three candidate paths).
3. ``gowalla-bpr``: MF-BPR on the official LightGCN Gowalla split (29,858 users, 40,981 items):
   exact, Faiss IVF and post-hoc RQ.
4. ``synthetic-1m``: a synthetic catalogue of 1,000,000 items (d = 64 vectors from a mixture of
   4,096 Gaussian clusters with log-normal norms) and 100,000 users with 20 training items each,
   written as a real run folder (MF model artifact, vocab.npz, train.npz): exact, IVF1024, RQ2x1024.

Equal recall: before serving, each ANN index is swept over nprobe in-process on 500 seeded users;
recall@K = |index top-K ∩ exact top-K| / K (unseen items, same user vectors). The served nprobe is
the smallest that reaches ``--target-recall`` (0.95), so exact / IVF / RQ are compared at the same
quality. The engine-only latency (same requests, no HTTP) is measured in-process for each index.

Usage:
    nice -n 5 python benchmarks/bench_serve.py                      # everything (≈ 20-30 min on 2 cores)
    python benchmarks/bench_serve.py --targets ml100k-lightgcn --requests 2000
Writes benchmarks/results/serve.json (+ serve_demo.png, a screenshot of the demo page).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, REPO_ROOT, git_commit, machine_info, print_table, write_result  # noqa: E402

LOOPBACK = "127.0.0.1"  # the benchmark never talks to any other address
TARGETS = ("synthetic-1m", "ml100k-rankgraph", "gowalla-bpr", "ml100k-lightgcn", "ml100k-lightgcn-din")


# ------------------------------------------------------------------------------------------ runs
def train_run(work: Path, name: str, model: str, dataset: str, epochs: int, model_args: dict | None = None) -> Path:
    """A run folder written by the CLI's code path (``recgraph.train.runner.run``), reused when present."""
    from recgraph.train.runner import ExperimentConfig, run

    out = work / name
    if (out / "model" / "artifact.json").exists() and (out / "vocab.npz").exists():
        return out
    t0 = time.perf_counter()
    rec = run(ExperimentConfig(model=model, dataset=dataset, epochs=epochs, seed=0, device="cpu", progress=False,
                               out=str(out), model_args=dict(model_args or {})))
    m = rec["metrics"]
    print(f"trained {name}: {m.get('recall@20', m.get('auc'))} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def synthetic_run(out: Path, n_items: int = 1_000_000, n_users: int = 100_000, dim: int = 64,
                  n_clusters: int = 4096, per_user: int = 20, seed: int = 0) -> Path:
    """A run folder over a synthetic clustered catalogue (see the module docstring), vectorised."""
    import torch

    from recgraph.io import atomic_save_npz, atomic_write_json
    from recgraph.models.retrieval.mf import MFBPR
    from recgraph.train.artifacts import save_model
    from recgraph.train.runner import RUN_FORMAT, ExperimentConfig

    if (out / "model" / "artifact.json").exists():
        return out
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    item_c = rng.integers(0, n_clusters, n_items)
    items = centers[item_c] + 0.6 * rng.standard_normal((n_items, dim)).astype(np.float32) / np.sqrt(dim)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    items *= rng.lognormal(0.0, 0.25, n_items).astype(np.float32)[:, None]
    user_c = rng.integers(0, n_clusters, (n_users, 2))
    users = (centers[user_c[:, 0]] + 0.5 * centers[user_c[:, 1]]
             + 0.3 * rng.standard_normal((n_users, dim)).astype(np.float32) / np.sqrt(dim))
    # training items: per_user draws from the user's main cluster (items grouped by cluster, CSR)
    order = np.argsort(item_c, kind="stable")
    start = np.searchsorted(item_c[order], np.arange(n_clusters))
    size = np.bincount(item_c, minlength=n_clusters)
    cu = np.repeat(user_c[:, 0], per_user)
    pick = order[start[cu] + (rng.random(len(cu)) * size[cu]).astype(np.int64)]
    uu = np.repeat(np.arange(n_users), per_user)
    key = np.unique(uu * n_items + pick)
    tr_user, tr_item = key // n_items, key % n_items
    model = MFBPR(n_users, n_items, dim=dim)
    with torch.no_grad():
        model.user_emb.weight.copy_(torch.from_numpy(users.astype(np.float32)))
        model.item_emb.weight.copy_(torch.from_numpy(items.astype(np.float32)))
    cfg = ExperimentConfig(model="bpr", dataset="synthetic-1m", seed=seed, model_args={"dim": dim})
    save_model(out / "model", model, {"task": "retrieval", "dataset": "synthetic-1m", "seed": seed,
                                      "note": "synthetic vectors, not trained"})
    atomic_save_npz(out / "vocab.npz", {"user": np.arange(n_users, dtype=np.int64) + 1,
                                        "item": np.arange(n_items, dtype=np.int64) + 1})
    atomic_save_npz(out / "train.npz", {"train_user": tr_user, "train_item": tr_item,
                                        "sizes": np.asarray([n_users, n_items], np.int64)})
    atomic_write_json(out / "config.json", {"format": RUN_FORMAT, "task": "retrieval", "experiment": cfg.to_json(),
                                            "data": {"synthetic": {"n_items": n_items, "n_users": n_users, "dim": dim,
                                                                   "n_clusters": n_clusters, "per_user": per_user,
                                                                   "seed": seed}}})
    return out


# ------------------------------------------------------------------------------------ equal recall
def recall_sweep(run_dir: Path, indexes: dict, k: int, users: np.ndarray, target: float, work: Path) -> list[dict]:
    """For each ``name -> (description, [nprobe, ...])``: build the index once (saved under
    ``work``), sweep nprobe, recall@k vs exact on ``users`` (dense ids), engine-only latency."""
    import torch

    from recgraph.serve.recommend import Engine, load_run

    torch.set_num_threads(1)
    run = load_run(run_dir)
    exact = Engine(run, index="Flat")
    raw = run.users.to_raw(users)
    t0 = time.perf_counter()
    truth = [set(exact.recommend(user=u, k=k).items.tolist()) for u in raw]
    exact_ms = (time.perf_counter() - t0) / len(raw) * 1e3
    rows = [{"index": "Flat", "nprobe": None, "recall": 1.0, "engine_ms_mean": exact_ms, "build_seconds":
             exact.build_seconds, "served": True, "index_dir": "Flat"}]
    del exact
    for name, (desc, nprobes) in indexes.items():
        folder = work / "indexes" / f"{run_dir.name}-{name}"
        t0 = time.perf_counter()
        e = Engine(run, index=str(folder) if (folder / "index.json").exists() else desc)
        build = time.perf_counter() - t0
        if not (folder / "index.json").exists():
            e.index.save(folder)
        chosen = None
        for p in nprobes:
            e.index.nprobe = p
            t0 = time.perf_counter()
            got = [e.recommend(user=u, k=k).items for u in raw]
            ms = (time.perf_counter() - t0) / len(raw) * 1e3
            rec = float(np.mean([len(truth[j] & set(g.tolist())) / k for j, g in enumerate(got)]))
            row = {"index": desc.split(",")[0], "nprobe": p, "recall": rec, "engine_ms_mean": ms,
                   "build_seconds": build, "served": False, "index_dir": str(folder)}
            rows.append(row)
            print(f"  {run_dir.name} {desc.split(',')[0]} nprobe {p}: recall@{k} {rec:.4f}, {ms:.2f} ms/request")
            if rec >= target:
                chosen = row
                break
        (chosen or rows[-1])["served"] = True
    return rows


def index_breakdown(run_dir: Path, folders: dict, k: int, n_users: int = 200) -> list[dict]:
    """Where a U2I search spends its time, in-process, one query at a time, for each saved index
    ``name -> (folder, nprobe)``: candidates scored per query, cluster-size spread, and the wall
    and CPU time of the index search vs the whole engine request."""
    import torch

    from recgraph.index import load_index
    from recgraph.serve.recommend import Engine, load_run

    torch.set_num_threads(1)
    run = load_run(run_dir)
    users = np.random.default_rng(2).choice(run.n_users, n_users, replace=False)
    out = []
    for name, (folder, nprobe) in folders.items():
        e = Engine(run, index=folder if folder != "Flat" else "Flat", nprobe=nprobe)
        idx = e.index
        q = e.user_vecs[torch.from_numpy(users)]
        cand, search_ms, search_cpu, req_ms = [], [], [], []
        for j, u in enumerate(users):
            t0, c0 = time.perf_counter(), time.thread_time()
            idx.search(q[j:j + 1], k + 20)
            search_ms.append((time.perf_counter() - t0) * 1e3)
            search_cpu.append((time.thread_time() - c0) * 1e3)
            cand.append(idx.stats.get("candidates_per_query", float("nan")))
            t0 = time.perf_counter()
            e.recommend(user=run.users.to_raw([u])[0], k=k)
            req_ms.append((time.perf_counter() - t0) * 1e3)
        row = {"index": idx.describe(), "candidates_per_query_mean": float(np.mean(cand)),
               "search_ms": {"p50": _pct(search_ms, 50), "p99": _pct(search_ms, 99)},
               "search_cpu_ms_p50": _pct(search_cpu, 50),
               "engine_request_ms": {"p50": _pct(req_ms, 50), "p99": _pct(req_ms, 99)}}
        if hasattr(idx, "cluster_sizes"):
            sz = idx.cluster_sizes()
            row["cluster_sizes"] = {"n": int(len(sz)), "empty": int((sz == 0).sum()), "max": int(sz.max()),
                                    "p50": float(np.median(sz)), "p99": float(np.percentile(sz, 99))}
        elif hasattr(idx, "index") and hasattr(idx.index, "invlists"):
            il = idx.index.invlists
            sz = np.array([il.list_size(i) for i in range(idx.nlist)])
            row["cluster_sizes"] = {"n": int(len(sz)), "empty": int((sz == 0).sum()), "max": int(sz.max()),
                                    "p50": float(np.median(sz)), "p99": float(np.percentile(sz, 99))}
        out.append(row)
        print(f"  {row['index']}: {row['candidates_per_query_mean']:.0f} candidates/query, search p50 "
              f"{row['search_ms']['p50']:.2f} ms (CPU {row['search_cpu_ms_p50']:.2f}), request p50 "
              f"{row['engine_request_ms']['p50']:.2f} ms, clusters {row.get('cluster_sizes')}", flush=True)
    return out


# ------------------------------------------------------------------------------------------ server
class Server:
    """``recgraph serve RUN`` in a subprocess on a free loopback port."""

    def __init__(self, run_dir: Path, index: str, nprobe: int | None, log: Path, ranker: Path | None = None):
        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
            self.port = s.getsockname()[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        cmd = [sys.executable, "-m", "recgraph.cli", "serve", str(run_dir), "--host", LOOPBACK, "--port",
               str(self.port), "--index", index] + (["--nprobe", str(nprobe)] if nprobe else []) + \
            (["--ranker", str(ranker)] if ranker else [])
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
               "PYTHONPATH": os.environ.get("PYTHONPATH") or str(REPO_ROOT / "src")}
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.cmd = " ".join(cmd)

    def wait(self, timeout: float = 900) -> dict:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                r = httpx.get(self.url + "/health", timeout=2)
                if r.status_code == 200:
                    return r.json()
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise TimeoutError("server did not come up")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# ------------------------------------------------------------------------------------------ client
async def _load(url: str, bodies: list[dict], concurrency: int, max_seconds: float | None = None) -> dict:
    """Send ``bodies`` with ``concurrency`` workers; workers stop taking new requests after
    ``max_seconds`` (the cell then reports how many it sent)."""
    import httpx

    lat = np.zeros(len(bodies))
    status = np.zeros(len(bodies), np.int32)
    timings: list[dict | None] = [None] * len(bodies)
    nxt = iter(range(len(bodies)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        async def worker():
            for j in nxt:
                if max_seconds is not None and time.perf_counter() - t_start > max_seconds:
                    break
                t0 = time.perf_counter()
                try:
                    r = await client.post("/recommend", json=bodies[j])
                    status[j] = r.status_code
                    if r.status_code == 200:
                        timings[j] = r.json()["timings_ms"]
                except httpx.HTTPError:
                    status[j] = -1
                lat[j] = time.perf_counter() - t0

        t_start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t_start
    done = status != 0
    return {"lat": lat[done], "status": status[done], "timings": [t for t, d in zip(timings, done) if d],
            "wall": wall}


def _pct(x, q) -> float:
    return float(np.percentile(np.asarray(x, dtype=float), q)) if len(x) else float("nan")


def load_cell(server: Server, bodies: list[dict], concurrency: int, max_seconds: float | None = None) -> dict:
    asyncio.run(_load(server.url, bodies[:200], min(concurrency, 10), max_seconds))  # warm-up, not counted
    load0, cpu0 = os.getloadavg()[0], server.cpu_seconds()
    res = asyncio.run(_load(server.url, bodies, concurrency, max_seconds))
    n_sent = len(res["lat"])
    cpu = server.cpu_seconds() - cpu0
    lat_ms = res["lat"] * 1e3
    requested = len(bodies)
    bodies = bodies[:n_sent]
    ok = [t for t in res["timings"] if t is not None]
    stages = sorted({s for t in ok for s in t})
    server_total = np.array([t["total"] for t in ok])
    overhead = lat_ms[res["status"] == 200] - server_total
    return {"concurrency": concurrency, "requests": len(bodies), "requests_planned": requested,
            "stopped_by_time_limit": n_sent < requested, "errors": int((res["status"] != 200).sum()),
            "status_counts": {str(k): int(v) for k, v in zip(*np.unique(res["status"], return_counts=True))},
            "wall_seconds": res["wall"], "throughput_rps": len(bodies) / res["wall"],
            "latency_ms": {"p50": _pct(lat_ms, 50), "p90": _pct(lat_ms, 90), "p99": _pct(lat_ms, 99),
                           "max": float(lat_ms.max()), "mean": float(lat_ms.mean())},
            "server_stage_ms": {s: {"p50": _pct([t.get(s, 0.0) for t in ok], 50),
                                    "p99": _pct([t.get(s, 0.0) for t in ok], 99),
                                    "mean": float(np.mean([t.get(s, 0.0) for t in ok]))} for s in stages},
            "http_overhead_ms": {"p50": _pct(overhead, 50), "p99": _pct(overhead, 99)},
            "server_cpu_ms_per_request": cpu / len(bodies) * 1e3,
            "loadavg_1min": {"before": load0, "after": os.getloadavg()[0]}}


# ------------------------------------------------------------------------------------------ main
def bodies_for(run_dir: Path, n: int, k: int, seed: int) -> tuple[list[dict], np.ndarray]:
    from recgraph.io import load_npz

    raw = load_npz(run_dir / "vocab.npz")["user"]
    rng = np.random.default_rng(seed)
    users = rng.integers(0, len(raw), n)
    return [{"user": str(raw[u]), "k": k} for u in users], users


def serve_cells(target: str, run_dir: Path, index: str, nprobe: int | None, label: str, n_requests: int,
                concurrencies: list[int], k: int, work: Path, ranker: Path | None = None,
                max_seconds: float | None = None) -> list[dict]:
    bodies, _ = bodies_for(run_dir, n_requests, k, seed=1)
    server = Server(run_dir, index, nprobe, work / f"server-{target}-{label}.log", ranker=ranker)
    rows = []
    try:
        t0 = time.perf_counter()
        health = server.wait()
        startup = time.perf_counter() - t0
        for c in concurrencies:
            cell = load_cell(server, bodies, c, max_seconds)
            cell.update({"target": target, "index": label, "served_index": health["retrieval"]["index"],
                         "sources": health["retrieval"]["sources"], "k": k, "startup_seconds": startup,
                         "server_rss_bytes": server.rss_bytes(), "server_command": server.cmd})
            rows.append(cell)
            lat, st = cell["latency_ms"], cell["server_stage_ms"]
            print(f"  {target} {label} c={c}: {cell['throughput_rps']:.0f} rps, p50 {lat['p50']:.2f} ms, "
                  f"p99 {lat['p99']:.2f} ms, errors {cell['errors']}, server total p50 {st['total']['p50']:.2f} ms")
    finally:
        server.stop()
    return rows


def screenshot(run_dir: Path, path: Path, work: Path) -> bool:
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        print("no chromium: screenshot skipped")
        return False
    from playwright.sync_api import sync_playwright

    server = Server(run_dir, "auto", None, work / "server-screenshot.log")
    try:
        server.wait()
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = b.new_page(viewport={"width": 1280, "height": 820})
            page.goto(server.url + "/?user=1")
            page.wait_for_selector("#recs li")
            page.screenshot(path=str(path), full_page=False)
            b.close()
    finally:
        server.stop()
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--requests", type=int, default=10_000, help="requests per cell")
    ap.add_argument("--exact-requests", type=int, default=1_000,
                    help="requests per cell for exact search over the 1M catalogue (≈ 30 ms each)")
    ap.add_argument("--secondary-requests", type=int, default=None,
                    help="requests per cell for gowalla-bpr and ml100k-lightgcn (default: --requests)")
    ap.add_argument("--concurrency", default="1,10,100")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--recall-users", type=int, default=500)
    ap.add_argument("--work", default="/tmp/recgraph-bench-serve", help="run folders and indexes (reused)")
    ap.add_argument("--name", default="serve")
    ap.add_argument("--max-cell-seconds", type=float, default=None,
                    help="stop sending new requests in a cell after this long (bounded wall time on a busy machine)")
    ap.add_argument("--breakdown", default=None, metavar="NAME=FOLDER:NPROBE,...",
                    help="only measure where U2I time goes for these saved indexes of the synthetic-1m run "
                         "(in-process), written to results/NAME_breakdown.json")
    args = ap.parse_args()
    work = Path(args.work, max_seconds=args.max_cell_seconds)
    work.mkdir(parents=True, exist_ok=True)
    conc = [int(c) for c in args.concurrency.split(",")]
    if args.breakdown:
        folders = {}
        for item in args.breakdown.split(","):
            name, _, rest = item.partition("=")
            folder, _, p = rest.rpartition(":")
            folders[name] = (folder, int(p) if p and p != "none" else None)
        rows = index_breakdown(work / "synthetic-1m", folders, args.k)
        write_result(f"{args.name}_breakdown", {"benchmark": "serve index breakdown",
                                                "command": " ".join([Path(sys.executable).name] + sys.argv),
                                                "code_commit": git_commit(), "machine": machine_info(),
                                                "loadavg_1min": os.getloadavg()[0], "k": args.k, "rows": rows})
        return
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    rows, sweeps, t_start, shot = [], {}, time.perf_counter(), None
    args.code_commit = git_commit()  # the code the servers run (a later write records the tree then)
    n2 = args.secondary_requests or args.requests
    for target in targets:
        print(f"== {target}", flush=True)
        if target == "ml100k-lightgcn":
            run_dir = train_run(work, target, "lightgcn", "movielens-100k", 40)
            rows += serve_cells(target, run_dir, "Flat", None, "Flat", n2, conc, args.k, work, max_seconds=args.max_cell_seconds)
        elif target == "ml100k-lightgcn-din":  # retrieve -> rank: DIN re-scores the top-100 LightGCN candidates
            run_dir = train_run(work, "ml100k-lightgcn", "lightgcn", "movielens-100k", 40)
            ranker = train_run(work, "ml100k-din", "din", "movielens-100k", 3)
            rows += serve_cells(target, run_dir, "Flat", None, "Flat + DIN ranker", n2, conc, 20, work, ranker=ranker, max_seconds=args.max_cell_seconds)
        elif target == "ml100k-rankgraph":
            run_dir = train_run(work, target, "rankgraph", "movielens-100k", 4)
            rows += serve_cells(target, run_dir, "auto", None, "co-learned RQ + U2I2I + U2U2I", args.requests, conc,
                                args.k, work, max_seconds=args.max_cell_seconds)
            shot = RESULTS_DIR / f"{args.name}_demo.png"
            if not screenshot(run_dir, shot, work):
                shot = None
        else:
            if target == "gowalla-bpr":
                run_dir = train_run(work, target, "bpr", "lightgcn-gowalla", 2, {"batch_size": 16384})
                indexes = {"ivf": ("IVF256,nprobe8", [4, 8, 16, 32, 64, 128]),
                           "rq": ("RQ2x256,nprobe8", [4, 8, 16, 32, 64, 128])}
            else:
                run_dir = synthetic_run(work / target)
                indexes = {"ivf": ("IVF1024,nprobe8", [4, 8, 16, 32, 64, 128, 256]),
                           "rq": ("RQ2x1024,nprobe8", [4, 8, 16, 32, 64, 128, 256])}
            from recgraph.io import load_npz

            n_users = int(load_npz(run_dir / "train.npz")["sizes"][0])
            users = np.random.default_rng(0).choice(n_users, size=min(args.recall_users, n_users), replace=False)
            sweep = recall_sweep(run_dir, indexes, args.k, users, args.target_recall, work)
            sweeps[target] = sweep
            for row in [r for r in sweep if r["served"]]:
                label = row["index"] if row["nprobe"] is None else f"{row['index']},nprobe{row['nprobe']}"
                n = (args.exact_requests if (row["index"] == "Flat" and target == "synthetic-1m") else
                     n2 if target == "gowalla-bpr" else args.requests)
                cells = serve_cells(target, run_dir, row["index_dir"], row["nprobe"], label, n, conc, args.k, work, max_seconds=args.max_cell_seconds)
                for c in cells:
                    c["recall_vs_exact"] = row["recall"]
                    c["engine_only_ms_mean"] = row["engine_ms_mean"]
                rows += cells
        _write(args, rows, sweeps, shot, t_start)


def _write(args, rows: list[dict], sweeps: dict, shot: Path | None, t_start: float) -> None:
    """Print the table and write the results JSON (after every target, so a cut run keeps its cells)."""
    table = [{"target": r["target"], "index": r["index"], "recall": round(r.get("recall_vs_exact", 1.0), 4),
              "c": r["concurrency"], "n": r["requests"], "errors": r["errors"], "rps": round(r["throughput_rps"]),
              "p50 ms": round(r["latency_ms"]["p50"], 2), "p99 ms": round(r["latency_ms"]["p99"], 2),
              "server p50": round(r["server_stage_ms"]["total"]["p50"], 2),
              "retrieve p50": round(r["server_stage_ms"]["retrieve"]["p50"], 2),
              "http p50": round(r["http_overhead_ms"]["p50"], 2),
              "cpu ms/req": round(r["server_cpu_ms_per_request"], 2)} for r in rows]
    if table:
        print_table("recgraph serve under load (loopback, 1 uvicorn worker)", list(table[0]),
                    [list(r.values()) for r in table])
    write_result(args.name, {
        "benchmark": "serve", "command": " ".join([Path(sys.executable).name] + sys.argv),
        "code_commit": args.code_commit,
        "protocol": {"client": "httpx.AsyncClient, keep-alive, one connection per concurrent worker",
                     "requests": "POST /recommend {user: uniform random known user (seed 1), k}", "k": args.k,
                     "warmup": "200 requests per cell, not counted", "address": LOOPBACK,
                     "server": "recgraph serve, 1 uvicorn worker, OMP/MKL threads 1",
                     "equal_recall": f"smallest nprobe with recall@{args.k} vs exact >= {args.target_recall} on "
                                     f"{args.recall_users} seeded users (in-process sweep)",
                     "seeds": {"training": 0, "request users": 1, "recall users": 0, "synthetic": 0},
                     "hyper_parameters": "model defaults; epochs bounded for time (lightgcn 40, rankgraph 4, "
                                         "bpr 2 at batch 16384 on Gowalla): serving cost does not depend on them"},
        "machine": machine_info(), "rows": rows, "recall_sweeps": sweeps,
        "screenshot": None if shot is None else str(shot.relative_to(REPO_ROOT)),
        "total_seconds": time.perf_counter() - t_start})


if __name__ == "__main__":
    main()
