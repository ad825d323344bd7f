"""CTR benchmark: AUC / GAUC / Logloss (mean ± std over seeds) for LR, DeepFM, DIN, the sampled-
neighbour GNN (sage) and MacGNN under one protocol; MacGNN ablation (the fixed default, each
official defect alone — attention no-op, unmasked slots, Dice batch statistics at evaluation,
checkpoint selected on test — and all four together); training throughput and single-user scoring
latency (1 user × 1,000 candidates, feature gather / neighbour sampling and forward timed apart,
neighbour rows looked up per request) on CPU.

    nice -n 10 python benchmarks/bench_ctr.py --datasets movielens-100k --seeds 5
    nice -n 10 python benchmarks/bench_ctr.py --ablation --datasets movielens-100k --seeds 5
    nice -n 10 python benchmarks/bench_ctr.py --ablation --datasets movielens-100k --seeds 3 \
        --protocol leave-last-out --epochs 10 --patience 2
    nice -n 10 python benchmarks/bench_ctr.py --latency --datasets movielens-100k --threads 1

Writes benchmarks/results/ctr_<datasets>.json, ctr_ablation[_<protocol>].json, ctr_latency.json.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, print_table, write_result  # noqa: E402

from recgraph.data.ctr import CTRSamples  # noqa: E402
from recgraph.data.datasets import load_dataset  # noqa: E402
from recgraph.graph.features import build_ctr_data  # noqa: E402
from recgraph.models.registry import get_model_class  # noqa: E402
from recgraph.train.runner import ExperimentConfig, build_model, run  # noqa: E402


def ctr_data(ds, protocol, seed):
    return build_ctr_data(load_dataset(ds).interactions, protocol, seed=seed)

MODELS = ("lr", "deepfm", "din", "sage", "macgnn")
# name → (model_args, select_on_test): the fixed default, each official defect alone, all together
ABLATION = {"fixed (default)": ({}, False),
            "official_attention_noop": ({"official_attention_noop": True}, False),
            "official_unmasked_slots": ({"official_unmasked_slots": True}, False),
            "official_dice_batch_stats": ({"official_dice_batch_stats": True}, False),
            "select_on_test": ({}, True),
            "official (all four)": ({"variant": "official"}, True)}

def _defaults(name: str) -> dict:
    """A ranking model's default trainer settings and constructor arguments (what these runs use)."""
    cls = get_model_class(name)
    skip = {"self", "n_users", "n_items", "n_user_macros", "n_item_macros"}
    return {"trainer": dict(cls.train_defaults),
            "model": {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                      if k not in skip and p.default is not p.empty}}


def hyperparameters(a) -> dict:
    if a.latency:
        return {"how_chosen": "none: systems benchmark (throughput / latency), model quality not measured",
                "training": "fixed, not tuned: Adam lr 1e-3, batch 1024, >= 20,000 training samples per model; "
                            "architecture = constructor defaults (sage also at fanouts (25, 10))",
                "per_model": {m: _defaults(m)["model"] for m in ("macgnn", "sage", "din")},
                "request": "1 user x 1,000 warm candidates, 200 requests (first 10 warm-up, not counted)",
                "threads": a.threads}
    if a.ablation:
        return {"how_chosen": "nothing tuned: MacGNN at its defaults (train_defaults / constructor); the variants are "
                              "switched one at a time and all reported, none chosen",
                "epoch": f"early stopping on validation AUC (patience {a.patience}, cap {a.epochs}) -- EXCEPT the "
                         "'select_on_test' and 'official (all four)' variants: their checkpoint is chosen on test "
                         "AUC (the official MacGNN code's behaviour, reproduced as an ablation)",
                "macgnn": _defaults("macgnn")}
    return {"how_chosen": "nothing tuned: each model's defaults (train_defaults: lr / weight decay / batch size; "
                          "constructor: architecture)",
            "epoch": f"early stopping on validation AUC (patience 5, fixed in this mode; cap {a.epochs})",
            "per_model": {m: _defaults(m) for m in MODELS}}


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
                r = run(ExperimentConfig(m, ds, protocol=protocol, seed=seed, epochs=epochs, patience=5, device="cpu",
                                         progress=False), data=data)
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


def ablation(ds, seeds, epochs, protocol, patience=5):
    out, best, rows = {}, {}, []
    for seed in range(seeds):
        data = ctr_data(ds, protocol, seed)
        for name, (args, on_test) in ABLATION.items():
            r = run(ExperimentConfig("macgnn", ds, protocol=protocol, seed=seed, epochs=epochs, device="cpu",
                                     model_args=args, select_on_test=on_test, patience=patience, progress=False),
                    data=data)
            out.setdefault(name, []).append(r["metrics"])
            best.setdefault(name, []).append(r["train"]["best_epoch"])
            print(ds, seed, name, {k: round(r["metrics"][k], 4) for k in ("auc", "gauc", "logloss")}, flush=True)
    res = {}
    for name, ms in out.items():
        res[name] = {k: _agg([m[k] for m in ms]) for k in ("auc", "gauc", "logloss")}
        res[name]["best_epoch"] = best[name]
        res[name]["model_args"], res[name]["select_on_test"] = ABLATION[name]
        rows.append([name] + [f"{res[name][k]['mean']:.4f} ± {res[name][k]['std']:.4f}"
                              for k in ("auc", "gauc", "logloss")])
    res["_protocol"] = {"name": protocol, "epochs": epochs, "patience": patience,
                        "parts": {k: data.part(k).describe() for k in ("train", "valid", "test")},
                        "note": "official_dice_batch_stats is evaluated at eval batch size 1024"}
    print_table(f"MacGNN ablation on {ds} ({protocol})", ["variant", "AUC", "GAUC", "Logloss"], rows)
    return res


def _neighbour_rows(model_name: str, b: dict, f) -> dict:
    """Neighbour look-ups one request makes (non-padding ids gathered; ``lookups`` counts every
    candidate's copy, ``distinct`` the unique (table, id) rows)."""
    if model_name == "macgnn":
        groups = {"macro_item": [(b.user.hop1_ids, b.user.hop1_cnt), (b.item.hop2_ids, b.item.hop2_cnt)],
                  "macro_user": [(b.user.hop2_ids, b.user.hop2_cnt), (b.item.hop1_ids, b.item.hop1_cnt)]}
        out = {}
        for g, parts in groups.items():
            ids = [k[c > 0].numpy() for k, c in parts]
            out[g] = (sum(len(x) for x in ids), int(np.unique(np.concatenate(ids)).size))
        ur, ir = b.user.recent.numpy(), b.item.recent.numpy()
        out["recent_items_of_user"] = (int((ur != f.n_items).sum()), int(np.unique(ur[ur != f.n_items]).size))
        out["recent_users_of_items"] = (int((ir != f.n_users).sum()), int(np.unique(ir[ir != f.n_users]).size))
    elif model_name == "sage":
        out = {}
        for k, x, pad in (("u_nb", b.user.nb, f.n_items), ("u_nb2", b.user.nb2, f.n_users),
                          ("i_nb", b.item.nb, f.n_users), ("i_nb2", b.item.nb2, f.n_items)):
            x = x.numpy()
            out[k] = (int((x != pad).sum()), int(np.unique(x[x != pad]).size))
    elif model_name == "din":
        ur = b.user.recent.numpy()
        out = {"recent_items_of_user": (int((ur != f.n_items).sum()), int(np.unique(ur[ur != f.n_items]).size))}
    else:
        out = {}
    total = (sum(v[0] for v in out.values()), sum(v[1] for v in out.values()))
    return {"lookups": total[0], "distinct_rows": total[1],
            "by_group": {k: {"lookups": v[0], "distinct_rows": v[1]} for k, v in out.items()}}


def latency(ds, protocol, n_candidates=1000, repeats=200, threads=1, min_train_samples=20000):
    """Training throughput (batch 1024, feature gathering / neighbour sampling included) and the
    latency of scoring one user against ``n_candidates`` items on CPU with ``threads`` intra-op
    threads: through :meth:`CTRData.request` (the user side gathered / sampled and encoded once;
    split into feature time and forward time) and, for reference, as ``n_candidates``
    independent samples. The sampled GNN runs at fan-outs (10, 5) and (25, 10)."""
    torch.set_num_threads(threads)
    data = ctr_data(ds, protocol, 0)
    res, rows = {}, []
    f = data.features
    snap = int(data.test.snapshot.max())
    warm_items = np.flatnonzero(f.item_deg[snap * data.n_items:(snap + 1) * data.n_items] > 0)
    users = data.test.user
    variants = {"macgnn": ("macgnn", {}), "sage": ("sage", {}), "sage-25x10": ("sage", {"fanouts": (25, 10)}),
                "din": ("din", {})}
    for m, (model_name, model_args) in variants.items():
        torch.manual_seed(0)
        model = build_model(model_name, data.n_users, data.n_items, data, **model_args)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        model.train()
        loader = data.loader("train", 1024, model.needs, shuffle=True, **model.batch_kwargs)
        t0, n, ep = time.perf_counter(), 0, 0
        while n < min_train_samples:
            for b in loader(ep, np.random.default_rng(ep)):
                loss = model.loss(b)
                opt.zero_grad()
                loss.backward()
                opt.step()
                n += len(b)
            ep += 1
        tput = n / (time.perf_counter() - t0)
        model.eval()
        rng = np.random.default_rng(0)
        t_feat, t_fwd, t_tot_row, touched = [], [], [], []
        with torch.no_grad():
            for r in range(repeats):
                u = int(users[r % len(users)])
                items = rng.choice(warm_items, size=n_candidates, replace=len(warm_items) < n_candidates)
                # serving path: the user side gathered / sampled once and shared by the candidates
                t = time.perf_counter()
                b = data.request(u, items, snap, model.needs, salt=0, **model.batch_kwargs)
                t1 = time.perf_counter()
                model(b)
                t2 = time.perf_counter()
                t_feat.append(t1 - t), t_fwd.append(t2 - t1)
                # the same scores computed as 1,000 independent (user, item) samples
                s = CTRSamples(np.full(n_candidates, u), items, np.zeros(n_candidates, np.float32),
                               np.zeros(n_candidates, np.int64), np.full(n_candidates, snap))
                t = time.perf_counter()
                model(data.batch(s, None, model.needs, salt=0, **model.batch_kwargs))
                t_tot_row.append(time.perf_counter() - t)
                if r < 20:
                    touched.append(_neighbour_rows(model_name, b, f))
        feat, fwd = np.asarray(t_feat[10:]) * 1e3, np.asarray(t_fwd[10:]) * 1e3
        tot, per_row = feat + fwd, np.asarray(t_tot_row[10:]) * 1e3
        nb = {"lookups_mean": float(np.mean([x["lookups"] for x in touched])),
              "distinct_rows_mean": float(np.mean([x["distinct_rows"] for x in touched])),
              "by_group_first_request": touched[0]["by_group"]}
        res[m] = {"train_samples_per_second": tput, "train_samples_timed": n,
                  "p50_ms": float(np.percentile(tot, 50)), "p99_ms": float(np.percentile(tot, 99)),
                  "features_p50_ms": float(np.percentile(feat, 50)), "forward_p50_ms": float(np.percentile(fwd, 50)),
                  "per_sample_batch_p50_ms": float(np.percentile(per_row, 50)),
                  "per_sample_batch_p99_ms": float(np.percentile(per_row, 99)),
                  "neighbour_rows_per_request": nb, "parameters": int(sum(p.numel() for p in model.parameters())),
                  "candidates": n_candidates, "repeats": repeats - 10, "threads": threads}
        rows.append([m, f"{tput:,.0f}", f"{res[m]['p50_ms']:.2f}", f"{res[m]['p99_ms']:.2f}",
                     f"{res[m]['features_p50_ms']:.2f}", f"{res[m]['forward_p50_ms']:.2f}",
                     f"{res[m]['per_sample_batch_p50_ms']:.2f}",
                     f"{nb['lookups_mean']:,.0f}", f"{nb['distinct_rows_mean']:,.0f}"])
        print(rows[-1], flush=True)
    res["_setup"] = {"protocol": protocol, "train_samples": len(data.train), "n_users": data.n_users,
                     "n_items": data.n_items, "n_item_macros": f.n_item_macros, "n_user_macros": f.n_user_macros,
                     "slot_width": {"u1": int(f.u1_ids.shape[1]), "u2": int(f.u2_ids.shape[1]),
                                    "i1": int(f.i1_ids.shape[1]), "i2": int(f.i2_ids.shape[1])},
                     "sage_fanouts": {"sage": [10, 5], "sage-25x10": [25, 10]}, "recent": int(f.u_rec.shape[1])}
    print_table(f"throughput / latency on {ds} ({threads} thread(s), 1 user x {n_candidates} candidates)",
                ["model", "train samples/s", "p50 ms", "p99 ms", "feat p50", "fwd p50", "per-sample p50", "nb lookups",
                 "nb distinct"],
                rows)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["movielens-100k"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--protocol", default="macgnn-quantile")
    ap.add_argument("--ablation", action="store_true")
    ap.add_argument("--patience", type=int, default=5, help="early-stopping patience (ablation)")
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    if a.latency:
        res = {ds: latency(ds, a.protocol, threads=a.threads) for ds in a.datasets}
        name = "ctr_latency"
    elif a.ablation:
        res = {ds: ablation(ds, a.seeds, a.epochs, a.protocol, a.patience) for ds in a.datasets}
        name = "ctr_ablation" + ("" if a.protocol == "macgnn-quantile" else "_" + a.protocol)
    else:
        res = table(a.datasets, a.seeds, a.epochs, a.protocol)
        name = "ctr_" + "_".join(d.split("-")[0] for d in a.datasets)
    seeds = {"data": 0, "torch": 0, "candidates": 0} if a.latency else list(range(a.seeds))
    write_result(name, {"args": vars(a), "results": res, "hyperparameters": hyperparameters(a), "seeds": seeds,
                        "machine": machine_info(), "seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
