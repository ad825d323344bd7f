"""DeepFM: FM (first + second order) and an MLP over the field embeddings (user, item, user macro,
item macro), summed logits."""

from __future__ import annotations

import torch
from torch import nn

from ...nn.mlp import MLP
from ...data.batch import CTRBatch
from ..registry import register
from .base import CTRModel, broadcast_rows


@register("deepfm")
class DeepFM(CTRModel):

    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1, dim: int = 10,
                 hidden: tuple[int, ...] = (200, 80), dropout: float = 0.0):
        super().__init__()
        self._save_config(locals())
        sizes = (n_users, n_items, n_user_macros, n_item_macros)
        self.emb = nn.ModuleList([nn.Embedding(n, dim) for n in sizes])
        self.lin = nn.ModuleList([nn.Embedding(n, 1) for n in sizes])
        for e in self.emb:
            nn.init.normal_(e.weight, std=0.01)
        for e in self.lin:
            nn.init.zeros_(e.weight)
        self.bias = nn.Parameter(torch.zeros(1))
        self.mlp = MLP(len(sizes) * dim, tuple(hidden), activation="relu", dropout=dropout)

    def forward(self, batch: CTRBatch) -> torch.Tensor:
        ids = (batch.user.ids, batch.item.ids, batch.user.macro, batch.item.macro)
        v = torch.stack(broadcast_rows(*(e(i) for e, i in zip(self.emb, ids))), dim=1)  # [B, F, d]
        first = sum(broadcast_rows(*(l(i) for l, i in zip(self.lin, ids)))).squeeze(-1)
        fm = 0.5 * ((v.sum(1) ** 2) - (v ** 2).sum(1)).sum(-1)
        return self.bias + first + fm + self.mlp(v.flatten(1)).squeeze(-1)
