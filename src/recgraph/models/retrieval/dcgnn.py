"""DC-GNN (decoupled GNN retrieval, WWW 2022), for top-K retrieval on the user–item graph.

Three stages, each usable alone:

1. **Pretraining** (:class:`DCGNNPretraining`): a light GNN encoder (LightGCN-style: ego embeddings
   propagated ``n_layers`` times through ``Â = D^-1/2 A D^-1/2`` and averaged) trained with

   * *edge prediction*: every training edge ``(u, i)`` against three negative kinds —
     **random** (uniform non-neighbours), **k-hop hard** (an item reached by a 3-hop walk
     ``u → i' → u' → j`` that is not a neighbour of ``u``) and **structure-preserving** (an item
     whose degree rank is within ``degree_window`` of the positive's) — BPR loss per kind,
     mixed with ``neg_weights``;
   * *multi-view contrastive* InfoNCE within a node type: for a batch of users (and one of
     items), two random-walk-with-restart samples of each node's neighbourhood are aggregated
     (mean encoder embedding of the visited nodes, the start node itself excluded) into two
     views; a node's two views are positives, the other nodes of the same type in the batch are
     negatives.

   All sampling is vectorised over the batch (the only Python loops are over walk steps and
   rejection rounds, never over edges or samples). The objective is an ``nn.Module`` with
   ``loss`` / ``train_batches``, trained by the one ``Trainer``: ``DCGNN.prepare(graph, fit=...)``
   calls the ``fit`` the runner injects (models never import ``train``).
2. **Deep linear propagation** (:func:`recgraph.graph.propagation.propagate`): hops ``0..K`` of
   ``Â^k E0`` of the pretrained ego embeddings ``E0``, per relation and hop, no parameters,
   precomputed once (in memory, or memory-mapped from disk past ``memory_budget``).
3. **Dual tower** (:class:`DCGNN`): user tower and item tower read only their node's
   ``[K+1, d]`` hop features: a learned softmax over hops (initialised uniform, i.e. the
   LightGCN mean) plus an MLP over the concatenated hops (last layer initialised to zero, so
   training starts from the pretrained encoder); BPR loss with a dot-product score, or sampled
   softmax with a cosine score.
   A training step touches ``B`` rows of the feature arrays, never the graph: the cost per
   example depends on ``K`` and ``d``, not on the number of nodes or edges
   (benchmarks/bench_dcgnn_scaling.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.sampling import is_positive, positive_keys, sample_negatives
from ...graph.bipartite import BipartiteGraph
from ...graph.propagation import PropagatedFeatures, propagate
from ...nn.losses import bpr_loss, info_nce
from ...nn.sparse import mean_propagation
from ..registry import register
from .base import FitFn, Recommender

__all__ = ["DCGNN", "DCGNNPretraining", "PretrainBatch", "random_walk_with_restart", "khop_negatives",
           "degree_negatives"]


# ----------------------------------------------------------------------------- samplers

def random_walk_with_restart(indptr: np.ndarray, indices: np.ndarray, start: np.ndarray, n_steps: int,
                             restart_p: float, rng: np.random.Generator) -> np.ndarray:
    """``[B, n_steps]`` nodes visited by one walker per ``start`` node; at each step the walker
    returns to its start with probability ``restart_p``, else moves to a uniform neighbour (a node
    without neighbours stays put). Vectorised over walkers; O(B · n_steps)."""
    start = np.asarray(start, np.int64)
    deg = np.diff(indptr)
    cur = start.copy()
    out = np.empty((len(start), n_steps), np.int64)
    for s in range(n_steps):
        d = deg[cur]
        step = indptr[cur] + np.floor(rng.random(len(cur)) * d).astype(np.int64)
        nxt = np.where(d > 0, indices[np.minimum(step, len(indices) - 1)], cur)
        restart = rng.random(len(cur)) < restart_p
        cur = np.where(restart, start, nxt)
        out[:, s] = cur
    return out


def khop_negatives(users: np.ndarray, graph: BipartiteGraph, keys: np.ndarray, rng: np.random.Generator,
                   fallback: Callable[[np.ndarray], np.ndarray], rounds: int = 3) -> np.ndarray:
    """For each user, an item reachable in 3 hops (``u → i → u' → j``) that is not one of its
    neighbours: hard negatives near the user's region of the graph. Rows where ``rounds``
    vectorised tries find none get ``fallback(users_of_those_rows)`` (e.g. uniform negatives)."""
    users = np.asarray(users, np.int64)
    u_ptr, u_idx = graph.u_indptr.astype(np.int64), graph.u_indices
    i_ptr, i_idx = graph.i_indptr.astype(np.int64), graph.i_indices
    u_deg, i_deg = np.diff(u_ptr), np.diff(i_ptr)
    out = np.full(len(users), -1, np.int64)
    todo = np.arange(len(users))
    for _ in range(rounds):
        if not len(todo):
            break
        u = users[todo]
        ok = u_deg[u] > 0
        i1 = u_idx[u_ptr[u] + np.floor(rng.random(len(u)) * np.maximum(u_deg[u], 1)).astype(np.int64)].astype(np.int64)
        u2 = i_idx[i_ptr[i1] + np.floor(rng.random(len(u)) * np.maximum(i_deg[i1], 1)).astype(np.int64)].astype(np.int64)
        j = u_idx[u_ptr[u2] + np.floor(rng.random(len(u)) * np.maximum(u_deg[u2], 1)).astype(np.int64)].astype(np.int64)
        ok &= ~is_positive(u, j, keys, graph.n_items)
        out[todo[ok]] = j[ok]
        todo = todo[~ok]
    if len(todo):
        out[todo] = fallback(users[todo])
    return out


def degree_negatives(users: np.ndarray, pos: np.ndarray, degree: np.ndarray, keys: np.ndarray, n_items: int,
                     window: int, rng: np.random.Generator, fallback: Callable[[np.ndarray], np.ndarray],
                     rounds: int = 3, order: np.ndarray | None = None) -> np.ndarray:
    """Structure-preserving negatives: for each ``(user, pos)``, an item whose degree rank is within
    ``±window`` of ``pos``'s and that is not a neighbour of ``user`` (so degree alone cannot tell
    positive from negative). ``order``: items sorted by degree (computed when None)."""
    users, pos = np.asarray(users, np.int64), np.asarray(pos, np.int64)
    if order is None:
        order = np.argsort(degree, kind="stable")
    rank = np.empty(n_items, np.int64)
    rank[order] = np.arange(n_items)
    out = np.full(len(users), -1, np.int64)
    todo = np.arange(len(users))
    for _ in range(rounds):
        if not len(todo):
            break
        r = rank[pos[todo]] + rng.integers(-window, window + 1, len(todo))
        j = order[np.clip(r, 0, n_items - 1)].astype(np.int64)
        ok = (j != pos[todo]) & ~is_positive(users[todo], j, keys, n_items)
        out[todo[ok]] = j[ok]
        todo = todo[~ok]
    if len(todo):
        out[todo] = fallback(users[todo])
    return out


# ----------------------------------------------------------------------------- pretraining

@dataclass(frozen=True)
class PretrainBatch:
    """One pretraining step: ``users [B]``, ``pos [B]`` and ``negs [B, 3]`` (random, k-hop, degree)
    in joint node ids (items offset by ``N``); per contrastive pool (users, then items) the two
    random-walk views ``walks [2, C, L]`` and ``mask [2, C, L]`` (visited node ≠ start)."""

    users: torch.Tensor
    pos: torch.Tensor
    negs: torch.Tensor
    views: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()

    def to(self, device) -> "PretrainBatch":
        return PretrainBatch(self.users.to(device), self.pos.to(device), self.negs.to(device),
                             tuple((w.to(device), m.to(device)) for w, m in self.views))


class DCGNNPretraining(nn.Module):
    """The pretraining objective (edge prediction + multi-view contrastive, module docs) as a
    trainable module over the ego embeddings ``ego [N+M, d]``: ``train_batches(epoch, rng)`` draws
    the samples, ``loss(batch)`` is the objective, so the one ``Trainer`` runs it (epochs and
    learning rate are the trainer's). ``embeddings()`` returns the result.

    Args:
        graph: the training graph.
        dim: embedding size.
        n_layers: encoder propagation depth.
        batch_size: positive edges per step.
        reg: L2 on the batch's ego embeddings (LightGCN convention).
        neg_weights: weights of the (random, k-hop hard, structure-preserving) BPR terms.
        cl_weight: weight of the contrastive term; 0 turns it off.
        cl_batch: nodes per type per step in the contrastive term.
        cl_temperature: InfoNCE temperature.
        walk_length, restart_p: random-walk-with-restart view sampler.
        degree_window: rank window of structure-preserving negatives.
        max_steps_per_epoch: cap on steps per epoch (None: all edges).
        init: "svd" (default): start from the top-``dim`` singular vectors of the normalised
            interaction matrix ``P_iu`` (``U√S``, ``V√S``, rescaled to RMS ``init_std``) — a
            cheap spectral warm start, so a few pretraining epochs suffice; "normal": N(0, init_std).
        init_std: scale of the initialisation.
        seed: initialisation seed (the sampling follows the trainer's per-epoch generator).
    """

    def __init__(self, graph: BipartiteGraph, dim: int = 64, n_layers: int = 2, batch_size: int = 2048,
                 reg: float = 1e-4, neg_weights: tuple[float, float, float] = (1.0, 0.5, 0.5),
                 cl_weight: float = 0.1, cl_batch: int = 512, cl_temperature: float = 0.2, walk_length: int = 8,
                 restart_p: float = 0.3, degree_window: int = 20, max_steps_per_epoch: int | None = None,
                 init: str = "svd", init_std: float = 0.1, seed: int = 0):
        super().__init__()
        if init not in ("svd", "normal"):
            raise ValueError(f"init must be 'svd' or 'normal', got {init!r}")
        self.graph, self.init = graph, init
        self.dim, self.n_layers, self.batch_size = dim, n_layers, batch_size
        self.reg, self.neg_weights, self.cl_weight, self.cl_batch = reg, tuple(neg_weights), cl_weight, cl_batch
        self.cl_temperature, self.walk_length, self.restart_p = cl_temperature, walk_length, restart_p
        self.degree_window, self.max_steps_per_epoch, self.init_std = degree_window, max_steps_per_epoch, init_std
        self.seed = seed
        n, m = graph.n_users, graph.n_items
        gen = torch.Generator().manual_seed(seed)
        x0 = torch.randn(n + m, dim, generator=gen) * init_std
        if init == "svd" and graph.n_edges and min(n, m) > dim + 1:
            x0 = torch.from_numpy(self._svd_init(graph, x0.numpy()))
        self.ego = nn.Parameter(x0)
        w = torch.tensor(self.neg_weights, dtype=torch.float32)
        self.register_buffer("neg_w", w / w.sum(), persistent=False)
        self.adj = graph.normalized_adjacency() if graph.n_edges else None  # [(N+M), (N+M)], moved by _apply
        # sampler state, all from the graph
        self.positives = graph.to_scipy()
        self.keys = positive_keys(self.positives)
        self.edge_users = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.positives.indptr))
        self.edge_items = self.positives.indices.astype(np.int64)
        self.item_degree = graph.item_degree
        self.degree_order = np.argsort(self.item_degree, kind="stable")
        self.joint = graph.joint_csr()
        self.pools = (np.flatnonzero(graph.user_degree > 0), np.flatnonzero(self.item_degree > 0) + n)
        self.history: list[dict] = []  # per epoch: mean edge and contrastive losses
        self._sums = {"edge": 0.0, "cl": 0.0}

    def _svd_init(self, graph: BipartiteGraph, fill: np.ndarray) -> np.ndarray:
        from scipy.sparse.linalg import svds

        p_iu, _ = graph.normalized_biadjacency(np.float32)
        v0 = np.random.default_rng(self.seed).random(min(p_iu.shape))
        u, s, vt = svds(p_iu.astype(np.float64), k=self.dim, v0=v0)
        x = np.concatenate([u * np.sqrt(s), vt.T * np.sqrt(s)]).astype(np.float32)
        rms = float(np.sqrt(np.mean(x ** 2)))
        x *= self.init_std / max(rms, 1e-12)
        out = fill.copy()
        out[:] = x
        return out

    def _apply(self, fn, *args, **kwargs):  # keep the (non-parameter) adjacency on the module's device
        out = super()._apply(fn, *args, **kwargs)
        if self.adj is not None:
            self.adj = fn(self.adj)
        return out

    def encode(self) -> torch.Tensor:
        """``[N+M, d]``: ego embeddings propagated ``n_layers`` times and averaged (LightGCN)."""
        return mean_propagation(self.adj, self.ego, self.n_layers)

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """The ego embeddings ``(E0_user [N, d], E0_item [M, d])`` float32."""
        e0 = self.ego.detach().cpu().numpy()
        n = self.graph.n_users
        return e0[:n].copy(), e0[n:].copy()

    def steps_per_epoch(self) -> int:
        steps = -(-len(self.edge_users) // self.batch_size)
        return min(steps, self.max_steps_per_epoch) if self.max_steps_per_epoch else steps

    def train_batches(self, epoch: int, rng: np.random.Generator) -> Iterator[PretrainBatch]:
        """One epoch of :class:`PretrainBatch`; appends the epoch's mean losses to ``history`` when done."""
        n, m = self.graph.n_users, self.graph.n_items
        keys = self.keys

        def uniform(us: np.ndarray) -> np.ndarray:
            return sample_negatives(us, m, self.positives, 1, rng=rng, keys=keys)[:, 0]

        steps = self.steps_per_epoch()
        perm = rng.permutation(len(self.edge_users))
        self._sums = {"edge": 0.0, "cl": 0.0}
        for s in range(steps):
            b = perm[s * self.batch_size:(s + 1) * self.batch_size]
            u, p = self.edge_users[b], self.edge_items[b]
            negs = np.stack([uniform(u), khop_negatives(u, self.graph, keys, rng, uniform),
                             degree_negatives(u, p, self.item_degree, keys, m, self.degree_window, rng, uniform,
                                              order=self.degree_order)], 1)
            views = []
            if self.cl_weight > 0:
                for pool in self.pools:
                    if len(pool) < 2:
                        continue
                    start = rng.choice(pool, min(self.cl_batch, len(pool)), replace=False)
                    walks = np.stack([random_walk_with_restart(*self.joint, start, self.walk_length, self.restart_p,
                                                               rng) for _ in range(2)])
                    views.append((torch.from_numpy(walks), torch.from_numpy(walks != start[None, :, None])))
            yield PretrainBatch(torch.from_numpy(u), torch.from_numpy(p + n), torch.from_numpy(negs + n), tuple(views))
        self.history.append({"epoch": epoch, "edge_loss": self._sums["edge"] / steps,
                             "cl_loss": self._sums["cl"] / steps})

    def loss(self, batch: PretrainBatch) -> torch.Tensor:
        """Weighted BPR over the three negative kinds + L2 on the batch's ego rows + ``cl_weight`` × InfoNCE."""
        z = self.encode()
        ut, pt, nt = batch.users, batch.pos, batch.negs
        zu, zp, zn = z[ut], z[pt], z[nt]
        sp_ = (zu * zp).sum(-1, keepdim=True)
        sn = (zu.unsqueeze(1) * zn).sum(-1)
        edge = (F.softplus(sn - sp_).mean(0) * self.neg_w).sum()
        loss = edge + self.reg * (self.ego[ut].pow(2).sum() + self.ego[pt].pow(2).sum()
                                  + self.ego[nt].pow(2).sum() / nt.shape[1]) / 2 / len(ut)
        if batch.views:
            cl = 0.0
            for walks, mask in batch.views:
                emb = z[walks]  # [2, C, L, d]
                mask = mask.to(z.dtype).unsqueeze(-1)
                v = (emb * mask).sum(2) / mask.sum(2).clamp_min(1)  # [2, C, d]
                cl = cl + info_nce(v[0], v[1], self.cl_temperature, cosine=True, symmetric=True)
            loss = loss + self.cl_weight * cl
            self._sums["cl"] += float(cl.detach())
        self._sums["edge"] += float(edge.detach())
        return loss


# ----------------------------------------------------------------------------- dual tower

class HopTower(nn.Module):
    """``[B, K+1, d]`` hop features → ``[B, out_dim]``: softmax-weighted hop mean (projected) plus an
    MLP over the concatenated hops whose last layer starts at zero."""

    def __init__(self, n_hops: int, dim: int, hidden: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.hop_logits = nn.Parameter(torch.zeros(n_hops + 1))
        self.proj = nn.Linear(dim, out_dim, bias=False)
        if out_dim == dim:
            with torch.no_grad():
                self.proj.weight.copy_(torch.eye(dim))
        self.mlp = nn.Sequential(nn.Linear((n_hops + 1) * dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, out_dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.hop_logits, 0)
        return self.proj((h * w[:, None]).sum(1)) + self.mlp(h.flatten(1))


@register("dcgnn")
class DCGNN(Recommender):
    """Args:
        dim: pretrained embedding size ``d``.
        n_hops: propagation depth ``K`` (towers read hops ``0..K``).
        hidden, out_dim: tower MLP width and output size.
        loss: "bpr" (uniform negatives, dot-product score) or "softmax" (cosine score: tower outputs
            L2-normalised; each row's positive against the batch's other positives and all ``B · n_neg``
            uniform negatives, temperature ``temperature``, accidental hits masked; memory ``B² (1 + n_neg)``).
        batch_size, n_neg, dropout, temperature: tower training.
        samples_per_epoch: training edges drawn (with replacement) per epoch; None: every edge once.
        pretrain_epochs, pretrain_lr: the trainer's budget for :class:`DCGNNPretraining`
            (``pretrain_epochs=0``: the spectral start only); pretrain_*: its other arguments.
            Defaults chosen on MovieLens-100K validation NDCG@20 (0.2680 with the first defaults —
            3 epochs at lr 1e-2, 2 layers, contrastive weight 0.1 — vs 0.2789 now: at lr 1e-2
            pretraining scored below its own spectral start, at 1e-3 it improves on it; the encoder
            depth now equals ``n_hops``, so the hop-mean features reproduce the encoder).
        feature_dtype: "float32" or "float16" storage of the hop features.
        memory_budget: bytes; larger hop features are memory-mapped from ``feature_dir`` (or a temp dir).
        seed: pretraining seed.
    """

    trainable = True
    # chosen on MovieLens-100K validation: the towers start at the pretrained solution and peak early
    train_defaults = {"lr": 5e-4, "epochs": 10, "patience": 2, "eval_every": 2}

    def __init__(self, n_users: int, n_items: int, dim: int = 64, n_hops: int = 3, hidden: int = 256,
                 out_dim: int = 64, loss: str = "bpr", batch_size: int = 2048, n_neg: int = 1,
                 dropout: float = 0.1, temperature: float = 0.1, samples_per_epoch: int | None = None,
                 pretrain_epochs: int = 20, pretrain_layers: int = 3, pretrain_lr: float = 1e-3,
                 pretrain_batch_size: int = 2048, pretrain_reg: float = 1e-4,
                 pretrain_neg_weights: tuple = (1.0, 0.5, 0.5), pretrain_cl_weight: float = 0.01,
                 pretrain_max_steps: int | None = None, pretrain_init: str = "svd", feature_dtype: str = "float32",
                 memory_budget: int | None = 1 << 30, feature_dir: str | None = None, seed: int = 0):
        super().__init__(n_users, n_items)
        if loss not in ("bpr", "softmax"):
            raise ValueError(f"loss must be 'bpr' or 'softmax', got {loss!r}")
        if feature_dtype not in ("float32", "float16"):
            raise ValueError(f"feature_dtype must be 'float32' or 'float16', got {feature_dtype!r}")
        self.dim, self.n_hops, self.hidden, self.out_dim, self.loss_name = dim, n_hops, hidden, out_dim, loss
        self.batch_size, self.n_neg, self.dropout, self.temperature = batch_size, n_neg, dropout, temperature
        self.samples_per_epoch = samples_per_epoch
        self.pretrain_args = {"epochs": pretrain_epochs, "n_layers": pretrain_layers, "lr": pretrain_lr,
                              "batch_size": pretrain_batch_size, "reg": pretrain_reg,
                              "neg_weights": tuple(pretrain_neg_weights), "cl_weight": pretrain_cl_weight,
                              "max_steps_per_epoch": pretrain_max_steps, "init": pretrain_init}
        self.feature_dtype, self.memory_budget, self.feature_dir, self.seed = feature_dtype, memory_budget, feature_dir, seed
        self.user_tower = HopTower(n_hops, dim, hidden, out_dim, dropout)
        self.item_tower = HopTower(n_hops, dim, hidden, out_dim, dropout)
        # hop features [K+1, N, d] / [K+1, M, d]: buffers (saved with the model) when in memory
        self.register_buffer("user_feats", torch.zeros(n_hops + 1, 0, dim))
        self.register_buffer("item_feats", torch.zeros(n_hops + 1, 0, dim))
        self.features: PropagatedFeatures | None = None  # disk-backed features (not in state_dict)
        self.stats: dict = {}
        self._cache = None
        self._edges = None

    # ------------------------------------------------------------------ stages
    def prepare(self, graph: BipartiteGraph, *, fit: FitFn | None = None,
                features: PropagatedFeatures | None = None) -> None:
        """Set up the edge sampler, then pretrain (through ``fit``) and propagate.

        Args:
            graph: the training graph.
            fit: ``fit(module, *, epochs, lr, seed)`` trains :class:`DCGNNPretraining` (the runner
                passes the one ``Trainer``). Without it, and with ``pretrain_epochs > 0``, both
                stages are skipped: the hop features must then come from :meth:`set_features` or a
                loaded state dict (what ``load_model`` does).
            features: precomputed hop features to use (pretraining and propagation skipped).
        """
        super().prepare(graph)
        self._set_edges(graph)
        pa = self.pretrain_args
        if features is None and fit is None and pa["epochs"] > 0 and graph.n_edges:
            self.stats = {"pretrain_seconds": 0.0, "propagate_seconds": 0.0, "features": "not computed (no fit)"}
            return
        if features is not None:
            self.set_features(features)
            self.stats = {"pretrain_seconds": 0.0, "propagate_seconds": 0.0, "feature_bytes": features.nbytes,
                          "features_on_disk": features.on_disk}
            return
        t0 = time.perf_counter()
        pre = DCGNNPretraining(graph, dim=self.dim, seed=self.seed,
                               **{k: v for k, v in pa.items() if k not in ("epochs", "lr")})
        if pa["epochs"] > 0 and graph.n_edges:
            fit(pre, epochs=pa["epochs"], lr=pa["lr"], seed=self.seed)
        xu, xi = pre.embeddings()
        scale = 1.0 / max(float(np.sqrt((np.mean(xu ** 2) * len(xu) + np.mean(xi ** 2) * len(xi)) / (len(xu) + len(xi)))),
                          1e-12)  # unit RMS input for the towers (propagation is linear)
        xu, xi = xu * scale, xi * scale
        t1 = time.perf_counter()
        feats = propagate(graph, xu, xi, self.n_hops, dtype=np.dtype(self.feature_dtype),
                          memory_budget=self.memory_budget, out_dir=self.feature_dir)
        t2 = time.perf_counter()
        self.set_features(feats)
        self.stats = {"pretrain_seconds": t1 - t0, "propagate_seconds": t2 - t1, "pretrain_history": pre.history,
                      "feature_bytes": feats.nbytes, "features_on_disk": feats.on_disk, "n_edges": graph.n_edges}

    def _set_edges(self, graph: BipartiteGraph) -> None:
        r = graph.to_scipy()
        users = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(r.indptr))
        self._edges = (users, r.indices.astype(np.int64), r, positive_keys(r))

    def set_features(self, feats: PropagatedFeatures) -> None:
        """Use precomputed hop features (from :func:`propagate` / :meth:`PropagatedFeatures.load`)."""
        if feats.n_hops != self.n_hops or feats.dim != self.dim:
            raise ValueError(f"features have K={feats.n_hops}, d={feats.dim}; model wants K={self.n_hops}, d={self.dim}")
        if feats.user.shape[1] != self.n_users or feats.item.shape[1] != self.n_items:
            raise ValueError("feature rows do not match the model's users/items")
        device = self.user_feats.device
        if feats.on_disk:
            self.features = feats
            self.user_feats = torch.zeros(self.n_hops + 1, 0, self.dim, device=device)
            self.item_feats = torch.zeros(self.n_hops + 1, 0, self.dim, device=device)
        else:
            self.features = None
            self.user_feats = torch.from_numpy(np.asarray(feats.user)).to(device)
            self.item_feats = torch.from_numpy(np.asarray(feats.item)).to(device)
        self._cache = None

    def _hops(self, side: str, index: torch.Tensor) -> torch.Tensor:
        """``[B, K+1, d]`` float32 hop features of ``index``."""
        buf = self.user_feats if side == "user" else self.item_feats
        if buf.shape[1] > 0:
            return buf[:, index].transpose(0, 1).float()
        if self.features is None:
            raise RuntimeError("DCGNN has no hop features: call prepare(graph, fit=...) (the runner passes its "
                               "Trainer as fit), set_features(...), or load a saved state")
        return torch.from_numpy(self.features.gather(side, index.cpu().numpy())).to(index.device)

    # ------------------------------------------------------------------ training
    def train_batches(self, epoch: int, rng: np.random.Generator) -> Iterator:
        if self._edges is None:
            raise RuntimeError("call prepare(graph) before training")
        users, items, r, keys = self._edges
        if self.samples_per_epoch:
            order = rng.integers(0, len(users), int(self.samples_per_epoch))
        else:
            order = rng.permutation(len(users))
        u, p = users[order], items[order]
        neg = sample_negatives(u, self.n_items, r, self.n_neg, rng=rng, keys=keys)
        neg = neg[:, 0] if self.n_neg == 1 else neg
        u, p, neg = torch.from_numpy(u), torch.from_numpy(p), torch.from_numpy(np.ascontiguousarray(neg))
        for s in range(0, len(u), self.batch_size):
            yield u[s:s + self.batch_size], p[s:s + self.batch_size], neg[s:s + self.batch_size]

    def _tower(self, side: str, index: torch.Tensor) -> torch.Tensor:
        tower = self.user_tower if side == "user" else self.item_tower
        out = tower(self._hops(side, index))
        return F.normalize(out, dim=-1) if self.loss_name == "softmax" else out

    def loss(self, batch) -> torch.Tensor:
        users, pos, neg = batch
        u = self._tower("user", users)
        items = torch.cat([pos, neg.reshape(-1)])
        it = self._tower("item", items)
        p, n = it[: len(pos)], it[len(pos):]
        if self.loss_name == "bpr":
            n = n.view(len(pos), -1, n.shape[-1])
            return bpr_loss((u * p).sum(-1), (u.unsqueeze(1) * n).sum(-1).squeeze(1))
        logits = u @ it.T / self.temperature  # in-batch positives + sampled negatives
        hit = items.unsqueeze(0) == pos.unsqueeze(1)
        hit[torch.arange(len(pos)), torch.arange(len(pos))] = False  # keep the true positive
        logits = logits.masked_fill(hit, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(pos), device=logits.device))

    # ------------------------------------------------------------------ scoring
    def item_embeddings(self) -> torch.Tensor:
        """``[n_items, out_dim]`` item-tower outputs (cached in eval mode)."""
        if not self.training and not torch.is_grad_enabled() and self._cache is not None:
            return self._cache
        device = self.user_tower.proj.weight.device
        out = torch.cat([self._tower("item", torch.arange(s, min(s + 65536, self.n_items), device=device))
                         for s in range(0, self.n_items, 65536)])
        if not self.training and not torch.is_grad_enabled():
            self._cache = out
        return out

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        return self._tower("user", users)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_embeddings(users) @ self.item_embeddings().T

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def config(self) -> dict:
        pa = self.pretrain_args
        return {**super().config(), "dim": self.dim, "n_hops": self.n_hops, "hidden": self.hidden,
                "out_dim": self.out_dim, "loss": self.loss_name, "batch_size": self.batch_size, "n_neg": self.n_neg,
                "dropout": self.dropout, "temperature": self.temperature, "samples_per_epoch": self.samples_per_epoch,
                "pretrain_epochs": pa["epochs"], "pretrain_layers": pa["n_layers"], "pretrain_lr": pa["lr"],
                "pretrain_batch_size": pa["batch_size"], "pretrain_reg": pa["reg"],
                "pretrain_neg_weights": list(pa["neg_weights"]), "pretrain_cl_weight": pa["cl_weight"],
                "pretrain_max_steps": pa["max_steps_per_epoch"], "pretrain_init": pa["init"], "feature_dtype": self.feature_dtype,
                "memory_budget": self.memory_budget, "feature_dir": self.feature_dir, "seed": self.seed}
