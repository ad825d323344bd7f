"""Sampled-neighbour GNN CTR model (GraphSAGE-style) — the approach MacGNN argues against.

For the target user and the target item, a fixed number of neighbours per hop (``fanouts``,
default 10 then 5) is sampled from the feature snapshot's positive graph (strictly before the
cutoff; sampling is deterministic per node at evaluation), and two mean-aggregation SAGE layers
give ``h_u`` and ``h_i``; MLP over ``[h_u, h_i, h_u * h_i]``. Sampling happens per request, so
its cost grows with fan-out × hops × candidates (see ``benchmarks/bench_ctr.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from ...nn.mlp import MLP
from ...data.batch import CTRBatch
from ..registry import register
from .base import CTRModel, broadcast_rows


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(-2) / m.sum(-2).clamp_min(1.0)


@register("sage")
class SAGECTR(CTRModel):
    needs = frozenset({"sage"})

    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1, dim: int = 16,
                 fanouts: tuple[int, int] = (10, 5), hidden: tuple[int, ...] = (200, 80)):
        super().__init__()
        self._save_config(locals())
        self.n_users, self.n_items, self.fanouts = n_users, n_items, tuple(fanouts)
        self.user = nn.Embedding(n_users + 1, dim)
        self.item = nn.Embedding(n_items + 1, dim)
        nn.init.normal_(self.user.weight, std=0.01)
        nn.init.normal_(self.item.weight, std=0.01)
        self.l1_user, self.l1_item = nn.Linear(2 * dim, dim), nn.Linear(2 * dim, dim)
        self.l2_user, self.l2_item = nn.Linear(2 * dim, dim), nn.Linear(2 * dim, dim)
        self.mlp = MLP(3 * dim, tuple(hidden), activation="relu")

    @property
    def batch_kwargs(self) -> dict:
        return {"fanouts": self.fanouts}

    def _tower(self, root, nb, nb2, root_emb, nb_emb, n_root, n_nb, l1_root, l1_nb, l2):
        # hop-1 nodes aggregate their own sampled neighbours (same type as root)
        h_nb = torch.relu(l1_nb(torch.cat([nb_emb(nb), _masked_mean(root_emb(nb2), nb2 != n_root)], -1)))
        h_root1 = torch.relu(l1_root(torch.cat([root_emb(root), _masked_mean(nb_emb(nb), nb != n_nb)], -1)))
        return l2(torch.cat([h_root1, _masked_mean(h_nb, nb != n_nb)], -1))

    def forward(self, batch: CTRBatch) -> torch.Tensor:
        hu = self._tower(batch.user.ids, batch.user.nb, batch.user.nb2, self.user, self.item, self.n_users,
                         self.n_items, self.l1_user, self.l1_item, self.l2_user)
        hi = self._tower(batch.item.ids, batch.item.nb, batch.item.nb2, self.item, self.user, self.n_items,
                         self.n_users, self.l1_item, self.l1_user, self.l2_item)
        hu, hi = broadcast_rows(hu, hi)  # a request's user tower runs once, for all its candidates
        return self.mlp(torch.cat([hu, hi, hu * hi], -1)).squeeze(-1)
