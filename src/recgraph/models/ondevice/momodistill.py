"""MoMoDistill objectives: the cloud learns from the personalised (patched) models' predictions.

A round has two cloud steps, both with the loss (per sample, teacher probability ``p`` = the
previous round's personalised prediction for that user, ``q = σ(logit)`` the student's)::

    L = BCE(y, q) + β · KL(Bern(p) ‖ Bern(q)),   KL = p log(p/q) + (1-p) log((1-p)/(1-q))

1. **cloud retrain** — ``f`` trains, patches off (``model.patched = False``);
2. **basis + encoder** — ``f`` frozen, the patches (basis Θ) and the encoder
   ``v = θ̂ + W1 tanh(W2 θ̂ + W3 p_u)`` train with the uploaded θ̂ fixed. With probability
   ``vec_dropout`` a sample's θ̂ is replaced by 0, so the encoder also learns to map the profile
   alone — what users without device training get.

``DistillObjective`` wraps the model for :class:`~recgraph.train.trainer.Trainer`; its batches are
``(CTRBatch, teacher_p [B] or None)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data.batch import CTRBatch
from .dccl import DCCLRanker

__all__ = ["DistillObjective", "bernoulli_kl"]


def bernoulli_kl(p: torch.Tensor, logit_q: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``KL(Bern(p) ‖ Bern(σ(logit_q)))`` per element (= BCE(logit_q, p) − H(p))."""
    pc = p.clamp(eps, 1 - eps)
    entropy = -(pc * pc.log() + (1 - pc) * (1 - pc).log())
    return F.binary_cross_entropy_with_logits(logit_q, p, reduction="none") - entropy


class DistillObjective(nn.Module):
    """Args:
        model: the :class:`DCCLRanker` (its ``stage`` and ``patched`` say what trains and scores).
        beta: weight of the KL term (0 = plain BCE, the round-0 cloud).
        vec_dropout: probability of zeroing a sample's θ̂ (basis stage only).
    """

    def __init__(self, model: DCCLRanker, beta: float = 0.0, vec_dropout: float = 0.0):
        super().__init__()
        self.model, self.beta, self.vec_dropout = model, float(beta), float(vec_dropout)

    def logits(self, batch: CTRBatch) -> torch.Tensor:
        m = self.model
        if not m.patched:
            return m(batch)
        u = batch.user.ids
        theta = m.user_vec(u)
        if self.training and self.vec_dropout > 0:
            keep = (torch.rand(theta.shape[0], 1, device=theta.device) >= self.vec_dropout).to(theta.dtype)
            theta = theta * keep
        return m.head(m.features(batch), m.patch_vector(theta, m.profile[u]))

    def loss(self, item) -> torch.Tensor:
        batch, teacher = item
        z = self.logits(batch)
        loss = F.binary_cross_entropy_with_logits(z, batch.label.float())
        if teacher is not None and self.beta > 0:
            loss = loss + self.beta * bernoulli_kl(teacher, z).mean()
        return loss

    def forward(self, batch: CTRBatch) -> torch.Tensor:
        return self.model(batch)
