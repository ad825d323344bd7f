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
    python benchmarks/bench_serve.py                     # everything, 10,000 requests per cell (≈ 1.5 h on 2 cores)
    python benchmarks/bench_serve.py --targets ml100k-lightgcn --requests 2000
    python benchmarks/bench_serve.py --exact-requests 2000 --secondary-requests 2000 --stop-at 11:45
Writes benchmarks/results/serve.json (+ serve_demo.png, a screenshot of the demo page); then
``benchmarks/bench_serve_breakdown.py`` measures, in-process, where the U2I search time goes for the
indexes this run served (results/serve_breakdown.json). The server is not niced (it is what is
measured); the 1-minute load average is recorded per cell.
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
SERVER_KEEPALIVE_S: float | None = None  # `recgraph serve --timeout-keep-alive` (None: the CLI default)
CLIENT_TIMEOUT_S = 300.0  # connect / read / write / pool timeout of the load client
CLIENT_KEEPALIVE_S = 5.0  # the client drops idle connections after this (httpx default), well before the server (75 s)
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


# ------------------------------------------------------------------------------------------ server
class Server:
    """``recgraph serve RUN`` in a subprocess on a free loopback port."""

    def __init__(self, run_dir: Path, index: str, nprobe: int | None, log: Path, ranker: Path | None = None):
        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
            self.port = s.getsockname()[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        cmd = [sys.executable, "-m", "recgraph.cli", "serve", str(run_dir), "--host", LOOPBACK, "--port",
               str(self.port), "--index", index] + (["--timeout-keep-alive", str(SERVER_KEEPALIVE_S)]
                                                    if SERVER_KEEPALIVE_S else []) + (["--nprobe", str(nprobe)] if nprobe else []) + \
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
    errors: list[dict] = []
    nxt = iter(range(len(bodies)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency,
                          keepalive_expiry=CLIENT_KEEPALIVE_S)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=CLIENT_TIMEOUT_S) as client:
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
                    else:
                        errors.append({"request": j, "type": f"HTTP {r.status_code}", "message": r.text[:300],
                                       "after_s": time.perf_counter() - t0})
                except httpx.HTTPError as exc:  # transport errors: recorded with their type
                    status[j] = -1
                    errors.append({"request": j, "type": type(exc).__name__, "message": repr(exc)[:300],
                                   "after_s": time.perf_counter() - t0, "at_s": time.perf_counter() - t_start})
                lat[j] = time.perf_counter() - t0

        t_start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t_start
    done = status != 0
    return {"lat": lat[done], "status": status[done], "timings": [t for t, d in zip(timings, done) if d],
            "wall": wall, "errors": errors}


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
            "error_types": {t: sum(e["type"] == t for e in res["errors"]) for t in sorted({e["type"] for e in
                                                                                         res["errors"]})},
            "error_samples": res["errors"][:10],
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
                max_seconds: float | None = None, stop_at: float | None = None,
                n_concurrent: int | None = None) -> list[dict]:
    """Serve ``run_dir`` and load it at each concurrency (``n_requests`` per cell; ``n_concurrent``, when
    given, at concurrency > 1); ``stop_at`` (``time.time()``) stops sending and skips later cells."""
    bodies, _ = bodies_for(run_dir, n_requests, k, seed=1)
    server = Server(run_dir, index, nprobe, work / f"server-{target}-{label}.log", ranker=ranker)
    rows = []
    try:
        t0 = time.perf_counter()
        health = server.wait()
        startup = time.perf_counter() - t0
        for c in concurrencies:
            if stop_at is not None and time.time() > stop_at:
                break
            cell_seconds = max_seconds
            if stop_at is not None:
                left = stop_at - time.time()
                cell_seconds = left if cell_seconds is None else min(cell_seconds, left)
            n = n_requests if (c == 1 or n_concurrent is None) else n_concurrent
            cell = load_cell(server, bodies[:n], c, cell_seconds)
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


def _deadline(text: str | None) -> float | None:
    """``HH:MM`` (UTC, today) → a ``time.time()`` value."""
    if not text:
        return None
    import datetime as dt

    h, m = (int(x) for x in text.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    return now.replace(hour=h, minute=m, second=0, microsecond=0).timestamp()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--requests", type=int, default=10_000, help="requests per cell")
    ap.add_argument("--exact-requests", type=int, default=None,
                    help="requests per cell at concurrency > 1 for exact search over the 1M catalogue (≈ 30 ms of "
                         "CPU each; default: --requests). Concurrency 1 always sends --requests")
    ap.add_argument("--secondary-requests", type=int, default=None,
                    help="requests per cell for gowalla-bpr (default: --requests)")
    ap.add_argument("--concurrency", default="1,10,100")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--recall-users", type=int, default=500)
    ap.add_argument("--work", default="/tmp/recgraph-bench-serve", help="run folders and indexes (reused)")
    ap.add_argument("--name", default="serve")
    ap.add_argument("--max-cell-seconds", type=float, default=None,
                    help="stop sending new requests in a cell after this long (off by default; recorded when used)")
    ap.add_argument("--stop-at", default=None, metavar="HH:MM",
                    help="UTC time after which no new request is sent and the remaining cells are skipped "
                         "(recorded; off by default)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    conc = [int(c) for c in args.concurrency.split(",")]
    stop_at = _deadline(args.stop_at)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    rows, sweeps, t_start, shot, skipped = [], {}, time.perf_counter(), None, []
    args.code_commit = git_commit()  # the code the servers run (a later write records the tree then)
    n2 = args.secondary_requests or args.requests

    def cells(target, run_dir, index, nprobe, label, n, k=None, ranker=None, n_concurrent=None):
        if stop_at is not None and time.time() > stop_at:
            skipped.append({"target": target, "index": label, "why": f"--stop-at {args.stop_at} passed"})
            return []
        return serve_cells(target, run_dir, index, nprobe, label, n, conc, k or args.k, work, ranker=ranker,
                           max_seconds=args.max_cell_seconds, stop_at=stop_at, n_concurrent=n_concurrent)

    for target in targets:
        print(f"== {target}", flush=True)
        if stop_at is not None and time.time() > stop_at:
            skipped.append({"target": target, "why": f"--stop-at {args.stop_at} passed"})
            continue
        if target == "ml100k-lightgcn":
            run_dir = train_run(work, target, "lightgcn", "movielens-100k", 40)
            rows += cells(target, run_dir, "Flat", None, "Flat", args.requests)
        elif target == "ml100k-lightgcn-din":  # retrieve -> rank: DIN re-scores the top-100 LightGCN candidates
            run_dir = train_run(work, "ml100k-lightgcn", "lightgcn", "movielens-100k", 40)
            ranker = train_run(work, "ml100k-din", "din", "movielens-100k", 3)
            rows += cells(target, run_dir, "Flat", None, "Flat + DIN ranker (top-100 re-scored)", args.requests, k=20,
                          ranker=ranker)
        elif target == "ml100k-rankgraph":
            run_dir = train_run(work, target, "rankgraph", "movielens-100k", 4)
            rows += cells(target, run_dir, "auto", None, "co-learned RQ + U2I2I + U2U2I", args.requests)
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
                n = n2 if target == "gowalla-bpr" else args.requests
                n_conc = args.exact_requests if (row["index"] == "Flat" and target == "synthetic-1m") else None
                got = cells(target, run_dir, row["index_dir"], row["nprobe"], label, n, n_concurrent=n_conc)
                for c in got:
                    c["recall_vs_exact"] = row["recall"]
                    c["engine_only_ms_mean"] = row["engine_ms_mean"]
                rows += got
        _write(args, rows, sweeps, shot, t_start, skipped)


HYPERPARAMETERS = {
    "how_chosen": "nothing was tuned on test data; serving cost, not quality, is measured",
    "model_epochs": "fixed, not tuned: LightGCN 40, RankGraph-2 4, DIN 3, MF-BPR 2 at batch 16384 on Gowalla, other "
                    "settings the models' defaults (serving cost per request does not depend on model quality)",
    "synthetic_1m": "fixed generator settings (1M items, 100k users, d=64, 4,096 clusters, seed 0), not trained",
    "index_nlist": "fixed: IVF1024 / RQ2x1024 for 1M items, IVF256 / RQ2x256 for Gowalla's 41k items (≈ sqrt(N)), "
                   "RankGraph-2's co-learned RQ its training default",
    "nprobe": "chosen per index by a recall sweep (smallest nprobe in the listed grid with recall@k vs exact search "
              ">= --target-recall) on --recall-users seeded users (seed 0) — held-out from nothing: recall is "
              "measured against exact search on the same vectors, not against test interactions",
    "ranker_candidates": "DIN re-scores the top-100 retrieved candidates and returns 20 (engine default "
                         "n_candidates=100)",
    "server": "1 uvicorn worker, torch/Faiss threads 1, keep-alive 75 s (recgraph serve defaults)",
}


def _finite(x):
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _write(args, rows: list[dict], sweeps: dict, shot: Path | None, t_start: float, skipped: list) -> None:
    """Print the table and write the results JSON (after every target, so a cut run keeps its cells)."""
    table = [{"target": r["target"], "index": r["index"], "recall": round(r.get("recall_vs_exact", 1.0), 4),
              "c": r["concurrency"], "n": r["requests"], "errors": r["errors"], "rps": round(r["throughput_rps"]),
              "p50 ms": round(r["latency_ms"]["p50"], 2), "p99 ms": round(r["latency_ms"]["p99"], 2),
              "server p50": round(r["server_stage_ms"].get("total", {}).get("p50", float("nan")), 2),
              "retrieve p50": round(r["server_stage_ms"].get("retrieve", {}).get("p50", float("nan")), 2),
              "http p50": round(r["http_overhead_ms"]["p50"], 2),
              "cpu ms/req": round(r["server_cpu_ms_per_request"], 2),
              "load": round(r["loadavg_1min"]["before"], 1)} for r in rows]
    if table:
        print_table("recgraph serve under load (loopback, 1 uvicorn worker)", list(table[0]),
                    [list(r.values()) for r in table])
    write_result(args.name, _finite({
        "benchmark": "serve", "command": " ".join([Path(sys.executable).name] + sys.argv),
        "code_commit": args.code_commit,
        "hyperparameters": HYPERPARAMETERS,
        "protocol": {"client": "httpx.AsyncClient in one process, keep-alive (idle expiry "
                               f"{CLIENT_KEEPALIVE_S} s), one connection per concurrent worker, timeout "
                               f"{CLIENT_TIMEOUT_S} s; errors = any non-200 or transport error, recorded by type",
                     "requests": "POST /recommend {user: uniform random known user (seed 1), k}", "k": args.k,
                     "requests_per_cell": args.requests,
                     "exact_1m_requests_at_concurrency_gt_1": args.exact_requests or args.requests,
                     "gowalla_requests_per_cell": args.secondary_requests or args.requests,
                     "max_cell_seconds": args.max_cell_seconds, "stop_at_utc": args.stop_at,
                     "warmup": "200 requests per cell, not counted", "address": LOOPBACK,
                     "server": "recgraph serve, 1 uvicorn worker, OMP/MKL threads 1, not niced; the machine is "
                               "shared (1-min load average recorded per cell)",
                     "equal_recall": f"smallest nprobe with recall@{args.k} vs exact >= {args.target_recall} on "
                                     f"{args.recall_users} seeded users (in-process sweep)",
                     "seeds": {"training": 0, "request users": 1, "recall users": 0, "synthetic": 0}},
        "machine": machine_info(), "rows": rows, "recall_sweeps": sweeps, "skipped": skipped,
        "screenshot": None if shot is None else str(shot.relative_to(REPO_ROOT)),
        "total_seconds": time.perf_counter() - t_start}))


if __name__ == "__main__":
    main()
