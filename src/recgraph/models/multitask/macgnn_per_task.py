"""Per-task MacGNN: the single-task reference of the multi-task comparison.

One independent :class:`~recgraph.models.ranking.macgnn.MacGNN` per task (no shared parameter),
each on the standard MacGNN input of the shared all-behaviour graph (its macro neighbourhoods and
recent lists) and trained on its own task's BCE. The losses are summed, but the parameter sets
are disjoint and Adam is per-parameter, so each MacGNN gets exactly the gradient steps it would
get alone on the same batches; the only coupling is the early-stopping epoch, chosen on the mean
validation AUC over tasks like every other multi-task model.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ranking.macgnn import MacGNN
from ..registry import register
from .base import MultiTaskModel


@register("macgnn-per-task")
class PerTaskMacGNN(MultiTaskModel):
    needs = frozenset({"macro", "recent"})

    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1, n_tasks: int = 1,
                 dim: int = 16, tau: float = 1.9, hidden: tuple[int, ...] = (200, 80)):
        super().__init__()
        self._save_config(locals())
        self.n_tasks = n_tasks
        self.models = nn.ModuleList(MacGNN(n_users, n_items, n_user_macros, n_item_macros, dim=dim, tau=tau,
                                           hidden=hidden) for _ in range(n_tasks))

    def forward(self, batch) -> torch.Tensor:
        """Logits ``[B, T]``: column ``t`` from MacGNN ``t``."""
        return torch.stack([m(batch) for m in self.models], dim=-1)
