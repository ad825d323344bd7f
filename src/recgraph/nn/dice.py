"""Dice activation (DIN): ``p(x) * x + (1 - p(x)) * alpha * x`` with ``p = sigmoid(BN(x))``.

Default (fixed): BatchNorm with running statistics, so at evaluation ``p`` depends only on the
sample and the output is identical for every batch size. ``batch_stats_at_eval=True`` reproduces
the official MacGNN code, which normalises with the current batch's statistics at evaluation too.
"""

from __future__ import annotations

import torch
from torch import nn


class Dice(nn.Module):
    def __init__(self, dim: int, *, eps: float = 1e-8, momentum: float = 0.01, batch_stats_at_eval: bool = False):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, eps=eps, momentum=momentum, affine=False)
        self.alpha = nn.Parameter(torch.zeros(dim))
        self.batch_stats_at_eval = batch_stats_at_eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch_stats_at_eval and not self.training:
            mean = x.mean(dim=0, keepdim=True)
            var = x.var(dim=0, unbiased=False, keepdim=True)
            z = (x - mean) / torch.sqrt(var + self.bn.eps)
        else:
            z = self.bn(x)
        p = torch.sigmoid(z)
        return p * x + (1 - p) * self.alpha * x
