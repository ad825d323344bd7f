"""MacGNN (WWW 2024): CTR with a macro graph.

Inputs per sample (from :class:`recgraph.graph.features.CTRData`, snapshot strictly before the sample):
user 1-hop (item-macro counts), user 2-hop (user-macro counts), item 1-hop (user-macro counts),
item 2-hop (item-macro counts), the user's last 20 positive items and the item's last 20 positive
users. Macro embeddings are free parameters. Each macro neighbourhood is aggregated by target-aware
attention (query: the target item for user-side neighbourhoods, the target user for item-side ones)
whose logits add the count weight ``log(n + 1) / τ``; recent behaviours likewise (no count bias).
Readout ``[e_u, u1, u2, u_rec, e_i, i1, i2, i_rec]`` (14·d with attention outputs of 2·d), MLP
200 → 80 → 1 with Dice, BCE.

Defaults fix the defects of the official code; each can be switched back on by name
(``variant="official"`` switches on all three; the fourth official behaviour — best checkpoint
chosen on the test set — is ``select_on_test`` of :class:`recgraph.train.runner.ExperimentConfig`):

* ``official_attention_noop``: softmax over a length-1 axis → attention weights are all 1, only
  the count weights ``softmax(log(n + 1) / τ)`` remain;
* ``official_unmasked_slots``: zero-count macro slots and recent-list padding take softmax weight;
* ``official_dice_batch_stats``: Dice normalises with the evaluated batch's statistics, so scores
  depend on the batch size.

``degree_features=True`` appends ``log(1 + total count)`` of the user's and the item's hop-1 / hop-2
macro neighbourhoods and recent lists (6 numbers) to the readout: every aggregation above is a
weighted *average*, so without them the model cannot see how popular an item (or active a user) is.
On the official MacGNN rows of MovieLens-100K it is what lifts GAUC from 0.660 to 0.723, above the
official code (BENCHMARKS, "Honest numbers"); off by default (validation preferred it off on
leave-last-out).

Measured, not fixed: with embeddings initialised at std 0.01 the learned attention term
``q·k/√d`` stays ~1e-5 across slots while the count bias spreads ~0.2-0.8, so the trained
attention is in effect the count prior (the model peaks after 1-2 epochs on MovieLens-100K).
``cosine_attention=True`` makes the term scale-free (``s · cos(k, W_kᵀW_q q)``, ``s`` learned);
on MovieLens-100K it lowered validation AUC (3 seeds: leave-last-out 0.7540 → 0.7498,
macgnn-quantile 0.7291 → 0.7239), so it is off by default.
"""

from __future__ import annotations

import torch
from torch import nn

from ...nn.attention import SlotAttention
from ...nn.mlp import MLP
from ...data.batch import CTRBatch
from ..registry import register
from .base import CTRModel, broadcast_rows

DEFECTS = ("official_attention_noop", "official_unmasked_slots", "official_dice_batch_stats")


@register("macgnn")
class MacGNN(CTRModel):
    needs = frozenset({"macro", "recent"})
    train_defaults = {"lr": 3e-3, "weight_decay": 5e-5, "batch_size": 128}

    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1, dim: int = 10,
                 tau: float = 1.9, hidden: tuple[int, ...] = (200, 80), variant: str = "fixed",
                 official_attention_noop: bool = False, official_unmasked_slots: bool = False,
                 official_dice_batch_stats: bool = False, cosine_attention: bool = False,
                 degree_features: bool = False):
        super().__init__()
        if variant not in ("fixed", "official"):
            raise ValueError(f"variant must be 'fixed' or 'official', got {variant!r}")
        if variant == "official":
            official_attention_noop = official_unmasked_slots = official_dice_batch_stats = True
        self._save_config(locals())
        self.n_users, self.n_items, self.tau = n_users, n_items, float(tau)
        self.n_um, self.n_im = n_user_macros, n_item_macros
        self.user = nn.Embedding(n_users + 1, dim)   # + padding row (recent users)
        self.item = nn.Embedding(n_items + 1, dim)   # + padding row (recent items)
        self.umacro = nn.Embedding(n_user_macros + 1, dim)  # + padding slot
        self.imacro = nn.Embedding(n_item_macros + 1, dim)
        for e in (self.user, self.item, self.umacro, self.imacro):
            nn.init.normal_(e.weight, std=0.01)
        att = dict(official_noop_softmax=official_attention_noop, attend_masked=official_unmasked_slots,
                   cosine=cosine_attention)
        self.att = nn.ModuleDict({k: SlotAttention(dim, dim, 2 * dim, **att)
                                  for k in ("u1", "u2", "ur", "i1", "i2", "ir")})
        self.degree_features = bool(degree_features)
        self.mlp = MLP(14 * dim + (6 if degree_features else 0), tuple(hidden), activation="dice",
                       dice_batch_stats_at_eval=official_dice_batch_stats)

    def _macro(self, name: str, query, ids, cnt, table):
        bias = torch.log1p(cnt) / self.tau
        return self.att[name].forward_table(query, table.weight, ids, cnt > 0, bias)

    def forward(self, batch: CTRBatch) -> torch.Tensor:
        """Logits ``[B]``. The user side (``batch.user``) may have leading
        size 1 — one user scored against B candidates (:meth:`recgraph.graph.features.CTRData.request`):
        the user's neighbourhoods are then projected once and shared."""
        u, i = batch.user, batch.item
        eu, ei = self.user(u.ids), self.item(i.ids)
        u1 = self._macro("u1", ei, u.hop1_ids, u.hop1_cnt, self.imacro)
        u2 = self._macro("u2", ei, u.hop2_ids, u.hop2_cnt, self.umacro)
        i1 = self._macro("i1", eu, i.hop1_ids, i.hop1_cnt, self.umacro)
        i2 = self._macro("i2", eu, i.hop2_ids, i.hop2_cnt, self.imacro)
        ur_ids, ir_ids = u.recent, i.recent
        ur = self.att["ur"](ei, self.item(ur_ids), ur_ids != self.n_items)
        ir = self.att["ir"](eu, self.user(ir_ids), ir_ids != self.n_users)
        parts = [eu, u1, u2, ur, ei, i1, i2, ir]
        if self.degree_features:  # log total counts: the weighted averages above drop them
            for side, rec, pad in ((u, ur_ids, self.n_items), (i, ir_ids, self.n_users)):
                totals = [side.hop1_cnt.sum(-1), side.hop2_cnt.sum(-1), (rec != pad).sum(-1).to(side.hop1_cnt.dtype)]
                parts.append(torch.log1p(torch.stack(totals, -1)).to(eu.dtype))
        x = torch.cat(broadcast_rows(*parts), dim=-1)
        return self.mlp(x).squeeze(-1)
