"""Multi-task ranking on the Taobao UserBehavior sample: Shared-Bottom, MMoE, PLE, per-task MacGNN, MGOE.

Protocol: :mod:`recgraph.data.multitask` ``daily-window`` (pv impressions; cart / fav / buy within 24 h
after the impression; features from events before the impression's day; train = 3 days, validation =
the next day, test = the day after). Every model gets the same budget: dim 16, Adam lr 2e-3, batch 256,
no weight decay, at most ``--epochs`` epochs, early stopping (patience 2) and epoch selection on the
validation mean AUC over tasks; a grid of 2 values of the model's main knob, run with seed 0 and chosen
on the validation mean AUC; the chosen config is then run with every seed (``--seeds``). MGOE's ablations
use MGOE's chosen config. Then: training samples/s and 1 user x 1,000 candidates latency of MGOE vs MMoE
(measured back to back in this process), and the per-behaviour macro graphs of the multi-behaviour
releases (Tmall, Beibei, Taobao-GHCF; training split) with their memory.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 RECGRAPH_DATA=/work/shared/datasets PYTHONPATH=src \
        python benchmarks/bench_multitask.py --seeds 3 --epochs 4

Writes ``benchmarks/results/multitask_taobao.json`` (after every run, so a killed run keeps what it did).
``--timing-only`` re-measures MGOE vs MMoE alone (``multitask_latency.json``); ``--loaders-only`` builds
only the multi-behaviour sets' per-behaviour graphs (``multitask_task_graphs.json``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch

from _common import machine_info, measure, print_table, write_result

from recgraph.graph.task_graphs import behavior_feature_tables, build_multitask_data
from recgraph.data.datasets import load_dataset  # noqa: E402
from recgraph.train.runner import SINGLE_TASK_ALIASES, ExperimentConfig, build_model, run as run_experiment  # noqa: E402


def load_interactions(name):
    return load_dataset(name).interactions


def build_multitask_model(name, data, **model_args):
    return build_model(SINGLE_TASK_ALIASES.get(name, name), data.n_users, data.n_items, data, **model_args)

DATASET = "taobao-userbehavior-sample"
TASKS = ("cart", "fav", "buy")
GRIDS = {  # model -> (knob, values): each model's main architectural knob, 2 values each (shared 2-core box)
    "mmoe": ("n_experts", [4, 8]),
    "shared-bottom": ("bottom", [[128, 64], [256, 128]]),
    "ple": ("task_experts", [1, 2]),             # = shared_experts, 2 extraction levels
    "mgoe": ("experts_per_task", [1, 2]),
    "macgnn": ("tau", [1.0, 1.9]),               # one MacGNN per task
}
FIXED = {"shared-bottom": {}, "mmoe": {}, "ple": {"n_levels": 2}, "macgnn": {}, "mgoe": {}}
ABLATIONS = {"no-macro-bottom": {"macro_bottom": False}, "no-dynamic-tower": {"dynamic_tower": False},
             "shared-macro-graphs": {"shared_graphs": True}}


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _args(model: str, value) -> dict:
    knob, _ = GRIDS[model]
    a = {"dim": 16, **FIXED[model], knob: value}
    if model == "ple":
        a["shared_experts"] = value
    return a


def _summary(rec: dict) -> dict:
    best = rec["train"]["history"][rec["train"]["best_epoch"]]
    return {"model_args": rec["config"]["model_args"], "seed": rec["seed"], "test": rec["metrics"],
            "valid_auc_mean": best["valid_auc_mean"], "best_epoch": rec["train"]["best_epoch"],
            "epochs_run": rec["train"]["epochs_run"],
            "train_samples_per_second": rec["train"]["train_samples_per_second"], "seconds": rec["seconds"]}


def _agg(runs: list[dict]) -> dict:
    out = {}
    for t in TASKS:
        for k in ("auc", "gauc", "logloss"):
            v = [r["test"]["per_task"][t][k] for r in runs]
            out[f"{t}_{k}"] = (float(np.nanmean(v)), float(np.nanstd(v)))
    for k in ("auc", "gauc", "logloss"):
        v = [r["test"][f"{k}_mean"] for r in runs]
        out[f"mean_{k}"] = (float(np.nanmean(v)), float(np.nanstd(v)))
    return out


def _timing(data, names_args: dict, steps: int, repeats: int) -> dict:
    """Training samples/s (``steps`` Adam steps of batch 256) and 1 user x 1,000 candidates latency
    (request build + forward, all tasks), interleaved across models to share the machine's load."""
    rng = np.random.default_rng(0)
    s = data.test
    user = int(s.user[0])
    snap = int(s.snapshot[0])
    cands = rng.choice(data.n_items, 1000, replace=False)
    models = {n: build_multitask_model(n, data, **a) for n, a in names_args.items()}
    opts = {n: torch.optim.Adam(m.parameters(), 2e-3, fused=True) for n, m in models.items()}  # as Trainer
    batches = [data.batch(data.train, rng.choice(len(data.train), 256, replace=False), frozenset(
        {"recent", "macro", "task_macro"})) for _ in range(steps)]
    res = {n: {"train_step_s": [], "request_build_s": [], "request_forward_s": []} for n in models}
    for _ in range(2):  # warm-up + measured
        res = {n: {"train_step_s": [], "request_build_s": [], "request_forward_s": []} for n in models}
        for b in batches:
            for n, m in models.items():
                m.train()
                t0 = time.perf_counter()
                loss = m.loss(b)
                opts[n].zero_grad()
                loss.backward()
                opts[n].step()
                res[n]["train_step_s"].append(time.perf_counter() - t0)
        for _ in range(repeats):
            for n, m in models.items():
                m.eval()
                t0 = time.perf_counter()
                req = data.request(user, cands, snap, m.needs)
                t1 = time.perf_counter()
                with torch.no_grad():
                    m.score(req, [1.0 / len(TASKS)] * len(TASKS))
                res[n]["request_build_s"].append(t1 - t0)
                res[n]["request_forward_s"].append(time.perf_counter() - t1)
    out = {}
    for n, r in res.items():
        step = float(np.median(r["train_step_s"]))
        build, fwd = float(np.median(r["request_build_s"])), float(np.median(r["request_forward_s"]))
        out[n] = {"train_samples_per_s": 256 / step, "train_step_ms_median": 1e3 * step,
                  "request_1x1000_ms_median": 1e3 * (build + fwd), "request_build_ms_median": 1e3 * build,
                  "request_forward_ms_median": 1e3 * fwd,
                  "parameters": int(sum(p.numel() for p in models[n].parameters())),
                  "model_args": names_args[n], "steps": steps, "repeats": repeats}
    return out


def _loaders() -> dict:
    from recgraph.data.datasets import load_dataset

    out = {}
    for name in ("mbgcn-tmall-partial", "ghcf-beibei-partial", "ghcf-taobao-partial"):
        ds = load_dataset(name)
        train = ds.predefined.train  # target-behaviour train + every auxiliary behaviour: no test edge
        (shared, per, mem), sec, peak = measure(behavior_feature_tables, train, seed=0)
        b = np.asarray(train.behavior)
        out[name] = {"edges": {n: int((b == k).sum()) for k, n in enumerate(train.behavior_names)},
                     "users": train.n_users, "items": train.n_items, "macros": {
                         "item": shared.n_item_macros, "user": shared.n_user_macros},
                     "bytes_per_graph": mem, "seconds": sec, "peak_rss_delta_bytes": peak,
                     "partial": ds.meta.get("notes")}
    ali = load_dataset("multitask-samples-aliccp-aliexpress")
    out["multitask-samples-aliccp-aliexpress"] = {
        "rows": ali.meta["rows"], "labels": {k: list(v) for k, v in ali.meta["labels"].items()},
        "positive_rate": {f"{ds}/{part}/{lab}": float(np.mean(tab[lab])) for ds, parts in ali.meta["tables"].items()
                          for part, tab in parts.items() for lab in ali.meta["labels"][ds] if lab in tab},
        "note": "feature rows without user/item ids: no graph can be built; loader exercised only"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--models", default=",".join(GRIDS))
    ap.add_argument("--skip-ablations", action="store_true")
    ap.add_argument("--skip-loaders", action="store_true")
    ap.add_argument("--loaders-only", action="store_true",
                    help="only the per-behaviour graphs of the multi-behaviour sets → results/multitask_task_graphs.json")
    ap.add_argument("--timing-only", action="store_true",
                    help="only the MGOE vs MMoE throughput / latency (configs: --timing-args JSON) → "
                         "results/multitask_latency.json")
    ap.add_argument("--timing-args", default='{"mgoe": {"dim": 16, "experts_per_task": 1}, '
                                             '"mmoe": {"dim": 16, "n_experts": 4}}')
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.loaders_only:
        write_result("multitask_task_graphs", {"command": "python benchmarks/bench_multitask.py " + " ".join(sys.argv[1:]),
                                               "hyperparameters": "none: graph construction only (no model, no selection)",
                                               "graphs": _loaders()})
        return
    if args.timing_only:
        import json

        data = build_multitask_data(load_interactions(DATASET), TASKS, seed=0)
        cfgs = json.loads(args.timing_args)
        write_result("multitask_latency", {"command": "python benchmarks/bench_multitask.py " + " ".join(sys.argv[1:]),
                                           "dataset": DATASET, "tasks": list(TASKS), "configs": cfgs,
                                           "note": "configs = the ones selected on validation in multitask_taobao.json",
                                           "hyperparameters": "configs passed by --timing-args (chosen on validation "
                                                              "by the main run); timing only, no training to selection",
                                           "timing": _timing(data, cfgs, steps=30, repeats=30)})
        return
    models = args.models.split(",")
    t_start = time.perf_counter()
    payload: dict = {"command": "python benchmarks/bench_multitask.py " + " ".join(sys.argv[1:]),
                     "dataset": DATASET, "tasks": list(TASKS), "seeds": list(range(args.seeds)),
                     "hyperparameters": {"dim": 16, "lr": 2e-3, "batch_size": 256, "weight_decay": 0.0,
                                "max_epochs": args.epochs, "patience": 2,
                                "selection": "epoch: validation mean AUC over tasks; config: grid of 2 values of the "
                                             "model's main knob, seed 0, best validation mean AUC",
                                "grids": {m: {"knob": k, "values": v} for m, (k, v) in GRIDS.items()},
                                "fixed": FIXED},
                     "data_seed": 0, "grid": {}, "selected": {}, "runs": {}, "summary": {}, "ablations": {}}
    (data, data_s, data_peak) = measure(build_multitask_data, load_interactions(DATASET), TASKS, seed=0)
    payload["protocol"] = {**data.protocol, "dropped": data.dropped,
                           "parts": {k: data.part(k).describe(TASKS) for k in ("train", "valid", "test")}}
    payload["data_build"] = {"seconds": data_s, "peak_rss_delta_bytes": data_peak, "bytes_per_graph": data.memory,
                             "note": "built once (data seed 0: user k-means) and shared by every run; the model "
                                     "seed varies"}

    def save():
        payload["elapsed_s"] = time.perf_counter() - t_start
        write_result("multitask_taobao", _clean(payload))

    def run(model, margs, seed):
        rec = run_experiment(ExperimentConfig(model, DATASET, tasks=TASKS, seed=seed, epochs=args.epochs, device="cpu",
                                              patience=2, model_args=margs, progress=False), data=data)
        s = _summary(rec)
        print(f"  {model} {margs} seed {seed}: valid {s['valid_auc_mean']:.4f} test auc "
              + " ".join(f"{t} {rec['metrics']['per_task'][t]['auc']:.4f}" for t in TASKS)
              + f" ({rec['seconds']['total']:.0f} s)", flush=True)
        return s

    for model in models:
        knob, values = GRIDS[model]
        grid = [run(model, _args(model, v), 0) for v in values]
        best = int(np.argmax([g["valid_auc_mean"] for g in grid]))
        payload["grid"][model] = grid
        payload["selected"][model] = {"knob": knob, "value": values[best], "model_args": _args(model, values[best])}
        runs = [grid[best]] + [run(model, _args(model, values[best]), s) for s in range(1, args.seeds)]
        payload["runs"][model] = runs
        payload["summary"][model] = _agg(runs)
        save()
    if "mgoe" in models and not args.skip_ablations:
        base = payload["selected"]["mgoe"]["model_args"]
        for name, extra in ABLATIONS.items():
            runs = [run("mgoe", {**base, **extra}, s) for s in range(args.seeds)]
            payload["ablations"][name] = {"model_args": {**base, **extra}, "runs": runs, "summary": _agg(runs)}
            save()
    timing_models = {m: payload["selected"][m]["model_args"] for m in ("mgoe", "mmoe") if m in payload["selected"]}
    if timing_models:
        payload["throughput_latency"] = _timing(data, timing_models, steps=20, repeats=20)
        payload["throughput_latency_note"] = ("same process, models interleaved step by step; 1 thread; median of "
                                              "20 training steps (batch 256) and of 20 requests (1 user x 1,000 "
                                              "random candidates: feature gather + forward + weighted task sum)")
        save()
    if not args.skip_loaders:
        payload["per_task_graphs_multibehavior"] = _loaders()
        save()

    rows = []
    for name, summ in list(payload["summary"].items()) + [(f"mgoe {k}", v["summary"]) for k, v in
                                                          payload["ablations"].items()]:
        rows.append([name] + [f"{summ[f'{t}_auc'][0]:.4f}±{summ[f'{t}_auc'][1]:.4f}" for t in TASKS]
                    + [f"{summ['mean_auc'][0]:.4f}", f"{summ['mean_gauc'][0]:.4f}", f"{summ['mean_logloss'][0]:.5f}"])
    print_table(f"Taobao sample, {args.seeds} seeds: test AUC per task", ["model"] + [f"{t} AUC" for t in TASKS]
                + ["mean AUC", "mean GAUC", "mean LL"], rows)
    print({"machine": machine_info()["cpu"] if "cpu" in machine_info() else None,
           "elapsed_s": payload["elapsed_s"]})


if __name__ == "__main__":
    main()
