"""MetaPatch: a residual bottleneck patch whose weights are generated per sample from a shared basis.

For a hidden vector ``h [B, H]`` and a per-sample (per-user) vector ``v [B, m]``, with
``ṽ = [1, v] [B, m + 1]``::

    D(v) = Σ_j ṽ_j D_j   [H, r]      b_d(v) = Σ_j ṽ_j b_d,j  [r]
    U(v) = Σ_j ṽ_j U_j   [r, H]      b_u(v) = Σ_j ṽ_j b_u,j  [H]
    patch(h, v) = h + tanh(h D(v) + b_d(v)) U(v) + b_u(v)

i.e. the patch parameters ``θ = Θ · ṽ`` are a shared basis ``Θ`` (learned in the cloud) times the
tiny per-user vector (trained on the device). The ``j = 0`` column is a shared patch every user gets.
The generated ``[B, H, r]`` weights are never materialised: ``h D(v) = Σ_j ṽ_j (h D_j)`` is one
``[B, H] × [H, r (m+1)]`` product contracted with ``ṽ``, and likewise for ``U`` — so the cost is
that of an ``m + 1``-times wider adapter and the graph exports to ONNX as plain matmuls.

Initialisation: ``U_0 = b_u,0 = 0`` and ``b_d = 0`` with the other columns random, so at ``v = 0``
the patch is the identity (the cloud model is unchanged) while the gradient in ``v`` is not zero —
a device can start from ``v = 0`` with a random (round-0) basis.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MetaPatch"]


class MetaPatch(nn.Module):
    """Args:
        dim: ``H``, width of the patched hidden vector.
        rank: ``r``, bottleneck width.
        vec_dim: ``m``, size of the per-user vector.
        init_scale: std of the random up-projection columns (``j >= 1``).
    """

    def __init__(self, dim: int, rank: int = 8, vec_dim: int = 8, init_scale: float = 0.1):
        super().__init__()
        self.dim, self.rank, self.vec_dim = int(dim), int(rank), int(vec_dim)
        k = self.vec_dim + 1
        self.down = nn.Parameter(torch.empty(self.dim, self.rank * k))   # [H, r (m+1)], (r, j) row-major
        self.down_bias = nn.Parameter(torch.zeros(k, self.rank))         # [m+1, r]
        self.up = nn.Parameter(torch.empty(self.rank * k, self.dim))     # [r (m+1), H]
        self.up_bias = nn.Parameter(torch.zeros(k, self.dim))            # [m+1, H]
        self.init_scale = float(init_scale)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        k = self.vec_dim + 1
        nn.init.normal_(self.down, std=1.0 / math.sqrt(self.dim))
        nn.init.zeros_(self.down_bias)
        with torch.no_grad():
            up = torch.randn(self.rank, k, self.dim) * (self.init_scale / math.sqrt(self.rank))
            up[:, 0] = 0.0  # the shared column starts at zero: patch(h, 0) = h
            self.up.copy_(up.reshape(self.rank * k, self.dim))
            self.up_bias.zero_()

    def forward(self, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """h ``[B, H]``, v ``[B, m]`` or ``[1, m]`` (one user for all rows) → ``[B, H]``."""
        ve = torch.cat([torch.ones_like(v[:, :1]), v], dim=1)                 # [B', m+1]
        hd = (h @ self.down).view(h.shape[0], self.rank, self.vec_dim + 1)   # [B, r, m+1]
        z = torch.tanh((hd * ve.unsqueeze(1)).sum(-1) + ve @ self.down_bias)  # [B, r]
        zv = (z.unsqueeze(2) * ve.unsqueeze(1)).reshape(h.shape[0], -1)      # [B, r (m+1)]
        return h + zv @ self.up + ve @ self.up_bias

    def n_basis_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
