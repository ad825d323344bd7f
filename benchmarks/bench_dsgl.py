"""DSGL benchmark: sampler cost, DSGL vs the CTR baselines (same tuning budget), ablations, the
leaking (all-time) variant, training throughput and one-user request latency.

    # dynamic-neighbourhood sampler: µs per sample vs fan-out and depth
    nice -n 10 python benchmarks/bench_dsgl.py sampler
    # quality: every model gets the same grid over its learning rate (chosen on seed 0's
    # validation AUC), then the remaining seeds with the chosen rate; DSGL ablations and the leak
    nice -n 10 python benchmarks/bench_dsgl.py compare --dataset movielens-100k --seeds 5
    # training samples/s and 1 user x 1,000 candidates latency vs DIN and MacGNN
    nice -n 10 python benchmarks/bench_dsgl.py latency --dataset movielens-100k

Writes benchmarks/results/dsgl_sampler.json, dsgl_<dataset>_<protocol>.json, dsgl_latency.json.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_commit, machine_info, print_table, write_result  # noqa: E402

from recgraph.data.ctr import CTRSamples  # noqa: E402
from recgraph.data.datasets import load_dataset  # noqa: E402
from recgraph.graph.dynamic import sample_dynamic  # noqa: E402
from recgraph.graph.features import build_ctr_data  # noqa: E402
from recgraph.train.runner import ExperimentConfig, build_model, run  # noqa: E402

MODELS = ("lr", "deepfm", "din", "sage", "macgnn", "dsgl")
LR_GRID = (1e-3, 3e-3, 1e-2)
# key → (name in the tables, DSGL arguments)
ABLATIONS = {"no_time": ("no time buckets", {"use_time": False}),
             "no_seq": ("no sequence encoder", {"seq_encoder": False}),
             "first_order": ("first-order (GAT-style) query", {"second_order": False}),
             "one_layer": ("one layer", {"n_layers": 1}),
             "leak": ("LEAK: all-time neighbourhood", {"deep_bound": "all-time"}),
             "snapshot": ("snapshot horizon (the baselines' information)", {"horizon": "snapshot"})}
KEYS = ("auc", "gauc", "logloss")


PROTOCOL_ARGS: dict = {}  # --protocol-args (e.g. {"valid_carve": "time"})


def ctr_data(ds: str, protocol: str, seed: int):
    return build_ctr_data(load_dataset(ds).interactions, protocol, seed=seed, **PROTOCOL_ARGS)


def _agg(vals):
    a = np.asarray(vals, float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "values": a.tolist()}


def _command() -> str:
    return "python benchmarks/bench_dsgl.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])


# ----------------------------------------------------------------------------- sampler cost

def sampler(datasets, n_samples=20000, repeats=3):
    """µs per sample (user side + item side) of :func:`sample_dynamic` for several fan-outs / depths,
    on real training samples (their own times), in batches of 1,024 (best of ``repeats``), and of the
    whole ``"dynamic"`` batch hook (sampling + gaps + tensors, one pass)."""
    fanouts = [(10,), (20,), (50,), (10, 5), (20, 10), (50, 20), (10, 5, 3), (20, 10, 5)]
    out, rows = {}, []
    for ds in datasets:
        data = ctr_data(ds, "leave-last-out", 0)
        s = data.train
        idx = np.random.default_rng(0).choice(len(s), n_samples, replace=len(s) < n_samples)
        u, i, t = s.user[idx], s.item[idx], s.time[idx]
        sample_dynamic(data.events, u[:10], t[:10], (2, 2))  # compile
        out[ds] = {"events": data.events.n_edges, "samples": n_samples}
        for f in fanouts:
            best, filled = np.inf, 0
            for rep in range(repeats):  # batches of 1,024 samples, as the loader asks for them
                t0 = time.perf_counter()
                for a in range(0, n_samples, 1024):
                    hu = sample_dynamic(data.events, u[a:a + 1024], t[a:a + 1024], f, side="user")
                    hi = sample_dynamic(data.events, i[a:a + 1024], t[a:a + 1024], f, side="item")
                    if rep == 0:
                        filled += sum(int((x != p).sum()) for h in (hu, hi) for x, p in zip(h.ids, h.pads))
                best = min(best, time.perf_counter() - t0)
            slots = int(np.sum(np.cumprod(f)))
            filled /= n_samples
            t0 = time.perf_counter()
            for a in range(0, n_samples, 1024):
                data.batch(s, idx[a:a + 1024], frozenset({"dynamic"}), fanouts=f)
            hook = time.perf_counter() - t0
            key = "x".join(map(str, f))
            out[ds][key] = {"depth": len(f), "slots_per_side": slots, "filled_per_sample": filled,
                            "us_per_sample_sampler": best / n_samples * 1e6,
                            "us_per_sample_batch_hook": hook / n_samples * 1e6}
            rows.append([ds, key, len(f), slots, f"{filled:.1f}", f"{best / n_samples * 1e6:.2f}",
                         f"{hook / n_samples * 1e6:.2f}"])
            print(rows[-1], flush=True)
    print_table("dynamic sampler: µs per sample (user + item side)",
                ["dataset", "fan-outs", "depth", "slots/side", "filled/sample", "sampler µs", "batch hook µs"], rows)
    return out


# ----------------------------------------------------------------------------- quality

def _run(model, ds, protocol, seed, data, lr, epochs, patience, args=None):
    r = run(ExperimentConfig(model, ds, protocol=protocol, protocol_args=dict(PROTOCOL_ARGS), seed=seed, epochs=epochs,
                             lr=lr, patience=patience, device="cpu", progress=False, model_args=args or {}), data=data)
    valid = max(h.get("valid_auc", -1.0) for h in r["train"]["history"])
    row = {"seed": seed, "lr": lr, "model_args": args or {}, "valid_auc": valid,
           **{k: r["metrics"][k] for k in KEYS}, "best_epoch": r["train"]["best_epoch"],
           "epochs_run": r["train"]["epochs_run"], "train_samples_per_second": r["train"]["train_samples_per_second"],
           "seconds": r["seconds"]["total"]}
    print(ds, model, args or "", f"seed {seed} lr {lr:g}: valid {valid:.4f} test",
          {k: round(row[k], 4) for k in KEYS}, f"ep {row['best_epoch']}/{row['epochs_run']} {row['seconds']:.0f}s",
          flush=True)
    return row


def _summary(runs) -> dict:
    out = {"runs": runs, **{k: _agg([r[k] for r in runs]) for k in KEYS + ("valid_auc",)}}
    if all(r.get("train_samples_per_second") is not None for r in runs):
        out["train_samples_per_second"] = _agg([r["train_samples_per_second"] for r in runs])
    return out


def _setup(ds, protocol, d0, seeds, ablation_seeds, epochs, patience) -> dict:
    time_note = load_dataset(ds).meta.get("timestamp", "the dataset's own timestamps")
    return {"dataset": ds, "time": time_note, "protocol": d0.protocol, "dropped": d0.dropped,
            "parts": {k: d0.part(k).describe() for k in ("train", "valid", "test")},
            "events_in_dynamic_graph": d0.events.n_edges, "seeds": list(range(seeds)),
            "ablation_seeds": list(range(ablation_seeds)), "max_epochs": epochs, "patience": patience,
            "selection": (f"learning rate from {list(LR_GRID)} chosen per model on seed 0's validation AUC "
                          "(the best-validation epoch of each run, early stopping on validation AUC); the "
                          "other seeds rerun the chosen rate; ablations and the leak use DSGL's chosen rate; "
                          "other hyper-parameters are each model's defaults"),
            "information": ("LR/DeepFM/DIN/sage/MacGNN read features of the latest global snapshot whose "
                            "cutoff <= the sample's time (strictly before the cutoff); DSGL reads every "
                            "positive event strictly before the sample's own time (fresher, still leak-free)")}


def compare(ds, protocol, seeds, epochs, patience, models, ablation_seeds, ablations=tuple(ABLATIONS), *,
            dsgl_lr=None, save=lambda res: None):
    """Tuned comparison of ``models`` then the DSGL ``ablations`` (at DSGL's chosen rate, or ``dsgl_lr``
    when DSGL itself is not in ``models``); ``save(res)`` after every model / variant."""
    t0 = time.perf_counter()
    datas = {s: ctr_data(ds, protocol, s) for s in range(max(seeds, ablation_seeds))}
    res = {"tuning": {}, "models": {}, "ablation": {},
           "_setup": _setup(ds, protocol, datas[0], seeds, ablation_seeds, epochs, patience)}
    for m in models:
        tune = [_run(m, ds, protocol, 0, datas[0], lr, epochs, patience) for lr in LR_GRID]
        best = max(tune, key=lambda r: r["valid_auc"])
        runs = [best] + [_run(m, ds, protocol, s, datas[s], best["lr"], epochs, patience) for s in range(1, seeds)]
        res["tuning"][m] = {"grid": {"lr": list(LR_GRID)}, "runs": tune, "chosen_lr": best["lr"]}
        res["models"][m] = _summary(runs)
        save(res)
    lr = res["tuning"]["dsgl"]["chosen_lr"] if "dsgl" in models else dsgl_lr
    if lr is not None and ablation_seeds > 0:
        res["_setup"]["ablation_lr"] = lr
        for name, args in (ABLATIONS[k] for k in ablations):
            runs = [_run("dsgl", ds, protocol, s, datas[s], lr, epochs, patience, args) for s in range(ablation_seeds)]
            res["ablation"][name] = {"model_args": args, **_summary(runs)}
            save(res)
    if "dsgl" in models and res["ablation"]:
        res["ablation"]["full DSGL (same seeds)"] = {"model_args": {}, **_summary(res["models"]["dsgl"]["runs"][
            :ablation_seeds])}
    _print(ds, protocol, res)
    res["_setup"]["seconds"] = time.perf_counter() - t0
    save(res)
    return res


def _print(ds, protocol, res):
    rows = [[m, *(f"{v[k]['mean']:.4f} ± {v[k]['std']:.4f}" for k in KEYS), f"{v['valid_auc']['mean']:.4f}",
             f"{res['tuning'][m]['chosen_lr']:g}" if m in res["tuning"] else "", len(v["runs"])]
            for m, v in res["models"].items()]
    if rows:
        print_table(f"{ds} ({protocol})", ["model", "AUC", "GAUC", "Logloss", "valid AUC", "lr", "seeds"], rows)
    rows = [[n, *(f"{v[k]['mean']:.4f} ± {v[k]['std']:.4f}" for k in KEYS), len(v["runs"])]
            for n, v in res["ablation"].items()]
    if rows:
        print_table(f"DSGL ablation on {ds} ({protocol})", ["variant", "AUC", "GAUC", "Logloss", "seeds"], rows)


_LOG_ROW = re.compile(r"^(?P<ds>\S+) (?P<model>\S+) (?P<args>\{.*\}|) ?seed (?P<seed>\d+) lr (?P<lr>[0-9.e-]+): "
                      r"valid (?P<valid>[0-9.-]+) test (?P<metrics>\{.*\}) "
                      r"ep (?P<best>\d+)/(?P<run>\d+) (?P<sec>\d+)s$")


def from_log(path, ds, protocol, seeds, ablation_seeds, epochs, patience):
    """Rebuild the results of a ``compare`` run from its log (for a run stopped before it wrote its
    JSON): every printed run row, grouped as ``compare`` groups them. Metrics are printed rounded to
    4 decimals; training throughput is not printed (None)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        m = _LOG_ROW.match(line.strip())
        if m and m["ds"] == ds:
            met = ast.literal_eval(m["metrics"])
            rows.append({"model": m["model"], "model_args": ast.literal_eval(m["args"]) if m["args"] else {},
                         "seed": int(m["seed"]), "lr": float(m["lr"]), "valid_auc": float(m["valid"]), **met,
                         "best_epoch": int(m["best"]), "epochs_run": int(m["run"]), "seconds": float(m["sec"]),
                         "train_samples_per_second": None})
    res = {"tuning": {}, "models": {}, "ablation": {},
           "_setup": {**_setup(ds, protocol, ctr_data(ds, protocol, 0), seeds, ablation_seeds, epochs, patience),
                      "reconstructed_from_log": str(path)}}
    names = {tuple(sorted(a.items())): n for n, a in ABLATIONS.values()}
    for model in dict.fromkeys(r["model"] for r in rows if not r["model_args"]):
        mr = [r for r in rows if r["model"] == model and not r["model_args"]]
        tune = [r for r in mr if r["seed"] == 0][:len(LR_GRID)]
        if len(tune) < len(LR_GRID):
            continue
        later = mr[len(LR_GRID):]  # the rate the run chose shows in its later seeds (the log rounds ties)
        best = ([r for r in tune if r["lr"] == later[0]["lr"]] or [None])[0] if later else None
        best = best or max(tune, key=lambda r: r["valid_auc"])
        runs = [best] + [r for r in later if r["lr"] == best["lr"]]
        res["tuning"][model] = {"grid": {"lr": list(LR_GRID)}, "runs": tune, "chosen_lr": best["lr"]}
        res["models"][model] = _summary(runs)
    for key, name in names.items():
        runs = [r for r in rows if r["model"] == "dsgl" and tuple(sorted(r["model_args"].items())) == key]
        if runs:
            res["ablation"][name] = {"model_args": dict(key), **_summary(runs)}
    _print(ds, protocol, res)
    return res


# ----------------------------------------------------------------------------- latency

def latency(ds, protocol, n_candidates=1000, repeats=110, threads=1, min_train_samples=6000, batch_size=128):
    """Training samples/s (batch ``batch_size``, feature gathering / sampling included) and the latency
    of one user × ``n_candidates`` through :meth:`CTRData.request` (user side once, broadcast)."""
    torch.set_num_threads(threads)
    data = ctr_data(ds, protocol, 0)
    f = data.features
    snap = int(data.test.snapshot.max())
    t_req = int(data.test.time.max()) + 1
    warm = np.flatnonzero(f.item_deg[snap * data.n_items:(snap + 1) * data.n_items] > 0)
    res, rows = {}, []
    variants = {"din": ("din", {}), "macgnn": ("macgnn", {}), "dsgl": ("dsgl", {}),
                "dsgl (one layer)": ("dsgl", {"n_layers": 1}),
                "dsgl (no sequence encoder)": ("dsgl", {"seq_encoder": False})}
    for name, (m, args) in variants.items():
        torch.manual_seed(0)
        model = build_model(m, data.n_users, data.n_items, data, **args)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        model.train()
        loader = data.loader("train", batch_size, model.needs, shuffle=True, **model.batch_kwargs)
        t0, n, ep = time.perf_counter(), 0, 0
        while n < min_train_samples:
            for b in loader(ep, np.random.default_rng(ep)):
                loss = model.loss(b)
                opt.zero_grad()
                loss.backward()
                opt.step()
                n += len(b)
                if n >= min_train_samples:
                    break
            ep += 1
        tput = n / (time.perf_counter() - t0)
        model.eval()
        rng = np.random.default_rng(0)
        tf, tw, tb = [], [], []
        with torch.no_grad():
            for r in range(repeats):
                u = int(data.test.user[r % len(data.test)])
                items = rng.choice(warm, size=n_candidates, replace=len(warm) < n_candidates)
                t = time.perf_counter()
                b = data.request(u, items, snap, model.needs, time=t_req, **model.batch_kwargs)
                t1 = time.perf_counter()
                model(b)
                t2 = time.perf_counter()
                s = CTRSamples(np.full(n_candidates, u), items, np.zeros(n_candidates, np.float32),
                               np.full(n_candidates, t_req), np.full(n_candidates, snap))
                t3 = time.perf_counter()
                model(data.batch(s, None, model.needs, **model.batch_kwargs))
                tb.append(time.perf_counter() - t3)
                tf.append(t1 - t), tw.append(t2 - t1)
        feat, fwd, per = (np.asarray(x[10:]) * 1e3 for x in (tf, tw, tb))
        tot = feat + fwd
        res[name] = {"model": m, "model_args": args, "train_samples_per_second": tput, "train_batch_size": batch_size,
                     "p50_ms": float(np.percentile(tot, 50)), "p99_ms": float(np.percentile(tot, 99)),
                     "features_p50_ms": float(np.percentile(feat, 50)), "forward_p50_ms": float(np.percentile(fwd, 50)),
                     "per_sample_batch_p50_ms": float(np.percentile(per, 50)),
                     "parameters": int(sum(p.numel() for p in model.parameters())),
                     "candidates": n_candidates, "timed_requests": repeats - 10, "threads": threads}
        rows.append([name, f"{tput:,.0f}", *(f"{res[name][k]:.2f}" for k in
                                             ("p50_ms", "p99_ms", "features_p50_ms", "forward_p50_ms",
                                              "per_sample_batch_p50_ms"))])
        print(rows[-1], flush=True)
    res["_setup"] = {"dataset": ds, "protocol": protocol, "request_time": t_req, "snapshot": snap,
                     "train_samples": len(data.train)}
    print_table(f"throughput / latency on {ds} ({threads} thread, 1 user x {n_candidates} candidates)",
                ["model", "train samples/s", "p50 ms", "p99 ms", "feat p50", "fwd p50", "per-sample p50"], rows)
    return res


def _short(ds: str) -> str:
    """Results-file stem of a dataset: its first word (``movielens``, ``amazon2014``, ``taobao``), but the
    whole name for the order-as-time sequence releases, which share a first word (``s3rec-lastfm``)."""
    return ds if ds.startswith(("s3rec-", "sasrec-")) else ds.split("-")[0]


NO_SELECTION = "fixed fan-outs / model defaults, no selection (timing only; nothing is chosen on any split)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("sampler", "compare", "latency"))
    ap.add_argument("--dataset", nargs="+", default=["movielens-100k"])
    ap.add_argument("--protocol", default="leave-last-out")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ablation-seeds", type=int, default=None, help="default: --seeds; 0: no ablation")
    ap.add_argument("--ablations", nargs="*", default=list(ABLATIONS), choices=list(ABLATIONS))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="")
    ap.add_argument("--protocol-args", type=json.loads, default={}, help='JSON, e.g. \'{"valid_carve": "time"}\'')
    ap.add_argument("--dsgl-lr", type=float, default=None, help="ablations only (--models without dsgl): DSGL's rate")
    ap.add_argument("--from-log", default=None, help="compare: rebuild the results from this log instead of running")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    PROTOCOL_ARGS.update(a.protocol_args)
    t0 = time.perf_counter()
    meta = {"command": _command(), "args": vars(a), "git_commit_at_start": git_commit(), "machine": machine_info(),
            "load_average_at_start": os.getloadavg()}
    meta["note"] = "shared 2-core machine: timings include contention (see load_average_at_start / _at_end)"
    if a.what == "sampler":
        write_result("dsgl_sampler" + a.tag, {**meta, "hyperparameters": NO_SELECTION, "results": sampler(a.dataset),
                                              "seconds": time.perf_counter() - t0,
                                              "load_average_at_end": os.getloadavg()})
    elif a.what == "latency":
        write_result("dsgl_latency" + a.tag, {**meta, "hyperparameters": NO_SELECTION,
                                              "results": {ds: latency(ds, a.protocol, threads=a.threads)
                                                                  for ds in a.dataset},
                                              "seconds": time.perf_counter() - t0,
                                              "load_average_at_end": os.getloadavg()})
    else:
        abl = a.seeds if a.ablation_seeds is None else a.ablation_seeds
        for ds in a.dataset:
            name = f"dsgl_{_short(ds)}_{a.protocol}{a.tag}"
            save = lambda res: write_result(name, {**meta, "hyperparameters": res["_setup"]["selection"],  # noqa
                                                   "results": res, "seconds": time.perf_counter() - t0,
                                                   "load_average_at_end": os.getloadavg()})
            if a.from_log:
                save(from_log(a.from_log, ds, a.protocol, a.seeds, abl, a.epochs, a.patience))
            else:
                compare(ds, a.protocol, a.seeds, a.epochs, a.patience, [m for m in a.models if m],
                        abl, a.ablations, dsgl_lr=a.dsgl_lr, save=save)


if __name__ == "__main__":
    main()
