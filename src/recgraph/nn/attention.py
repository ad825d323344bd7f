"""Attention layers shared by ranking models.

:class:`SlotAttention` — target-aware attention over neighbour slots (MacGNN macro neighbours or
recent behaviours). Logits are ``q·k / sqrt(d) + bias`` (``bias``: e.g. ``log(n + 1) / τ`` for
macro counts) and the softmax runs **over the slots**, with empty / padding slots masked out.
Two switches reproduce the official MacGNN code:

* ``official_noop_softmax``: the official code takes the softmax over a length-1 axis, so every
  attention weight is 1 and the output is ``Σ_m w_m · v_m`` with ``w = softmax(bias)`` alone.
* ``attend_masked``: masked (zero-count / padding) slots are *not* masked and take weight.

:class:`DINAttention` — DIN's activation unit: an MLP on ``[q, k, q - k, q * k]`` gives one
unnormalised weight per behaviour (masked slots 0); output ``Σ w_j k_j``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SlotAttention(nn.Module):
    def __init__(self, query_dim: int, key_dim: int, out_dim: int, *, official_noop_softmax: bool = False,
                 attend_masked: bool = False):
        super().__init__()
        self.q = nn.Linear(query_dim, key_dim, bias=False)
        self.k = nn.Linear(key_dim, key_dim, bias=False)
        self.v = nn.Linear(key_dim, out_dim, bias=False)
        self.scale = 1.0 / math.sqrt(key_dim)
        self.official_noop_softmax, self.attend_masked = official_noop_softmax, attend_masked

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """query [B, Dq], keys [B, L, D], mask [B, L] (True = real slot), bias [B, L] or None → [B, out]."""
        v = self.v(keys)
        bias = torch.zeros(mask.shape, dtype=keys.dtype, device=keys.device) if bias is None else bias
        use = torch.ones_like(mask) if self.attend_masked else mask
        neg = torch.finfo(keys.dtype).min
        if self.official_noop_softmax:
            w = torch.softmax(bias.masked_fill(~use, neg), dim=1)  # count weights only; attention ≡ 1
            w = w * use.any(dim=1, keepdim=True)
            return (w.unsqueeze(-1) * v).sum(dim=1)
        logits = (self.k(keys) @ self.q(query).unsqueeze(-1)).squeeze(-1) * self.scale + bias
        logits = logits.masked_fill(~use, neg)
        w = torch.softmax(logits, dim=1) * use.any(dim=1, keepdim=True)  # rows with no slot → 0
        return (w.unsqueeze(-1) * v).sum(dim=1)


class DINAttention(nn.Module):
    def __init__(self, dim: int, hidden: tuple[int, ...] = (36,)):
        super().__init__()
        layers, d = [], 4 * dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.Sigmoid()]
            d = h
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q = query.unsqueeze(1).expand_as(keys)
        w = self.net(torch.cat([q, keys, q - keys, q * keys], dim=-1)).squeeze(-1)
        w = w * mask
        return (w.unsqueeze(-1) * keys).sum(dim=1)
