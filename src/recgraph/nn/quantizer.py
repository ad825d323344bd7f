"""Residual quantisation (RQ): ``L`` levels × ``K`` codes, as a differentiable module and as plain
functions shared with :class:`recgraph.index.rq.RQIndex`.

A vector ``x [d]`` is coded greedily: ``c_1 = argmin_k ||x − C_1[k]||``, then the residual
``r_1 = x − C_1[c_1]`` is coded by level 2, and so on; ``x̂ = Σ_l C_l[c_l]``. The code path
``(c_1, …, c_L)`` is a cluster id: items sharing a path prefix are near each other, which is what
the RQ index and RankGraph-2's U2I2I / U2U2I retrieval use.

* :func:`residual_kmeans` — post-hoc RQ: Lloyd k-means per level on the residuals.
* :func:`rq_encode`, :func:`rq_decode` — greedy coding and reconstruction (chunked, no ``[N, K]``
  beyond a chunk).
* :class:`ResidualQuantizer` — the module a model co-trains: straight-through estimator,
  commitment loss, codebooks updated by EMA (default) or by gradient, dead-code restart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["QuantizerOutput", "ResidualQuantizer", "residual_kmeans", "rq_decode", "rq_encode",
           "nearest_code"]

_CHUNK = 1 << 14


def nearest_code(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index ``[N]`` of the nearest (L2) row of ``codebook [K, d]`` for each row of ``x [N, d]``."""
    c2 = codebook.pow(2).sum(-1)
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    for s in range(0, x.shape[0], _CHUNK):
        xb = x[s:s + _CHUNK]
        out[s:s + _CHUNK] = (c2.unsqueeze(0) - 2 * xb @ codebook.T).argmin(1)
    return out


def rq_encode(x: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Greedy residual codes ``[N, L]`` (int64) of ``x [N, d]`` under ``codebooks [L, K, d]``."""
    r = x.detach().float().clone()
    codes = torch.empty(x.shape[0], codebooks.shape[0], dtype=torch.long, device=x.device)
    for level in range(codebooks.shape[0]):
        c = nearest_code(r, codebooks[level])
        codes[:, level] = c
        r -= codebooks[level][c]
    return codes


def rq_decode(codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Reconstruction ``Σ_l C_l[codes[:, l]]`` ``[N, d]``."""
    out = torch.zeros(codes.shape[0], codebooks.shape[-1], dtype=codebooks.dtype, device=codebooks.device)
    for level in range(codes.shape[1]):
        out += codebooks[level][codes[:, level]]
    return out


def _kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> torch.Tensor:
    """Lloyd's k-means on ``x [N, d]`` → centroids ``[k, d]``. Init: ``k`` distinct random points
    (with replacement plus jitter when ``N < k``); an empty cluster is re-seeded with the point
    that is currently worst served."""
    n = x.shape[0]
    if n >= k:
        cent = x[torch.randperm(n, generator=gen)[:k]].clone()
    else:
        idx = torch.randint(n, (k,), generator=gen)
        cent = x[idx] + 1e-3 * x.std() * torch.randn(k, x.shape[1], generator=gen)
    for _ in range(iters):
        a = nearest_code(x, cent)
        counts = torch.bincount(a, minlength=k).float()
        sums = torch.zeros_like(cent).index_add_(0, a, x)
        empty = counts == 0
        cent = torch.where(empty.unsqueeze(1), cent, sums / counts.clamp_min(1).unsqueeze(1))
        if empty.any():
            err = (x - cent[a]).pow(2).sum(-1)
            worst = err.topk(min(int(empty.sum()), n)).indices
            cent[empty.nonzero().squeeze(1)[: worst.numel()]] = x[worst]
    return cent


def residual_kmeans(x: torch.Tensor, n_levels: int, codebook_size: int, *, iters: int = 20,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Post-hoc residual quantiser of ``x [N, d]``: k-means per level on the residuals of the
    levels before. Returns ``(codebooks [L, K, d], codes [N, L])``."""
    if n_levels < 1 or codebook_size < 1:
        raise ValueError(f"need n_levels >= 1 and codebook_size >= 1, got {n_levels}, {codebook_size}")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty [N, d] matrix, got shape {tuple(x.shape)}")
    gen = torch.Generator().manual_seed(seed)
    r = x.detach().float().cpu().clone()
    books, codes = [], []
    for _ in range(n_levels):
        cent = _kmeans(r, codebook_size, iters, gen)
        c = nearest_code(r, cent)
        r -= cent[c]
        books.append(cent)
        codes.append(c)
    return torch.stack(books), torch.stack(codes, 1)


@dataclass(frozen=True)
class QuantizerOutput:
    """``quantized [B, d]`` (straight-through: value ``x̂``, gradient of ``x``), ``codes [B, L]``,
    ``loss`` (commitment (+ codebook loss in gradient mode), scalar), ``error`` (mean ``||x − x̂||²``)."""

    quantized: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    error: torch.Tensor


class ResidualQuantizer(nn.Module):
    """Differentiable residual quantiser (RQ-VAE style, Lee et al. CVPR 2022).

    ``loss = β Σ_l ||x − sg(x̂_≤l)||²`` (commitment: pulls the input towards its reconstruction at
    every depth) ``+ Σ_l ||sg(r_l) − C_l[c_l]||²`` in gradient mode (moves the codes; in EMA mode
    codes move by ``C_l[k] = EMA(Σ r) / EMA(count)`` instead). Codebooks are initialised by
    :func:`residual_kmeans` on the first training batch. A code whose EMA usage falls under
    ``dead_below × B / K`` is restarted at a random residual of the current batch.

    Args:
        dim: vector size d.
        n_levels: L.
        codebook_size: K.
        commitment: β.
        ema_decay: EMA decay of codebook statistics; ``None`` = codebooks learned by gradient.
        dead_below: restart threshold as a fraction of the uniform usage ``B / K`` (0 = never).
    """

    def __init__(self, dim: int, n_levels: int = 2, codebook_size: int = 64, commitment: float = 0.25,
                 ema_decay: float | None = 0.99, dead_below: float = 0.03, eps: float = 1e-5):
        super().__init__()
        self.dim, self.n_levels, self.codebook_size = int(dim), int(n_levels), int(codebook_size)
        self.commitment, self.ema_decay, self.dead_below, self.eps = commitment, ema_decay, dead_below, eps
        books = torch.randn(n_levels, codebook_size, dim) * 0.01
        if ema_decay is None:
            self.codebooks = nn.Parameter(books)
        else:
            self.register_buffer("codebooks", books)
            self.register_buffer("ema_count", torch.zeros(n_levels, codebook_size))
            self.register_buffer("ema_sum", torch.zeros(n_levels, codebook_size, dim))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.restarts = 0  # dead codes restarted so far (diagnostic, not saved)

    @torch.no_grad()
    def init_from(self, x: torch.Tensor, iters: int = 10, seed: int = 0) -> None:
        """Set the codebooks by :func:`residual_kmeans` on ``x [N, d]`` (and EMA stats to match)."""
        books, codes = residual_kmeans(x, self.n_levels, self.codebook_size, iters=iters, seed=seed)
        self.codebooks.data.copy_(books.to(self.codebooks.device))
        if self.ema_decay is not None:
            for level in range(self.n_levels):
                cnt = torch.bincount(codes[:, level], minlength=self.codebook_size).float().to(x.device)
                self.ema_count[level] = cnt
                self.ema_sum[level] = self.codebooks[level] * cnt.unsqueeze(1)
            self.ema_count.clamp_(min=self.eps)
        self.initialized.fill_(True)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``[N, L]`` of ``x [N, d]`` (no gradient, no update)."""
        return rq_encode(x, self.codebooks.detach())

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return rq_decode(codes, self.codebooks.detach())

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected [B, {self.dim}] input, got {tuple(x.shape)}")
        if self.training and not bool(self.initialized):
            self.init_from(x.detach())
        r = x.detach()
        recon = torch.zeros_like(x)
        codes, loss = [], x.new_zeros(())
        for level in range(self.n_levels):
            book = self.codebooks[level]
            c = nearest_code(r, book.detach())
            e = book[c]
            if self.ema_decay is None:
                loss = loss + (r - e).pow(2).sum(-1).mean()
            elif self.training:
                self._ema_update(level, r, c)
                e = self.codebooks[level][c]
            recon = recon + e.detach()
            loss = loss + self.commitment * (x - recon).pow(2).sum(-1).mean()
            r = r - e.detach()
            codes.append(c)
        quantized = x + (recon - x).detach()
        error = (x.detach() - recon).pow(2).sum(-1).mean()
        return QuantizerOutput(quantized, torch.stack(codes, 1), loss, error)

    @torch.no_grad()
    def _ema_update(self, level: int, r: torch.Tensor, c: torch.Tensor) -> None:
        k, decay = self.codebook_size, self.ema_decay
        cnt = torch.bincount(c, minlength=k).to(r.dtype)
        sums = torch.zeros(k, self.dim, dtype=r.dtype, device=r.device).index_add_(0, c, r)
        self.ema_count[level].mul_(decay).add_(cnt, alpha=1 - decay)
        self.ema_sum[level].mul_(decay).add_(sums, alpha=1 - decay)
        n = self.ema_count[level].sum()
        smoothed = (self.ema_count[level] + self.eps) / (n + k * self.eps) * n  # Laplace smoothing
        self.codebooks[level] = self.ema_sum[level] / smoothed.unsqueeze(1)
        if self.dead_below > 0:
            dead = self.ema_count[level] < self.dead_below * r.shape[0] / k
            n_dead = int(dead.sum())
            if n_dead:
                pick = torch.randint(r.shape[0], (n_dead,), device=r.device)
                share = r.shape[0] / k
                self.codebooks[level][dead] = r[pick]
                self.ema_count[level][dead] = share
                self.ema_sum[level][dead] = r[pick] * share
                self.restarts += n_dead

    def extra_repr(self) -> str:
        mode = "gradient" if self.ema_decay is None else f"ema={self.ema_decay}"
        return f"dim={self.dim}, levels={self.n_levels}, K={self.codebook_size}, beta={self.commitment}, {mode}"
