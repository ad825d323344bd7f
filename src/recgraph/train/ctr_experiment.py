"""CTR experiment: load → CTR samples (protocol) → train (early-stopped on validation AUC) → test.

``run_ctr_experiment(model, dataset, protocol="macgnn-quantile", seed=0, epochs=None,
device="auto", out=None, *, lr=None, weight_decay=None, batch_size=None, patience=5,
eval_batch_size=1024, model_args=None, protocol_args=None, select_on_test=False, data=None,
data_dir=None, progress=False, log=None) -> dict``

writes ``out/metrics.json`` (when ``out`` is set) with the same shape as
:mod:`recgraph.train.experiment`: model, model_config, dataset, protocol (the CTR protocol dict
with the drop counts), metrics {auc, gauc, logloss, ...}, train (epochs, best epoch, selection,
throughput, history), seconds, peak_memory_bytes, seed, device, version, git_commit.

Model selection uses the validation split; ``select_on_test=True`` reproduces the official MacGNN
code (best checkpoint chosen on the test set) and is stamped into the record.
"""

from __future__ import annotations

import copy
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import __version__
from ..config import git_commit
from ..graph.features import CTRData, build_ctr_data
from ..eval.protocols import evaluate_ctr
from ..models.registry import get_model_class
from .checkpoint import atomic_write_json
from .experiment import peak_rss_bytes
from .trainer import Trainer, resolve_device, seed_everything

__all__ = ["run_ctr_experiment", "load_interactions", "build_ctr_model", "evaluate_ctr_model", "ctr_data"]

_DIRECT = {
    "movielens-100k": ("movielens", "load", "movielens-100k"),
    "taobao-userbehavior-sample": ("taobao", "load", "taobao-userbehavior-sample"),
    "amazon2014-musical-instruments-5core": ("amazon", "load_musical_instruments", "amazon2014-musical-instruments-5core"),
    "amazon2018-all-beauty-5core": ("amazon", "load_all_beauty", "amazon2018-all-beauty-5core"),
}


def load_interactions(dataset: str, data_dir: str | None = None):
    """The dataset's Interactions via ``recgraph.data.datasets.load_dataset``, falling back to the
    per-dataset loaders on the shared data folder."""
    try:
        from ..data.datasets import load_dataset  # type: ignore[attr-defined]

        return load_dataset(dataset, data_dir).interactions
    except ImportError:
        import importlib

        if dataset not in _DIRECT:
            raise
        mod, fn, folder = _DIRECT[dataset]
        root = Path(data_dir) if data_dir else Path("/work/shared/datasets")
        m = importlib.import_module(f"recgraph.data.datasets.{mod}")
        return getattr(m, fn)(root / folder).interactions


def ctr_data(dataset: str, protocol: str = "macgnn-quantile", seed: int = 0, data_dir: str | None = None,
             **protocol_args) -> CTRData:
    inter = load_interactions(dataset, data_dir)
    return build_ctr_data(inter, protocol, seed=seed, **protocol_args)


def build_ctr_model(name: str, data: CTRData, **model_args):
    cls = get_model_class(name)
    if getattr(cls, "task", None) != "ctr":
        raise ValueError(f"model {name!r} is not a CTR ranking model")
    f = data.features
    return cls(data.n_users, data.n_items, f.n_user_macros, f.n_item_macros, **model_args)


@torch.no_grad()
def evaluate_ctr_model(model, data: CTRData, part: str = "test", *, batch_size: int = 1024,
                       device: torch.device | str = "cpu") -> dict:
    """AUC / GAUC / Logloss of ``model`` on ``part``; metrics do not depend on ``batch_size``
    (per-sample features, Dice with running statistics, deterministic neighbour sampling).

    Scoring runs on a float64 copy of the model (``model`` itself is left untouched): float32
    kernels accumulate in an order that depends on the batch shape (GEMV for one row, blocked GEMM
    for many), which moves logits by ~1e-6 and the mean Logloss by ~1e-6; in float64 that noise is
    ~1e-15, so AUC, GAUC and Logloss agree across batch sizes to ~1e-12. Logits are additionally
    rounded to 1e-5 for AUC / GAUC so that near-ties cannot be reordered by the last bits."""
    model.eval()
    samples = data.part(part)
    if len(samples) == 0:
        raise ValueError(f"the {part} part of the CTR data is empty")
    needs = getattr(model, "needs", frozenset())
    scorer = copy.deepcopy(model).to(torch.float64).eval()
    scores = []
    for a in range(0, len(samples), batch_size):
        b = data.batch(samples, np.arange(a, min(a + batch_size, len(samples))), needs, salt=0,
                       **getattr(model, "batch_kwargs", {}))
        scores.append(scorer(b.to(device, torch.float64)).cpu().numpy())
    raw = np.concatenate(scores).astype(np.float64)
    out = evaluate_ctr(samples.user, samples.label, np.round(raw, 5), from_logits=True)
    out["logloss"] = evaluate_ctr(samples.user, samples.label, raw, from_logits=True)["logloss"]
    return out


def run_ctr_experiment(model: str, dataset: str, protocol: str = "macgnn-quantile", seed: int = 0,
                       epochs: int | None = None, device: str = "auto", out: str | Path | None = None, *,
                       lr: float | None = None, weight_decay: float | None = None, batch_size: int | None = None,
                       patience: int | None = 5, eval_batch_size: int = 1024, model_args: dict | None = None,
                       protocol_args: dict | None = None, select_on_test: bool = False, data: CTRData | None = None,
                       data_dir: str | None = None, progress: bool = False,
                       log: Callable[[str], None] | None = None) -> dict:
    """Train and evaluate one CTR model under one protocol; see the module docstring."""
    seed_everything(seed)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    if data is None:
        data = ctr_data(dataset, protocol, seed, data_dir, **(protocol_args or {}))
    elif data.protocol.get("name") != protocol:
        raise ValueError(f"data was built for protocol {data.protocol.get('name')!r}, not {protocol!r}")
    load_seconds = time.perf_counter() - t0
    m = build_ctr_model(model, data, **(model_args or {}))
    d = m.train_defaults
    lr = d.get("lr", 1e-3) if lr is None else lr
    weight_decay = d.get("weight_decay", 0.0) if weight_decay is None else weight_decay
    batch_size = d.get("batch_size", 1024) if batch_size is None else batch_size
    epochs = 30 if epochs is None else epochs
    part = "test" if select_on_test else "valid"
    validate = lambda mm: evaluate_ctr_model(mm, data, part, batch_size=eval_batch_size, device=dev)  # noqa: E731
    trainer = Trainer(max_epochs=epochs, lr=lr, weight_decay=weight_decay, monitor="auc", mode="max",
                      patience=patience, device=dev, seed=seed, progress=progress, log=log)
    t1 = time.perf_counter()
    result = trainer.fit(m, data.loader("train", batch_size, m.needs, shuffle=True, **m.batch_kwargs), validate=validate)
    fit_seconds = time.perf_counter() - t1
    train_seconds = sum(h["train_seconds"] for h in result.history)
    t2 = time.perf_counter()
    metrics = evaluate_ctr_model(m, data, "test", batch_size=eval_batch_size, device=dev)
    eval_seconds = time.perf_counter() - t2
    record = {
        "model": model,
        "model_config": m.config(),
        "dataset": dataset,
        "protocol": {**data.protocol, "dropped": data.dropped, "parts": {
            k: data.part(k).describe() for k in ("train", "valid", "test")},
            "metric_definitions": "AUC over impressions; GAUC impression-weighted over users with both labels; "
                                  "Logloss of sigmoid(logit)"},
        "metrics": metrics,
        "train": {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                  "stopped_early": result.stopped_early, "lr": lr, "weight_decay": weight_decay,
                  "batch_size": batch_size,
                  "selected_on": "test (official MacGNN code)" if select_on_test else "validation AUC",
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
        "config": {"model": model, "dataset": dataset, "protocol": protocol, "seed": seed, "epochs": epochs,
                   "patience": patience, "model_args": model_args or {}, "protocol_args": protocol_args or {},
                   "select_on_test": select_on_test, "eval_batch_size": eval_batch_size},
    }
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "metrics.json", record)
    return record
