"""Device-side training of the per-user MetaPatch vectors, simulated for every user at once.

Each device minimises its own loss with the downloaded model (cloud ``f``, basis, encoder) frozen::

    L_u(θ̂_u) = mean_{(x, y) ∈ D_u} BCE(y, f_patched(x; θ̂_u)) + λ ||θ̂_u||²

over its own training samples ``D_u``, full-batch Adam from its current θ̂_u. All users run in one
vectorised loop: θ̂ is a ``[n_users, m]`` table, each sample's BCE is weighted by ``1 / |D_u|`` and
the objective is ``Σ_u L_u``. Since θ̂_u only receives gradient from ``L_u`` and Adam's update is
per coordinate, one step of the joint loop is exactly one full-batch Adam step of every device on
its own loss (``tests/models/ondevice/test_device.py`` checks this against a single-user run).

The frozen cloud part up to the first patched layer does not depend on θ̂, so its output ``[N, H1]``
is computed once; a step runs only the patches and the layers after them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...data.sequence_ctr import SequenceCTRData
from .dccl import DCCLRanker

__all__ = ["DeviceResult", "train_device_vectors", "device_step_time"]


@dataclass
class DeviceResult:
    theta: torch.Tensor                   # [n_users, m] selected vectors (rows of non-device users unchanged)
    best_step: int
    seconds: float
    history: list = field(default_factory=list)


@torch.no_grad()
def _first_hidden(model: DCCLRanker, data: SequenceCTRData, idx: np.ndarray, chunk: int) -> torch.Tensor:
    """Frozen cloud output before the first patch ``[len(idx), H1]``."""
    out = []
    first = model.mlp.net[:2]
    for a in range(0, len(idx), chunk):
        out.append(first(model.features(data.batch(idx[a:a + chunk]))))
    return torch.cat(out) if out else torch.zeros(0, model.mlp.net[0].out_features)


def _patched_logits(model: DCCLRanker, h1: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return model.head(model.patches[0](h1, v), v, start=2)


def train_device_vectors(model: DCCLRanker, data: SequenceCTRData, device_users: np.ndarray, *, steps: int = 30,
                         lr: float = 0.05, l2: float = 1e-4, chunk: int = 65536,
                         validate: Callable[[DCCLRanker], float] | None = None, eval_every: int = 5,
                         log: Callable[[str], None] | None = None) -> DeviceResult:
    """Train θ̂ of ``device_users`` (bool ``[n_users]``) from ``model.user_vec``; see the module docstring.

    With ``validate`` (``model -> validation metric``, higher is better; called with the candidate
    θ̂ written into ``model.user_vec`` and ``model.patched = True``) the number of steps is chosen
    on validation among ``0, eval_every, 2·eval_every, …, steps``; else the last step is kept. The
    selected θ̂ is left in ``model.user_vec``.
    """
    if device_users.dtype != bool or device_users.shape != (data.n_users,):
        raise ValueError(f"device_users must be a bool mask of shape ({data.n_users},)")
    model.set_stage("frozen")
    model.eval()
    model.patched = True
    t0 = time.perf_counter()
    idx = np.flatnonzero(device_users[data.train.user])
    h1 = _first_hidden(model, data, idx, chunk)
    users = torch.from_numpy(data.train.user[idx])
    y = torch.from_numpy(data.train.label[idx])
    n_per_user = torch.bincount(users, minlength=data.n_users).clamp(min=1).float()
    w = 1.0 / n_per_user[users]
    profile = model.profile
    theta = torch.nn.Parameter(model.user_vec.weight.detach().clone())
    mask = torch.from_numpy(device_users).float().unsqueeze(1)
    opt = torch.optim.Adam([theta], lr=lr)

    def evaluate(step: int) -> float | None:
        if validate is None:
            return None
        with torch.no_grad():
            model.user_vec.weight.copy_(theta.detach())
        return float(validate(model))

    history = [{"step": 0, "valid": evaluate(0)}]
    best_val, best_step, best_theta = history[0]["valid"], 0, theta.detach().clone()
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for a in range(0, len(idx), chunk):
            sl = slice(a, a + chunk)
            u = users[sl]
            v = model.patch_vector(theta[u], profile[u])
            bce = F.binary_cross_entropy_with_logits(_patched_logits(model, h1[sl], v), y[sl], reduction="none")
            loss = (w[sl] * bce).sum()
            loss.backward()
            total += float(loss.detach())
        reg = l2 * (mask * theta * theta).sum()
        reg.backward()
        theta.grad.mul_(mask)  # non-device users never move (Adam with zero grad keeps them fixed from 0 state)
        opt.step()
        row = {"step": step, "loss_sum_over_users": total + float(reg.detach())}
        if validate is not None and (step % eval_every == 0 or step == steps):
            row["valid"] = evaluate(step)
            if row["valid"] > best_val:
                best_val, best_step, best_theta = row["valid"], step, theta.detach().clone()
            if log:
                log(f"device step {step}: loss {row['loss_sum_over_users']:.3f}  valid {row['valid']:.4f}")
        history.append(row)
    if validate is None:
        best_step, best_theta = steps, theta.detach().clone()
    with torch.no_grad():
        model.user_vec.weight.copy_(best_theta)
    return DeviceResult(best_theta, best_step, time.perf_counter() - t0, history)


def device_step_time(model: DCCLRanker, data: SequenceCTRData, user: int, *, steps: int, lr: float = 0.05,
                     l2: float = 1e-4) -> dict:
    """Wall time of what one phone does for ``user`` alone: the frozen model's features of its own
    training samples, then ``steps`` full-batch Adam steps on its θ̂ (one thread, this CPU). Returns wall
    ``seconds`` and the process's ``cpu_seconds`` (on a busy shared machine the wall time is mostly waiting)."""
    model.eval()
    t0, c0 = time.perf_counter(), time.process_time()
    idx = np.flatnonzero(data.train.user == user)
    h1 = _first_hidden(model, data, idx, 1 << 20)
    y = torch.from_numpy(data.train.label[idx])
    prof = model.profile[user:user + 1]
    theta = torch.nn.Parameter(model.user_vec.weight[user:user + 1].detach().clone())
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        v = model.patch_vector(theta, prof)
        loss = F.binary_cross_entropy_with_logits(_patched_logits(model, h1, v), y) + l2 * (theta * theta).sum()
        loss.backward()
        opt.step()
    return {"user": int(user), "samples": int(len(idx)), "steps": int(steps),
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "theta": theta.detach()}
