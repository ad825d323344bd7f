"""PLE (Tang et al., RecSys 2020, "Progressive Layered Extraction").

Paper, eq. 1-6 (CGC and its multi-level extension): at extraction level ``j`` task ``k`` has
``m_k`` task-specific experts and all tasks share ``m_s`` shared experts;

* task gate ``g^{k,j}(x) = w^{k,j}(g^{k,j-1}) S^{k,j}(x)`` with ``w^{k,j}(x) = softmax(W^{k,j} x)``
  and ``S^{k,j}`` = the stacked outputs of task ``k``'s experts and the shared experts, whose
  input is the previous level's output of task ``k`` (task experts) or of the shared branch
  (shared experts);
* shared gate (every level but the last) over **all** experts of the level, on the shared branch;
* ``y_k = t^k(g^{k,N})`` with a tower per task. ``n_levels = 1`` is CGC.

Gates are linear without bias (as in MMoE); ``x`` = :class:`MicroEncoder` output; experts are ReLU
MLPs ``expert_hidden``; towers ReLU MLPs ``tower_hidden`` → 1 logit.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register
from .base import MicroEncoder, MultiTaskModel, relu_mlp, tower


class ExtractionLevel(nn.Module):
    """One CGC level: inputs ``[T + 1]`` tensors ``[B, in]`` (tasks..., shared) → same count of
    ``[B, out]`` (the shared output only when ``shared_out``)."""

    def __init__(self, in_dim: int, n_tasks: int, task_experts: int, shared_experts: int,
                 expert_hidden: tuple[int, ...], shared_out: bool):
        super().__init__()
        self.n_tasks, self.m_t, self.m_s, self.shared_out = n_tasks, task_experts, shared_experts, shared_out
        self.task_experts = nn.ModuleList(nn.ModuleList(relu_mlp(in_dim, expert_hidden) for _ in range(task_experts))
                                          for _ in range(n_tasks))
        self.shared_experts = nn.ModuleList(relu_mlp(in_dim, expert_hidden) for _ in range(shared_experts))
        self.task_gates = nn.ModuleList(nn.Linear(in_dim, task_experts + shared_experts, bias=False)
                                        for _ in range(n_tasks))
        self.shared_gate = (nn.Linear(in_dim, n_tasks * task_experts + shared_experts, bias=False)
                            if shared_out else None)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        shared = [f(xs[-1]) for f in self.shared_experts]
        task = [[f(xs[k]) for f in self.task_experts[k]] for k in range(self.n_tasks)]
        out = []
        for k in range(self.n_tasks):
            e = torch.stack(task[k] + shared, dim=1)                       # [B, m_k + m_s, out]
            g = torch.softmax(self.task_gates[k](xs[k]), dim=-1)           # [B, m_k + m_s]
            out.append((g.unsqueeze(1) @ e).squeeze(1))
        if self.shared_gate is not None:
            e = torch.stack([f for t in task for f in t] + shared, dim=1)
            g = torch.softmax(self.shared_gate(xs[-1]), dim=-1)
            out.append((g.unsqueeze(1) @ e).squeeze(1))
        return out


@register("ple")
class PLE(MultiTaskModel):
    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1, n_tasks: int = 1,
                 dim: int = 16, n_levels: int = 2, task_experts: int = 1, shared_experts: int = 1,
                 expert_hidden: tuple[int, ...] = (64,), tower_hidden: tuple[int, ...] = (32,)):
        super().__init__()
        if n_levels < 1:
            raise ValueError(f"n_levels must be >= 1, got {n_levels}")
        self._save_config(locals())
        self.n_tasks = n_tasks
        self.encoder = MicroEncoder(n_users, n_items, n_user_macros, n_item_macros, dim)
        dims = [self.encoder.out_dim] + [expert_hidden[-1]] * n_levels
        self.levels = nn.ModuleList(ExtractionLevel(dims[j], n_tasks, task_experts, shared_experts, expert_hidden,
                                                    shared_out=j < n_levels - 1) for j in range(n_levels))
        self.towers = nn.ModuleList(tower(expert_hidden[-1], tower_hidden) for _ in range(n_tasks))

    def forward(self, batch) -> torch.Tensor:
        """Logits ``[B, T]``."""
        x = self.encoder(batch)[0]
        xs = [x] * (self.n_tasks + 1)
        for level in self.levels:
            xs = level(xs)
        return torch.cat([h(xs[k]) for k, h in enumerate(self.towers)], dim=-1)
