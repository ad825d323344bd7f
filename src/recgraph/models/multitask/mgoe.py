"""MGOE (macro graph of experts, 2025): multi-task ranking where every task has its own graph.

The paper publishes no code, expert counts or fusion formula; this is the minimal faithful version
of ``shared/REFERENCES.md``. Per sample, with ``T`` tasks:

1. **Micro input** ``x [B, 6d]``: :class:`~recgraph.models.multitask.base.MicroEncoder` (the same
   input the Shared-Bottom / MMoE / PLE baselines get, so differences come from the macro graphs and
   the structure, not from features).
2. **Macro Graph Bottom.** Task ``t`` has its own behaviour graph (``cart`` events for the cart
   task, …; :mod:`recgraph.data.multitask`) and its MacGNN-style macro neighbourhoods: user 1-hop
   (item-macro counts), user 2-hop (user-macro counts), item 1-hop (user-macro counts), item 2-hop
   (item-macro counts), each pooled by target-aware attention with the MacGNN count prior
   ``log(n + 1) / τ`` (:class:`~recgraph.nn.attention.SlotAttention`, the layer MacGNN uses) →
   ``m_t [B, 8d]``. *Choices:* the macro **nodes** and their embeddings are shared by all tasks
   (one clustering, fitted on the all-behaviour graph) and only the edges/counts are
   task-specific — a task graph like ``fav`` (~2k edges) is too sparse to fit its own clusters
   or embeddings, and shared macro nodes make the tasks' macro embeddings comparable for the
   tower. The attention modules are per task (each task weighs its neighbourhoods its own way).
   ``T · experts_per_task`` **task-specific experts**: expert ``(t, j)`` is a ReLU MLP on
   ``[x, m_t]``. **Expert correlation**: task ``t``'s gate ``softmax(W_t [x, m_t])`` (no bias,
   as MMoE) mixes *all* ``T · experts_per_task`` experts, so a task can draw on the experts that
   were built on other tasks' graphs, with per-sample weights (the learned gate weights are the
   expert correlations). *Why gates over task-specific rather than shared experts:* the paper's
   experts are task-specific (one per task graph); MMoE-style gates over them are the simplest
   correlation model that reduces to MMoE when the macro features are removed.
3. **Macro Prediction Tower (dynamic fusion).** Task ``t``'s tower reads its expert mixture
   ``z_t`` and ``f_t = Σ_s a_{t,s} · V m_s`` with ``a_{t,·} = softmax_s((Q_t z_t) · (K m_s) / √a)``:
   a per-sample attention of task ``t`` over every task's macro embedding (macro knowledge of
   ``buy`` can inform ``cart`` for this sample and not for another). ``K``, ``V`` are shared,
   ``Q_t`` per task. Tower: ReLU MLP on ``[z_t, f_t]`` → one logit.
4. One BCE per task, summed (:meth:`MultiTaskModel.loss`).

Ablations (constructor switches): ``macro_bottom=False`` — experts and gates see ``x`` only (the
tower still fuses the macro embeddings); ``dynamic_tower=False`` — ``f_t = V m_t`` (the task's
own macro embedding, no fusion across tasks); ``shared_graphs=True`` — every task's macro
neighbourhood comes from the one all-behaviour graph (task-specific attention kept).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...nn.attention import SlotAttention
from ..registry import register
from .base import MicroEncoder, MultiTaskModel, relu_mlp, tower

_SLOTS = ("u1", "u2", "i1", "i2")


@register("mgoe")
class MGOE(MultiTaskModel):
    def __init__(self, n_users: int, n_items: int, n_user_macros: int = 1, n_item_macros: int = 1, n_tasks: int = 1,
                 dim: int = 16, experts_per_task: int = 2, expert_hidden: tuple[int, ...] = (64,),
                 tower_hidden: tuple[int, ...] = (32,), fuse_dim: int = 32, tau: float = 1.9,
                 macro_bottom: bool = True, dynamic_tower: bool = True, shared_graphs: bool = False):
        super().__init__()
        self._save_config(locals())
        self.n_tasks, self.tau, self.k = n_tasks, float(tau), experts_per_task
        self.macro_bottom, self.dynamic_tower, self.shared_graphs = macro_bottom, dynamic_tower, shared_graphs
        self.needs = frozenset({"recent", "macro" if shared_graphs else "task_macro"})
        self.encoder = MicroEncoder(n_users, n_items, n_user_macros, n_item_macros, dim)
        self.macro_att = nn.ModuleList(nn.ModuleDict({s: SlotAttention(dim, dim, 2 * dim) for s in _SLOTS})
                                       for _ in range(n_tasks))
        macro_dim = 8 * dim
        exp_in = self.encoder.out_dim + (macro_dim if macro_bottom else 0)
        self.experts = nn.ModuleList(relu_mlp(exp_in, expert_hidden) for _ in range(n_tasks * experts_per_task))
        self.gates = nn.ModuleList(nn.Linear(exp_in, n_tasks * experts_per_task, bias=False) for _ in range(n_tasks))
        h = expert_hidden[-1]
        self.fuse_q = nn.ModuleList(nn.Linear(h, fuse_dim, bias=False) for _ in range(n_tasks))
        self.fuse_k = nn.Linear(macro_dim, fuse_dim, bias=False)
        self.fuse_v = nn.Linear(macro_dim, fuse_dim, bias=False)
        self.towers = nn.ModuleList(tower(h + fuse_dim, tower_hidden) for _ in range(n_tasks))
        self.last_fusion: torch.Tensor | None = None  # [B, T, T] attention of the last forward (diagnostics)

    def _pool(self, att: SlotAttention, query, ids, cnt, table: nn.Embedding) -> torch.Tensor:
        """MacGNN's count-biased target attention over one macro neighbourhood ``[B, 2·dim]``."""
        return att.forward_table(query, table.weight, ids, cnt > 0, torch.log1p(cnt) / self.tau)

    def task_macro(self, batch, eu: torch.Tensor, ei: torch.Tensor) -> torch.Tensor:
        """Task-specific macro embeddings ``[B, T, 8·dim]`` (from each task's graph, or all from the
        shared graph when ``shared_graphs``)."""
        enc = self.encoder
        out = []
        for t in range(self.n_tasks):
            u = batch.user if self.shared_graphs else batch.task_user[t]
            i = batch.item if self.shared_graphs else batch.task_item[t]
            att = self.macro_att[t]
            parts = [(att["u1"], ei, u.hop1_ids, u.hop1_cnt, enc.imacro), (att["u2"], ei, u.hop2_ids, u.hop2_cnt, enc.umacro),
                     (att["i1"], eu, i.hop1_ids, i.hop1_cnt, enc.umacro), (att["i2"], eu, i.hop2_ids, i.hop2_cnt, enc.imacro)]
            vs = [self._pool(a, q, ids, cnt, table) for a, q, ids, cnt, table in parts]
            n = max(v.shape[0] for v in vs)
            out.append(torch.cat([v.expand(n, -1) for v in vs], dim=-1))
        return torch.stack(out, dim=1)

    def forward(self, batch) -> torch.Tensor:
        """Logits ``[B, T]``."""
        x, eu, ei = self.encoder(batch)
        m = self.task_macro(batch, eu, ei)                                    # [B, T, 8d]
        B, T = x.shape[0], self.n_tasks
        if self.macro_bottom:
            inp = torch.cat([x.unsqueeze(1).expand(B, T, x.shape[1]), m], dim=-1)  # [B, T, in]
            e = torch.stack([f(inp[:, j // self.k]) for j, f in enumerate(self.experts)], dim=1)  # [B, T·K, h]
            g = torch.stack([torch.softmax(self.gates[t](inp[:, t]), -1) for t in range(T)], dim=1)
        else:
            e = torch.stack([f(x) for f in self.experts], dim=1)
            g = torch.stack([torch.softmax(w(x), -1) for w in self.gates], dim=1)
        z = g @ e                                                              # [B, T, h]
        v = self.fuse_v(m)                                                     # [B, T, a]
        if self.dynamic_tower:
            keys = self.fuse_k(m)
            q = torch.stack([self.fuse_q[t](z[:, t]) for t in range(T)], dim=1)  # [B, T, a]
            a = torch.softmax(q @ keys.transpose(1, 2) / math.sqrt(keys.shape[-1]), dim=-1)  # [B, T, T]
            self.last_fusion = a.detach()
            f = a @ v
        else:
            f = v
        return torch.cat([self.towers[t](torch.cat([z[:, t], f[:, t]], dim=-1)) for t in range(T)], dim=-1)
