"""Shared base of multi-task ranking models.

A multi-task model is an ``nn.Module`` with ``task = "multitask"``, built from plain typed
arguments ``(n_users, n_items, n_user_macros, n_item_macros, n_tasks, dim, ...)``; ``needs`` names
the feature groups of its batches (:meth:`recgraph.data.multitask.MultiTaskData.batch`:
``"recent"``, ``"macro"`` (shared-graph macro slots), ``"task_macro"`` (each task graph's slots));
``forward(batch) -> logits [B, T]``; ``loss(batch)`` = the sum over tasks of each task's mean BCE
(one loss per task, equal weights); :meth:`MultiTaskModel.score` is the serving score — a
weighted sum of the task probabilities. ``batch.user`` may have leading size 1 (one user against
``B`` candidates, :meth:`~recgraph.data.multitask.MultiTaskData.request`).

:class:`MicroEncoder` is the input every multi-task model shares, so the comparison is about the
multi-task structure and the macro graphs, not about features: embeddings of the user, the item,
their macro nodes (user cluster, item category), and target-attention pools of the user's 20 most
recent items (query: the target item) and of the item's 20 most recent users (query: the user),
all from the shared graph before the snapshot cutoff → ``[B, 6·dim]``.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.attention import SlotAttention
from ..ranking.base import broadcast_rows


def relu_mlp(in_dim: int, dims: Sequence[int]) -> nn.Sequential:
    """``Linear → ReLU`` per entry of ``dims`` (an expert or a shared bottom; output after ReLU)."""
    layers: list[nn.Module] = []
    for h in dims:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        in_dim = h
    return nn.Sequential(*layers)


def tower(in_dim: int, hidden: Sequence[int]) -> nn.Sequential:
    """A task tower: ``relu_mlp(hidden)`` then one logit."""
    return nn.Sequential(relu_mlp(in_dim, hidden), nn.Linear(hidden[-1] if hidden else in_dim, 1))


class MicroEncoder(nn.Module):
    """Micro features of a sample → ``[B, 6·dim]`` (see the module docstring)."""

    def __init__(self, n_users: int, n_items: int, n_user_macros: int, n_item_macros: int, dim: int):
        super().__init__()
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.user = nn.Embedding(n_users + 1, dim)        # + padding row (recent users)
        self.item = nn.Embedding(n_items + 1, dim)        # + padding row (recent items)
        self.umacro = nn.Embedding(n_user_macros + 1, dim)  # + padding slot id
        self.imacro = nn.Embedding(n_item_macros + 1, dim)
        for e in (self.user, self.item, self.umacro, self.imacro):
            nn.init.normal_(e.weight, std=0.01)
        self.att_ur = SlotAttention(dim, dim, dim)
        self.att_ir = SlotAttention(dim, dim, dim)

    @property
    def out_dim(self) -> int:
        return 6 * self.dim

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(x [B, 6·dim], e_user [B|1, dim], e_item [B, dim])``."""
        u, i = batch.user, batch.item
        eu, ei = self.user(u.ids), self.item(i.ids)
        ur = self.att_ur(ei, self.item(u.recent), u.recent != self.n_items)
        ir = self.att_ir(eu, self.user(i.recent), i.recent != self.n_users)
        x = torch.cat(broadcast_rows(eu, self.umacro(u.macro), ur, ei, self.imacro(i.macro), ir), dim=-1)
        return x, eu, ei


class MultiTaskModel(nn.Module):
    task = "multitask"
    needs: frozenset = frozenset({"recent"})
    train_defaults: dict = {"lr": 2e-3, "weight_decay": 0.0, "batch_size": 256}

    def forward(self, batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def batch_kwargs(self) -> dict:
        return {}

    def loss(self, batch) -> torch.Tensor:
        """Σ_t mean BCE of task t (one loss per task, equal weights)."""
        logits = self(batch)
        y = batch.labels.to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=0).sum()

    @torch.no_grad()
    def predict(self, batch) -> torch.Tensor:
        return self(batch)

    @torch.no_grad()
    def score(self, batch, weights: Sequence[float] | torch.Tensor) -> torch.Tensor:
        """Serving score ``[B] = Σ_t w_t · sigmoid(logit_t)`` (e.g. a request's task weights)."""
        p = torch.sigmoid(self(batch))
        w = torch.as_tensor(weights, dtype=p.dtype, device=p.device).reshape(-1)
        if w.numel() != p.shape[1]:
            raise ValueError(f"score: {w.numel()} task weight(s) given for {p.shape[1]} task(s)")
        return p @ w

    def config(self) -> dict:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, "_cfg", {}).get(k) for k in sig.parameters if k != "self"}

    def _save_config(self, local: dict) -> None:
        self._cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in local.items()
                     if k not in ("self", "__class__")}
