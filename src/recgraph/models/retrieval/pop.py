"""Popularity: every user gets the items with the most training interactions."""

from __future__ import annotations

import numpy as np
import torch

from ...graph.bipartite import BipartiteGraph
from ..registry import register
from .base import FitFn, Recommender


@register("pop")
class Pop(Recommender):
    def __init__(self, n_users: int, n_items: int):
        super().__init__(n_users, n_items)
        self.register_buffer("counts", torch.zeros(n_items))

    def prepare(self, graph: BipartiteGraph, *, fit: FitFn | None = None) -> None:
        """``counts [n_items]``: distinct training users of each item."""
        super().prepare(graph)
        counts = graph.to_scipy(side="item").getnnz(axis=1)
        self.counts.copy_(torch.from_numpy(counts.astype(np.float32)))

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.counts.unsqueeze(0).expand(len(users), -1)
