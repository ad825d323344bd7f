"""DCCL cloud ranker: a DIN-like model whose MLP carries MetaPatch layers fed by per-user vectors.

Cloud part ``f`` (DIN's parts: item / item-macro embeddings, DIN attention over the user's recent
items, an MLP with Dice): ``x = [e_i, e_imacro, interest, e_i * interest]`` ``[B, 4d]`` (no user-id
embedding: in the device–cloud setting per-user state lives on the device). After every hidden
layer of the MLP a :class:`~recgraph.nn.patches.MetaPatch` adds ``tanh(h D(v)) U(v)``, its weights
generated from the shared basis and the user's patch vector::

    v_u = θ̂_u + W1 tanh(W2 θ̂_u + W3 p_u)      (auxiliary encoder, W1 = 0 at start: v_u = θ̂_u)

``θ̂_u [m]`` is what the device trains and keeps (``user_vec``; zero for users that never trained
on a device), ``p_u`` the user's profile embedding (sum of its categorical fields; none when the
dataset has no profile). A user without device training gets ``v_u = W1 tanh(W3 p_u)``, so a basis
and encoder distilled from the personalised models (MoMoDistill) reach them too.

``patched = False`` scores with the cloud model alone. ``set_stage`` decides what trains:
``"cloud"`` (f), ``"basis"`` (patches + encoder, f frozen in eval mode), ``"frozen"`` (nothing —
the device trainer optimises its own copy of θ̂).
"""

from __future__ import annotations

import torch
from torch import nn

from ...data.batch import CTRBatch
from ...nn.attention import DINAttention
from ...nn.dice import Dice
from ...nn.mlp import MLP
from ...nn.patches import MetaPatch
from ..ranking.base import CTRModel, broadcast_rows
from ..registry import register

__all__ = ["DCCLRanker", "PatchEncoder", "STAGES", "din_attention_factored"]

STAGES = ("cloud", "basis", "frozen")


def din_attention_factored(att: DINAttention, query: torch.Tensor, keys: torch.Tensor,
                           mask: torch.Tensor) -> torch.Tensor:
    """``att(query, keys, mask)`` for a one-hidden-layer :class:`DINAttention`, without building the
    ``[B, L, 4d]`` input ``[q, k, q - k, q * k]``: its first linear layer splits as
    ``q (W_q + W_d)ᵀ + k (W_k − W_d)ᵀ + (q ⊙ k) W_pᵀ + b`` and the last term is one batched
    ``[L, d] × [d, h]`` product per row — 4× fewer multiply-adds, same numbers (to float rounding)."""
    lin, act, out = att.net[0], att.net[1], att.net[2]
    d = query.shape[-1]
    wq, wk, wd, wp = lin.weight.split(d, dim=1)                      # each [h, d]
    b, L = query.shape[0], keys.shape[1]
    kk = keys.expand(b, L, d)
    pre = (query @ (wq + wd).T + lin.bias).unsqueeze(1) + kk @ (wk - wd).T
    pre = pre + torch.bmm(kk, query.unsqueeze(2) * wp.T.unsqueeze(0))  # [B, L, h]
    w = out(act(pre)).squeeze(-1) * mask
    return torch.matmul(w.unsqueeze(-2), keys).squeeze(-2)


class PatchEncoder(nn.Module):
    """``v = θ̂ + W1 tanh(W2 θ̂ + W3 p)``: θ̂ ``[B, m]``, p ``[B, P]`` profile codes → v ``[B, m]``."""

    def __init__(self, vec_dim: int, profile_size: int = 0, profile_dim: int = 8, hidden: int = 16):
        super().__init__()
        self.w2 = nn.Linear(vec_dim, hidden)
        self.profile = nn.EmbeddingBag(profile_size, profile_dim, mode="sum") if profile_size else None
        self.w3 = nn.Linear(profile_dim, hidden, bias=False) if profile_size else None
        self.w1 = nn.Linear(hidden, vec_dim, bias=False)
        nn.init.zeros_(self.w1.weight)
        if self.profile is not None:
            nn.init.normal_(self.profile.weight, std=0.1)

    def forward(self, theta: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
        a = self.w2(theta)
        if self.profile is not None and profile.shape[1]:
            a = a + self.w3(self.profile(profile))
        return theta + self.w1(torch.tanh(a))


@register("dccl")
class DCCLRanker(CTRModel):
    task = "ondevice"
    needs = frozenset({"recent"})
    train_defaults = {"lr": 3e-3, "weight_decay": 0.0, "batch_size": 1024}

    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1, dim: int = 16,
                 hidden: tuple[int, ...] = (200, 80), vec_dim: int = 8, patch_rank: int = 8,
                 profile_size: int = 0, n_profile_fields: int = 0, profile_dim: int = 8, encoder_hidden: int = 16):
        super().__init__()
        self._save_config(locals())
        self.n_items, self.vec_dim = n_items, vec_dim
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.im = nn.Embedding(n_item_macros, dim)
        for e in (self.item, self.im):
            nn.init.normal_(e.weight, std=0.01)
        with torch.no_grad():
            self.item.weight[n_items].zero_()
        self.att = DINAttention(dim)
        self.mlp = MLP(4 * dim, tuple(hidden), activation="dice")
        self.patches = nn.ModuleList(MetaPatch(h, patch_rank, vec_dim) for h in hidden)
        self.encoder = PatchEncoder(vec_dim, profile_size, profile_dim, encoder_hidden)
        self.user_vec = nn.Embedding(n_users, vec_dim)  # θ̂: the simulated devices' vectors
        nn.init.zeros_(self.user_vec.weight)
        self.register_buffer("profile", torch.zeros(n_users, n_profile_fields, dtype=torch.int64))
        self.patched = False
        self.stage = "cloud"

    # ------------------------------------------------------------------ parts
    def cloud_modules(self) -> list[nn.Module]:
        return [self.item, self.im, self.att, self.mlp]

    def basis_modules(self) -> list[nn.Module]:
        return [self.patches, self.encoder]

    def set_profile(self, profile: torch.Tensor) -> None:
        if profile.shape != self.profile.shape:
            raise ValueError(f"profile must be {tuple(self.profile.shape)}, got {tuple(profile.shape)}")
        self.profile.copy_(profile)

    def set_stage(self, stage: str) -> None:
        """Which parameters train (module docstring); the frozen cloud stays in eval mode."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage
        for m in self.cloud_modules():
            m.requires_grad_(stage == "cloud")
        for m in self.basis_modules():
            m.requires_grad_(stage == "basis")
        self.user_vec.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, "stage", "cloud") != "cloud":  # frozen cloud: Dice keeps its running statistics
            for m in self.cloud_modules():
                m.eval()
        return self

    # ------------------------------------------------------------------ forward
    def features(self, batch: CTRBatch) -> torch.Tensor:
        """The MLP input ``[B, 4d]`` (cloud part only)."""
        ei = self.item(batch.item.ids)
        rec = batch.user.recent
        interest = din_attention_factored(self.att, ei, self.item(rec), (rec != self.n_items).float())
        return torch.cat(broadcast_rows(ei, self.im(batch.item.macro), interest, ei * interest), -1)

    def patch_vector(self, theta: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
        """θ̂ ``[B, m]``, profile codes ``[B, P]`` → patch vector v ``[B, m]``."""
        return self.encoder(theta, profile)

    def head(self, x: torch.Tensor, v: torch.Tensor | None, start: int = 0) -> torch.Tensor:
        """MLP from layer ``start`` of ``mlp.net`` on ``x``, a patch after every Dice (when ``v`` is
        given) → logits ``[B]``."""
        k = sum(isinstance(m, Dice) for m in list(self.mlp.net)[:start])
        for layer in list(self.mlp.net)[start:]:
            x = layer(x)
            if isinstance(layer, Dice):
                if v is not None:
                    x = self.patches[k](x, v)
                k += 1
        return x.squeeze(-1)

    def forward(self, batch: CTRBatch) -> torch.Tensor:
        x = self.features(batch)
        if not self.patched:
            return self.head(x, None)
        u = batch.user.ids
        v = self.patch_vector(self.user_vec(u), self.profile[u])
        return self.head(x, v)

    def n_patch_parameters(self) -> int:
        """Basis + encoder parameters (shared; downloaded with the cloud model)."""
        return sum(p.numel() for m in self.basis_modules() for p in m.parameters())
