"""Popularity: every user gets the items with the most training interactions."""

from __future__ import annotations

import numpy as np
import torch

from ...data.schema import Interactions
from ..registry import register
from .base import Recommender, interaction_matrix


@register("pop")
class Pop(Recommender):
    def __init__(self, n_users: int, n_items: int):
        super().__init__(n_users, n_items)
        self.register_buffer("counts", torch.zeros(n_items))

    def prepare(self, train: Interactions) -> None:
        super().prepare(train)
        counts = np.asarray(interaction_matrix(train).sum(axis=0)).ravel()
        self.counts.copy_(torch.from_numpy(counts.astype(np.float32)))

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.counts.unsqueeze(0).expand(len(users), -1)
