"""One experiment = load → split → prepare → train (early-stopped on validation) → evaluate on test.

This is what ``recgraph train``, ``recgraph quickstart`` and the benchmarks call, so every number
the project reports goes through the same code path and lands in the same ``metrics.json`` shape.
"""

from __future__ import annotations

import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .. import __version__
from ..config import git_commit
from ..data.schema import concat
from ..data.split import SPLITTERS, Split
from ..eval.protocols import evaluate_full_sort
from ..graph.bipartite import BipartiteGraph
from ..models.registry import get_model_class
from ..models.retrieval.base import Recommender, interaction_matrix
from .checkpoint import atomic_write_json
from .trainer import Trainer, resolve_device, seed_everything


@dataclass
class ExperimentConfig:
    model: str
    dataset: str
    split: str = "auto"  # "auto": the dataset's predefined split if it has one, else random-ratio 8:1:1
    seed: int = 0
    epochs: int | None = None
    lr: float | None = None
    weight_decay: float | None = None  # the optimizer's (coupled for Adam, decoupled for AdamW), on every parameter
    optimizer: str | None = None  # adam (default) | adamw | sgd
    lr_schedule: str | None = None  # constant (default) | cosine (over the epoch budget)
    patience: int | None = None
    eval_every: int | None = None
    device: str = "auto"
    ks: tuple[int, ...] = (10, 20)
    monitor: str = "ndcg@20"
    eval_batch_size: int = 1024
    model_args: dict = field(default_factory=dict)
    data_dir: str | None = None
    out: str | None = None
    progress: bool = True
    select_on_test: bool = False  # the official LightGCN protocol (no validation split); stamped into metrics
    resume: bool = False  # continue from out/checkpoint/last when it exists (needs out)
    checkpoint_every: int = 1  # epochs between out/checkpoint/last writes


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(ru if sys.platform == "darwin" else ru * 1024)


def make_split(dataset, split: str = "auto", seed: int = 0) -> Split:
    """The split named ``split`` of a loaded dataset (``recgraph.data.datasets.Dataset``)."""
    if split in ("auto", "predefined") and dataset.predefined is not None:
        return dataset.predefined
    if split == "predefined":
        raise ValueError(f"dataset {dataset.name!r} has no predefined split; use random-ratio, "
                         "leave-last-out or time-quantile")
    name = "random-ratio" if split == "auto" else split
    if name not in SPLITTERS:
        raise ValueError(f"unknown split {split!r}; choose from auto, predefined, {', '.join(SPLITTERS)}")
    kwargs = {"seed": seed} if name == "random-ratio" else {}
    return SPLITTERS[name](dataset.interactions, **kwargs)


def build_model(name: str, n_users: int, n_items: int, **model_args) -> Recommender:
    cls = get_model_class(name)
    return cls(n_users, n_items, **model_args)


def evaluate_model(model: Recommender, split: Split, part: str = "test", *, ks=(10, 20),
                   batch_size: int = 1024, device: torch.device | str = "cpu", progress: bool = False) -> dict:
    """Full-sort metrics on ``part`` ("valid" or "test"); excluded: training items, plus validation
    items when scoring the test part."""
    target = split.valid if part == "valid" else split.test
    if target is None:
        raise ValueError(f"the split has no {part} part")
    seen = [split.train] + ([split.valid] if part == "test" and split.valid is not None else [])
    exclude = interaction_matrix(concat(seen))
    truth = interaction_matrix(target)
    model.eval()
    with torch.no_grad():
        return evaluate_full_sort(lambda u: model.score(u.to(device)), truth, exclude, ks=ks,
                                  batch_size=batch_size, device=device, progress=progress)


def stage_fitter(device: torch.device | str = "cpu", *, progress: bool = False,
                 log: Callable[[str], None] | None = None):
    """The ``fit`` a model's ``prepare`` uses to train a stage of its own (DC-GNN pretraining):
    the one :class:`Trainer`, a fixed epoch budget, no validation, no checkpoints."""

    def fit(module, *, epochs: int, lr: float, seed: int):
        return Trainer(max_epochs=epochs, lr=lr, monitor=None, patience=None, device=device, seed=seed,
                       progress=progress, log=log).fit(module)

    return fit


def run_experiment(cfg: ExperimentConfig, *, dataset=None, split: Split | None = None,
                   log: Callable[[str], None] | None = None, return_model: bool = False) -> dict:
    """Train and evaluate one model; writes ``cfg.out/metrics.json`` (+ config and model artifact)
    when ``cfg.out`` is set. Returns the metrics record (plus the trained model under ``"model"``
    with ``return_model``)."""
    log = log or (lambda s: None)
    if cfg.resume and not cfg.out:
        raise ValueError("resume=True needs out: the checkpoint to continue from lives in out/checkpoint")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    if split is None:
        from ..data.datasets import load_dataset

        dataset = dataset or load_dataset(cfg.dataset, cfg.data_dir)
        split = make_split(dataset, cfg.split, cfg.seed)
    load_seconds = time.perf_counter() - t0
    model = build_model(cfg.model, split.n_users, split.n_items, **cfg.model_args).to(device)
    t1 = time.perf_counter()
    graph = BipartiteGraph.from_interactions(split.train)  # built once; every model prepares from it
    model.prepare(graph, fit=stage_fitter(device, progress=cfg.progress, log=log))
    model.to(device)
    train_info: dict = {}
    if model.trainable:
        d = getattr(model, "train_defaults", {})  # per-model defaults; CLI / API values win
        pick = lambda k, default: getattr(cfg, k) if getattr(cfg, k) is not None else d.get(k, default)  # noqa: E731
        has_valid = split.valid is not None and len(split.valid) > 0
        if not has_valid and not cfg.select_on_test:
            validate, monitor = None, None  # fixed epoch budget, last epoch reported
        else:
            part = "valid" if has_valid else "test"
            validate = lambda m: evaluate_model(m, split, part, ks=cfg.ks, batch_size=cfg.eval_batch_size,  # noqa: E731
                                                device=device)
            monitor = cfg.monitor
        trainer = Trainer(max_epochs=pick("epochs", 100), lr=pick("lr", 1e-3), patience=pick("patience", 10),
                          weight_decay=pick("weight_decay", 0.0), optimizer=pick("optimizer", "adam"),
                          lr_schedule=pick("lr_schedule", "constant"), resume=cfg.resume,
                          eval_every=pick("eval_every", 1), monitor=monitor, device=device, seed=cfg.seed,
                          progress=cfg.progress, log=log,
                          checkpoint_dir=Path(cfg.out) / "checkpoint" if cfg.out else None,
                          checkpoint_every=cfg.checkpoint_every)
        result = trainer.fit(model, validate=validate)
        train_info = {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                      "seconds_per_epoch": result.seconds_per_epoch(), "stopped_early": result.stopped_early,
                      "lr": trainer.lr, "weight_decay": trainer.weight_decay, "optimizer": trainer.optimizer_name,
                      "lr_schedule": trainer.lr_schedule,
                      "selected_on": ("test (official LightGCN protocol)" if validate and not has_valid
                                                        else "validation" if validate else "none: fixed epochs, last epoch"),
                      "history": result.history}
    fit_seconds = time.perf_counter() - t1
    t2 = time.perf_counter()
    metrics = evaluate_model(model, split, "test", ks=cfg.ks, batch_size=cfg.eval_batch_size, device=device,
                             progress=cfg.progress)
    eval_seconds = time.perf_counter() - t2
    record = {
        "model": cfg.model,
        "model_config": model.config(),
        "dataset": cfg.dataset,
        "protocol": {**split.protocol, "candidates": "all items", "ks": list(cfg.ks),
                     "excluded": "training items" + (" + validation items" if split.valid is not None else ""),
                     "metric_definitions": "recall@k = hits/|test items|; ndcg binary relevance"},
        "metrics": {k: v for k, v in metrics.items()},
        "train": train_info,
        "seconds": {"load": load_seconds, "fit": fit_seconds, "eval": eval_seconds,
                    "total": time.perf_counter() - t0},
        "peak_memory_bytes": peak_rss_bytes(),
        "seed": cfg.seed,
        "device": str(device),
        "version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "config": {k: v for k, v in asdict(cfg).items()},
    }
    if cfg.out:
        from ..serve.artifacts import save_model

        out = Path(cfg.out)
        save_model(out / "model", model, {"model": cfg.model, "dataset": cfg.dataset, "split": cfg.split,
                                          "seed": cfg.seed, "data_dir": cfg.data_dir})
        atomic_write_json(out / "config.json", asdict(cfg))
        atomic_write_json(out / "metrics.json", record)
    if return_model:
        return {**record, "model": model}
    return record
