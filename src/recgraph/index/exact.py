"""Exact inner-product search: blocked matmul + top-k, memory bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..io import atomic_save_tensors, load_tensors
from .base import Index, _check_k, as_queries

__all__ = ["ExactIndex"]


class ExactIndex(Index):
    """Brute force ("Flat"): every query scores every vector.

    Queries are processed ``query_block`` at a time and vectors ``item_block`` at a time; each
    ``[query_block, item_block]`` score block is reduced to its top-k and merged with the running
    top-k, so memory is ``O(query_block × (item_block + k))`` whatever ``N`` is.
    """

    type_name = "flat"

    def __init__(self, d: int, query_block: int = 1024, item_block: int = 1 << 16):
        super().__init__(d)
        self.query_block, self.item_block = int(query_block), int(item_block)
        self.vectors = torch.empty(0, d)

    @property
    def ntotal(self) -> int:
        return int(self.vectors.shape[0])

    def add(self, vectors) -> "ExactIndex":
        self.vectors = torch.cat([self.vectors, as_queries(vectors, self.d, "vectors")])
        return self

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = as_queries(queries, self.d)
        k = _check_k(k)
        Q, N = q.shape[0], self.ntotal
        scores = torch.full((Q, k), -float("inf"))
        ids = torch.full((Q, k), -1, dtype=torch.long)
        for s in range(0, Q, self.query_block):
            qb = q[s:s + self.query_block]
            best_s = torch.full((qb.shape[0], 0), -float("inf"))
            best_i = torch.empty((qb.shape[0], 0), dtype=torch.long)
            for t in range(0, N, self.item_block):
                blk = qb @ self.vectors[t:t + self.item_block].T
                top, pos = blk.topk(min(k, blk.shape[1]), dim=1)
                best_s = torch.cat([best_s, top], 1)
                best_i = torch.cat([best_i, pos + t], 1)
                if best_s.shape[1] > k:
                    best_s, p = best_s.topk(k, dim=1)
                    best_i = best_i.gather(1, p)
            kk = best_s.shape[1]
            scores[s:s + qb.shape[0], :kk], ids[s:s + qb.shape[0], :kk] = best_s, best_i
        self._set_stats(Q, N, 0)
        return scores.numpy(), ids.numpy()

    def describe(self) -> str:
        return "Flat"

    def _params(self) -> dict:
        return {"query_block": self.query_block, "item_block": self.item_block}

    def _save_payload(self, directory: Path) -> str:
        atomic_save_tensors(directory / "index.safetensors", {"vectors": self.vectors})
        return "index.safetensors"

    @classmethod
    def _load_payload(cls, params: dict, path: Path) -> "ExactIndex":
        index = cls(params["d"], params["query_block"], params["item_block"])
        index.vectors = load_tensors(path)["vectors"].float().contiguous()
        return index
