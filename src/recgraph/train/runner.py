"""One runner for every task: config → data → graph → model → Trainer → evaluation → record → run folder.

``run(ExperimentConfig(...))`` is what ``recgraph train``, ``recgraph quickstart``, the benchmarks
and the tests call, for retrieval models (full-ranking Recall / NDCG on a split) and ranking (CTR)
models (AUC / GAUC / Logloss under a CTR protocol) alike, so every number goes through the same
code and lands in the same ``metrics.json`` shape (:func:`make_record`).

A run folder (``out``) is self-contained: ``config.json`` (the frozen config, the task, where the
data came from with its sha256 and column mapping), ``metrics.json``, ``model/`` (artifact +
weights, checksummed), ``vocab.npz`` (raw ids of the dense indices), and what scoring needs
without the dataset: ``train.npz`` (retrieval: the training and validation interactions) or
``features.npz`` (ranking: the feature tables). ``checkpoint/`` holds ``last/`` and ``best/``.
:func:`load_run` reads it back; :func:`evaluate_run` re-evaluates it with the recorded protocol.
"""

from __future__ import annotations

import copy
import dataclasses
import fcntl
import inspect
import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import __version__
from ..config import git_commit
from ..data.schema import Interactions, Vocab, concat
from ..data.split import SPLITTERS, Split
from ..eval.protocols import evaluate_ctr, evaluate_full_sort
from ..graph.bipartite import BipartiteGraph
from ..graph.dynamic import time_graph
from ..graph.features import CTRData, build_ctr_data
from ..graph.macro import FeatureTables
from ..io import (ArtifactError, atomic_save_npz, atomic_write_json, load_npz, read_checked_json, sha256_file)
from ..models.registry import get_model_class
from .artifacts import load_model, save_model
from .trainer import LR_SCHEDULES, Trainer, resolve_device, seed_everything

__all__ = ["DataSource", "TrainerConfig", "ExperimentConfig", "ConfigError", "run", "make_record", "load_run",
           "evaluate_run", "evaluate_model", "evaluate_ctr_model", "make_split", "load_data", "model_task",
           "build_model",
           "check_model_args", "peak_rss_bytes", "LoadedRun", "stage_fitter"]

RUN_FORMAT = 1
TASKS = ("retrieval", "ctr")


class ConfigError(ValueError):
    """An experiment setting that cannot work; the message names the setting and what to do."""


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(ru if sys.platform == "darwin" else ru * 1024)


# ----------------------------------------------------------------------------- configs

@dataclass(frozen=True)
class DataSource:
    """A user's own interaction log: ``path`` (CSV / TSV / Parquet / JSON lines, gzip or not) and the
    column mapping. ``rating`` + ``positive_threshold``: retrieval keeps rows with rating >= it as
    positives; ranking labels them 1 and the rest 0."""

    path: str
    user: str
    item: str
    time: str | None = None
    rating: str | None = None
    positive_threshold: float | None = None
    sep: str | None = None
    encoding: str = "utf-8"
    time_unit: str = "s"

    def __post_init__(self):
        if self.positive_threshold is not None and self.rating is None:
            raise ConfigError("--positive-threshold needs --rating COL (the column it applies to)")


@dataclass(frozen=True)
class TrainerConfig:
    """Settings of the one :class:`~recgraph.train.trainer.Trainer` (resolved: no ``None`` left)."""

    max_epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    lr_schedule: str = "constant"
    monitor: str | None = "ndcg@20"
    mode: str = "max"
    patience: int | None = 10
    eval_every: int = 1
    checkpoint_every: int = 1

    def build(self, **runtime) -> Trainer:
        return Trainer(**asdict(self), **runtime)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that shapes one run. ``None`` training settings take the model's
    ``train_defaults``, then the task's. Exactly one of ``dataset`` (a registered name) and
    ``data`` (your own file) names the data.

    Retrieval models use ``split``; ranking models use ``protocol`` (+ ``protocol_args``)."""

    model: str
    dataset: str | None = None
    data: DataSource | None = None
    split: str = "auto"  # "auto": the dataset's predefined split if it has one, else random-ratio 8:1:1
    protocol: str = "macgnn-quantile"
    protocol_args: dict = field(default_factory=dict)
    tasks: tuple[str, ...] | None = None  # multi-task ranking: the behaviours to predict (e.g. cart, fav, buy)
    seed: int = 0
    epochs: int | None = None
    lr: float | None = None
    weight_decay: float | None = None  # the optimizer's (coupled for Adam, decoupled for AdamW), on every parameter
    optimizer: str | None = None  # adam (default) | adamw | sgd
    lr_schedule: str | None = None  # constant (default) | cosine (over the epoch budget)
    patience: int | None = None
    eval_every: int | None = None
    batch_size: int | None = None  # ranking models (retrieval models take it as a model argument)
    device: str = "auto"
    ks: tuple[int, ...] = (10, 20)
    monitor: str | None = None  # default: ndcg@20 (retrieval), auc (ranking)
    eval_batch_size: int = 1024
    model_args: dict = field(default_factory=dict)
    data_dir: str | None = None
    out: str | None = None
    progress: bool = True
    select_on_test: bool = False  # official LightGCN / MacGNN protocols; stamped into metrics
    resume: bool = False  # continue from out/checkpoint/last (needs out; refuses a different config)
    checkpoint_every: int = 1  # epochs between out/checkpoint/last writes

    def __post_init__(self):
        if (self.dataset is None) == (self.data is None):
            raise ConfigError("name the data once: a registered --dataset NAME or your own --data PATH")
        checks = [("epochs", self.epochs, 1, "at least 1 epoch (0 would save an untrained model)"),
                  ("patience", self.patience, 0, "0 or more evaluations"),
                  ("eval_every", self.eval_every, 1, "at least 1"),
                  ("batch_size", self.batch_size, 1, "at least 1"),
                  ("checkpoint_every", self.checkpoint_every, 1, "a positive number of epochs"),
                  ("eval_batch_size", self.eval_batch_size, 1, "at least 1")]
        for name, value, low, need in checks:
            if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
                                      or value < low):
                raise ConfigError(f"--{name.replace('_', '-')} {value!r}: needs {need}")
        for name in ("lr", "weight_decay"):
            v = getattr(self, name)
            if v is not None and (not np.isfinite(v) or v < 0 or (name == "lr" and v == 0)):
                need = "positive" if name == "lr" else "non-negative"
                raise ConfigError(f"--{name.replace('_', '-')} {v!r}: needs a finite {need} number")
        if self.lr_schedule is not None and self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"--lr-schedule {self.lr_schedule!r}: use {' or '.join(LR_SCHEDULES)}")
        if self.optimizer is not None and self.optimizer.lower() not in ("adam", "adamw", "sgd"):
            raise ConfigError(f"--optimizer {self.optimizer!r}: use adam, adamw or sgd")
        if not self.ks or any(int(k) < 1 for k in self.ks):
            raise ConfigError(f"ks {self.ks!r}: cut-offs must be positive")
        if self.resume and not self.out:
            raise ConfigError("resume=True needs out: the checkpoint to continue from lives in out/checkpoint")
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        if self.tasks is not None:
            tasks = tuple(str(t).strip() for t in self.tasks if str(t).strip())
            if not tasks or len(set(tasks)) != len(tasks):
                raise ConfigError(f"--tasks {','.join(map(str, self.tasks))!r}: name each behaviour once, e.g. "
                                  "--tasks cart,fav,buy")
            object.__setattr__(self, "tasks", tasks)

    @property
    def data_name(self) -> str:
        return self.dataset if self.dataset is not None else Path(self.data.path).name

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "ExperimentConfig":
        d = dict(d)
        if d.get("data") is not None:
            d["data"] = DataSource(**d["data"])
        d["ks"] = tuple(d.get("ks", (10, 20)))
        if d.get("tasks") is not None:
            d["tasks"] = tuple(d["tasks"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ----------------------------------------------------------------------------- models and their arguments

SINGLE_TASK_ALIASES = {"macgnn": "macgnn-per-task"}  # `--tasks` with a single-task model: one per task


def model_task(name: str) -> str:
    """The task of a registered model: "retrieval", "ctr" or "multitask"."""
    return getattr(get_model_class(name), "task", "retrieval")


def resolve_model(cfg: "ExperimentConfig") -> tuple[str, str]:
    """``(registered model name, task)`` of a config: ``--tasks`` turns a single-task ranker with a
    per-task variant (MacGNN) into that variant; a multi-task model needs ``--tasks``."""
    try:
        name = SINGLE_TASK_ALIASES.get(cfg.model, cfg.model) if cfg.tasks else cfg.model
        task = model_task(name)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    if task == "multitask" and not cfg.tasks:
        raise ConfigError(f"{cfg.model} is a multi-task model: give --tasks, e.g. --tasks cart,fav,buy")
    if cfg.tasks and task != "multitask":
        raise ConfigError(f"--tasks needs a multi-task model (shared-bottom, mmoe, ple, mgoe, macgnn); "
                          f"{cfg.model!r} is a {task} model")
    return name, task


def _signature_args(cls) -> dict[str, inspect.Parameter]:
    skip = {"self", "n_users", "n_items", "n_user_macros", "n_item_macros", "n_tasks"}
    return {k: p for k, p in inspect.signature(cls.__init__).parameters.items()
            if k not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def describe_model_args(name: str) -> str:
    """``name: type = default`` of every model argument (for error messages and ``recgraph models``)."""
    args = _signature_args(get_model_class(name))
    fmt = lambda p: f"{p.name}: {getattr(p.annotation, '__name__', p.annotation)}" + (  # noqa: E731
        "" if p.default is p.empty else f" = {p.default!r}")
    return ", ".join(fmt(p) for p in args.values())


def check_model_args(name: str, model_args: dict) -> None:
    """Refuse arguments the model does not take, listing the ones it does with their types."""
    args = _signature_args(get_model_class(name))
    unknown = [k for k in model_args if k not in args]
    if unknown:
        raise ConfigError(f"--set {unknown[0]}=...: model {name!r} has no argument {unknown[0]!r}; its arguments: "
                          f"{describe_model_args(name)}")


def build_model(name: str, n_users: int, n_items: int, data=None, **model_args):
    """A registered model for ``n_users`` × ``n_items``; ranking models also get the macro counts of
    ``data``'s feature tables (``CTRData`` or ``MultiTaskData``), multi-task models its task count."""
    cls = get_model_class(name)
    if getattr(cls, "task", "retrieval") in ("ctr", "multitask") and data is None:
        raise ConfigError(f"model {name!r} is a ranking model: build it with its data (data=...)")
    try:
        if getattr(cls, "task", None) == "multitask":
            f = data.features
            return cls(n_users, n_items, f.n_user_macros, f.n_item_macros, len(data.tasks), **model_args)
        if data is not None:
            f = data.features
            return cls(n_users, n_items, f.n_user_macros, f.n_item_macros, **model_args)
        return cls(n_users, n_items, **model_args)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {name!r} rejected its arguments {model_args} ({exc}); its arguments: "
                          f"{describe_model_args(name)}") from None


# ----------------------------------------------------------------------------- data

@dataclass(frozen=True, eq=False)
class LoadedData:
    interactions: Interactions
    predefined: Split | None
    info: dict  # where it came from: name / path, sha256, column mapping, counted skips


def _dataset_files_info(name: str, data_dir) -> list[dict]:
    from ..data.datasets import _spec, dataset_folder
    from ..data.datasets.spec import find_file

    folder = dataset_folder(name, data_dir)
    out = []
    for f in _spec(name).files:
        p = find_file(folder, f.name)
        if p is not None:
            out.append({"file": p.name, "sha256": f.sha256 if p.name == f.name else f.content_checksum,
                        "source": "published checksum"})
    return out


def load_data(cfg: ExperimentConfig, dataset=None) -> LoadedData:
    """The interactions a config names (a registered dataset, or the user's own file)."""
    if cfg.data is None:
        if dataset is None:
            from ..data.datasets import load_dataset

            dataset = load_dataset(cfg.dataset, cfg.data_dir)
        info = {"dataset": cfg.dataset, "files": _dataset_files_info(cfg.dataset, cfg.data_dir),
                "skipped": dataset.skipped.to_dict()}
        return LoadedData(dataset.interactions, dataset.predefined, info)
    from ..data.errors import SkipReport
    from ..data.io import read_interactions

    src = cfg.data
    path = Path(src.path)
    skipped = SkipReport()
    inter = read_interactions(path, user=src.user, item=src.item, timestamp=src.time, label=src.rating,
                              sep=src.sep, id_type="str", duplicates="keep", skip_report=skipped,
                              encoding=src.encoding, timestamp_unit=src.time_unit, name=path.name)
    info = {"path": str(path.resolve()), "sha256": sha256_file(path), "bytes": path.stat().st_size,
            "columns": {"user": src.user, "item": src.item, "time": src.time, "rating": src.rating},
            "positive_threshold": src.positive_threshold, "skipped": skipped.to_dict()}
    return LoadedData(inter, None, info)


def _positives(inter: Interactions, threshold: float | None) -> Interactions:
    if threshold is None or inter.label is None:
        return inter
    return inter.select(inter.label >= threshold)


def make_split(data: LoadedData | object, split: str = "auto", seed: int = 0, *,
               positive_threshold: float | None = None) -> Split:
    """The split named ``split`` of loaded data (a :class:`LoadedData` or a ``Dataset``)."""
    predefined = getattr(data, "predefined", None)
    name_of = getattr(data, "name", None) or "the data"
    if split in ("auto", "predefined") and predefined is not None:
        return predefined
    if split == "predefined":
        raise ConfigError(f"{name_of} has no predefined split; use random-ratio, leave-last-out or time-quantile")
    name = "random-ratio" if split == "auto" else split
    if name not in SPLITTERS:
        raise ConfigError(f"unknown split {split!r}; choose from auto, predefined, {', '.join(SPLITTERS)}")
    kwargs = {"seed": seed} if name == "random-ratio" else {}
    return SPLITTERS[name](_positives(data.interactions, positive_threshold), **kwargs)


def _ctr_data(cfg: ExperimentConfig, loaded: LoadedData) -> CTRData:
    args = dict(cfg.protocol_args)
    if cfg.data is not None and cfg.data.positive_threshold is not None:
        args.setdefault("labels", "rating")
        args.setdefault("positive_threshold", cfg.data.positive_threshold)
    try:
        return build_ctr_data(loaded.interactions, cfg.protocol, seed=cfg.seed, **args)
    except TypeError as exc:
        raise ConfigError(f"protocol argument not understood ({exc})") from None


# ----------------------------------------------------------------------------- evaluation

def evaluate_model(model, split: Split, part: str = "test", *, ks=(10, 20), batch_size: int = 1024,
                   device: torch.device | str = "cpu", progress: bool = False) -> dict:
    """Full-sort metrics on ``part`` ("valid" or "test"); excluded: training items, plus validation
    items when scoring the test part."""
    from ..models.retrieval.base import interaction_matrix

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


@torch.no_grad()
def evaluate_ctr_model(model, data: CTRData, part: str = "test", *, batch_size: int = 1024,
                       device: torch.device | str = "cpu") -> dict:
    """AUC / GAUC / Logloss of ``model`` on ``part``; metrics do not depend on ``batch_size``.

    Scoring runs on a float64 copy of the model (``model`` itself is left untouched): float32
    kernels accumulate in an order that depends on the batch shape, which moves logits by ~1e-6;
    in float64 that noise is ~1e-15, so AUC, GAUC and Logloss agree across batch sizes to ~1e-12.
    Logits are additionally rounded to 1e-5 for AUC / GAUC so near-ties cannot be reordered."""
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


def _task_metrics(users: np.ndarray, y: np.ndarray, logits: np.ndarray) -> dict:
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
def evaluate_multitask_model(model, data, part: str = "test", *, batch_size: int = 2048,
                             device: torch.device | str = "cpu") -> dict:
    """Per-task AUC / GAUC / Logloss on ``part`` of a ``MultiTaskData`` and their means
    (``auc_mean`` …). Scored on a float64 copy, logits rounded to 1e-5 for AUC / GAUC, as
    :func:`evaluate_ctr_model` (metrics do not depend on ``batch_size``)."""
    samples = data.part(part)
    if len(samples) == 0:
        raise ValueError(f"the {part} part of the multi-task data is empty")
    scorer = copy.deepcopy(model).to(torch.float64).eval()
    out = []
    for a in range(0, len(samples), batch_size):
        b = data.batch(samples, np.arange(a, min(a + batch_size, len(samples))), model.needs)
        out.append(scorer(b.to(device, torch.float64)).cpu().numpy())
    logits = np.concatenate(out).astype(np.float64)
    per = {t: _task_metrics(samples.user, samples.labels[:, k], logits[:, k]) for k, t in enumerate(data.tasks)}
    res: dict = {"per_task": per}
    for key in ("auc", "gauc", "logloss"):
        res[f"{key}_mean"] = float(np.mean([per[t][key] for t in data.tasks]))
    return res


def _multitask_data(cfg: ExperimentConfig, loaded: LoadedData):
    from ..graph.task_graphs import build_multitask_data

    try:
        return build_multitask_data(loaded.interactions, cfg.tasks, seed=cfg.seed, **cfg.protocol_args)
    except TypeError as exc:
        raise ConfigError(f"protocol argument not understood ({exc})") from None


# ----------------------------------------------------------------------------- run folders

@contextmanager
def _out_lock(out: Path | None):
    """Hold ``out/.lock`` for the run: a second run on the same folder fails at once."""
    if out is None:
        yield
        return
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"--out {out}: another recgraph run is writing this folder; wait for it or pick "
                              "another --out") from None
        yield
    finally:
        os.close(fd)


def _remove_stale_temps(out: Path | None) -> None:
    """Temp files a killed run left (``.NAME.*.tmp``, never read: the real names are always whole)."""
    if out is not None:
        for p in out.rglob(".*.tmp"):
            if p.is_file():
                p.unlink(missing_ok=True)


def check_out(out: str | None) -> Path | None:
    """Fail before any training when ``out`` cannot hold a run folder."""
    if not out:
        return None
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} is an existing file, not a folder; pick another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot create the folder ({exc.strerror}); pick a writable --out") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {path} is not writable; pick a writable --out")
    return path


def _run_key(cfg: ExperimentConfig, data_info: dict) -> dict:
    """What shapes the data and the model: a resume must match it exactly."""
    return {"model": cfg.model, "model_args": cfg.model_args, "dataset": cfg.dataset,
            "data": data_info.get("sha256") or data_info.get("files"), "split": cfg.split, "protocol": cfg.protocol,
            "protocol_args": cfg.protocol_args, "seed": cfg.seed}


def _vocab_arrays(inter: Interactions) -> dict[str, np.ndarray]:
    def raw(v: Vocab | None, n: int) -> np.ndarray:
        r = np.arange(n) if v is None else np.asarray(v.raw)
        return r.astype(str) if r.dtype == object else r

    out = {"user": raw(inter.user_vocab, inter.n_users), "item": raw(inter.item_vocab, inter.n_items)}
    title = inter.item_features.get("title")
    if title is not None:
        out["item_title"] = np.asarray(title).astype(str)
    return out


def _save_run(out: Path, cfg: ExperimentConfig, record: dict, model, task: str, loaded: LoadedData,
              split: Split | None, data: CTRData | None) -> None:
    save_model(out / "model", model, {"task": task, "dataset": cfg.data_name, "seed": cfg.seed})
    atomic_save_npz(out / "vocab.npz", _vocab_arrays(loaded.interactions))
    if task == "retrieval":
        parts = {"train_user": split.train.user, "train_item": split.train.item,
                 "sizes": np.asarray([split.n_users, split.n_items], np.int64)}
        if split.valid is not None:
            parts.update({"valid_user": split.valid.user, "valid_item": split.valid.item})
        timed = split.train.timestamp is not None and (split.valid is None or split.valid.timestamp is not None)
        if timed:  # serving's "most recent items" (U2I2I, the demo's history) order by them
            parts["train_time"] = split.train.timestamp
            if split.valid is not None:
                parts["valid_time"] = split.valid.timestamp
        atomic_save_npz(out / "train.npz", parts)
    elif task == "multitask":  # the shared graph's tables + every task graph's (what a one-user request needs)
        atomic_save_npz(out / "features.npz", data.features.to_arrays())
        atomic_save_npz(out / "task_features.npz", _task_feature_arrays(data.tasks, data.task_data), compress=True)
    else:
        atomic_save_npz(out / "features.npz", data.features.to_arrays())
        if "dynamic" in getattr(model, "needs", ()) and data.events is not None:  # DSGL scores from the event graph
            g = data.events
            atomic_save_npz(out / "events.npz", {"user": np.repeat(np.arange(g.n_users), np.diff(g.u_indptr)),
                                                 "item": g.u_indices, "time": g.u_timestamp,
                                                 "sizes": np.asarray([g.n_users, g.n_items], np.int64)})
    atomic_write_json(out / "config.json", {"format": RUN_FORMAT, "task": task, "experiment": cfg.to_json(),
                                            "data": loaded.info, "protocol": record["protocol"]})
    atomic_write_json(out / "metrics.json", record)


def _task_feature_arrays(tasks: tuple[str, ...], task_data) -> dict[str, np.ndarray]:
    """One npz of every task graph's feature tables: ``tasks`` (names, in model output order) and
    ``"{j}.{key}"`` for task ``j``'s :meth:`FeatureTables.to_arrays`."""
    out = {"tasks": np.asarray(tasks, dtype=str)}
    for j, td in enumerate(task_data):
        out.update({f"{j}.{k}": v for k, v in td.features.to_arrays().items()})
    return out


def _task_features_from_arrays(a: dict[str, np.ndarray]) -> tuple[tuple[str, ...], tuple[FeatureTables, ...]]:
    tasks = tuple(str(t) for t in a["tasks"])
    return tasks, tuple(FeatureTables.from_arrays({k.split(".", 1)[1]: v for k, v in a.items()
                                                   if k.startswith(f"{j}.")}) for j in range(len(tasks)))


@dataclass(frozen=True, eq=False)
class LoadedRun:
    """A run folder read back: its config, model, vocabularies and what scoring needs."""

    path: Path
    config: ExperimentConfig
    task: str
    model: torch.nn.Module
    meta: dict
    user_vocab: np.ndarray
    item_vocab: np.ndarray
    item_title: np.ndarray | None
    train: Interactions | None = None   # retrieval: training interactions
    seen: Interactions | None = None    # retrieval: training + validation interactions
    features: FeatureTables | None = None  # ranking
    events: BipartiteGraph | None = None  # ranking models that need "dynamic" neighbourhoods (DSGL)
    task_features: tuple[FeatureTables, ...] | None = None  # multi-task: each task graph's tables (config order)

    def ctr_data(self) -> CTRData:
        """A CTRData over the saved feature tables (no samples) for ``request`` scoring."""
        from ..data.ctr import CTRSamples

        empty = CTRSamples(*(np.zeros(0, t) for t in (np.int64, np.int64, np.float32, np.int64, np.int64)))
        f = self.features
        return CTRData(empty, empty, empty, f, f.n_users, f.n_items, {}, {}, self.config.data_name, events=self.events)

    def multitask_data(self):
        """A :class:`~recgraph.graph.task_graphs.MultiTaskData` over the saved feature tables (shared
        graph + every task graph; no samples) for ``request`` scoring.

        Raises:
            ArtifactError: the model needs the task graphs' tables and the folder predates them."""
        from ..data.ctr import CTRSamples
        from ..data.multitask import MultiTaskSamples
        from ..graph.task_graphs import MultiTaskData

        tasks = tuple(self.config.tasks or ())
        task_ft = self.task_features
        if task_ft is None:
            if "task_macro" in getattr(self.model, "needs", ()):
                raise ArtifactError(self.path / "task_features.npz", "not found: this multi-task run predates "
                                    "saved task-graph tables, and its model needs them",
                                    "train the run again with this recgraph")
            task_ft = ()
        empty = CTRSamples(*(np.zeros(0, t) for t in (np.int64, np.int64, np.float32, np.int64, np.int64)))
        no = MultiTaskSamples(*(np.zeros(0, np.int64) for _ in range(4)), np.zeros((0, len(tasks)), np.float32))

        def ctr(f: FeatureTables) -> CTRData:
            return CTRData(empty, empty, empty, f, f.n_users, f.n_items, {}, {}, self.config.data_name)

        return MultiTaskData(tasks, no, no, no, ctr(self.features), tuple(ctr(f) for f in task_ft), {},
                             name=self.config.data_name)


def read_run_config(path: str | Path) -> dict:
    return read_checked_json(Path(path) / "config.json", fmt=RUN_FORMAT,
                             what="a run folder written by `recgraph train --out`",
                             required=("task", "experiment", "data"))


def load_run(path: str | Path) -> LoadedRun:
    """Read a run folder (checksums verified); needs nothing but the folder.

    Raises:
        ArtifactError: a missing or damaged file, naming it."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(path, "is not a run folder", "pass a folder written by `recgraph train --out`")
    meta = read_run_config(path)
    if meta["task"] == "ondevice":
        raise ArtifactError(path, "is a DCCL (device-cloud) run: `recgraph eval` re-evaluates it; recommend / serve "
                            "do not load DCCL runs")
    try:
        cfg = ExperimentConfig.from_json(meta["experiment"])
    except (TypeError, ValueError) as exc:
        raise ArtifactError(path / "config.json", f"holds a config this recgraph cannot use ({exc})") from None
    if not (path / "model").is_dir():
        raise ArtifactError(path / "model", "not found: the run has no saved model",
                            "was the run interrupted? re-run `recgraph train` with this --out (add --resume)")
    vocab = load_npz(path / "vocab.npz")
    task = meta["task"]
    if task == "retrieval":
        t = load_npz(path / "train.npz")
        nu, ni = (int(x) for x in t["sizes"])
        timed = "train_time" in t and ("valid_user" not in t or "valid_time" in t)  # older folders have no times
        train = Interactions(t["train_user"], t["train_item"], nu, ni, timestamp=t["train_time"] if timed else None)
        seen = train if "valid_user" not in t else Interactions(
            np.concatenate([t["train_user"], t["valid_user"]]), np.concatenate([t["train_item"], t["valid_item"]]),
            nu, ni, timestamp=np.concatenate([t["train_time"], t["valid_time"]]) if timed else None)
        model, ameta = load_model(path / "model", graph=BipartiteGraph.from_interactions(train))
        return LoadedRun(path, cfg, task, model, ameta, vocab["user"], vocab["item"], vocab.get("item_title"),
                         train=train, seen=seen)
    feats = FeatureTables.from_arrays(load_npz(path / "features.npz"))
    events = None
    if (path / "events.npz").exists():
        e = load_npz(path / "events.npz")
        events = time_graph(e["user"], e["item"], e["time"], *(int(x) for x in e["sizes"]))
    task_ft = None
    if task == "multitask" and (path / "task_features.npz").exists():
        names, task_ft = _task_features_from_arrays(load_npz(path / "task_features.npz"))
        if names != tuple(cfg.tasks or ()):
            raise ArtifactError(path / "task_features.npz", f"holds tasks {list(names)}, config.json says "
                                f"{list(cfg.tasks or ())}", "train the run again")
    model, ameta = load_model(path / "model")
    return LoadedRun(path, cfg, task, model, ameta, vocab["user"], vocab["item"], vocab.get("item_title"),
                     features=feats, events=events, task_features=task_ft)


def evaluate_run(path: str | Path, *, data_dir: str | None = None, device: str = "cpu") -> tuple[dict, dict]:
    """Re-evaluate a saved run on its test part with the recorded protocol; returns
    ``(metrics now, metrics recorded)``. The data must be the bytes the run was trained on.
    A DCCL run folder goes to :func:`recgraph.train.dccl.evaluate_dccl_run`."""
    if Path(path).is_dir() and read_run_config(path)["task"] == "ondevice":
        from .dccl import evaluate_dccl_run

        return evaluate_dccl_run(path, data_dir=data_dir)
    run_ = load_run(path)
    cfg = run_.config
    if data_dir is not None:
        cfg = dataclasses.replace(cfg, data_dir=data_dir)
    loaded = load_data(cfg)
    recorded = read_checked_json(Path(path) / "config.json", fmt=RUN_FORMAT, what="a run folder")["data"]
    if cfg.data is not None and loaded.info["sha256"] != recorded.get("sha256"):
        raise ArtifactError(cfg.data.path, f"sha256 {loaded.info['sha256'][:12]}… differs from the "
                            f"{str(recorded.get('sha256'))[:12]}… the run was trained on (the file changed)",
                            "evaluate with the original file")
    from ..io import read_json

    before = read_json(Path(path) / "metrics.json").get("metrics", {})
    if run_.task == "retrieval":
        split = make_split(loaded, cfg.split, cfg.seed,
                           positive_threshold=cfg.data.positive_threshold if cfg.data else None)
        now = evaluate_model(run_.model, split, "test", ks=cfg.ks, batch_size=cfg.eval_batch_size)
    elif run_.task == "multitask":
        now = evaluate_multitask_model(run_.model, _multitask_data(cfg, loaded), "test")
    else:
        data = _ctr_data(cfg, loaded)
        now = evaluate_ctr_model(run_.model, data, "test", batch_size=cfg.eval_batch_size)
    return now, before


# ----------------------------------------------------------------------------- the record

def make_record(cfg: ExperimentConfig, model, task: str, protocol: dict, metrics: dict, train_info: dict,
                seconds: dict, device, data_info: dict) -> dict:
    """The one ``metrics.json`` shape for every task."""
    return {
        "model": cfg.model,
        "model_class": getattr(model, "registry_name", cfg.model),
        "task": task,
        "tasks": list(cfg.tasks) if cfg.tasks else None,
        "model_config": model.config(),
        "dataset": cfg.data_name,
        "data": data_info,
        "protocol": protocol,
        "metrics": dict(metrics),
        "train": train_info,
        "seconds": seconds,
        "peak_memory_bytes": peak_rss_bytes(),
        "seed": cfg.seed,
        "device": str(device),
        "version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "config": cfg.to_json(),
    }


def _trainer_config(cfg: ExperimentConfig, defaults: dict, task: str, monitor: str | None) -> TrainerConfig:
    base = {"epochs": 100, "lr": 1e-3, "patience": 10} if task == "retrieval" else {"epochs": 30, "lr": 1e-3,
                                                                                    "patience": 5}
    pick = lambda k: getattr(cfg, k) if getattr(cfg, k) is not None else defaults.get(k, base.get(k))  # noqa: E731
    return TrainerConfig(max_epochs=pick("epochs"), lr=pick("lr"), weight_decay=pick("weight_decay") or 0.0,
                         optimizer=pick("optimizer") or "adam", lr_schedule=pick("lr_schedule") or "constant",
                         monitor=monitor, mode="max", patience=pick("patience"), eval_every=pick("eval_every") or 1,
                         checkpoint_every=cfg.checkpoint_every)


def _samples_per_second(data, result) -> float:
    """Training throughput over the epochs run (training time only, validation excluded)."""
    seconds = sum(h["train_seconds"] for h in result.history)
    return len(data.train) * result.epochs_run / max(seconds, 1e-9)


def _train_info(result, tc: TrainerConfig, selected_on: str, **extra) -> dict:
    return {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
            "seconds_per_epoch": result.seconds_per_epoch(), "stopped_early": result.stopped_early,
            "lr": tc.lr, "weight_decay": tc.weight_decay, "optimizer": tc.optimizer, "lr_schedule": tc.lr_schedule,
            "max_epochs": tc.max_epochs, "patience": tc.patience, "selected_on": selected_on, **extra,
            "history": result.history}


# ----------------------------------------------------------------------------- the runner

def run(cfg: ExperimentConfig, *, dataset=None, loaded: LoadedData | None = None, split: Split | None = None,
        data: CTRData | None = None, log: Callable[[str], None] | None = None, return_model: bool = False,
        distributed=None) -> dict:
    """Train and evaluate one model (retrieval or ranking); writes the run folder when ``cfg.out``
    is set. ``dataset`` (a loaded ``Dataset``) / ``loaded`` (:func:`load_data`'s result) / ``split``
    / ``data`` (CTR data) reuse already loaded data (benchmarks, quickstart).
    Returns the metrics record (plus the trained model under ``"model"`` with ``return_model``).
    ``distributed``: a :class:`recgraph.distributed.ddp.DistributedContext` under torchrun (DDP training;
    only rank 0 locks and writes the run folder).

    Raises:
        ConfigError: settings that cannot work — raised before any data is loaded or trained."""
    log = log or (lambda s: None)
    name, task = resolve_model(cfg)
    check_model_args(name, cfg.model_args)
    if task != "retrieval" and cfg.lr_schedule not in (None, "constant"):
        raise ConfigError("--lr-schedule applies to retrieval models; ranking models train at a constant rate")
    out = check_out(cfg.out)
    main = distributed is None or distributed.is_main  # under torchrun only rank 0 locks and writes OUT
    with _out_lock(out if main else None):
        if main:
            _remove_stale_temps(out)
        return _run(cfg, name, task, out, dataset, loaded, split, data, log, return_model, distributed)


def stage_fitter(device: torch.device | str = "cpu", *, progress: bool = False,
                 log: Callable[[str], None] | None = None):
    """The ``fit`` a model's ``prepare`` uses to train a stage of its own (DC-GNN pretraining):
    the one :class:`Trainer`, a fixed epoch budget, no validation, no checkpoints."""

    def fit(module, *, epochs: int, lr: float, seed: int):
        return Trainer(max_epochs=epochs, lr=lr, monitor=None, patience=None, device=device, seed=seed,
                       progress=progress, log=log).fit(module)

    return fit


def _run(cfg, name, task, out, dataset, loaded, split, data, log, return_model, distributed=None) -> dict:
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    if loaded is None and (dataset is not None or (split is None and data is None)):
        loaded = load_data(cfg, dataset)
    elif loaded is None:  # parts given in memory: the run records no file checksums
        inter = split.train if split is not None else Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64),
                                                                   data.n_users, data.n_items)
        loaded = LoadedData(inter, None, {"dataset": cfg.data_name, "given": "in memory, no file checksums"})
    if task == "retrieval":
        if split is None:
            split = make_split(loaded, cfg.split, cfg.seed,
                               positive_threshold=cfg.data.positive_threshold if cfg.data else None)
        n_users, n_items = split.n_users, split.n_items
    elif task == "multitask":
        if data is None:
            data = _multitask_data(cfg, loaded)
        elif tuple(data.tasks) != tuple(cfg.tasks):
            raise ConfigError(f"data was built for tasks {data.tasks}, not {cfg.tasks}")
        n_users, n_items = data.n_users, data.n_items
    else:
        if data is None:
            data = _ctr_data(cfg, loaded)
        elif data.protocol.get("name") != cfg.protocol:
            raise ConfigError(f"data was built for protocol {data.protocol.get('name')!r}, not {cfg.protocol!r}")
        n_users, n_items = data.n_users, data.n_items
    load_seconds = time.perf_counter() - t0
    model = build_model(name, n_users, n_items, None if task == "retrieval" else data, **cfg.model_args).to(device)
    t1 = time.perf_counter()
    defaults = getattr(model, "train_defaults", {})
    ckpt = {"checkpoint_dir": out / "checkpoint" if out else None, "resume": cfg.resume,
            "run_key": _run_key(cfg, loaded.info), "distributed": distributed}
    if task == "retrieval":
        graph = BipartiteGraph.from_interactions(split.train)  # built once; every model prepares from it
        model.prepare(graph, fit=stage_fitter(device, progress=cfg.progress, log=log))
        model.to(device)
        train_info: dict = {"selected_on": "none: not trained"}
        if model.trainable:
            has_valid = split.valid is not None and len(split.valid) > 0
            if not has_valid and not cfg.select_on_test:
                validate, monitor = None, None  # fixed epoch budget, last epoch reported
            else:
                part = "valid" if has_valid else "test"
                validate = lambda m: evaluate_model(m, split, part, ks=cfg.ks,  # noqa: E731
                                                    batch_size=cfg.eval_batch_size, device=device)
                monitor = cfg.monitor or "ndcg@20"
            tc = _trainer_config(cfg, defaults, task, monitor)
            trainer = tc.build(device=device, seed=cfg.seed, progress=cfg.progress, log=log, **ckpt)
            result = trainer.fit(model, validate=validate)
            selected = ("test (official LightGCN protocol)" if validate and not has_valid
                        else "validation" if validate else "none: fixed epochs, last epoch")
            train_info = _train_info(result, tc, selected)
        fit_seconds = time.perf_counter() - t1
        t2 = time.perf_counter()
        metrics = evaluate_model(model, split, "test", ks=cfg.ks, batch_size=cfg.eval_batch_size, device=device,
                                 progress=cfg.progress)
        protocol = {**split.protocol, "candidates": "all items", "ks": list(cfg.ks),
                    "excluded": "training items" + (" + validation items" if split.valid is not None else ""),
                    "metric_definitions": "recall@k = hits/|test items|; ndcg binary relevance"}
    elif task == "multitask":
        batch_size = cfg.batch_size or defaults.get("batch_size", 256)

        def validate(m):
            r = evaluate_multitask_model(m, data, "valid", device=device)
            return {"auc_mean": r["auc_mean"], "gauc_mean": r["gauc_mean"], "logloss_mean": r["logloss_mean"],
                    **{f"auc_{t}": r["per_task"][t]["auc"] for t in data.tasks}}

        base = dataclasses.replace(cfg, epochs=cfg.epochs or 8, patience=2 if cfg.patience is None else cfg.patience)
        tc = _trainer_config(base, defaults, "ctr", cfg.monitor or "auc_mean")
        trainer = tc.build(device=device, seed=cfg.seed, progress=cfg.progress, log=log, **ckpt)
        result = trainer.fit(model, data.loader("train", batch_size, model.needs, shuffle=True), validate=validate)
        train_info = _train_info(result, tc, "validation mean AUC over tasks", batch_size=batch_size,
                                 train_samples_per_second=_samples_per_second(data, result))
        fit_seconds = time.perf_counter() - t1
        t2 = time.perf_counter()
        metrics = evaluate_multitask_model(model, data, "test", device=device)
        protocol = {**data.protocol, "tasks": list(data.tasks), "dropped": data.dropped, "memory_bytes": data.memory,
                    "parts": {k: data.part(k).describe(data.tasks) for k in ("train", "valid", "test")},
                    "metric_definitions": "per task: AUC over impressions; GAUC impression-weighted over users "
                                          "with both labels for that task; Logloss of sigmoid(logit); *_mean = "
                                          "unweighted mean over tasks"}
    else:
        batch_size = cfg.batch_size or defaults.get("batch_size", 1024)
        part = "test" if cfg.select_on_test else "valid"
        validate = lambda m: evaluate_ctr_model(m, data, part, batch_size=cfg.eval_batch_size,  # noqa: E731
                                                device=device)
        tc = _trainer_config(cfg, defaults, task, cfg.monitor or "auc")
        trainer = tc.build(device=device, seed=cfg.seed, progress=cfg.progress, log=log, **ckpt)
        result = trainer.fit(model, data.loader("train", batch_size, model.needs, shuffle=True, **model.batch_kwargs),
                             validate=validate)
        train_info = _train_info(result, tc, "test (official MacGNN code)" if cfg.select_on_test else "validation AUC",
                                 batch_size=batch_size,
                                 train_samples_per_second=_samples_per_second(data, result))
        fit_seconds = time.perf_counter() - t1
        t2 = time.perf_counter()
        metrics = evaluate_ctr_model(model, data, "test", batch_size=cfg.eval_batch_size, device=device)
        protocol = {**data.protocol, "dropped": data.dropped,
                    "parts": {k: data.part(k).describe() for k in ("train", "valid", "test")},
                    "metric_definitions": "AUC over impressions; GAUC impression-weighted over users with both "
                                          "labels; Logloss of sigmoid(logit)"}
    eval_seconds = time.perf_counter() - t2
    record = make_record(cfg, model, task, protocol, metrics, train_info,
                         {"load": load_seconds, "fit": fit_seconds, "eval": eval_seconds,
                          "total": time.perf_counter() - t0}, device, loaded.info)
    if distributed is not None and distributed.enabled:
        record["distributed"] = {"world_size": distributed.world_size, "backend": distributed.backend}
    if out is not None and (distributed is None or distributed.is_main):
        _save_run(out, cfg, record, model, task, loaded, split, data)
    if return_model:
        return {**record, "model": model}
    return record
