"""Shared-Bottom (Caruana, "Multitask Learning", 1997): one bottom network shared by every task,
one tower per task: ``y_t = h_t(f(x))``.

``x`` = :class:`~recgraph.models.multitask.base.MicroEncoder` output ``[B, 6·dim]``; ``f`` =
ReLU MLP ``bottom``; ``h_t`` = ReLU MLP ``tower_hidden`` → 1 logit.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register
from .base import MicroEncoder, MultiTaskModel, relu_mlp, tower


@register("shared-bottom")
class SharedBottom(MultiTaskModel):
    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1, n_tasks: int = 1,
                 dim: int = 16, bottom: tuple[int, ...] = (128, 64), tower_hidden: tuple[int, ...] = (32,)):
        super().__init__()
        self._save_config(locals())
        self.n_tasks = n_tasks
        self.encoder = MicroEncoder(n_users, n_items, n_user_macros, n_item_macros, dim)
        self.bottom = relu_mlp(self.encoder.out_dim, bottom)
        self.towers = nn.ModuleList(tower(bottom[-1], tower_hidden) for _ in range(n_tasks))

    def forward(self, batch) -> torch.Tensor:
        """Logits ``[B, T]``."""
        z = self.bottom(self.encoder(batch)[0])
        return torch.cat([h(z) for h in self.towers], dim=-1)
