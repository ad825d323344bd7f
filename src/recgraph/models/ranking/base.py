"""Shared base of CTR ranking models.

A ranking model is an ``nn.Module`` with ``task = "ctr"``, built from plain typed arguments
``(n_users, n_items, n_user_macros, n_item_macros, dim, ...)``; ``needs`` names the feature groups
its batches must carry (see :meth:`recgraph.graph.features.CTRData.batch`: ``"macro"``, ``"recent"``,
``"sage"``); ``forward(batch: CTRBatch) -> logits [B]``, where ``batch.user`` may have leading size 1
(one user against ``B`` candidates: :meth:`~recgraph.graph.features.CTRData.request`); ``loss(batch)`` = BCE with logits (the
:class:`~recgraph.train.trainer.Trainer` contract).
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from ...data.batch import CTRBatch


def broadcast_rows(*xs: torch.Tensor) -> list[torch.Tensor]:
    """Expand ``[1, ...]`` tensors to the largest leading size among ``xs`` (views, no copy), for
    concatenating a request's shared user-side parts with its per-candidate parts."""
    n = max(x.shape[0] for x in xs)
    return [x.expand(n, *x.shape[1:]) if x.shape[0] != n else x for x in xs]


class CTRModel(nn.Module):
    task = "ctr"
    needs: frozenset = frozenset()
    train_defaults: dict = {"lr": 3e-3, "weight_decay": 0.0, "batch_size": 128}

    def forward(self, batch: CTRBatch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def batch_kwargs(self) -> dict:
        """Extra arguments for :meth:`~recgraph.graph.features.CTRData.batch` / ``loader`` / ``request``
        (e.g. the sampled GNN's ``fanouts``)."""
        return {}

    def loss(self, batch: CTRBatch) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self(batch), batch.label.float())

    @torch.no_grad()
    def predict(self, batch: CTRBatch) -> torch.Tensor:
        return self(batch)

    def config(self) -> dict:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, "_cfg", {}).get(k) for k in sig.parameters if k != "self"}

    def _save_config(self, local: dict) -> None:
        self._cfg = {k: v for k, v in local.items() if k not in ("self", "__class__")}
