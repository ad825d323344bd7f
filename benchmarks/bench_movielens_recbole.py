"""recgraph vs RecBole 1.2.1 on MovieLens-100K, side by side, on the identical split.

Our seeded per-user random 80/10/10 split is written as RecBole "benchmark files"
(``ml100k-rg.{train,valid,test}.inter``), so both libraries train on the same interactions,
select on the same validation set (NDCG@20, patience 10) and report full-ranking test metrics with
train + validation items excluded. RecBole runs in its own virtual environment
(``benchmarks/.venv-recbole``, created on first use with the pins of ``../shared/PEERS.md``) —
it is never a dependency of recgraph.

    python benchmarks/bench_movielens_recbole.py [--models pop,itemknn,bpr,lightgcn] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-recbole"
RECBOLE_NAMES = {"pop": "Pop", "itemknn": "ItemKNN", "bpr": "BPR", "lightgcn": "LightGCN"}

RECBOLE_RUNNER = r'''
import json, re, sys, time, logging, resource
from recbole.quick_start import run_recbole
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
res = run_recbole(model=args["model"], dataset=args["dataset"], config_dict=args["config"], saved=True)
total = time.perf_counter() - t0
print("RESULT_JSON " + json.dumps({"test": {k: float(v) for k, v in res["test_result"].items()},
      "valid": {k: float(v) for k, v in res["best_valid_result"].items()}, "total_seconds": total,
      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
'''


def ensure_recbole_venv() -> Path:
    py = VENV / "bin" / "python"
    if py.exists() and subprocess.run([py, "-c", "import recbole"], capture_output=True).returncode == 0:
        return py
    print(f"creating {VENV} (RecBole 1.2.1 with the pins of shared/PEERS.md) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "pip"), "install", "-q"]
    subprocess.run(pip + ["torch==2.13.0"], check=True)
    subprocess.run(pip + ["recbole==1.2.1", "numpy==1.26.4", "pandas<2.3"], check=True)
    subprocess.run(pip + ["setuptools<81", "scipy==1.12.0"], check=True)
    return py


def write_atomic_files(split, folder: Path, name: str) -> None:
    """RecBole atomic files of the three parts (raw ids are our dense indices + 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, inter in (("train", split.train), ("valid", split.valid), ("test", split.test)):
        lines = ["user_id:token\titem_id:token\ttimestamp:float"]
        lines += [f"{u + 1}\t{i + 1}\t{t}" for u, i, t in zip(inter.user, inter.item, inter.timestamp)]
        (folder / f"{name}.{part}.inter").write_text("\n".join(lines) + "\n")


def recbole_architecture(model: str, ours: dict) -> dict:
    """RecBole settings that give it recgraph's architecture (``ours``: recgraph's model config): the
    embedding size, LightGCN's number of layers and the training batch. The L2 terms are left at each
    library's default: they are not the same function (recgraph ``reg·Σ||e||²/2/B``, RecBole's LightGCN
    ``reg_weight·Σ||e||/B`` with ``require_pow`` False, its BPR none)."""
    out = {}
    if model in ("BPR", "LightGCN"):
        out = {"embedding_size": ours["dim"], "train_batch_size": ours["batch_size"]}
    if model == "LightGCN":
        out["n_layers"] = ours["n_layers"]
    return out


def run_recbole_model(py: Path, model: str, data_root: Path, name: str, seed: int, epochs: int,
                      lr: float = 1e-3, architecture: dict | None = None) -> dict:
    config = {
        "data_path": str(data_root), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "topk": [10, 20], "metrics": ["Recall", "NDCG", "Hit", "MRR", "Precision"],
        "valid_metric": "NDCG@20", "stopping_step": 10, "epochs": epochs, "seed": seed,
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "learning_rate": lr,
        "eval_step": 2 if model in ("BPR", "LightGCN") else 1, "show_progress": False, "checkpoint_dir": str(data_root / "saved"),
        "log_wandb": False, "reproducibility": True, "use_gpu": False, **(architecture or {}),
    }
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "CUDA_VISIBLE_DEVICES": ""}
    t0 = time.perf_counter()
    proc = subprocess.run([str(py), "-c", RECBOLE_RUNNER, json.dumps({"model": model, "dataset": name, "config": config})],
                          capture_output=True, text=True, cwd=data_root, env=env)
    wall = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    m = re.search(r"RESULT_JSON (.*)", out)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"RecBole {model} failed (exit {proc.returncode}):\n{out[-3000:]}")
    res = json.loads(m.group(1))
    epoch_times = [float(x) for x in re.findall(r"epoch \d+ training \[time: ([\d.]+)s", out)]
    res.update({"wall_seconds": wall, "epochs_run": len(epoch_times),
                "seconds_per_epoch": sum(epoch_times) / len(epoch_times) if epoch_times else None})
    return res


def hyperparameters(args, used: dict) -> dict:
    return {"how_chosen": "nothing tuned here: recgraph runs each model's defaults (train_defaults / constructor; "
                          "their lr / init_std were chosen earlier on MovieLens-100K validation NDCG@20 per the model "
                          "docstrings); RecBole gets the same learning rate (recgraph's default for that model), "
                          "epoch cap, valid metric and eval step, and recgraph's architecture (embedding size, "
                          "LightGCN layers, batch: recbole_architecture per model under 'recgraph'); everything else "
                          "its own 1.2.1 defaults (e.g. its L2 term: LightGCN reg_weight 1e-5 on unsquared norms, "
                          "BPR none; recgraph reg 1e-4 on squared norms)",
            "epoch": f"both: early stopping on validation NDCG@20 within --epochs {args.epochs}; recgraph with the "
                     "model's default patience (8 evaluations every 2 epochs for bpr / lightgcn), RecBole "
                     "stopping_step 10 (eval_step 2 for BPR / LightGCN, else 1); pop / itemknn are not trained",
            "recgraph": used,
            "recbole_fixed": {"valid_metric": "NDCG@20", "stopping_step": 10, "epochs": args.epochs,
                              "train_neg_sample_args": "uniform, 1", "learning_rate": "recgraph's lr for the model"},
            "split": f"per-user random 80/10/10, seed {args.seed}"}


def main() -> None:
    sys.path.insert(0, str(HERE))
    from _common import machine_info, write_result

    from recgraph.data.datasets import load_dataset
    from recgraph.data.split import random_ratio
    from recgraph.train.runner import ExperimentConfig, run as run_experiment

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="pop,itemknn,bpr,lightgcn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=300, help="epoch cap for both libraries (early stopping on valid)")
    ap.add_argument("--skip-recbole", action="store_true")
    args = ap.parse_args()

    ds = load_dataset("movielens-100k")
    split = random_ratio(ds.interactions, seed=args.seed)
    py = None if args.skip_recbole else ensure_recbole_venv()
    rows, used = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        name = "ml100k-rg"
        write_atomic_files(split, root / name, name)
        for m in args.models.split(","):
            rec = run_experiment(ExperimentConfig(model=m, dataset="movielens-100k", seed=args.seed,
                                                  epochs=args.epochs, device="cpu", progress=False), split=split)
            ours = {"recall@20": rec["metrics"]["recall@20"], "ndcg@20": rec["metrics"]["ndcg@20"],
                    "seconds_per_epoch": rec["train"].get("seconds_per_epoch"),
                    "epochs_run": rec["train"].get("epochs_run"), "total_seconds": rec["seconds"]["total"],
                    "peak_rss_bytes": rec["peak_memory_bytes"]}
            used[m] = {"trainer": {k: rec["train"].get(k) for k in ("lr", "weight_decay", "optimizer", "max_epochs",
                                                                  "patience", "selected_on")},
                       "model": {k: v for k, v in rec["model_config"].items() if k not in ("n_users", "n_items")}}
            row = {"model": m, "recgraph": ours}
            if py is not None:
                # the same learning rate on both sides: recgraph's default for that model
                arch = recbole_architecture(RECBOLE_NAMES[m], rec["model_config"])
                rb = run_recbole_model(py, RECBOLE_NAMES[m], root, name, args.seed, args.epochs,
                                       lr=rec["train"].get("lr") or 1e-3, architecture=arch)
                used[m]["recbole_architecture"] = arch
                row["recbole"] = {"recall@20": rb["test"]["recall@20"], "ndcg@20": rb["test"]["ndcg@20"],
                                  "seconds_per_epoch": rb["seconds_per_epoch"], "epochs_run": rb["epochs_run"],
                                  "total_seconds": rb["wall_seconds"], "peak_rss_bytes": rb["peak_rss_bytes"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| model | lib | Recall@20 | NDCG@20 | s/epoch | epochs | total s | peak RSS MB |\n|---|---|---|---|---|---|---|---|")
    for row in rows:
        for lib in ("recgraph", "recbole"):
            if lib in row:
                r = row[lib]
                spe = "–" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.2f}"
                print(f"| {row['model']} | {lib} | {r['recall@20']:.4f} | {r['ndcg@20']:.4f} | {spe} | "
                      f"{r['epochs_run'] or '–'} | {r['total_seconds']:.1f} | {r['peak_rss_bytes'] / 2**20:.0f} |")
    write_result("movielens_recbole", {"split": split.protocol, "rows": rows,
                                       "hyperparameters": hyperparameters(args, used), "seeds": [args.seed],
                                       "machine": machine_info()})


if __name__ == "__main__":
    main()
