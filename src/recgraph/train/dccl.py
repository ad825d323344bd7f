"""DCCL runner: cloud model → MetaPatch on (simulated) devices → MoMoDistill rounds, metrics per stage.

``run_dccl(DCCLConfig(...)) -> record`` (also ``recgraph train dccl --dataset D --rounds N``):

0. **cloud** — the DCCL ranker with patches off trains with BCE (:class:`~recgraph.train.trainer.Trainer`,
   epoch chosen on validation NDCG@10).
1. **+ MetaPatch** — every device user trains its θ̂ with the cloud and a random (seeded) basis
   frozen (:func:`~recgraph.models.ondevice.device.train_device_vectors`, vectorised over users;
   number of steps chosen on validation NDCG@10).
2. **+ MoMoDistill round r** (``r = 1..rounds``) — teacher = the round's personalised predictions on
   the training samples; cloud retrain with BCE + β·KL; basis + encoder distillation (cloud frozen);
   devices fine-tune θ̂ from their previous vectors. The distilled cloud *alone* is also scored.
   **Control** (round 1, ``control``): the round-0 cloud trained the same ``distill_epochs`` more with
   plain BCE (no KL, no teacher), scored as ``cloud_plus{E}_bce_no_kl`` — separates the KL's effect from
   training longer.

**Learning rates**: each of ``lr`` (cloud), ``device_lr``, ``distill_lr`` (cloud retrain), ``basis_lr``,
``control_lr`` and ``ref_lr`` (reference models) is either given or chosen from its ``*_grid`` on
validation NDCG@10 (every value starts from the same state; round 1's choice is kept for later rounds);
the record's ``hyperparameters`` lists each grid, its validation scores and the value used.

A seeded ``1 - device_fraction`` of users never trains on a device (θ̂ = 0): metrics are reported for
all users and for both subsets, so the gain for users without device training is measured.

Evaluation: :mod:`recgraph.data.sequence_ctr` leave-last-out rows (1 positive + 100 uniform
negatives), :func:`recgraph.eval.protocols.evaluate_sampled` (HitRate@10, NDCG@10, per-row AUC) and
:func:`recgraph.eval.groups.group_metrics` (macro-AUC over 20 user groups by training samples).
``reference`` models (e.g. ``("din",)``) train under the same protocol and budget as the cloud
stage. With ``out`` the run folder gets ``metrics.json``, ``config.json``, ``model/`` (safetensors +
artifact.json), ``device/theta.npz`` (what each device keeps) and ``ondevice/model.onnx`` (what it downloads; size,
one-thread latency and its agreement with PyTorch in ``metrics.json``); ``recgraph train dccl`` adds
``report.html`` with the per-group plot (:func:`recgraph.report.html.write_dccl_report`). The run folder
is re-evaluable: ``recgraph eval RUN`` → :func:`evaluate_dccl_run` (files checked by sha256, the final
stage's metrics recomputed).
"""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import __version__
from ..config import git_commit
from ..data.sequence_ctr import SequenceCTRData, build_sequence_ctr
from ..eval.groups import group_metrics, user_groups
from ..eval.protocols import describe_sampled, evaluate_sampled
from ..io import ArtifactError, atomic_save_npz, atomic_save_tensors, atomic_write_json, file_checksums
from ..models.ondevice.dccl import DCCLRanker
from ..models.ondevice.device import device_step_time, train_device_vectors
from ..models.ondevice.momodistill import DistillObjective
from ..models.registry import get_model_class
from .runner import peak_rss_bytes
from .trainer import Trainer, seed_everything

__all__ = ["DCCLConfig", "run_dccl", "evaluate_rows", "load_sequence_data", "evaluate_dccl_run"]


@dataclass(frozen=True)
class DCCLConfig:
    """Everything a DCCL run depends on (stamped into ``metrics.json``)."""

    dataset: str = "movielens-100k"
    seed: int = 0
    rounds: int = 2
    dim: int = 16
    hidden: tuple = (80, 40)
    vec_dim: int = 8
    patch_rank: int = 8
    lr: float = 3e-3
    batch_size: int = 1024
    cloud_epochs: int = 5
    distill_epochs: int = 1
    patience: int = 1
    beta: float = 1.0
    vec_dropout: float = 0.2
    device_steps: int = 30
    device_lr: float = 0.05
    device_l2: float = 1e-4
    device_eval_every: int = 10
    device_fraction: float = 0.8
    neg_ratio: int = 1
    n_eval_neg: int = 100
    recent: int = 10
    n_groups: int = 20
    ks: tuple = (10,)
    reference: tuple = ()
    ref_lr: float | None = None        # reference models (DIN); None: ``lr``
    distill_lr: float | None = None    # MoMoDistill cloud retrain; None: ``lr``
    basis_lr: float | None = None      # MoMoDistill basis + encoder distillation; None: ``lr``
    control: bool = True               # the "cloud + the round's epochs of BCE, no KL" control (round 1)
    control_lr: float | None = None    # None: ``distill_lr``
    # learning-rate grids, each chosen on validation NDCG@10 (empty: the value above is used as given)
    lr_grid: tuple = ()
    ref_lr_grid: tuple = ()
    device_lr_grid: tuple = ()
    distill_lr_grid: tuple = ()
    basis_lr_grid: tuple = ()
    control_lr_grid: tuple = ()
    max_users: int | None = None       # keep only users with id < max_users (tiny runs, tests)
    onnx: bool = True
    data_dir: str | None = None
    out: str | None = None

    def replace(self, **kw) -> "DCCLConfig":
        return dataclasses.replace(self, **kw)

    @classmethod
    def from_json(cls, d: dict) -> "DCCLConfig":
        """Inverse of ``dataclasses.asdict`` (JSON lists back to tuples); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown dccl setting(s) {', '.join(bad)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


GRIDS = {"lr": "lr_grid", "ref_lr": "ref_lr_grid", "device_lr": "device_lr_grid", "distill_lr": "distill_lr_grid",
         "basis_lr": "basis_lr_grid", "control_lr": "control_lr_grid"}


def _given(cfg: DCCLConfig, name: str) -> float:
    """The learning rate ``name`` uses when it has no grid (``None`` fields fall back as documented)."""
    v = getattr(cfg, name)
    if v is not None:
        return float(v)
    if name == "control_lr":
        return _given(cfg, "distill_lr")
    return float(cfg.lr)


def load_sequence_data(cfg: DCCLConfig) -> SequenceCTRData:
    from ..data.datasets import load_dataset

    inter = load_dataset(cfg.dataset, cfg.data_dir).interactions
    if cfg.max_users is not None:
        inter = inter.select(np.flatnonzero(inter.user < cfg.max_users))
    return build_sequence_ctr(inter, neg_ratio=cfg.neg_ratio, n_eval_neg=cfg.n_eval_neg, recent=cfg.recent,
                              seed=cfg.seed)


@torch.no_grad()
def evaluate_rows(model: torch.nn.Module, data: SequenceCTRData, part: str, ks=(10,), *,
                  n_groups: int = 20, device_users: np.ndarray | None = None, rows_per_chunk: int = 512,
                  cache: dict | None = None) -> dict:
    """Sampled metrics of ``model`` on ``part`` ("valid" / "test"): overall, per user group
    (``macro_auc``) and, with ``device_users``, for users with / without device training.

    ``cache``: a dict kept by the caller while a :class:`DCCLRanker`'s cloud part is frozen (device
    and basis stages): the cloud features of every candidate are computed once and only the patched
    MLP runs on later calls (same scores)."""
    model.eval()
    rows = data.part(part)
    row_of_user = np.full(data.n_users, -1, np.int64)
    row_of_user[rows.user] = np.arange(len(rows))
    collected: list[np.ndarray] = []
    cached = cache is not None and isinstance(model, DCCLRanker)

    def score(users: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        sel = row_of_user[users.numpy()]
        batch = data.candidate_batch(rows, sel, cand.numpy())
        if cached:
            key = (part, int(sel[0]), len(sel))
            if key not in cache:
                cache[key] = model.features(batch)
            u = batch.user.ids
            v = model.patch_vector(model.user_vec(u), model.profile[u]) if model.patched else None
            s = model.head(cache[key], v).view(cand.shape)
        else:
            s = model(batch).view(cand.shape)
        collected.append(s.numpy().astype(np.float64))
        return s

    res = evaluate_sampled(score, rows.user, rows.pos, rows.neg, ks=ks, batch_size=rows_per_chunk,
                           return_per_user=True)
    per_row = res.pop("per_row")
    scores = np.concatenate(collected)
    samples = data.train_positives[rows.user]
    grp = user_groups(data.train_positives, rows.user, n_groups)
    gm = group_metrics(scores, grp, {k: v for k, v in per_row.items() if "@" in k}, samples, n_groups)
    out = {**res, "macro_auc": gm["macro_auc"], "groups": gm["groups"]}
    if device_users is not None:
        on = device_users[rows.user]
        for name, m in (("device_users", on), ("no_device_users", ~on)):
            if m.any():
                out[name] = {"n": int(m.sum()), "auc": float(per_row["auc"][m].mean()),
                             **{k: float(per_row[k][m].mean()) for k in per_row if "@" in k}}
    return out


def _batches(data: SequenceCTRData, batch_size: int, teacher: torch.Tensor | None):
    def batches(epoch: int, rng: np.random.Generator):
        order = rng.permutation(len(data.train))
        for a in range(0, len(order), batch_size):
            idx = order[a:a + batch_size]
            yield data.batch(idx), (None if teacher is None else teacher[torch.from_numpy(idx)])

    return batches


@torch.no_grad()
def _teacher(model: DCCLRanker, data: SequenceCTRData, chunk: int = 65536) -> torch.Tensor:
    """The deployed (patched) model's probabilities on every training sample ``[N]``."""
    model.eval()
    model.patched = True
    out = [torch.sigmoid(model(data.batch(np.arange(a, min(a + chunk, len(data.train))))))
           for a in range(0, len(data.train), chunk)]
    return torch.cat(out)


def _fit(cfg: DCCLConfig, objective: torch.nn.Module, batches, validate, epochs: int, log, lr: float) -> dict:
    monitor = f"ndcg@{cfg.ks[0]}"
    trainer = Trainer(max_epochs=epochs, lr=lr, monitor=monitor, mode="max", patience=cfg.patience,
                      device="cpu", seed=cfg.seed, progress=False, log=log)
    res = trainer.fit(objective, batches, validate=validate)
    return {"lr": lr, "epochs_run": res.epochs_run, "best_epoch": res.best_epoch, "seconds": res.seconds,
            "best_valid": res.best_metrics.get(monitor), "selected_on": f"validation {monitor}",
            "history": [{k: v for k, v in h.items() if not isinstance(v, (list, dict))} for h in res.history]}


def _choose(cfg: DCCLConfig, name: str, attempt: Callable[[float], tuple[float, object]], log,
            hp: dict) -> tuple[float, object]:
    """Run ``attempt(value) -> (validation NDCG@k, result)`` for every value of ``name``'s grid (or
    the given value alone) and keep the best (first on ties); the choice goes into ``hp[name]``."""
    grid = tuple(float(v) for v in getattr(cfg, GRIDS[name]))
    values = grid or (_given(cfg, name),)
    scores, best = [], None
    for v in values:
        score, res = attempt(v)
        scores.append(float(score))
        if best is None or score > best[0]:
            best = (score, v, res)
        if len(values) > 1:
            log(f"{name} {v:g}: validation ndcg@{cfg.ks[0]} {score:.4f}")
    hp[name] = {"value": best[1], "how": f"grid on validation ndcg@{cfg.ks[0]} (this seed)" if grid else "given",
                "grid": list(values), f"valid_ndcg@{cfg.ks[0]}": scores}
    return best[1], best[2]


def _state(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _summary(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "groups"}


def run_dccl(cfg: DCCLConfig, data: SequenceCTRData | None = None,
             log: Callable[[str], None] | None = None) -> dict:
    """Run every DCCL stage (module docstring); returns the ``metrics.json`` record."""
    log = log or (lambda s: None)
    if cfg.rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {cfg.rounds}")
    if not 0.0 <= cfg.device_fraction <= 1.0:
        raise ValueError(f"device_fraction must be in [0, 1], got {cfg.device_fraction}")
    seed_everything(cfg.seed)
    t_start = time.perf_counter()
    if data is None:
        data = load_sequence_data(cfg)
    load_s = time.perf_counter() - t_start
    k = cfg.ks[0]
    rng = np.random.default_rng([cfg.seed, 23])
    device_users = rng.random(data.n_users) < cfg.device_fraction
    device_users &= data.train_positives > 0

    model = DCCLRanker(data.n_users, data.n_items, 1, data.n_item_macros, dim=cfg.dim, hidden=tuple(cfg.hidden),
                       vec_dim=cfg.vec_dim, patch_rank=cfg.patch_rank, profile_size=data.profile_size,
                       n_profile_fields=len(data.profile_fields))
    model.set_profile(torch.from_numpy(data.profile))
    valid_metric = lambda obj: _summary(  # noqa: E731
        evaluate_rows(model, data, "valid", cfg.ks, n_groups=cfg.n_groups))
    cache: dict = {}  # cloud features of the evaluation candidates while the cloud is frozen
    valid_ndcg = lambda m: evaluate_rows(m, data, "valid", cfg.ks, n_groups=1, cache=cache)[f"ndcg@{k}"]  # noqa: E731
    valid_frozen = lambda obj: _summary(evaluate_rows(model, data, "valid", cfg.ks,  # noqa: E731
                                                      n_groups=cfg.n_groups, cache=cache))
    stages: dict[str, dict] = {}
    training: dict[str, dict] = {}

    def record(name: str, frozen: bool = False) -> None:
        stages[name] = evaluate_rows(model, data, "test", cfg.ks, n_groups=cfg.n_groups, device_users=device_users,
                                     cache=cache if frozen else None)
        m = stages[name]
        log(f"{name}: hit@{k} {m[f'hit@{k}']:.4f}  ndcg@{k} {m[f'ndcg@{k}']:.4f}  macro-AUC {m['macro_auc']:.4f}")

    hp: dict[str, dict] = {}
    dev_kw = dict(steps=cfg.device_steps, l2=cfg.device_l2, validate=valid_ndcg, eval_every=cfg.device_eval_every,
                  log=log)

    # 0. cloud alone (every learning rate of the grid starts from the same initial weights)
    model.patched = False
    model.set_stage("cloud")
    init = _state(model)

    def bce_attempt(start: dict, epochs: int):
        """One grid point of plain BCE training from ``start``: ``lr -> (best valid, (info, weights))``."""
        def attempt(lr: float):
            model.load_state_dict(start)
            info = _fit(cfg, DistillObjective(model), _batches(data, cfg.batch_size, None), valid_metric,
                        epochs, log, lr)
            return info["best_valid"], (info, _state(model))
        return attempt

    _, (training["cloud"], best) = _choose(cfg, "lr", bce_attempt(init, cfg.cloud_epochs), log, hp)
    model.load_state_dict(best)
    record("cloud")

    # 1. MetaPatch on devices (random basis, cloud frozen); the device step size chosen here is kept
    theta0 = model.user_vec.weight.detach().clone()

    def device_attempt(lr: float):
        with torch.no_grad():
            model.user_vec.weight.copy_(theta0)
        dev = train_device_vectors(model, data, device_users, lr=lr, **dev_kw)
        return max(h["valid"] for h in dev.history if h.get("valid") is not None), dev

    device_lr, dev = _choose(cfg, "device_lr", device_attempt, log, hp)
    with torch.no_grad():
        model.user_vec.weight.copy_(dev.theta)
    training["metapatch_device"] = {"lr": device_lr, "best_step": dev.best_step, "seconds": dev.seconds,
                                    "history": dev.history}
    record("metapatch", frozen=True)

    # 2. MoMoDistill rounds (learning rates chosen in round 1, kept for later rounds)
    for r in range(1, cfg.rounds + 1):
        teacher = _teacher(model, data)
        model.patched = False
        model.set_stage("cloud")
        before = _state(model)
        if r == 1 and cfg.control:
            # control: the same number of extra epochs with plain BCE (no KL, no teacher), so the KL's
            # effect is separated from training the cloud longer
            _, (training["control_cloud_plus_bce"], ctrl) = _choose(cfg, "control_lr",
                                                                    bce_attempt(before, cfg.distill_epochs), log, hp)
            model.load_state_dict(ctrl)
            record(f"cloud_plus{cfg.distill_epochs}_bce_no_kl")

        def retrain_attempt(lr: float):
            model.load_state_dict(before)
            info = _fit(cfg, DistillObjective(model, cfg.beta), _batches(data, cfg.batch_size, teacher), valid_metric,
                        cfg.distill_epochs, log, lr)
            return info["best_valid"], (info, _state(model))

        if r == 1:
            distill_lr, (training["round1_cloud"], st) = _choose(cfg, "distill_lr", retrain_attempt, log, hp)
        else:
            training[f"round{r}_cloud"], st = retrain_attempt(distill_lr)[1]
        model.load_state_dict(st)
        record(f"round{r}_cloud_alone")
        cache.clear()  # the cloud changed
        model.patched = True
        model.set_stage("basis")
        before = _state(model)

        def basis_attempt(lr: float):
            model.load_state_dict(before)
            info = _fit(cfg, DistillObjective(model, cfg.beta, cfg.vec_dropout),
                        _batches(data, cfg.batch_size, teacher), valid_frozen, cfg.distill_epochs, log, lr)
            return info["best_valid"], (info, _state(model))

        if r == 1:
            basis_lr, (training["round1_basis"], st) = _choose(cfg, "basis_lr", basis_attempt, log, hp)
        else:
            training[f"round{r}_basis"], st = basis_attempt(basis_lr)[1]
        model.load_state_dict(st)
        dev = train_device_vectors(model, data, device_users, lr=device_lr, **dev_kw)
        training[f"round{r}_device"] = {"lr": device_lr, "best_step": dev.best_step, "seconds": dev.seconds,
                                        "history": dev.history}
        record(f"momodistill_round{r}", frozen=True)

    # reference models under the same protocol and budget as the cloud stage (same grid size)
    for name in cfg.reference:
        cls = get_model_class(name)

        class _Plain(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def loss(self, item):
                return self.m.loss(item[0])

        def ref_attempt(lr: float):
            seed_everything(cfg.seed)
            ref = cls(data.n_users, data.n_items, 1, data.n_item_macros, dim=cfg.dim, hidden=tuple(cfg.hidden))
            info = _fit(cfg, _Plain(ref), _batches(data, cfg.batch_size, None),
                        lambda obj: _summary(evaluate_rows(ref, data, "valid", cfg.ks, n_groups=cfg.n_groups)),
                        cfg.cloud_epochs, log, lr)
            return info["best_valid"], (info, ref)

        sub: dict = {}
        _, (training[name], ref) = _choose(cfg, "ref_lr", ref_attempt, log, sub)
        hp[f"{name}_lr"] = sub["ref_lr"]
        stages[name] = evaluate_rows(ref, data, "test", cfg.ks, n_groups=cfg.n_groups, device_users=device_users)
        log(f"{name}: hit@{k} {stages[name][f'hit@{k}']:.4f}  ndcg@{k} {stages[name][f'ndcg@{k}']:.4f}")

    # device cost
    model.patched = True
    n_train = data.train_positives
    dev_ids = np.flatnonzero(device_users)
    med_user = int(dev_ids[np.argsort(n_train[dev_ids], kind="stable")[len(dev_ids) // 2]]) if len(dev_ids) else 0
    max_user = int(dev_ids[np.argmax(n_train[dev_ids])]) if len(dev_ids) else 0
    timing = [device_step_time(model, data, u, steps=cfg.device_steps, lr=device_lr, l2=cfg.device_l2)
              for u in (med_user, max_user)]  # the full step budget a device may run
    cloud_params = sum(p.numel() for m in model.cloud_modules() for p in m.parameters())
    cost = {"per_user_trainable_parameters": cfg.vec_dim,
            "per_user_state_bytes": cfg.vec_dim * 4,
            "cloud_parameters": int(cloud_params), "basis_and_encoder_parameters": int(model.n_patch_parameters()),
            "device_users": int(device_users.sum()), "no_device_users": int((~device_users).sum()),
            "vectorised_device_seconds_per_user": dev.seconds / max(1, int(device_users.sum())),
            "single_device": [{k2: v for k2, v in t.items() if k2 != "theta"} for t in timing]}

    final = f"momodistill_round{cfg.rounds}" if cfg.rounds else "metapatch"
    rec = {
        "model": "dccl",
        "model_config": model.config(),
        "dataset": cfg.dataset,
        "protocol": {**data.protocol, **describe_sampled(cfg.ks, cfg.n_eval_neg, "uniform, distinct, never "
                                                         "interacted by the user"),
                     "groups": f"{cfg.n_groups} groups of users by training samples (equal user counts); "
                               "group AUC pooled over the group's candidates; macro_auc = mean over groups",
                     "data": data.describe()},
        "metrics": _summary(stages[final]),
        "final_stage": final,
        "stages": stages,
        "train": training,
        "device_cost": cost,
        "seconds": {"load": load_s, "total": time.perf_counter() - t_start},
        "peak_memory_bytes": peak_rss_bytes(),
        "seed": cfg.seed,
        "device": "cpu",
        "version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "config": dataclasses.asdict(cfg),
        "selection": "cloud / basis / reference epochs and device steps chosen on validation NDCG@10 "
                     "(second-to-last interaction per user); learning rates as in 'hyperparameters'; "
                     "test never used for selection",
        "hyperparameters": hp,
    }
    if cfg.onnx or cfg.out:
        rec["ondevice"] = _ondevice(model, data, cfg, Path(cfg.out) if cfg.out else None, med_user)
    if cfg.out:
        _write_run(Path(cfg.out), model, data, rec, device_users)
    return rec


def _ondevice(model: DCCLRanker, data: SequenceCTRData, cfg: DCCLConfig, out: Path | None, user: int) -> dict:
    """Export the download artifact to ONNX, check it against PyTorch on a test request, time it."""
    import tempfile

    from ..models.ondevice.export import export_onnx, onnx_session, request_latency, scorer_inputs

    rows = data.test
    r = int(np.flatnonzero(rows.user == user)[0]) if (rows.user == user).any() else 0
    u = int(rows.user[r])
    items = np.concatenate([rows.pos[r:r + 1], rows.neg[r]])
    inputs = scorer_inputs(model, items, data.item_macro[items], rows.recent[r],
                           model.user_vec.weight[u].detach().numpy(), data.profile[u])
    with tempfile.TemporaryDirectory() as tmp:
        path = (out / "ondevice" / "model.onnx") if out else Path(tmp) / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = export_onnx(model, path, inputs)
        sess = onnx_session(path)
        onnx_scores = sess.run(None, inputs)[0]
        with torch.no_grad():
            model.eval()
            model.patched = True
            torch_scores = model(data.candidate_batch(rows, np.array([r]), items[None, :])).numpy()
        lat = request_latency(sess, inputs)
    return {"onnx_bytes": int(size), "latency_one_thread": lat,
            "max_abs_diff_vs_torch": float(np.abs(onnx_scores - torch_scores).max()),
            "request": {"user": u, "candidates": int(len(items))},
            "device_keeps": f"theta: {cfg.vec_dim} float32 = {cfg.vec_dim * 4} bytes"}


def _write_run(out: Path, model: DCCLRanker, data: SequenceCTRData, rec: dict, device_users: np.ndarray) -> None:
    """The run folder (re-evaluable with ``recgraph eval``, :func:`evaluate_dccl_run`): ``model/``
    (cloud + basis + encoder weights, checksums in ``artifact.json``), ``device/theta.npz`` (every
    device's θ̂ and who trained on a device), ``ondevice/model.onnx``; ``config.json`` records the
    config, the data files' checksums and the sha256 of the other files; ``metrics.json`` last."""
    from .artifacts import ARTIFACT_FORMAT, WEIGHTS
    from .runner import RUN_FORMAT, _dataset_files_info

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "user_vec.weight"}
    atomic_save_tensors(out / "model" / WEIGHTS, state)
    atomic_write_json(out / "model" / "artifact.json", {
        "format": ARTIFACT_FORMAT, "model": "dccl", "config": rec["model_config"],
        "files": file_checksums(out / "model", [WEIGHTS]), "recgraph_version": __version__,
        "git_commit": rec["git_commit"], "excludes": "user_vec (kept on devices: device/theta.npz)"})
    atomic_save_npz(out / "device" / "theta.npz", {"theta": model.user_vec.weight.detach().numpy(),
                                                   "users": np.arange(data.n_users),
                                                   "device_users": device_users.astype(bool)})
    files = [f for f in ("device/theta.npz", "ondevice/model.onnx") if (out / f).exists()]
    atomic_write_json(out / "config.json", {
        "format": RUN_FORMAT, "task": "ondevice", "model": "dccl", "experiment": rec["config"],
        "data": {"dataset": rec["dataset"], "files": _dataset_files_info(rec["dataset"], rec["config"]["data_dir"]),
                 "sequence_data": data.describe()},
        "files": file_checksums(out, files), "final_stage": rec["final_stage"], "protocol": rec["protocol"]})
    atomic_write_json(out / "metrics.json", rec)


def _flat(m: dict) -> dict:
    """Scalar metrics of a stage summary, nested subsets as ``device_users.ndcg@10``."""
    out = {}
    for key, v in m.items():
        if isinstance(v, dict):
            out.update({f"{key}.{k2}": v2 for k2, v2 in v.items() if not isinstance(v2, (dict, list))})
        elif not isinstance(v, list):
            out[key] = v
    return out


def evaluate_dccl_run(path: str | Path, *, data_dir: str | None = None) -> tuple[dict, dict]:
    """Re-evaluate a DCCL run folder (``recgraph eval RUN``): every file checked against the sha256
    recorded when it was written, the deployed model (cloud + basis + encoder + the devices' θ̂)
    rebuilt, the rows rebuilt from the dataset (published checksums verified, the same counts as
    recorded) and the final stage's sampled metrics + macro-AUC recomputed on the test part.
    Returns ``(metrics now, metrics recorded)``, both flat.

    Raises:
        ArtifactError: a missing, changed or unusable file, or data that is not what the run saw."""
    from ..io import load_npz, load_tensors, read_checked_json, read_json, verify_checksums
    from .artifacts import ARTIFACT_FORMAT, WEIGHTS
    from .runner import read_run_config

    path = Path(path)
    meta = read_run_config(path)
    if meta.get("task") != "ondevice":
        raise ArtifactError(path / "config.json", f"is a {meta.get('task')} run, not a DCCL one")
    try:
        cfg = DCCLConfig.from_json(meta["experiment"]).replace(out=None)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(path / "config.json", f"holds a config this recgraph cannot use ({exc})") from None
    if data_dir is not None:
        cfg = cfg.replace(data_dir=data_dir)
    verify_checksums(path, meta.get("files", {}), manifest=str(path / "config.json"))
    mdir = path / "model"
    ameta = read_checked_json(mdir / "artifact.json", fmt=ARTIFACT_FORMAT, what="a DCCL model folder",
                              required=("model", "config", "files"))
    verify_checksums(mdir, ameta["files"], manifest=str(mdir / "artifact.json"))
    dev = load_npz(path / "device" / "theta.npz")
    state = load_tensors(mdir / WEIGHTS)
    state["user_vec.weight"] = torch.from_numpy(np.ascontiguousarray(dev["theta"], dtype=np.float32))
    try:
        model = DCCLRanker(**dict(ameta["config"]))
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(mdir / WEIGHTS, f"does not fit the recorded DCCL config ({str(exc).splitlines()[0]})",
                            "re-run the command that wrote it") from None
    data = load_sequence_data(cfg)
    want = meta["data"].get("sequence_data")
    if want is not None and _jsonable(data.describe()) != want:
        raise ArtifactError(path / "config.json", f"the rows rebuilt from {cfg.dataset} ({data.describe()}) are "
                            f"not the ones the run used ({want})", "evaluate with the data the run was trained on")
    device_users = dev["device_users"].astype(bool)
    model.eval()
    model.patched = meta.get("final_stage", "momodistill") != "cloud"
    now = _summary(evaluate_rows(model, data, "test", cfg.ks, n_groups=cfg.n_groups, device_users=device_users))
    before = read_json(path / "metrics.json").get("metrics", {})
    return _flat(now), _flat(before)


def _jsonable(d: dict) -> dict:
    import json

    from ..io import json_default

    return json.loads(json.dumps(d, default=json_default))


def run_dccl_cli(*, dataset: str, seed: int = 0, rounds: int | None = None, epochs: int | None = None,
                 lr: float | None = None, out: str | Path | None = None, data_dir: str | None = None,
                 overrides: dict | None = None, console=None) -> dict:
    """``recgraph train dccl``: a :class:`DCCLConfig` from the CLI options (``--set KEY=VALUE`` sets any
    config field), one run, a per-stage table."""
    fields = {f.name for f in dataclasses.fields(DCCLConfig)}
    kw = dict(overrides or {})
    bad = sorted(set(kw) - fields)
    if bad:
        raise ValueError(f"unknown dccl setting(s) {', '.join(bad)}; known: {', '.join(sorted(fields))}")
    for key in ("hidden", "ks", "reference", *GRIDS.values()):
        if key in kw:
            v = kw[key]
            kw[key] = tuple(v) if isinstance(v, (list, tuple)) else tuple(
                x for x in str(v).replace("(", "").replace(")", "").split(",") if x)
            if key in ("hidden", "ks"):
                kw[key] = tuple(int(x) for x in kw[key])
            elif key != "reference":
                kw[key] = tuple(float(x) for x in kw[key])
    cfg = DCCLConfig(dataset=dataset, seed=seed, out=str(out) if out else None, data_dir=data_dir, **kw)
    if rounds is not None:
        cfg = cfg.replace(rounds=rounds)
    if epochs is not None:
        cfg = cfg.replace(cloud_epochs=epochs)
    if lr is not None:
        cfg = cfg.replace(lr=lr)
    say = console.print if console is not None else print
    rec = run_dccl(cfg, log=say)
    k = cfg.ks[0]
    from rich.table import Table

    table = Table(title=f"DCCL on {dataset} · test · 1 positive + {cfg.n_eval_neg} negatives")
    for col in ("stage", f"HR@{k}", f"NDCG@{k}", "AUC", "macro-AUC"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for name, m in rec["stages"].items():
        table.add_row(name, *(f"{m[x]:.4f}" for x in (f"hit@{k}", f"ndcg@{k}", "auc", "macro_auc")))
    say(table)
    if "ondevice" in rec:
        o = rec["ondevice"]
        say(f"on-device artifact: {o['onnx_bytes']:,} bytes ONNX, {o['latency_one_thread']['median_ms']:.2f} ms per "
            f"request of {o['request']['candidates']} candidates (1 thread); device keeps {o['device_keeps']}")
    return rec
