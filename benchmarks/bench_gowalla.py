"""Retrieval baselines on the official LightGCN Gowalla split (full ranking, train items excluded).

Protocol: the official LightGCN one — the split has no validation part, the test file is evaluated
every ``--eval-every`` epochs, and the curve (epoch, wall-clock seconds, Recall@20, NDCG@20) is
recorded so the time to reach the paper's numbers can be read off. Numbers selected this way are
marked ``selected_on: test``; the last-epoch numbers need no selection at all.

    python benchmarks/bench_gowalla.py --models itemknn,bpr,lightgcn --epochs 20 --device auto
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {"lightgcn": (0.1830, 0.1554), "bpr": (0.1491, 0.1235)}


def main() -> None:
    sys.path.insert(0, str(HERE))
    from _common import machine_info, write_result

    from recgraph.data.datasets import load_dataset
    from recgraph.train.experiment import ExperimentConfig, run_experiment

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="itemknn,bpr,lightgcn")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="gowalla")
    args = ap.parse_args()

    ds = load_dataset("lightgcn-gowalla")
    split = ds.predefined
    rows = []
    for m in args.models.split(","):
        trainable = m in ("bpr", "lightgcn")
        cfg = ExperimentConfig(model=m, dataset="lightgcn-gowalla", split="predefined", seed=args.seed,
                               epochs=args.epochs, lr=args.lr, patience=None, eval_every=args.eval_every,
                               device=args.device, progress=True, select_on_test=trainable,
                               eval_batch_size=4096,
                               model_args={"batch_size": args.batch_size} if trainable else {})
        t0 = time.perf_counter()
        rec = run_experiment(cfg, split=split)
        wall = time.perf_counter() - t0
        curve, elapsed = [], 0.0
        for h in rec["train"].get("history", []):
            elapsed += h["train_seconds"] + h.get("eval_seconds", 0.0)
            if "valid_recall@20" in h:
                curve.append({"epoch": h["epoch"] + 1, "seconds": elapsed,
                              "recall@20": h["valid_recall@20"], "ndcg@20": h["valid_ndcg@20"]})
        target = TARGETS.get(m)
        reached = next((c for c in curve if target and c["recall@20"] >= target[0] and c["ndcg@20"] >= target[1]), None)
        row = {"model": m, "last_epoch": {k: rec["metrics"][k] for k in ("recall@20", "ndcg@20")},
               "best_on_test": max(curve, key=lambda c: c["ndcg@20"]) if curve else None,
               "seconds_per_epoch": rec["train"].get("seconds_per_epoch"), "epochs": rec["train"].get("epochs_run"),
               "fit_seconds": rec["seconds"]["fit"], "wall_seconds": wall, "peak_rss_bytes": rec["peak_memory_bytes"],
               "device": rec["device"], "target": target, "reached_target_at": reached, "curve": curve,
               "config": {k: v for k, v in vars(args).items()}, "git_commit": rec["git_commit"]}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
    write_result(args.name, {"dataset": "lightgcn-gowalla", "protocol": split.protocol, "rows": rows,
                             "machine": machine_info()})


if __name__ == "__main__":
    main()
