"""DDP training, 1 vs 2 processes (torchrun, gloo on CPU): samples/s and final test metrics.

    python benchmarks/bench_ddp.py --models bpr lightgcn --epochs 60

Each run is ``recgraph train MODEL --dataset movielens-100k --epochs E --device cpu`` (the model's
default lr / batch / early stopping on validation NDCG@20, eval every 2 epochs; nothing tuned here,
the same settings for 1 and 2 processes), once plainly and once under
``torchrun --nproc-per-node 2``. With per-rank batch shards and full-batch gradient scaling the two
take the same optimisation steps, so the metrics should agree to float noise; samples/s is training
triples per second of training time (validation excluded). OMP_NUM_THREADS=1 per process. Writes
benchmarks/results/ddp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run(model: str, nproc: int, epochs: int, out: Path, dataset: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                 "--master-port", "29611"] if nproc > 1 else [sys.executable])
    cmd = [*launcher, "-m", "recgraph.cli", "train", model, "--dataset", dataset, "--epochs", str(epochs),
           "--device", "cpu", "--out", str(out)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    rec = json.loads((out / "metrics.json").read_text())
    from recgraph.data.datasets import load_dataset
    from recgraph.train.runner import make_split

    n_train = len(make_split(load_dataset(dataset), "auto", 0).train)
    train_s = sum(h["train_seconds"] for h in rec["train"]["history"])
    return {"model": model, "processes": nproc, "command": " ".join(cmd[cmd.index("-m") if nproc == 1 else 0:]),
            "wall_seconds": time.perf_counter() - t0, "epochs_run": rec["train"]["epochs_run"],
            "best_epoch": rec["train"]["best_epoch"], "train_seconds": train_s,
            "samples_per_second": n_train * rec["train"]["epochs_run"] / train_s, "n_train": n_train,
            "metrics": rec["metrics"], "distributed": rec.get("distributed"),
            "settings": {"trainer": {k: rec["train"].get(k) for k in ("lr", "weight_decay", "optimizer", "lr_schedule",
                                                                      "max_epochs", "patience")},
                         "model": {k: v for k, v in rec["model_config"].items() if k not in ("n_users", "n_items")}}}


def hyperparameters(a, res: list[dict]) -> dict:
    return {"how_chosen": "nothing tuned: each model's defaults (the recgraph train CLI with only --epochs set), "
                          "identical for 1 and 2 processes",
            "epochs": f"cap --epochs {a.epochs} (fixed, overrides the model's default cap); the epoch is chosen on "
                      "validation NDCG@20 by the model's default early stopping within it (a split without a "
                      "validation part: the last epoch)",
            "processes": "swept: 1, 2; both reported, none chosen",
            "threads": "OMP_NUM_THREADS=MKL_NUM_THREADS=1 per process (fixed)",
            "per_model": {r["model"]: r["settings"] for r in res if r["processes"] == 1}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["bpr", "lightgcn"])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--dataset", default="movielens-100k")
    a = ap.parse_args()
    rows, res = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for m in a.models:
            for n in (1, 2):
                r = run(m, n, a.epochs, Path(tmp) / f"{m}-{n}", a.dataset)
                res.append(r)
                rows.append([m, n, r["epochs_run"], f"{r['samples_per_second']:,.0f}",
                             f"{r['metrics']['recall@20']:.4f}", f"{r['metrics']['ndcg@20']:.4f}"])
                print(rows[-1], flush=True)
    print_table("DDP 1 vs 2 processes", ["model", "procs", "epochs", "samples/s", "R@20", "N@20"], rows)
    write_result("ddp", {"command": "python " + " ".join(sys.argv), "dataset": a.dataset, "results": res,
                         "seed": 0, "hyperparameters": hyperparameters(a, res),
                         "protocol": "random-ratio 8:1:1 split seed 0 (the dataset's auto split); test "
                         "metrics full-sort; epoch chosen on validation NDCG@20 by each model's default early "
                         "stopping within --epochs; hyper-parameters: model defaults, identical for 1 and 2 "
                         "processes (not tuned)"})


if __name__ == "__main__":
    main()
