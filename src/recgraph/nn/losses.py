"""Ranking and contrastive losses shared by the retrieval models (one implementation each).

* :func:`bpr_loss` — Bayesian personalised ranking, ``mean(-log σ(s⁺ − s⁻))``.
* :func:`info_nce` — in-batch InfoNCE / sampled softmax: row ``b`` of ``q`` must pick ``p[b]``
  among all rows of ``p``; options for the variants the models use (cosine scores, a symmetric
  two-way loss, log-Q correction, masked duplicates, per-row weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bpr_loss", "info_nce"]


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """``mean(-log σ(pos − neg))`` over ``[B]`` (or ``[B, N]`` negatives broadcast against ``[B, 1]``)."""
    if neg.dim() == 2 and pos.dim() == 1:
        pos = pos.unsqueeze(1)
    return F.softplus(neg - pos).mean()


def info_nce(q: torch.Tensor, p: torch.Tensor, temperature: float, log_q: torch.Tensor | None = None,
             same: torch.Tensor | None = None, weight: torch.Tensor | None = None, *, cosine: bool = False,
             symmetric: bool = False) -> torch.Tensor:
    """In-batch InfoNCE: row ``b`` of ``q [B, d]`` must pick ``p[b]`` among ``p [B, d]``.

    ``logits[b, c] = s(q_b, p_c) / temperature − log_q[c]`` with ``s`` the dot product (``cosine``:
    of L2-normalised rows); the loss is the cross-entropy of the diagonal, averaged over rows.

    Args:
        log_q: ``[B]`` subtracted from every column (sampled-softmax correction of how often
            ``p_c`` shows up as a negative).
        same: ``[B, B]`` bool, off-diagonal columns that are the same entity as the positive
            (masked out).
        weight: ``[B]`` row weights (normalised to sum 1), e.g. Horvitz–Thompson ``1/π``.
        symmetric: average with the other direction (``p_b`` must pick ``q_b``: the transposed
            logits), as in multi-view contrastive learning.
    """
    if cosine:
        q, p = F.normalize(q, dim=-1), F.normalize(p, dim=-1)
    logits = q @ p.T / temperature
    if log_q is not None:
        logits = logits - log_q.unsqueeze(0)
    if same is not None:
        logits = logits.masked_fill(same & ~torch.eye(len(q), dtype=torch.bool, device=q.device), -float("inf"))
    labels = torch.arange(len(q), device=q.device)
    nll = F.cross_entropy(logits, labels, reduction="none")
    if symmetric:
        nll = 0.5 * (nll + F.cross_entropy(logits.T, labels, reduction="none"))
    if weight is None:
        return nll.mean()
    return (nll * weight).sum() / weight.sum().clamp_min(1e-12)
