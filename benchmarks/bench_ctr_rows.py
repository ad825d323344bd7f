"""CTR models on an external row listing (``--protocol rows:PATH``), each tuned with a validation
grid of the same size: ``lr × one main knob of the model`` (4 configurations per model: weight
decay for LR / DeepFM / DIN / SAGE, the degree features for MacGNN), 5 seeds per configuration,
the configuration chosen by mean validation AUC over the seeds (each run early-stopped on
validation AUC), test read once per run. Also the non-learned item-popularity floor.

    python benchmarks/bench_ctr_rows.py --rows ml-100k --models lr,deepfm,din,sage,macgnn
    python benchmarks/bench_ctr_rows.py --rows ml-100k-pu --models macgnn
    python benchmarks/bench_ctr_rows.py --protocol macgnn-quantile --dataset taobao-userbehavior-sample --seeds 3

``--protocol`` runs the same equal-budget grid on one of recgraph's own protocols instead of a listing.

``--rows`` is a path, or a name under ``$RECGRAPH_DATA/macgnn-official-splits/`` (``ml-100k`` →
``ml-100k_split_rows.csv.gz``). Writes benchmarks/results/ctr_rows_<name>.json with every grid
run (validation and test metrics per seed), the chosen configuration and the official code's
reference numbers from the listing's README where known.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_result  # noqa: E402

from recgraph.data.datasets import load_dataset  # noqa: E402
from recgraph.eval.protocols import evaluate_ctr  # noqa: E402
from recgraph.graph.features import build_ctr_data  # noqa: E402
from recgraph.train.runner import ExperimentConfig, run  # noqa: E402

LRS = [1e-3, 1e-2]
# model → (knob, values, where: "train" = a trainer argument, "model" = a constructor argument)
KNOBS = {"macgnn": ("degree_features", [False, True], "model")}
DEFAULT_KNOB = ("weight_decay", [0.0, 1e-4], "train")


def grid_of(model: str) -> dict:
    knob, values, _ = KNOBS.get(model, DEFAULT_KNOB)
    return {"lr": LRS, knob: values}
# the official MacGNN code on these rows (README of macgnn-official-splits; 5 seeds, epoch on valid)
OFFICIAL = {"ml-100k": {"auc": (0.6953, 0.0078), "gauc": (0.7010, 0.0100), "logloss": (0.6556, 0.0121)},
            "ml-100k-pu": {"auc": (0.7422, 0.0033), "gauc": (0.6794, 0.0030), "logloss": (0.6131, 0.0123)}}
METRICS = ("auc", "gauc", "logloss")


def _rows_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".gz", ".csv"):
        return p
    root = Path(os.environ.get("RECGRAPH_DATA", "/work/shared/datasets")) / "macgnn-official-splits"
    return root / f"{name}_split_rows.csv.gz"


def _agg(vals):
    a = np.asarray(vals, float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "values": a.tolist()}


def popularity(data) -> dict:
    """Item popularity in the feature snapshot (positives) as the score: no learning."""
    out = {}
    for part in ("valid", "test"):
        s = data.part(part)
        pop = data.features.item_deg[s.snapshot * data.n_items + s.item].astype(np.float64)
        m = evaluate_ctr(s.user, s.label, pop, from_logits=True)
        out[part] = {k: m[k] for k in ("auc", "gauc")}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="ml-100k")
    ap.add_argument("--protocol", default=None, help="a recgraph CTR protocol instead of --rows (e.g. macgnn-quantile)")
    ap.add_argument("--dataset", default="movielens-100k")
    ap.add_argument("--models", default="lr,deepfm,din,sage,macgnn")
    ap.add_argument("--variants", type=json.loads, default={},
                    help='extra named rows: {"name": ["model", {model args}]}')
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    path = _rows_path(a.rows) if a.protocol is None else None
    protocol = f"rows:{path}" if a.protocol is None else a.protocol
    entries = {m: (m, {}) for m in a.models.split(",") if m}
    entries.update({k: (v[0], v[1]) for k, v in a.variants.items()})
    t0 = time.perf_counter()
    inter = load_dataset(a.dataset).interactions
    datas = [build_ctr_data(inter, protocol, seed=s) for s in range(a.seeds)]
    res: dict = {"_popularity": popularity(datas[0])}
    rows = [["item popularity (no learning)", "-", "-", f"{res['_popularity']['test']['auc']:.4f}",
             f"{res['_popularity']['test']['gauc']:.4f}", "-"]]
    if path is not None:
        key = Path(path).name.replace("_split_rows.csv.gz", "")
        out_name = a.name or f"ctr_rows_{key.replace('-', '_')}"
    else:
        key = f"{a.dataset}/{a.protocol}"
        out_name = a.name or f"ctr_grid_{a.dataset}_{a.protocol}".replace("-", "_")

    def save(complete: bool):
        protocol_rec = dict(datas[0].protocol)
        protocol_rec.update({"parts": {k: datas[0].part(k).describe() for k in ("train", "valid", "test")},
                             "dropped": datas[0].dropped})
        body = {"args": vars(a), "complete": complete, "seeds": list(range(a.seeds)), "protocol": protocol_rec,
                "results": res,
                "hyperparameters": {"grid": {m: grid_of(m) for m in ("lr", "deepfm", "din", "sage", "macgnn")},
                                    "selection": "per model: the grid point with the highest mean validation AUC "
                                    "over the seeds; epoch early-stopped on validation AUC "
                                    f"(patience {a.patience}, cap {a.epochs}); everything else the model's default "
                                    "(batch size = train_defaults, architecture = constructor defaults)"},
                "seconds": time.perf_counter() - t0}
        return write_result(out_name, body)

    for name, (model, margs) in entries.items():
        grid_runs = []
        knob, _, where = KNOBS.get(model, DEFAULT_KNOB)
        grid = grid_of(model)
        if knob in margs:  # a named variant pins the knob: its grid is the step size alone
            grid = {"lr": LRS}
        for p in [dict(zip(grid, v)) for v in itertools.product(*grid.values())]:
            train_kw = {k: v for k, v in p.items() if k == "lr" or where == "train"}
            model_kw = {**margs, **{k: v for k, v in p.items() if k != "lr" and where == "model"}}
            runs = []
            for s, data in enumerate(datas):
                r = run(ExperimentConfig(model, a.dataset, protocol=protocol, seed=s, epochs=a.epochs, device="cpu",
                                         patience=a.patience, model_args=model_kw, progress=False, **train_kw),
                        data=data)
                be = r["train"]["best_epoch"]
                v = next(h for h in r["train"]["history"] if h["epoch"] == be)
                runs.append({"seed": s, "valid": {k: v[f"valid_{k}"] for k in METRICS}, "test": r["metrics"],
                             "best_epoch": be, "epochs_run": r["train"]["epochs_run"],
                             "stopped_early": r["train"]["stopped_early"], "batch_size": r["train"]["batch_size"],
                             "git_commit": r["git_commit"]})
            grid_runs.append({"config": p, "valid_auc_mean": float(np.mean([x["valid"]["auc"] for x in runs])),
                              "runs": runs})
            print(name, p, "valid auc %.4f" % grid_runs[-1]["valid_auc_mean"],
                  "test auc %.4f gauc %.4f" % (np.mean([x["test"]["auc"] for x in runs]),
                                               np.mean([x["test"]["gauc"] for x in runs])), flush=True)
        best = max(grid_runs, key=lambda g: g["valid_auc_mean"])
        test = {k: _agg([x["test"][k] for x in best["runs"]]) for k in METRICS}
        res[name] = {"model": model, "model_args": margs, "model_config": r["model_config"], "grid": grid,
                     "chosen": best["config"], "selection": "max mean validation AUC over the seeds",
                     "test": test, "best_epochs": [x["best_epoch"] for x in best["runs"]],
                     "hit_epoch_cap": sum(x["epochs_run"] >= a.epochs and not x["stopped_early"] for x in best["runs"]),
                     "grid_runs": grid_runs}
        rows.append([name, json.dumps(best["config"]), f"{best['valid_auc_mean']:.4f}"]
                    + [f"{test[k]['mean']:.4f} ± {test[k]['std']:.4f}" for k in METRICS])
        save(False)
    if key in OFFICIAL:
        o = OFFICIAL[key]
        res["_official_code"] = {"source": "README of macgnn-official-splits (not re-run here)",
                                 **{k: {"mean": v[0], "std": v[1]} for k, v in o.items()}}
        rows.append(["official MacGNN code (README)", "-", "-"] + [f"{o[k][0]:.4f} ± {o[k][1]:.4f}" for k in METRICS])
    print_table(f"{key}: 4-point grid per model (2 for variants with the knob pinned), {a.seeds} seeds, "
                "chosen on validation AUC",
                ["model", "chosen", "valid AUC", "test AUC", "test GAUC", "test Logloss"], rows)
    print(f"wrote {save(True)}")


if __name__ == "__main__":
    main()
