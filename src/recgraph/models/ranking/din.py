"""DIN: target attention (activation unit, unnormalised weights, padding masked) over the user's
recent positive items as of the sample's feature cutoff; MLP with Dice over
``[e_u, e_i, e_imacro, interest, e_i * interest]``."""

from __future__ import annotations

import torch
from torch import nn

from ...nn.attention import DINAttention
from ...nn.mlp import MLP
from ...data.batch import CTRBatch
from ..registry import register
from .base import CTRModel, broadcast_rows


@register("din")
class DIN(CTRModel):
    needs = frozenset({"recent"})

    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1, dim: int = 10,
                 hidden: tuple[int, ...] = (200, 80)):
        super().__init__()
        self._save_config(locals())
        self.n_items = n_items
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.im = nn.Embedding(n_item_macros, dim)
        for e in (self.user, self.item, self.im):
            nn.init.normal_(e.weight, std=0.01)
        with torch.no_grad():
            self.item.weight[n_items].zero_()
        self.att = DINAttention(dim)
        self.mlp = MLP(5 * dim, tuple(hidden), activation="dice")

    def forward(self, batch: CTRBatch) -> torch.Tensor:
        ei = self.item(batch.item.ids)
        rec = batch.user.recent
        interest = self.att(ei, self.item(rec), (rec != self.n_items).float())
        x = torch.cat(broadcast_rows(self.user(batch.user.ids), ei, self.im(batch.item.macro), interest, ei * interest), -1)
        return self.mlp(x).squeeze(-1)
