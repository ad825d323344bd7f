"""LightGCN (He et al., SIGIR 2020): linear propagation on the normalised user–item graph.

``E^(k+1) = Â E^(k)`` with ``Â = D^-1/2 A D^-1/2`` of ``A = [[0, R], [Rᵀ, 0]]``; the final embedding is
the mean ``Σ_k E^(k) / (K+1)``; BPR loss plus L2 on the batch's ego (layer-0) embeddings.
"""

from __future__ import annotations

import torch

from ...graph.bipartite import BipartiteGraph
from ...nn.sparse import mean_propagation
from ..registry import register
from .base import FitFn
from .mf import MFBPR


@register("lightgcn")
class LightGCN(MFBPR):
    """Args (besides MF-BPR's): n_layers: propagation depth K."""

    #: MovieLens-100K validation: lr 5e-3 reaches the plateau in ~70 epochs (the paper's 1e-3 needs
    #: several hundred); use 1e-3 for the official Gowalla protocol.
    train_defaults = {"lr": 5e-3, "epochs": 300, "patience": 8, "eval_every": 2}

    def __init__(self, n_users: int, n_items: int, dim: int = 64, n_layers: int = 3, reg: float = 1e-4,
                 batch_size: int = 2048, init_std: float = 0.1, sampling: str = "edge"):
        super().__init__(n_users, n_items, dim=dim, reg=reg, batch_size=batch_size, init_std=init_std,
                         sampling=sampling)
        self.n_layers = n_layers
        self.adj: torch.Tensor | None = None  # sparse [(N+M), (N+M)], rebuilt by prepare (not saved)
        self._cache = None

    def prepare(self, graph: BipartiteGraph, *, fit: FitFn | None = None) -> None:
        """``Â`` of the training graph (:meth:`BipartiteGraph.normalized_adjacency`) and the BPR sampler."""
        super().prepare(graph)
        self.adj = graph.normalized_adjacency().to(self.user_emb.weight.device)
        self._cache = None

    def _apply(self, fn, *args, **kwargs):  # keep the (non-parameter) adjacency on the model's device
        out = super()._apply(fn, *args, **kwargs)
        if self.adj is not None:
            self.adj = fn(self.adj)
        self._cache = None
        return out

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.adj is None:
            raise RuntimeError("call prepare(graph) before using LightGCN (it needs the training graph)")
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        out = mean_propagation(self.adj, x, self.n_layers)  # Â is symmetric: backward reuses it
        return out[: self.n_users], out[self.n_users:]

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training or torch.is_grad_enabled():
            self._cache = None
            return self.propagate()
        if self._cache is None:  # evaluation: propagate once, reuse for every user batch
            self._cache = self.propagate()
        return self._cache

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def config(self) -> dict:
        return {**super().config(), "n_layers": self.n_layers}
