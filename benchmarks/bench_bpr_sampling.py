"""Edge-uniform vs the official user-uniform BPR sampler on MovieLens-100K, validation-selected.

Same split (per-user random 80/10/10, seed 0), same trainer defaults (early stop on validation
NDCG@20); only ``sampling`` differs. Test metrics are read at the validation-chosen epoch.

    python benchmarks/bench_bpr_sampling.py --models bpr,lightgcn --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _settings(rec: dict) -> dict:
    """The trainer and model settings a run actually used (read from its record)."""
    tr = rec["train"]
    return {"trainer": {k: tr.get(k) for k in ("lr", "weight_decay", "optimizer", "lr_schedule", "max_epochs",
                                               "patience")},
            "model": {k: v for k, v in rec["model_config"].items() if k not in ("n_users", "n_items", "sampling")}}


def _hyperparameters(args, used: dict) -> dict:
    return {"how_chosen": "nothing tuned here: every setting is the model's default (train_defaults / constructor; "
                          "lr and MF's init_std were chosen earlier on MovieLens-100K validation NDCG@20 per the "
                          "model docstrings, dim / reg / batch / layers are the LightGCN paper's); only the BPR "
                          "sampler differs",
            "sampling": "swept: edge, user; all points reported, none chosen",
            "epoch": "early stopping on validation NDCG@20 (the model's default patience / eval_every); test read "
                     "at the validation-best epoch",
            "split": f"per-user random 80/10/10, seed {args.seed}",
            "per_model": used}


def main() -> None:
    sys.path.insert(0, str(HERE))
    from _common import machine_info, print_table, write_result

    from recgraph.data.datasets import load_dataset
    from recgraph.data.split import random_ratio
    from recgraph.train.runner import ExperimentConfig, run as run_experiment

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="bpr,lightgcn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="bpr_sampling_movielens_100k")
    args = ap.parse_args()

    split = random_ratio(load_dataset("movielens-100k").interactions, seed=args.seed)
    rows, table, used = [], [], {}
    for model in args.models.split(","):
        for sampling in ("edge", "user"):
            rec = run_experiment(ExperimentConfig(model=model, dataset="movielens-100k", seed=args.seed, progress=False,
                                                  model_args={"sampling": sampling}), split=split)
            tr = rec["train"]
            used.setdefault(model, _settings(rec))
            best = tr["history"][tr["best_epoch"]]
            row = {"model": model, "sampling": sampling, "best_epoch": tr["best_epoch"] + 1,
                   "valid_ndcg@20": best["valid_ndcg@20"], "valid_recall@20": best["valid_recall@20"],
                   "test_recall@20": rec["metrics"]["recall@20"], "test_ndcg@20": rec["metrics"]["ndcg@20"],
                   "fit_seconds": rec["seconds"]["fit"], "peak_rss_bytes": rec["peak_memory_bytes"]}
            rows.append(row)
            table.append([model, sampling, row["best_epoch"], f"{row['valid_ndcg@20']:.4f}",
                          f"{row['test_recall@20']:.4f}", f"{row['test_ndcg@20']:.4f}", f"{row['fit_seconds']:.0f}"])
    print_table("BPR sampler on MovieLens-100K (selected on validation NDCG@20)",
                ["model", "sampling", "epoch", "valid N@20", "test R@20", "test N@20", "fit s"], table)
    write_result(args.name, {"dataset": "movielens-100k", "split": split.protocol, "rows": rows,
                             "hyperparameters": _hyperparameters(args, used), "seeds": [args.seed],
                             "machine": machine_info()})


if __name__ == "__main__":
    main()
