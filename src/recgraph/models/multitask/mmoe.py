"""MMoE (Ma et al., KDD 2018, "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts").

Paper, eq. 5-6: ``y_k = h^k(f^k(x))``, ``f^k(x) = Σ_i g^k(x)_i f_i(x)``, ``g^k(x) =
softmax(W_gk x)`` with ``W_gk ∈ R^{n×d}`` (no bias), ``f_i`` the ``n`` expert networks shared by
every task, ``h^k`` a tower per task.

Here ``x`` = :class:`~recgraph.models.multitask.base.MicroEncoder` output ``[B, 6·dim]``; an expert
is a ReLU MLP ``expert_hidden``; a tower a ReLU MLP ``tower_hidden`` → 1 logit.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register
from .base import MicroEncoder, MultiTaskModel, relu_mlp, tower


class MixtureOfExperts(nn.Module):
    """``n_experts`` experts and ``n_gates`` softmax gates over them: ``[B, in] → [B, n_gates, out]``."""

    def __init__(self, in_dim: int, n_experts: int, expert_hidden: tuple[int, ...], n_gates: int):
        super().__init__()
        self.experts = nn.ModuleList(relu_mlp(in_dim, expert_hidden) for _ in range(n_experts))
        self.gates = nn.ModuleList(nn.Linear(in_dim, n_experts, bias=False) for _ in range(n_gates))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = torch.stack([f(x) for f in self.experts], dim=1)                  # [B, n, out]
        g = torch.stack([torch.softmax(w(x), dim=-1) for w in self.gates], 1)  # [B, K, n]
        return g @ e                                                           # [B, K, out]


@register("mmoe")
class MMoE(MultiTaskModel):
    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1, n_tasks: int = 1,
                 dim: int = 16, n_experts: int = 4, expert_hidden: tuple[int, ...] = (64,),
                 tower_hidden: tuple[int, ...] = (32,)):
        super().__init__()
        self._save_config(locals())
        self.n_tasks = n_tasks
        self.encoder = MicroEncoder(n_users, n_items, n_user_macros, n_item_macros, dim)
        self.moe = MixtureOfExperts(self.encoder.out_dim, n_experts, expert_hidden, n_tasks)
        self.towers = nn.ModuleList(tower(expert_hidden[-1], tower_hidden) for _ in range(n_tasks))

    def forward(self, batch) -> torch.Tensor:
        """Logits ``[B, T]``."""
        z = self.moe(self.encoder(batch)[0])
        return torch.cat([h(z[:, k]) for k, h in enumerate(self.towers)], dim=-1)
