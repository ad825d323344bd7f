"""CTR benchmark: AUC / GAUC / Logloss (mean ± std over seeds) for LR, DeepFM, DIN, the sampled-
neighbour GNN (sage) and MacGNN under one protocol; MacGNN ablation (each official defect alone);
training throughput and single-user scoring latency (1 user × 1,000 candidates) on CPU.

    nice -n 10 python benchmarks/bench_ctr.py --datasets movielens-100k --seeds 5
    nice -n 10 python benchmarks/bench_ctr.py --ablation --datasets movielens-100k
    nice -n 10 python benchmarks/bench_ctr.py --latency --datasets movielens-100k

Writes benchmarks/results/ctr_<what>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, print_table, write_result  # noqa: E402

from recgraph.data.ctr import CTRSamples  # noqa: E402
from recgraph.train.ctr_experiment import build_ctr_model, ctr_data, run_ctr_experiment  # noqa: E402

MODELS = ("lr", "deepfm", "din", "sage", "macgnn")
ABLATION = {"fixed (default)": {}, "official_attention_noop": {"official_attention_noop": True},
            "official_unmasked_slots": {"official_unmasked_slots": True},
            "official_dice_batch_stats": {"official_dice_batch_stats": True},
            "official (all three)": {"variant": "official"}}


def _agg(vals):
    a = np.asarray(vals, float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "values": a.tolist()}


def table(datasets, seeds, epochs, protocol):
    out = {}
    rows = []
    for ds in datasets:
        out[ds] = {}
        recs = {m: [] for m in MODELS}
        for seed in range(seeds):
            data = ctr_data(ds, protocol, seed)
            for m in MODELS:
                r = run_ctr_experiment(m, ds, protocol, seed=seed, epochs=epochs, data=data, device="cpu")
                recs[m].append(r)
                print(ds, seed, m, {k: round(r["metrics"][k], 4) for k in ("auc", "gauc", "logloss")}, flush=True)
        for m in MODELS:
            out[ds][m] = {k: _agg([r["metrics"][k] for r in recs[m]]) for k in ("auc", "gauc", "logloss")}
            out[ds][m]["train_samples_per_second"] = _agg([r["train"]["train_samples_per_second"] for r in recs[m]])
            out[ds][m]["best_epoch"] = [r["train"]["best_epoch"] for r in recs[m]]
            rows.append([ds, m] + [f"{out[ds][m][k]['mean']:.4f} ± {out[ds][m][k]['std']:.4f}"
                                   for k in ("auc", "gauc", "logloss")])
        out[ds]["_protocol"] = recs["macgnn"][0]["protocol"]
    print_table(f"CTR, {protocol}, {seeds} seeds", ["dataset", "model", "AUC", "GAUC", "Logloss"], rows)
    return out


def ablation(ds, seeds, epochs, protocol):
    out, rows = {}, []
    for seed in range(seeds):
        data = ctr_data(ds, protocol, seed)
        for name, args in ABLATION.items():
            r = run_ctr_experiment("macgnn", ds, protocol, seed=seed, epochs=epochs, data=data, device="cpu",
                                   model_args=args)
            out.setdefault(name, []).append(r["metrics"])
        r = run_ctr_experiment("macgnn", ds, protocol, seed=seed, epochs=epochs, data=data, device="cpu",
                               select_on_test=True)
        out.setdefault("official_select_on_test", []).append(r["metrics"])
    res = {}
    for name, ms in out.items():
        res[name] = {k: _agg([m[k] for m in ms]) for k in ("auc", "gauc", "logloss")}
        rows.append([name] + [f"{res[name][k]['mean']:.4f} ± {res[name][k]['std']:.4f}" for k in ("auc", "gauc", "logloss")])
    print_table(f"MacGNN ablation on {ds}", ["variant", "AUC", "GAUC", "Logloss"], rows)
    return res


def latency(ds, protocol, n_candidates=1000, repeats=200):
    torch.set_num_threads(2)
    data = ctr_data(ds, protocol, 0)
    res, rows = {}, []
    rng = np.random.default_rng(0)
    f = data.features
    snap = int(data.test.snapshot.max())
    warm_items = np.flatnonzero(f.item_deg[snap * data.n_items:(snap + 1) * data.n_items] > 0)
    users = data.test.user
    for m in ("macgnn", "sage", "din"):
        model = build_ctr_model(m, data)
        # throughput: one epoch of training, batch 1024, 2 threads, feature gathering/sampling included
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        model.train()
        loader = data.loader("train", 1024, model.needs, shuffle=True)
        t0, n = time.perf_counter(), 0
        for _ in range(3):
            for b in loader(0, np.random.default_rng(0)):
                loss = model.loss(b)
                opt.zero_grad()
                loss.backward()
                opt.step()
                n += len(b["label"])
        tput = n / (time.perf_counter() - t0)
        model.eval()
        times = []
        with torch.no_grad():
            for r in range(repeats):
                u = int(users[r % len(users)])
                items = rng.choice(warm_items, size=n_candidates, replace=len(warm_items) < n_candidates)
                s = CTRSamples(np.full(n_candidates, u), items, np.zeros(n_candidates, np.float32),
                               np.zeros(n_candidates, np.int64), np.full(n_candidates, snap))
                t = time.perf_counter()
                model(data.batch(s, None, model.needs, salt=0))  # features / sampling + forward
                times.append(time.perf_counter() - t)
        ms = np.asarray(times[10:]) * 1e3
        res[m] = {"train_samples_per_second": tput, "p50_ms": float(np.percentile(ms, 50)),
                  "p99_ms": float(np.percentile(ms, 99)), "candidates": n_candidates, "threads": 2}
        rows.append([m, f"{tput:,.0f}", f"{res[m]['p50_ms']:.2f}", f"{res[m]['p99_ms']:.2f}"])
    print_table(f"throughput / latency on {ds} (2 threads)", ["model", "train samples/s", "p50 ms", "p99 ms"], rows)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["movielens-100k"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--protocol", default="macgnn-quantile")
    ap.add_argument("--ablation", action="store_true")
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    if a.latency:
        res = {ds: latency(ds, a.protocol) for ds in a.datasets}
        name = "ctr_latency"
    elif a.ablation:
        res = {ds: ablation(ds, a.seeds, a.epochs, a.protocol) for ds in a.datasets}
        name = "ctr_ablation"
    else:
        res = table(a.datasets, a.seeds, a.epochs, a.protocol)
        name = "ctr_" + "_".join(d.split("-")[0] for d in a.datasets)
    write_result(name, {"args": vars(a), "results": res, "machine": machine_info(),
                        "seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
