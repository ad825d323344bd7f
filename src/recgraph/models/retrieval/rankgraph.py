"""RankGraph-2: construction, learning and serving designed together (our formulation; the paper
publishes no formulas — see REFERENCES.md).

Construction (``prepare(graph)``, once, offline, from the training graph)
    1. optional popularity-corrected edge subsampling of the training graph's edges
       (:func:`recgraph.graph.subsample.popularity_subsample`), each kept edge with its exact
       inclusion probability ``π_e``;
    2. top-``ppr_k`` personalized-PageRank neighbourhoods of every user and item on the
       (subsampled) user+item graph (:func:`recgraph.graph.ppr.bipartite_ppr`), stored as
       ``[N+M, ppr_k]`` id / weight tables. A training example is *self-contained*: the batch
       carries each node's neighbourhood arrays; ``loss`` never touches the graph.

Encoder (one table of ``N+M`` node embeddings ``E``)
    ``h(s) = normalize(E_s + Σ_j a_sj E_j)`` over the PPR neighbours ``j`` of ``s`` with
    ``a_s = softmax_j((W_q E_s)·(W_k E_j)/√d + log w_sj)`` — attention biased by the PPR weight
    ``w`` (row-normalised PPR scores), so at init it is the PPR-weighted mean. ``use_ppr=False``:
    ``h(s) = normalize(E_s)`` (ego only).

Loss (per batch of ``B`` kept training edges ``(u, i)``)
    ``L = L_u2i + w_u2u L_u2u + w_i2i L_i2i + w_commit (L_rq^item + L_rq^user)``:

    * ``L_u2i``: InfoNCE with in-batch negatives, logits ``h_u·h_j / τ − log Q(j)`` (log-Q
      correction, ``Q(j)`` = item ``j``'s share of the training edges = how often it shows up as
      an in-batch negative); same-item off-diagonals are masked. With subsampling and
      ``subsample_correction`` each example is weighted by ``1/π_e`` (Horvitz–Thompson), so the
      loss estimates the full-graph loss.
    * ``L_u2u`` / ``L_i2i``: the same InfoNCE between a node and a partner drawn ∝ PPR score from
      its same-type PPR neighbours (users sharing items / co-occurring items).
    * ``L_rq``: residual-quantiser commitment of the batch's item (and user) encodings; the
      codebooks (EMA) are learned jointly (``cotrain_index``) and exported to an
      :class:`~recgraph.index.rq.RQIndex` after training. ``cotrain_index=False``: post-hoc
      residual k-means on the final embeddings instead.

Serving
    ``score(users)``: exact U2I (cosine) for the evaluator. ``retrieve(users, k, mode)``:
    ``"u2i"`` exact, ``"u2i-index"`` through the item RQ index, ``"u2i2i"`` the user's recent
    training items → all items sharing their RQ clusters, scored, ``"u2u2i"`` the most similar
    users in the user's RQ clusters → their training items, scored.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ...graph.bipartite import BipartiteGraph
from ...graph.ppr import bipartite_ppr
from ...graph.subsample import popularity_subsample
from ...index.base import filter_excluded, topk_over_candidates
from ...index.rq import RQIndex
from ...nn.losses import info_nce
from ...nn.quantizer import ResidualQuantizer
from ..registry import register
from .base import FitFn, Recommender

MODES = ("u2i", "u2i-index", "u2i2i", "u2u2i")


@register("rankgraph")
class RankGraph2(Recommender):
    """Args:
        dim: embedding size d.
        ppr_k, ppr_alpha, ppr_eps: PPR neighbourhood size, teleport probability, push threshold.
        temperature: τ of the InfoNCE losses (0.2: MovieLens-100K validation NDCG@20 0.2340 / 0.2575 /
            0.2782 / 0.2817 / 0.2688 at τ = 0.05 / 0.1 / 0.15 / 0.2 / 0.3).
        w_u2u, w_i2i, w_commit: weights of the auxiliary losses.
        keep_rate, subsample_beta: popularity-corrected subsampling (``keep_rate=1``: off).
        subsample_correction: weight kept edges by ``1/π_e`` (ablation switch).
        logq_correction: subtract ``log Q(item)`` from in-batch logits.
        use_ppr: aggregate the PPR neighbourhood (False: ego embedding only; ablation switch).
        cotrain_index: co-learn the RQ codebooks (False: post-hoc RQ; ablation switch).
        rq_levels, rq_items_k, rq_users_k: residual quantisers, L levels × K codes (items, users).
        rq_nprobe: clusters probed by the exported indexes.
        batch_size: training edges per step.
        n_recent: recent training items per user used by U2I2I.
        seed: seed of the subsampling draw and the PPR schedule.
    """

    trainable = True
    #: Trainer defaults, chosen on MovieLens-100K validation (read by run_experiment).
    train_defaults = {"lr": 5e-3, "epochs": 30, "patience": 3, "eval_every": 1}

    def __init__(self, n_users: int, n_items: int, dim: int = 64, ppr_k: int = 16, ppr_alpha: float = 0.15,
                 ppr_eps: float = 1e-4, temperature: float = 0.2, w_u2u: float = 0.1, w_i2i: float = 0.1,
                 w_commit: float = 0.05, keep_rate: float = 1.0, subsample_beta: float = 0.5,
                 subsample_correction: bool = True, logq_correction: bool = True, use_ppr: bool = True,
                 cotrain_index: bool = True, rq_levels: int = 2, rq_items_k: int = 32, rq_users_k: int = 32,
                 rq_nprobe: int = 4, batch_size: int = 2048, n_recent: int = 10, init_std: float = 0.1,
                 seed: int = 0):
        super().__init__(n_users, n_items)
        if not 0 < keep_rate <= 1:
            raise ValueError(f"keep_rate must be in (0, 1], got {keep_rate}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.dim, self.ppr_k, self.ppr_alpha, self.ppr_eps = dim, ppr_k, ppr_alpha, ppr_eps
        self.temperature, self.w_u2u, self.w_i2i, self.w_commit = temperature, w_u2u, w_i2i, w_commit
        self.keep_rate, self.subsample_beta = keep_rate, subsample_beta
        self.subsample_correction, self.logq_correction = subsample_correction, logq_correction
        self.use_ppr, self.cotrain_index = use_ppr, cotrain_index
        self.rq_levels, self.rq_items_k, self.rq_users_k, self.rq_nprobe = rq_levels, rq_items_k, rq_users_k, rq_nprobe
        self.batch_size, self.n_recent, self.init_std, self.seed = batch_size, n_recent, init_std, seed
        n = n_users + n_items
        self.node_emb = nn.Embedding(n, dim)
        self.w_q = nn.Linear(dim, dim, bias=False)
        self.w_k = nn.Linear(dim, dim, bias=False)
        self.item_rq = ResidualQuantizer(dim, rq_levels, rq_items_k)
        self.user_rq = ResidualQuantizer(dim, rq_levels, rq_users_k)
        # data-sized tables filled by prepare (buffers: saved with the model, resized on load)
        self.register_buffer("nbr_idx", torch.full((n, ppr_k), -1, dtype=torch.long))
        self.register_buffer("nbr_w", torch.zeros(n, ppr_k))
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._indexes: dict[str, RQIndex] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.node_emb.weight, std=self.init_std)
        nn.init.normal_(self.w_q.weight, std=0.01)
        nn.init.normal_(self.w_k.weight, std=0.01)

    # ------------------------------------------------------------------ construction
    def prepare(self, graph: BipartiteGraph, *, fit: FitFn | None = None) -> None:
        super().prepare(graph)
        N, M = self.n_users, self.n_items
        R = graph.to_scipy()  # distinct pairs, row-major: the edge ids of the subsample
        if self.keep_rate < 1:
            sub = popularity_subsample(graph, keep_rate=self.keep_rate, beta=self.subsample_beta, seed=self.seed)
            users, items, pi = sub.users, sub.items, sub.inclusion_prob
            ppr_graph = sub.to_graph()
        else:
            users = np.repeat(np.arange(N, dtype=np.int64), np.diff(R.indptr))
            items, pi = R.indices.astype(np.int64), np.ones(R.nnz)
            ppr_graph = graph
        self.subsample_info = {"edges_before": int(R.nnz), "edges_after": int(len(users))}
        self.edge_user, self.edge_item = users, items
        self.edge_weight = (1.0 / pi if self.subsample_correction else np.ones_like(pi)).astype(np.float32)
        freq = np.bincount(items, minlength=M).astype(np.float64)
        self.item_log_q = np.log(np.maximum(freq, 1) / max(len(items), 1)).astype(np.float32)
        # PPR neighbourhoods of all users and items, homogeneous ids (users 0..N-1, items N..)
        nu, ni = bipartite_ppr(ppr_graph, alpha=self.ppr_alpha, eps=self.ppr_eps, topk=self.ppr_k,
                               exclude_self=True, seed=self.seed)
        idx = np.concatenate([nu.indices, ni.indices]).astype(np.int64)
        w = np.concatenate([nu.scores, ni.scores]).astype(np.float32)
        w = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
        self.nbr_idx = torch.from_numpy(idx).to(self.node_emb.weight.device)
        self.nbr_w = torch.from_numpy(w).to(self.node_emb.weight.device)
        self.ppr_pushes = int(nu.num_pushes)
        self._nbr_np = (idx, w)
        self._partners = (self._same_type(idx, w, 0, N), self._same_type(idx, w, N, N + M))
        # serving state: seen items and the most recent training items per user
        self.seen = R
        self.recent = self._recent_items(graph, self.n_recent)
        self.clear_cache()

    @staticmethod
    def _recent_items(graph: BipartiteGraph, n_recent: int) -> np.ndarray:
        """``[N, n_recent]`` each user's latest distinct training items, newest first (-1 padded).

        Order: by the edge's (latest) timestamp, ties by item id; without timestamps, by item id
        (an arbitrary but fixed choice)."""
        N = graph.n_users
        user = np.repeat(np.arange(N, dtype=np.int64), graph.user_degree)
        item = graph.u_indices.astype(np.int64)
        keys = (item, user) if graph.u_timestamp is None else (item, graph.u_timestamp, user)
        o = np.lexsort(keys)  # by user, then time, then item
        user, item = user[o], item[o]
        ends = np.cumsum(graph.user_degree)
        from_end = ends[user] - 1 - np.arange(len(user))
        keep = from_end < n_recent
        recent = np.full((N, n_recent), -1, dtype=np.int64)
        recent[user[keep], from_end[keep]] = item[keep]
        return recent

    @staticmethod
    def _same_type(idx: np.ndarray, w: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the cumulative PPR weight over neighbours in ``[lo, hi)`` (for ∝-score draws)."""
        ok = (idx >= lo) & (idx < hi)
        cw = np.cumsum(np.where(ok, w, 0.0), axis=1)
        return ok, cw

    def _draw_partners(self, nodes: np.ndarray, kind: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One same-type PPR neighbour per node drawn ∝ PPR weight; ``valid`` False where none."""
        rows = nodes
        _, cw = self._partners[kind]
        cw = cw[rows]
        total = cw[:, -1]
        valid = total > 0
        u = rng.random(len(rows)) * total
        pos = np.minimum((cw <= u[:, None]).sum(1), cw.shape[1] - 1)
        partner = self._nbr_np[0][rows, pos]
        return np.where(valid, partner, nodes), valid

    def train_batches(self, epoch: int, rng: np.random.Generator):
        if not hasattr(self, "edge_user"):
            raise RuntimeError("call prepare(graph) before training")
        N = self.n_users
        idx, w = self._nbr_np
        order = rng.permutation(len(self.edge_user))
        for s in range(0, len(order), self.batch_size):
            b = order[s:s + self.batch_size]
            u, i = self.edge_user[b], self.edge_item[b] + N
            u2, u_ok = self._draw_partners(u, 0, rng)
            i2, i_ok = self._draw_partners(i, 1, rng)
            nodes = np.stack([u, i, u2, i2])  # [4, B] homogeneous ids
            uniq, inv = np.unique(nodes, return_inverse=True)  # encode each distinct node once
            yield {"nodes": torch.from_numpy(uniq), "inv": torch.from_numpy(inv.reshape(nodes.shape)),
                   "nbr_idx": torch.from_numpy(idx[uniq]), "nbr_w": torch.from_numpy(w[uniq]), "item": torch.from_numpy(self.edge_item[b]),
                   "weight": torch.from_numpy(self.edge_weight[b]),
                   "log_q": torch.from_numpy(self.item_log_q[self.edge_item[b]]),
                   "u2u_ok": torch.from_numpy(u_ok), "i2i_ok": torch.from_numpy(i_ok)}

    # ------------------------------------------------------------------ encoder
    def encode(self, nodes: torch.Tensor, nbr_idx: torch.Tensor, nbr_w: torch.Tensor) -> torch.Tensor:
        """``h [*, d]`` of ``nodes [*]`` with their PPR neighbourhoods ``nbr_idx, nbr_w [*, k]``."""
        ego = self.node_emb(nodes)
        if not self.use_ppr:
            return F.normalize(ego, dim=-1)
        mask = nbr_idx >= 0
        shape = ego.shape
        ego, mask, w = ego.reshape(-1, self.dim), mask.reshape(-1, mask.shape[-1]), nbr_w.reshape(-1, mask.shape[-1])
        nb = self.node_emb(nbr_idx.clamp_min(0).reshape(mask.shape))  # [n, k, d]
        # (W_q e_s)·(W_k e_j) = e_j·(W_kᵀ W_q e_s): transform the query once, not the k neighbours
        q = self.w_q(ego) @ self.w_k.weight / math.sqrt(self.dim)
        logits = torch.bmm(nb, q.unsqueeze(-1)).squeeze(-1) + torch.log(w.clamp_min(1e-12))
        att = torch.softmax(logits.masked_fill(~mask, -1e9), -1) * mask.any(-1, keepdim=True)
        agg = torch.bmm(att.unsqueeze(1), nb).squeeze(1)
        return F.normalize(ego + agg, dim=-1).reshape(shape)

    def encode_nodes(self, nodes: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """``h`` of homogeneous node ids using the stored PPR tables (serving / evaluation)."""
        out = [self.encode(nodes[s:s + chunk], self.nbr_idx[nodes[s:s + chunk]], self.nbr_w[nodes[s:s + chunk]])
               for s in range(0, len(nodes), chunk)]
        return torch.cat(out) if out else self.node_emb.weight.new_zeros(0, self.dim)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user ``[N, d]`` and item ``[M, d]`` encodings (cached outside training)."""
        if self._cache is not None and not torch.is_grad_enabled():
            return self._cache
        dev = self.node_emb.weight.device
        h = self.encode_nodes(torch.arange(self.n_users + self.n_items, device=dev))
        out = (h[: self.n_users], h[self.n_users:])
        if not torch.is_grad_enabled() and not self.training:
            self._cache = out
        return out

    def train(self, mode: bool = True):
        self.clear_cache()
        return super().train(mode)

    def clear_cache(self) -> None:
        self._cache = None
        self._indexes = {}

    # ------------------------------------------------------------------ loss
    def loss(self, batch) -> torch.Tensor:
        inv = batch["inv"]  # [4, B]: rows user, item, user partner, item partner into "nodes"
        h = self.encode(batch["nodes"], batch["nbr_idx"], batch["nbr_w"])[inv]  # [4, B, d]
        nodes = inv
        hu, hi, hu2, hi2 = h[0], h[1], h[2], h[3]
        item = batch["item"]
        same = item.unsqueeze(0) == item.unsqueeze(1)
        log_q = batch["log_q"] if self.logq_correction else None
        loss = info_nce(hu, hi, self.temperature, log_q, same, batch["weight"])
        if self.w_u2u > 0 and batch["u2u_ok"].any():
            ok = batch["u2u_ok"]
            loss = loss + self.w_u2u * info_nce(hu[ok], hu2[ok], self.temperature,
                                                same=(nodes[2][ok].unsqueeze(0) == nodes[2][ok].unsqueeze(1)))
        if self.w_i2i > 0 and batch["i2i_ok"].any():
            ok = batch["i2i_ok"]
            loss = loss + self.w_i2i * info_nce(hi[ok], hi2[ok], self.temperature,
                                                same=(nodes[3][ok].unsqueeze(0) == nodes[3][ok].unsqueeze(1)))
        if self.cotrain_index and self.w_commit > 0:
            loss = loss + self.w_commit * (self.item_rq(hi).loss + self.user_rq(hu).loss)
        return loss

    # ------------------------------------------------------------------ serving
    def score(self, users: torch.Tensor) -> torch.Tensor:
        u, i = self.embeddings()
        return u[users] @ i.T

    def export_index(self, kind: str = "items", nprobe: int | None = None) -> RQIndex:
        """The RQ index over final item (or user) encodings: co-learned codebooks when
        ``cotrain_index``, else post-hoc residual k-means with the same L × K."""
        if kind not in ("items", "users"):
            raise ValueError(f"kind must be 'items' or 'users', got {kind!r}")
        with torch.no_grad():
            u, i = self.embeddings()
            vecs = (i if kind == "items" else u).detach().cpu()
            rq = self.item_rq if kind == "items" else self.user_rq
            nprobe = self.rq_nprobe if nprobe is None else nprobe
            if self.cotrain_index and bool(rq.initialized):
                return RQIndex.from_codebooks(rq.codebooks, vecs, nprobe=nprobe)
            return RQIndex(self.dim, rq.n_levels, rq.codebook_size, nprobe=nprobe, seed=self.seed).build(vecs)

    def _index(self, kind: str) -> RQIndex:
        if kind not in self._indexes:
            self._indexes[kind] = self.export_index(kind)
        return self._indexes[kind]

    @torch.no_grad()
    def retrieve(self, users, k: int = 20, mode: str = "u2i", n_neighbours: int = 50):
        """Top-``k`` unseen items ``(scores [B, k], ids [B, k])`` for ``users [B]`` (−1 padded) and
        the mean number of items scored per user (``self.last_candidates``)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not hasattr(self, "seen"):
            raise RuntimeError("call prepare(graph) before retrieve (it needs the training items)")
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        u_all, i_all = self.embeddings()
        u_all, i_all = u_all.cpu(), i_all.cpu()
        q = u_all[torch.from_numpy(users)]
        n_seen = np.diff(self.seen.indptr)[users]
        kk = int(min(self.n_items, k + (n_seen.max() if len(users) else 0)))
        if mode == "u2i":
            s = q @ i_all.T
            D, I = s.topk(kk, dim=1)
            self.last_candidates = float(self.n_items)
            return filter_excluded(users, D.numpy(), I.numpy(), self.seen, k)
        if mode == "u2i-index":
            index = self._index("items")
            D, I = index.search(q, kk)
            self.last_candidates = index.n_candidates_last
            return filter_excluded(users, D, I, self.seen, k)
        if mode == "u2i2i":
            index = self._index("items")
            recent = self.recent[users]
            clusters = np.where(recent >= 0, index.cluster_of(np.maximum(recent, 0).ravel()).reshape(recent.shape), -1)
            D, I = index.search_clusters(q, clusters, kk)
            self.last_candidates = index.n_candidates_last
            return filter_excluded(users, D, I, self.seen, k)
        # u2u2i: similar users from the user RQ index, then their training items (unseen), scored
        uindex = self._index("users")
        _, nb = uindex.search(q, n_neighbours + 1)
        nb_csr = sp.csr_matrix((np.ones(int((nb >= 0).sum()), np.float32),
                                (np.repeat(np.arange(len(users)), (nb >= 0).sum(1)), nb[nb >= 0])),
                               shape=(len(users), self.n_users))
        cand = (nb_csr @ self.seen).tocsr()
        cand.data[:] = 1.0
        cand = (cand - cand.multiply(self.seen[users])).tocsr()
        cand.eliminate_zeros()
        cand.sort_indices()
        self.last_candidates = cand.nnz / max(len(users), 1) + uindex.n_candidates_last
        D, I = topk_over_candidates(q, i_all, cand.indptr, cand.indices.astype(np.int64), k)
        return D.numpy(), I.numpy()

    def config(self) -> dict:
        return {**super().config(), "dim": self.dim, "ppr_k": self.ppr_k, "ppr_alpha": self.ppr_alpha,
                "ppr_eps": self.ppr_eps, "temperature": self.temperature, "w_u2u": self.w_u2u,
                "w_i2i": self.w_i2i, "w_commit": self.w_commit, "keep_rate": self.keep_rate,
                "subsample_beta": self.subsample_beta, "subsample_correction": self.subsample_correction,
                "logq_correction": self.logq_correction, "use_ppr": self.use_ppr,
                "cotrain_index": self.cotrain_index, "rq_levels": self.rq_levels, "rq_items_k": self.rq_items_k,
                "rq_users_k": self.rq_users_k, "rq_nprobe": self.rq_nprobe, "batch_size": self.batch_size,
                "n_recent": self.n_recent, "init_std": self.init_std, "seed": self.seed}
