"""DSGL: dynamic sequential graph learning for CTR, on strictly time-respecting neighbourhoods.

Per sample ``(u, i, t)`` the batch carries (``needs = {"dynamic"}``) the k-depth ego graphs of
``u`` and of ``i`` built only from interactions strictly before ``t``
(:func:`recgraph.graph.dynamic.sample_dynamic`; most recent first, fan-outs ``fanouts``, the
time gap ``t - edge time`` of every edge). The model:

* **time-gap buckets**: gap ``g > 0`` → bucket ``min(⌊log_b g⌋, n_buckets - 1)`` with a learned
  embedding added to the neighbour's embedding (``use_time=False`` drops it);
* **time-aware sequence encoder**: an LSTM over each node's neighbour sequence in time order
  (oldest → newest, padding after the last event so it never feeds the valid positions); its
  per-position states are the keys / values (``seq_encoder=False``: the embeddings themselves);
* **second-order attention**: a node ``v`` with parent ``p`` in the ego tree attends over its
  encoded neighbours with query ``W_q [h_v ; h_p]`` — the node *and where it was reached from*.
  The parent of each root is the sample's other end (the target item for the user root, the
  target user for the item root), which makes the root aggregation target-aware.
  ``second_order=False`` is the GAT-style first-order query ``W_q h_v``. The update is
  ``h_v' = LeakyReLU(W_o [h_v ; Σ_c α_c s_c])`` (rows without neighbours keep ``Σ = 0``);
* **layers**: layer ``l`` updates every node ``l`` hops above the deepest level (bottom-up over
  the tree, weights per layer and node type); the root's outputs of all ``n_layers`` layers are
  averaged (``n_layers=1``: one hop, one layer);
* MLP (Dice) over ``[e_u, e_i, x̂_u, x̂_i]``; BCE.

Shapes: ``B`` samples; a request's user side has leading size 1 and everything below its root
is computed once; only the root's target-aware attention runs per candidate.

``deep_bound`` selects the time bound of hops ≥ 2 (``"sample"`` default, ``"parent"``) and
``"all-time"`` builds the **leaking** variant (all-time neighbourhoods, including the sample's own
interaction and later ones), used only to measure the optimism of a non-time-respecting
implementation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...data.batch import CTRBatch, DynamicNeighborhood
from ...nn.mlp import MLP
from ..registry import register
from .base import CTRModel, broadcast_rows


def gap_buckets(gaps: torch.Tensor, pad_mask: torch.Tensor, n_buckets: int, base: float) -> torch.Tensor:
    """``[...]`` int64 gaps → bucket ids: padding 0; gap ``g > 0`` → ``1 + min(⌊log_base g⌋, n-1)``;
    gap ``g ≤ 0`` (only in the leaking all-time variant) → ``1 + n + min(⌊log_base(1 - g)⌋, n-1)``."""
    g = gaps.to(torch.float64)
    pos = torch.clamp(torch.floor(torch.log(g.clamp_min(1.0)) / math.log(base)), 0, n_buckets - 1).long()
    neg = torch.clamp(torch.floor(torch.log((1.0 - g).clamp_min(1.0)) / math.log(base)), 0, n_buckets - 1).long()
    b = torch.where(gaps > 0, 1 + pos, 1 + n_buckets + neg)
    return torch.where(pad_mask, torch.zeros_like(b), b)


class SequenceAttention(nn.Module):
    """One DSGL aggregation: encode a node's neighbour sequence, attend with a (second-order) query.

    ``encode(x [N, F, d], mask [N, F]) -> s [N, F, d]`` (recency order kept; valid entries are a
    prefix, most recent first); ``attend(h [M, d], parent [M, d] | None, s [M, F, d], mask) -> [M, d]``.
    """

    def __init__(self, dim: int, *, seq_encoder: bool = True, second_order: bool = True):
        super().__init__()
        self.dim, self.second_order = dim, second_order
        self.rnn = nn.LSTM(dim, dim, batch_first=True) if seq_encoder else None
        self.q = nn.Linear(2 * dim if second_order else dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(2 * dim, dim)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.rnn is None:
            return x
        lead, f, d = x.shape[:-2], x.shape[-2], x.shape[-1]
        x2, m2 = x.reshape(-1, f, d), mask.reshape(-1, f)
        n = m2.sum(1, keepdim=True)                                            # [N, 1] valid events
        pos = torch.arange(f, device=x.device).expand_as(m2)
        idx = torch.where(pos < n, n - 1 - pos, pos)                          # recency ↔ time order (an involution)
        chron = torch.gather(x2, 1, idx.unsqueeze(-1).expand(-1, -1, d))      # oldest first, padding after
        out, _ = self.rnn(chron)
        s = torch.gather(out, 1, idx.unsqueeze(-1).expand(-1, -1, d))         # back to recency order
        return s.reshape(*lead, f, d)

    def attend(self, h: torch.Tensor, parent: torch.Tensor | None, s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q = self.q(torch.cat([h, parent], -1) if self.second_order else h)   # [M, d]
        logits = (self.k(s) * q.unsqueeze(-2)).sum(-1) / math.sqrt(self.dim)  # [M, F]
        logits = logits.masked_fill(~mask, float("-inf"))
        w = torch.softmax(logits, -1).nan_to_num(0.0) * mask                  # empty rows → 0
        agg = self.v((w.unsqueeze(-1) * s).sum(-2))
        return F.leaky_relu(self.out(torch.cat([h, agg], -1)), 0.2)


@register("dsgl")
class DSGL(CTRModel):
    """Args:
        n_users, n_items, n_user_macros, n_item_macros: id spaces (macros unused, kept for the
            common constructor).
        dim: embedding / hidden size.
        fanouts: neighbours per hop (most recent first); its length must be ``n_layers``.
        n_layers: aggregation layers = depth of the ego graphs.
        n_buckets, base: time-gap buckets ``⌊log_base gap⌋`` (gaps in the data's time unit).
        use_time, seq_encoder, second_order: the ablation switches (module docstring).
        deep_bound: time bound of deeper hops, ``"sample"`` | ``"parent"`` | ``"all-time"`` (leaks).
        horizon: ``"sample"`` (events strictly before the sample's own time) or ``"snapshot"`` (strictly
            before its feature snapshot's cutoff: the information the snapshot-feature baselines get,
            to separate DSGL's architecture from its fresher neighbourhoods).
        hidden: MLP sizes.
    """

    needs = frozenset({"dynamic"})
    train_defaults = {"lr": 3e-3, "weight_decay": 0.0, "batch_size": 128}

    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1, dim: int = 16,
                 fanouts: tuple[int, ...] = (10, 5), n_layers: int = 2, n_buckets: int = 32, base: float = 2.0,
                 use_time: bool = True, seq_encoder: bool = True, second_order: bool = True,
                 deep_bound: str = "sample", horizon: str = "sample", hidden: tuple[int, ...] = (200, 80)):
        super().__init__()
        fanouts = tuple(int(f) for f in fanouts)
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if len(fanouts) == 1 and n_layers > 1:
            fanouts = fanouts * n_layers
        if len(fanouts) != n_layers:
            fanouts = fanouts[:n_layers]
            if len(fanouts) != n_layers:
                raise ValueError(f"fanouts needs one entry per layer ({n_layers}), got {fanouts}")
        if deep_bound not in ("sample", "parent", "all-time"):
            raise ValueError(f"deep_bound must be 'sample', 'parent' or 'all-time', got {deep_bound!r}")
        if horizon not in ("sample", "snapshot"):
            raise ValueError(f"horizon must be 'sample' or 'snapshot', got {horizon!r}")
        self._save_config({**locals(), "fanouts": fanouts})
        self.n_users, self.n_items, self.fanouts, self.n_layers = n_users, n_items, fanouts, n_layers
        self.n_buckets, self.base, self.use_time, self.deep_bound = n_buckets, float(base), use_time, deep_bound
        self.horizon = horizon
        self.user = nn.Embedding(n_users + 1, dim, padding_idx=n_users)
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.time = nn.Embedding(2 * n_buckets + 1, dim, padding_idx=0)
        for e in (self.user, self.item, self.time):
            nn.init.normal_(e.weight, std=0.01)
            with torch.no_grad():
                e.weight[e.padding_idx].zero_()
        # agg[l][kind]: layer l, a node of type kind aggregating its neighbours (of the other type)
        self.agg = nn.ModuleList([nn.ModuleDict({k: SequenceAttention(dim, seq_encoder=seq_encoder,
                                                                      second_order=second_order)
                                                 for k in ("user", "item")}) for _ in range(n_layers)])
        self.mlp = MLP(4 * dim, tuple(hidden), activation="dice")

    @property
    def batch_kwargs(self) -> dict:
        return {"fanouts": self.fanouts, "deep_bound": self.deep_bound, "horizon": self.horizon}

    def _emb(self, kind: str) -> nn.Embedding:
        return self.user if kind == "user" else self.item

    def _tower(self, kind: str, root: torch.Tensor, dyn: DynamicNeighborhood, target: torch.Tensor) -> torch.Tensor:
        """Readout ``[B, d]`` of the root (``kind``) of ego graph ``dyn`` whose parent is ``target [B, d]``."""
        if dyn is None or dyn.depth < self.n_layers:
            raise ValueError(f"dsgl needs {self.n_layers}-hop dynamic neighbourhoods (needs 'dynamic', fanouts "
                             f"{self.fanouts}); got {None if dyn is None else dyn.depth}")
        other = {"user": "item", "item": "user"}
        kinds = [kind]                                  # node type at depth 0..L
        for _ in range(self.n_layers):
            kinds.append(other[kinds[-1]])
        masks = [dyn.ids[h] != dyn.pads[h] for h in range(self.n_layers)]
        emb0 = [self._emb(kinds[h + 1])(dyn.ids[h]) for h in range(self.n_layers)]  # [Bs, F1..Fh+1, d]
        times = [self.time(gap_buckets(dyn.gaps[h], ~masks[h], self.n_buckets, self.base)) if self.use_time
                 else None for h in range(self.n_layers)]
        e_root = self._emb(kind)(root)                   # [Bs, d]
        # h[d]: representation of the depth-d nodes at the current layer; starts at the embeddings
        h = [e_root] + emb0
        outs = []
        for layer in range(self.n_layers):
            new = []
            for depth in range(self.n_layers - layer):   # nodes that still have children at this layer
                node_kind = kinds[depth]
                mod = self.agg[layer][node_kind]
                child = h[depth + 1] if times[depth] is None else h[depth + 1] + times[depth]
                s = mod.encode(child, masks[depth])
                if depth == 0:                           # the root: parent = the sample's other end
                    hr, tq, s_, m_ = broadcast_rows(h[0], target, s, masks[0])
                    new.append(mod.attend(hr, tq, s_, m_))
                else:                                    # parent = the node one level up
                    hd, par, s_, m_ = broadcast_rows(h[depth], h[depth - 1].unsqueeze(-2), s, masks[depth])
                    new.append(mod.attend(hd, par.expand(hd.shape), s_, m_))
            h = new + h[len(new):]
            outs.append(h[0])
        return torch.stack(broadcast_rows(*outs), 0).mean(0)

    def forward(self, batch: CTRBatch) -> torch.Tensor:
        """Logits ``[B]`` (``batch.user`` may have leading size 1: one user, ``B`` candidates)."""
        u, i = batch.user, batch.item
        eu, ei = self.user(u.ids), self.item(i.ids)
        xu = self._tower("user", u.ids, u.dynamic, ei)
        xi = self._tower("item", i.ids, i.dynamic, eu)
        return self.mlp(torch.cat(broadcast_rows(eu, ei, xu, xi), -1)).squeeze(-1)
