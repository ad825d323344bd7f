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
import torch.nn.functional as F
from torch import nn


class SlotAttention(nn.Module):
    def __init__(self, query_dim: int, key_dim: int, out_dim: int, *, official_noop_softmax: bool = False,
                 attend_masked: bool = False, cosine: bool = False):
        super().__init__()
        self.q = nn.Linear(query_dim, key_dim, bias=False)
        self.k = nn.Linear(key_dim, key_dim, bias=False)
        self.v = nn.Linear(key_dim, out_dim, bias=False)
        self.scale = 1.0 / math.sqrt(key_dim)
        self.official_noop_softmax, self.attend_masked, self.cosine = official_noop_softmax, attend_masked, cosine
        if cosine:  # logits = s · cos(k, W_kᵀ W_q q), s learned (log-parametrised, starts at 1)
            self.log_scale = nn.Parameter(torch.zeros(()))

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """query [B, Dq], keys [B, L, D], mask [B, L] (True = real slot), bias [B, L] or None → [B, out].

        Either side may have batch size 1 and is then shared by all rows (one user's neighbourhood
        scored against B candidate items, or one user as the query of B items' neighbourhoods).
        Keys are never projected: ``(W_k k)·(W_q q) = k·(W_kᵀ W_q q)`` and ``Σ w_l W_v k_l =
        W_v Σ w_l k_l``, so the query is mapped into key space once and the weighted sum of raw
        keys is projected once per row — O(L·D) per row instead of O(L·D²)."""
        qk = self._query_in_key_space(query)
        kn = F.normalize(keys, dim=-1) if self.cosine else keys
        logits = None
        if self.official_noop_softmax:
            pass
        elif keys.shape[0] == 1:  # shared keys: [B, D] x [D, L]
            logits = qk @ kn[0].T
        elif qk.shape[0] == 1:    # shared query: [B, L, D] x [D]
            logits = kn @ qk[0]
        else:  # multiply-and-sum: batched [L, D] x [D] matvecs as bmm are ~3x slower on CPU
            logits = (kn * qk.unsqueeze(-2)).sum(-1)
        w = self._weights(logits, mask, bias)
        agg = w @ keys[0] if keys.shape[0] == 1 else (w.unsqueeze(-1) * keys).sum(-2)
        out = self.v(agg)
        return out.expand(max(query.shape[0], keys.shape[0]), out.shape[-1])  # official no-op: query-free

    def forward_table(self, query: torch.Tensor, table: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                      bias: torch.Tensor | None = None) -> torch.Tensor:
        """``forward(query, table[ids], mask, bias)`` for keys from a small table ``[T, D]`` (macro
        embeddings; slot ids distinct within a row except masked ones): logits against the whole
        table ``[B, T]`` are gathered per slot and the weights scattered back to ``[B, T]``, so the
        work is two ``[B, T] × [T, D]`` matmuls and no ``[B, L, D]`` gather. When the table is much
        larger than the slot list (``8 L < T``: Taobao's 2,912 categories against 64 slots) the slot
        keys are gathered instead (``B·L·D`` rather than ``B·T·D`` work; same result)."""
        if ids.shape[1] * 8 < table.shape[0]:
            return self.forward(query, F.embedding(ids, table), mask, bias)
        n = max(query.shape[0], ids.shape[0])
        ids_b = ids.expand(n, ids.shape[1])
        logits = None
        if not self.official_noop_softmax:
            tn = F.normalize(table, dim=-1) if self.cosine else table
            logits = torch.gather((self._query_in_key_space(query) @ tn.T).expand(n, table.shape[0]), 1, ids_b)
        w = self._weights(logits, mask, bias)
        dense = torch.zeros(n, table.shape[0], dtype=w.dtype, device=w.device).scatter_add_(1, ids_b, w.expand(n, -1))
        return self.v(dense @ table)

    def _query_in_key_space(self, query: torch.Tensor) -> torch.Tensor:
        """``W_kᵀ W_q q / √D`` ``[B, D]`` (cosine: unit length times the learned scale)."""
        qk = self.q(query) @ self.k.weight
        if self.cosine:
            return F.normalize(qk, dim=-1) * self.log_scale.exp()
        return qk * self.scale

    def _weights(self, logits, mask: torch.Tensor, bias) -> torch.Tensor:
        """Softmax over the slots of ``logits + bias`` with masked slots excluded (rows without a
        slot get all-zero weights); official no-op: softmax of ``bias`` alone."""
        use = torch.ones_like(mask) if self.attend_masked else mask
        if logits is None:  # official: the attention term is constant
            logits = torch.zeros(mask.shape, dtype=self.v.weight.dtype, device=mask.device)
        if bias is not None:
            logits = logits + bias
        neg = torch.finfo(logits.dtype).min
        return torch.softmax(logits.masked_fill(~use, neg), dim=-1) * use.any(dim=-1, keepdim=True)


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
        """query [B, d], keys [B or 1, L, d], mask [B or 1, L] → [B, d] (keys of batch size 1 are
        one user's behaviours shared by B candidates)."""
        shape = (query.shape[0], keys.shape[1], keys.shape[2])
        q, k = query.unsqueeze(1).expand(shape), keys.expand(shape)
        w = self.net(torch.cat([q, k, q - k, q * k], dim=-1)).squeeze(-1)
        w = w * mask
        return torch.matmul(w.unsqueeze(-2), keys).squeeze(-2)
