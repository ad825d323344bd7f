"""Retrieval baselines on the official LightGCN Gowalla split (full ranking, train items excluded).

Protocol: by default the official LightGCN one — the split has no validation part, the test file is
evaluated every ``--eval-every`` epochs, and the curve (epoch, wall-clock seconds, Recall@20,
NDCG@20) is recorded so the time to reach the paper's numbers can be read off. Numbers selected
this way are marked ``selected_on: test``. ``--valid-from-train 0.1`` instead carves 10% of each
user's training items out as validation, selects the epoch on it and reports the test file once
(the way to tune hyper-parameters without looking at the test file).

    python benchmarks/bench_gowalla.py --models itemknn,bpr,lightgcn --epochs 20 --device auto
    python benchmarks/bench_gowalla.py --models bpr --valid-from-train 0.1 --set reg=1e-3 --patience 3

Long runs: ``--out DIR`` checkpoints every epoch (``--checkpoint-every N``: every N-th) under
``DIR/<model>/checkpoint`` (its ``last/meta.json`` holds the curve so far), and the same command
with ``--resume`` continues a killed run where it stopped, with the same batches and schedule as
an uninterrupted one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {"lightgcn": (0.1830, 0.1554), "bpr": (0.1491, 0.1235)}


def hyperparameters(args, on_test: bool, extra: dict, used: dict) -> dict:
    epoch = ("CHOSEN ON TEST (labelled selected_on: test): the official LightGCN protocol -- no validation part, "
             f"the test file is evaluated every {args.eval_every} epochs and the best-NDCG@20 epoch is reported"
             if on_test else
             f"chosen on validation NDCG@20 (a per-user random {args.valid_from_train:g} of the training file, seed "
             f"{args.seed}, every {args.eval_every} epochs); the test file is read once")
    return {"how_chosen": "no search in this script: lr, batch size, sampler and the model defaults dim 64, reg "
                          "1e-4, 3 layers are the official LightGCN code's settings, fixed (MF-BPR's init_std 0.01 is "
                          "recgraph's default, chosen on MovieLens-100K validation); --set / --optimizer / "
                          "--weight-decay / --lr-schedule / --patience values, if any, were given on the command line "
                          "(None below = the model's default; per_model holds the values used)",
            "epoch": epoch,
            "fixed": {"lr": args.lr, "batch_size": args.batch_size, "sampling": args.sampling,
                      "max_epochs": args.epochs, "eval_every": args.eval_every, "weight_decay": args.weight_decay,
                      "optimizer": args.optimizer, "lr_schedule": args.lr_schedule, "patience": args.patience,
                      "model_args_set": extra},
            "itemknn": "not trained; constructor defaults (plain cosine, k 100) unless --set",
            "per_model": used}


def main() -> None:
    sys.path.insert(0, str(HERE))
    from _common import carve_validation, machine_info, valid_curve, write_result

    from recgraph.config import parse_model_args
    from recgraph.data.datasets import load_dataset
    from recgraph.models.registry import get_model_class
    from recgraph.train.runner import ExperimentConfig, run as run_experiment

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="itemknn,bpr,lightgcn")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=None,
                    help="the optimizer's weight decay on every row of every table (Adam: coupled L2); "
                         "model arg reg is the LightGCN-code L2 on the batch's rows instead")
    ap.add_argument("--optimizer", default=None, choices=["adam", "adamw", "sgd"])
    ap.add_argument("--lr-schedule", default=None, choices=["constant", "cosine"],
                    help="cosine: lr decays to 0 over --epochs (a function of the epoch; never of a metric)")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sampling", default="user", choices=["user", "edge"],
                    help="BPR pairs: 'user' = the official LightGCN/NGCF sampler (default), 'edge' = every edge once")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra model argument for every model run (repeatable), e.g. --set reg=1e-3")
    ap.add_argument("--valid-from-train", type=float, default=0.0, metavar="FRAC",
                    help="carve a per-user random FRAC of the training file out as validation and select "
                         "the epoch on it (tuning without touching the test file); 0 = the official protocol")
    ap.add_argument("--patience", type=int, default=None, help="evaluations without improvement before stopping")
    ap.add_argument("--name", default="gowalla")
    ap.add_argument("--out", default=None, metavar="DIR", help="checkpoint under DIR/<model>")
    ap.add_argument("--checkpoint-every", type=int, default=1, metavar="N",
                    help="epochs between DIR/<model>/checkpoint/last writes (a resume repeats at most N-1)")
    ap.add_argument("--resume", action="store_true", help="continue from DIR/<model>/checkpoint (needs --out)")
    args = ap.parse_args()
    if args.resume and not args.out:
        ap.error("--resume needs --out DIR (the folder of the run to continue)")
    if args.checkpoint_every < 1:
        ap.error(f"--checkpoint-every must be a positive number of epochs, got {args.checkpoint_every}")

    extra = parse_model_args(args.set)
    ds = load_dataset("lightgcn-gowalla")
    split = ds.predefined
    on_test = args.valid_from_train <= 0
    if not on_test:
        split = carve_validation(split, args.valid_from_train, args.seed)
    rows, used = [], {}
    for m in args.models.split(","):
        trainable = get_model_class(m).trainable
        model_args = {"batch_size": args.batch_size, "sampling": args.sampling, **extra} if trainable else extra
        cfg = ExperimentConfig(model=m, dataset="lightgcn-gowalla", split="predefined", seed=args.seed,
                               epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
                               optimizer=args.optimizer, lr_schedule=args.lr_schedule, patience=args.patience,
                               eval_every=args.eval_every,
                               device=args.device, progress=True, select_on_test=trainable and on_test,
                               eval_batch_size=4096, resume=args.resume, checkpoint_every=args.checkpoint_every,
                               out=str(Path(args.out) / m) if args.out else None,
                               model_args=model_args)
        t0 = time.perf_counter()
        rec = run_experiment(cfg, split=split,
                             log=lambda line: print(f"[{m} {time.perf_counter() - t0:7.0f} s] {line}", flush=True))
        wall = time.perf_counter() - t0
        curve = valid_curve(rec["train"].get("history", []))
        target = TARGETS.get(m)
        reached = next((c for c in curve if target and c["recall@20"] >= target[0] and c["ndcg@20"] >= target[1]), None)
        tr = rec["train"]
        used[m] = {"trainer": {k: tr.get(k) for k in ("lr", "weight_decay", "optimizer", "lr_schedule", "max_epochs",
                                                      "patience", "selected_on")},
                   "model": {k: v for k, v in rec["model_config"].items() if k not in ("n_users", "n_items")}}
        row = {"model": m, "selected_on": tr.get("selected_on"), "curve_part": "test" if on_test else "valid",
               "best_epoch": None if tr.get("best_epoch") is None else tr["best_epoch"] + 1,
               "test": {k: rec["metrics"][k] for k in ("recall@20", "ndcg@20")},  # of the selected epoch's model
               "best_on_curve": max(curve, key=lambda c: c["ndcg@20"]) if curve else None,
               "seconds_per_epoch": tr.get("seconds_per_epoch"), "epochs": tr.get("epochs_run"),
               "fit_seconds": rec["seconds"]["fit"], "wall_seconds": wall, "peak_rss_bytes": rec["peak_memory_bytes"],
               "device": rec["device"], "target": target, "reached_target_at": reached if on_test else None,
               "curve": curve, "model_config": rec["model_config"],
               "config": {k: v for k, v in vars(args).items()}, "git_commit": rec["git_commit"]}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
    write_result(args.name, {"dataset": "lightgcn-gowalla", "protocol": split.protocol, "rows": rows,
                             "hyperparameters": hyperparameters(args, on_test, extra, used), "seeds": [args.seed],
                             "machine": machine_info()})


if __name__ == "__main__":
    main()
