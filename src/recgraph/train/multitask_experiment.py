"""Multi-task ranking experiment: log → multi-task samples → train (early-stopped on the mean
validation AUC over tasks) → per-task test metrics.

``run_multitask_experiment(model, dataset, tasks=("cart", "fav", "buy"), seed=0, epochs=None, ...)``
writes ``out/metrics.json`` in the record shape of :func:`recgraph.train.runner.make_record` (model,
model_config, dataset, protocol, metrics, train, seconds, peak_memory_bytes, seed, device,
version, git_commit, config) where ``metrics`` = ``{"per_task": {task: {auc, gauc, logloss,
n_samples, n_positives, n_users_gauc}}, "auc_mean", "gauc_mean", "logloss_mean"}``.

``recgraph train macgnn --tasks ...`` trains ``macgnn-per-task`` (one MacGNN per task).
"""

from __future__ import annotations

import copy
import platform
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .. import __version__
from ..config import git_commit
from ..eval.protocols import evaluate_ctr
from ..graph.task_graphs import MultiTaskData, build_multitask_data
from ..io import atomic_write_json
from ..models.registry import get_model_class
from .runner import peak_rss_bytes
from .trainer import Trainer, resolve_device, seed_everything

__all__ = ["run_multitask_experiment", "multitask_data", "build_multitask_model", "evaluate_multitask_model",
           "SINGLE_TASK_ALIASES", "load_interactions"]

SINGLE_TASK_ALIASES = {"macgnn": "macgnn-per-task"}


def load_interactions(dataset: str, data_dir: str | None = None):
    """The bundled dataset's full log (:func:`recgraph.data.datasets.load_dataset`)."""
    from ..data.datasets import load_dataset

    return load_dataset(dataset, data_dir).interactions


def multitask_data(dataset: str, tasks: Sequence[str], seed: int = 0, data_dir: str | None = None,
                   **protocol_args) -> MultiTaskData:
    return build_multitask_data(load_interactions(dataset, data_dir), tuple(tasks), seed=seed, **protocol_args)


def build_multitask_model(name: str, data: MultiTaskData, **model_args):
    cls = get_model_class(SINGLE_TASK_ALIASES.get(name, name))
    if getattr(cls, "task", None) != "multitask":
        raise ValueError(f"model {name!r} is not a multi-task ranking model")
    f = data.features
    return cls(data.n_users, data.n_items, f.n_user_macros, f.n_item_macros, len(data.tasks), **model_args)


def _metrics(users: np.ndarray, y: np.ndarray, logits: np.ndarray) -> dict:
    try:
        m = evaluate_ctr(users, y, np.round(logits, 5), from_logits=True)
        m["logloss"] = evaluate_ctr(users, y, logits, from_logits=True)["logloss"]
    except ValueError:  # no user with both labels (rare task in a small part): GAUC undefined
        from ..eval.metrics import auc, logloss

        m = {"auc": auc(y, np.round(logits, 5)), "gauc": float("nan"),
             "logloss": logloss(y, 1.0 / (1.0 + np.exp(-logits))), "n_samples": int(len(y)), "n_users_gauc": 0}
    m["n_positives"] = int(y.sum())
    return m


@torch.no_grad()
def evaluate_multitask_model(model, data: MultiTaskData, part: str = "test", *, batch_size: int = 2048,
                             device: torch.device | str = "cpu") -> dict:
    """Per-task AUC / GAUC / Logloss on ``part`` and their means (``auc_mean`` …). Scored on a
    float64 copy, logits rounded to 1e-5 for AUC / GAUC, as :func:`evaluate_ctr_model` (metrics do
    not depend on ``batch_size``)."""
    samples = data.part(part)
    if len(samples) == 0:
        raise ValueError(f"the {part} part of the multi-task data is empty")
    scorer = copy.deepcopy(model).to(torch.float64).eval()
    out = []
    for a in range(0, len(samples), batch_size):
        b = data.batch(samples, np.arange(a, min(a + batch_size, len(samples))), model.needs)
        out.append(scorer(b.to(device, torch.float64)).cpu().numpy())
    logits = np.concatenate(out).astype(np.float64)
    per = {t: _metrics(samples.user, samples.labels[:, k], logits[:, k]) for k, t in enumerate(data.tasks)}
    res: dict = {"per_task": per}
    for key in ("auc", "gauc", "logloss"):
        res[f"{key}_mean"] = float(np.mean([per[t][key] for t in data.tasks]))
    return res


def run_multitask_experiment(model: str, dataset: str, tasks: Sequence[str] = ("cart", "fav", "buy"), seed: int = 0,
                             epochs: int | None = None, device: str = "auto", out: str | Path | None = None, *,
                             lr: float | None = None, weight_decay: float | None = None,
                             batch_size: int | None = None, patience: int | None = 2, model_args: dict | None = None,
                             protocol_args: dict | None = None, data: MultiTaskData | None = None,
                             data_dir: str | None = None, progress: bool = False,
                             log: Callable[[str], None] | None = None) -> dict:
    """Train and evaluate one multi-task model; see the module docstring."""
    seed_everything(seed)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    if data is None:
        data = multitask_data(dataset, tasks, seed, data_dir, **(protocol_args or {}))
    elif tuple(data.tasks) != tuple(tasks):
        raise ValueError(f"data was built for tasks {data.tasks}, not {tuple(tasks)}")
    load_seconds = time.perf_counter() - t0
    seed_everything(seed)
    m = build_multitask_model(model, data, **(model_args or {}))
    d = m.train_defaults
    lr = d.get("lr", 1e-3) if lr is None else lr
    weight_decay = d.get("weight_decay", 0.0) if weight_decay is None else weight_decay
    batch_size = d.get("batch_size", 256) if batch_size is None else batch_size
    epochs = 8 if epochs is None else epochs

    def validate(mm):
        r = evaluate_multitask_model(mm, data, "valid", device=dev)
        return {"auc_mean": r["auc_mean"], "gauc_mean": r["gauc_mean"], "logloss_mean": r["logloss_mean"],
                **{f"auc_{t}": r["per_task"][t]["auc"] for t in data.tasks}}

    trainer = Trainer(max_epochs=epochs, lr=lr, weight_decay=weight_decay, monitor="auc_mean", mode="max",
                      patience=patience, device=dev, seed=seed, progress=progress, log=log)
    t1 = time.perf_counter()
    result = trainer.fit(m, data.loader("train", batch_size, m.needs, shuffle=True), validate=validate)
    fit_seconds = time.perf_counter() - t1
    train_seconds = sum(h["train_seconds"] for h in result.history)
    t2 = time.perf_counter()
    metrics = evaluate_multitask_model(m, data, "test", device=dev)
    eval_seconds = time.perf_counter() - t2
    record = {
        "model": model,
        "model_class": type(m).registry_name,
        "model_config": m.config(),
        "dataset": dataset,
        "tasks": list(data.tasks),
        "protocol": {**data.protocol, "dropped": data.dropped, "memory_bytes": data.memory,
                     "parts": {k: data.part(k).describe(data.tasks) for k in ("train", "valid", "test")},
                     "metric_definitions": "per task: AUC over impressions; GAUC impression-weighted over users "
                                           "with both labels for that task; Logloss of sigmoid(logit); *_mean = "
                                           "unweighted mean over tasks"},
        "metrics": metrics,
        "train": {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                  "stopped_early": result.stopped_early, "lr": lr, "weight_decay": weight_decay,
                  "batch_size": batch_size, "selected_on": "validation mean AUC over tasks",
                  "train_samples_per_second": len(data.train) * result.epochs_run / max(train_seconds, 1e-9),
                  "history": result.history},
        "seconds": {"load": load_seconds, "fit": fit_seconds, "eval": eval_seconds,
                    "total": time.perf_counter() - t0},
        "peak_memory_bytes": peak_rss_bytes(),
        "seed": seed,
        "device": str(dev),
        "version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "config": {"model": model, "dataset": dataset, "tasks": list(data.tasks), "seed": seed, "epochs": epochs,
                   "patience": patience, "model_args": model_args or {}, "protocol_args": protocol_args or {}},
    }
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "metrics.json", record)
    return record
