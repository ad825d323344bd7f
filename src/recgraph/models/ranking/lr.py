"""Logistic regression on one-hot user, item, user-macro and item-macro ids."""

from __future__ import annotations

import torch
from torch import nn

from ...data.batch import CTRBatch
from ..registry import register
from .base import CTRModel


@register("lr")
class LR(CTRModel):

    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1):
        super().__init__()
        self._save_config(locals())
        self.w_user = nn.Embedding(n_users, 1)
        self.w_item = nn.Embedding(n_items, 1)
        self.w_um = nn.Embedding(n_user_macros, 1)
        self.w_im = nn.Embedding(n_item_macros, 1)
        for e in (self.w_user, self.w_item, self.w_um, self.w_im):
            nn.init.zeros_(e.weight)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, batch: CTRBatch) -> torch.Tensor:
        return (self.bias + self.w_user(batch.user.ids) + self.w_item(batch.item.ids)
                + self.w_um(batch.user.macro) + self.w_im(batch.item.macro)).squeeze(-1)
