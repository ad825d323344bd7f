"""One training loop for every model.

A model trains here when it has ``loss(batch) -> scalar tensor``; the batches come from a callable
``batches(epoch, rng) -> Iterable[batch]`` (a batch is a tensor, a tuple / dict of tensors or a typed
batch dataclass with ``to(device)``; the trainer moves it to the device). Determinism: epoch ``e``
draws from ``numpy`` and ``torch`` generators seeded with ``(seed, e)``, so a run resumed from the
checkpoint of epoch ``e`` replays epochs ``e+1 …`` exactly as an uninterrupted run would.

Early stopping watches a *validation* metric (``monitor``); the test set never enters here.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from .checkpoint import load_checkpoint, save_checkpoint

LR_SCHEDULES = ("constant", "cosine")
Batches = Callable[[int, np.random.Generator], Iterable]
Validate = Callable[[torch.nn.Module], dict]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None → CUDA when available, else CPU; explicit ``"cuda"`` without a GPU is an error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return dev


def to_device(batch, device: torch.device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if hasattr(batch, "to") and dataclasses.is_dataclass(batch):  # typed batches (CTRBatch, ...)
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def seed_everything(seed: int) -> None:
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    stopped_early: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    def seconds_per_epoch(self) -> float:
        times = [h["train_seconds"] for h in self.history]
        return float(np.mean(times)) if times else float("nan")


class Trainer:
    """Args:
        max_epochs: upper bound on epochs.
        lr, weight_decay, optimizer: Adam (default) or SGD / AdamW.
        lr_schedule: "constant" (default) or "cosine": epoch ``e`` trains at
            ``lr · (1 + cos(π e / max_epochs)) / 2`` — a function of the epoch alone, so a resumed run
            follows the same schedule; no validation metric is involved.
        monitor, mode: validation metric for early stopping and best-model selection.
        patience: evaluations without improvement before stopping (None: never stop early).
        eval_every: validate every N epochs (and at the last epoch).
        checkpoint_dir: when set, ``last/`` is written after every ``checkpoint_every``-th epoch (and the
            final one) and ``best/`` on every improvement.
        checkpoint_every: epochs between ``last/`` writes; a killed run repeats at most
            ``checkpoint_every - 1`` epochs when resumed (on Gowalla ``last/`` is ~55 MB).
        resume: continue from ``checkpoint_dir/last`` when present.
        run_key: what shaped the data and the model (dataset, split, seed, model arguments...); stored
            in every checkpoint, and a resume from a checkpoint with a different key is refused (it
            would continue on another split, e.g. one whose test items the model trained on).
        device: "cpu", "cuda" or "auto".
        seed: run seed.
        progress: show rich progress bars.
        grad_clip: max global grad norm (None: off).
    """

    def __init__(self, *, max_epochs: int = 100, lr: float = 1e-3, weight_decay: float = 0.0,
                 optimizer: str = "adam", lr_schedule: str = "constant", monitor: str | None = "ndcg@20",
                 mode: str = "max", patience: int | None = 10, eval_every: int = 1,
                 checkpoint_dir: str | Path | None = None, checkpoint_every: int = 1, resume: bool = False,
                 run_key: dict | None = None,
                 device: str | torch.device | None = "auto", seed: int = 0,
                 progress: bool = True, grad_clip: float | None = None,
                 log: Callable[[str], None] | None = None, distributed=None):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be a positive number of epochs, got {checkpoint_every}")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {lr_schedule!r}: use {' or '.join(LR_SCHEDULES)}")
        self.max_epochs, self.lr, self.weight_decay, self.lr_schedule = max_epochs, lr, weight_decay, lr_schedule
        self.optimizer_name, self.monitor, self.mode = optimizer, monitor, mode
        self.patience, self.eval_every = patience, max(1, eval_every)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.checkpoint_every = checkpoint_every
        self.resume, self.device, self.seed = resume, resolve_device(device), seed
        self.run_key = run_key
        self.progress, self.grad_clip = progress, grad_clip
        self.log = log or (lambda s: None)
        # recgraph.distributed.ddp.DistributedContext (duck-typed) under torchrun: per-rank batch shards,
        # DDP gradient all-reduce, validation and checkpoints on rank 0 only; None: one process
        self.distributed = distributed if distributed is not None and distributed.enabled else None
        if self.distributed is not None and not self.distributed.is_main:
            self.progress, self.log = False, (lambda s: None)

    def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        name = self.optimizer_name.lower()
        # The fused kernel does Adam's update in one pass over each tensor (same update rule; an
        # MF-BPR step on Gowalla's 4.5M embedding weights 18.2 -> 7.6 ms on 2 CPU cores, BENCHMARKS
        # §3); it needs float tensors on CPU or CUDA.
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) or None
        if name == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay, fused=fused)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay, fused=fused)
        if name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, weight_decay=self.weight_decay)
        raise ValueError(f"unknown optimizer {self.optimizer_name!r}: use adam, adamw or sgd")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of (0-based) ``epoch`` under ``lr_schedule``."""
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / self.max_epochs))
        return self.lr

    def _check_run_key(self, saved: dict | None) -> None:
        if self.run_key is None:
            return
        import json

        norm = lambda d: json.loads(json.dumps(d, sort_keys=True, default=str))  # noqa: E731
        want, have = norm(self.run_key), norm(saved or {})
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        if diff:
            shown = "; ".join(f"{k}: checkpoint {have.get(k)!r}, now {want.get(k)!r}" for k in diff)
            raise ValueError(f"cannot resume from {self.checkpoint_dir / 'last'}: it was made with different "
                             f"settings ({shown}); resume with the checkpoint's settings or use a new --out")

    def _better(self, value: float, best: float | None) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return best is None or (value > best if self.mode == "max" else value < best)

    def fit(self, model: torch.nn.Module, batches: Batches | None = None,
            validate: Validate | None = None) -> TrainResult:
        """Train ``model``; returns the history. With ``validate``, the model ends holding the
        weights of its best validation epoch."""
        batches = batches or model.train_batches
        model.to(self.device)
        opt = self.make_optimizer(model)
        ddp = self.distributed
        main = ddp is None or ddp.is_main
        loss_of = model.loss if ddp is None else ddp.wrap(model)
        result, start_epoch, best_value, bad_evals = TrainResult(), 0, None, 0
        best_state = None
        if self.resume and self.checkpoint_dir and (self.checkpoint_dir / "last" / "meta.json").exists():
            meta = load_checkpoint(self.checkpoint_dir / "last", model, opt, map_location=str(self.device))
            self._check_run_key(meta.get("run_key"))
            start_epoch = meta["epoch"] + 1
            result.history, best_value, bad_evals = meta["history"], meta["best_value"], meta["bad_evals"]
            result.best_epoch, result.best_metrics = meta["best_epoch"], meta["best_metrics"]
            if (self.checkpoint_dir / "best" / "meta.json").exists():
                best_model = copy.deepcopy(model)
                load_checkpoint(self.checkpoint_dir / "best", best_model, None, map_location=str(self.device))
                best_state = best_model.state_dict()
            self.log(f"resumed from epoch {meta['epoch']} ({self.checkpoint_dir / 'last'})")

        t_start = time.perf_counter()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[info]}"))
        with Progress(*columns, disable=not self.progress, transient=False) as bar:
            task = bar.add_task(type(model).__name__, total=self.max_epochs, completed=start_epoch, info="")
            for epoch in range(start_epoch, self.max_epochs):
                rng = np.random.default_rng([self.seed, epoch])
                torch.manual_seed(self.seed * 1_000_003 + epoch)
                lr = self.lr_at(epoch)
                for group in opt.param_groups:
                    group["lr"] = lr
                model.train()
                t0 = time.perf_counter()
                total, n = 0.0, 0
                for batch in batches(epoch, rng):
                    scale = 1.0
                    if ddp is not None:  # this rank's slice; scaled so DDP's mean is the full-batch gradient
                        batch, scale = ddp.shard(batch)
                    batch = to_device(batch, self.device)
                    loss = loss_of(batch) * scale if ddp is not None else loss_of(batch)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch}; "
                                                 "lower the learning rate or check the inputs for NaN")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.grad_clip:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
                    opt.step()
                    total += float(loss.detach())
                    n += 1
                if n == 0:
                    raise ValueError("the training data produced no batches: is the training split empty?")
                if ddp is not None:
                    total = ddp.mean(total)  # Σ_r scale_r·loss_r / world = the full batches' mean loss
                row = {"epoch": epoch, "loss": total / n, "lr": lr, "train_seconds": time.perf_counter() - t0}
                last = epoch == self.max_epochs - 1
                if validate is not None and ((epoch + 1) % self.eval_every == 0 or last):
                    model.eval()
                    t1 = time.perf_counter()
                    with torch.no_grad():
                        metrics = validate(model) if main else None
                    if ddp is not None:  # every rank takes rank 0's early-stopping / best-epoch decision
                        metrics = ddp.broadcast(metrics)
                    row.update({f"valid_{k}": v for k, v in metrics.items()})
                    row["eval_seconds"] = time.perf_counter() - t1
                    value = metrics.get(self.monitor) if self.monitor else None
                    if self.monitor and self.monitor not in metrics:
                        raise KeyError(f"monitor {self.monitor!r} not among validation metrics {sorted(metrics)}")
                    if self._better(value, best_value):
                        best_value, bad_evals = value, 0
                        result.best_epoch, result.best_metrics = epoch, dict(metrics)
                        best_state = copy.deepcopy(model.state_dict())
                        if self.checkpoint_dir and main:
                            save_checkpoint(self.checkpoint_dir / "best", model, None,
                                            {"epoch": epoch, "metrics": metrics})
                    else:
                        bad_evals += 1
                result.history.append(row)
                info = f"loss {row['loss']:.4f}"
                if self.monitor and f"valid_{self.monitor}" in row:
                    info += f"  {self.monitor} {row[f'valid_{self.monitor}']:.4f} (best {best_value:.4f})"
                bar.update(task, advance=1, info=info)
                at_k = "@" + self.monitor.rpartition("@")[2] if self.monitor and "@" in self.monitor else None
                scores = "".join(f"  {k[6:]} {v:.4f}" for k, v in row.items()  # the monitor's other @K metrics
                                 if at_k and k.startswith("valid_") and k.endswith(at_k) and k[6:] != self.monitor)
                self.log(f"epoch {epoch}: {info}{scores}  ({row['train_seconds']:.1f} s)")
                stop = self.patience is not None and bad_evals >= self.patience
                if self.checkpoint_dir and main and ((epoch + 1) % self.checkpoint_every == 0 or last or stop):
                    save_checkpoint(self.checkpoint_dir / "last", model, opt,
                                    {"epoch": epoch, "history": result.history, "best_value": best_value,
                                     "bad_evals": bad_evals, "best_epoch": result.best_epoch,
                                     "best_metrics": result.best_metrics, "seed": self.seed,
                                     "run_key": self.run_key})
                if stop:
                    result.stopped_early = True
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        result.seconds = time.perf_counter() - t_start
        return result
