"""Dice activation (DIN): ``p(x) * x + (1 - p(x)) * alpha * x`` with ``p = sigmoid((x - mean) / std)``.

Training normalises with the batch's statistics. At evaluation (default, fixed) ``p`` uses
**bias-corrected** exponential moving averages of those statistics (zero-initialised, divided by
``1 - (1 - momentum) ** steps`` as in Adam), so ``p`` depends only on the sample — scores are
identical for every batch size — and the statistics are right from the first step. (A plain
``BatchNorm1d`` with ``momentum = 0.01`` starts its running variance at 1 and needs ~1,000 steps to
forget it; Dice inputs have variance ~1e-5 in these CTR models, so for runs of tens to hundreds of
steps the evaluated activation was a near-constant ``p ≈ 0.5`` unlike anything seen in training.)

``batch_stats_at_eval=True`` reproduces the official MacGNN code, which normalises with the
current batch's statistics at evaluation too (scores then depend on the batch size).
"""

from __future__ import annotations

import torch
from torch import nn


class Dice(nn.Module):
    def __init__(self, dim: int, *, eps: float = 1e-8, momentum: float = 0.1, batch_stats_at_eval: bool = False):
        super().__init__()
        self.eps, self.momentum = float(eps), float(momentum)
        self.alpha = nn.Parameter(torch.zeros(dim))
        self.batch_stats_at_eval = batch_stats_at_eval
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.zeros(dim))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def _eval_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        t = int(self.steps)
        if t == 0:  # never trained: identity normalisation
            return torch.zeros_like(self.running_mean), torch.ones_like(self.running_var)
        corr = 1.0 - (1.0 - self.momentum) ** t
        return self.running_mean / corr, self.running_var / corr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.batch_stats_at_eval:
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            if self.training:
                with torch.no_grad():
                    n = x.shape[0]
                    unbiased = var * (n / max(n - 1, 1))
                    self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
                    self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased.detach())
                    self.steps += 1
        else:
            mean, var = self._eval_stats()
            mean, var = mean.to(x.dtype), var.to(x.dtype)
        z = (x - mean) / torch.sqrt(var + self.eps)
        p = torch.sigmoid(z)
        return p * x + (1 - p) * self.alpha * x
