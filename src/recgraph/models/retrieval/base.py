"""The contract every top-K retrieval model meets.

``prepare(graph)`` sees only the training graph (a :class:`~recgraph.graph.bipartite.BipartiteGraph`
built once from the training split by the runner; statistics, propagation operators, sampler
state all come from it — no model builds its own); ``train_batches`` / ``loss`` are the trainer's
hooks (trainable models only); ``score(users) -> [B, n_items]`` is what the evaluator and the
index consume.

A model whose preparation itself trains something (DC-GNN's pretraining) gets the training loop
injected: ``prepare(graph, fit=fit)`` with ``fit(module, *, epochs, lr, seed)`` — the runner passes
one that runs the one :class:`~recgraph.train.trainer.Trainer` (models sit below ``train`` and
never import it).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator, Protocol

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ...data.schema import Interactions
from ...graph.bipartite import BipartiteGraph


def interaction_matrix(inter: Interactions, *, binary: bool = True) -> sp.csr_matrix:
    """``[n_users, n_items]`` float32 CSR of ``inter`` (event counts, or 1 per pair when ``binary``),
    built by :meth:`BipartiteGraph.to_scipy` (the one user×item matrix builder)."""
    graph = BipartiteGraph.from_edges(inter.user, inter.item, inter.n_users, inter.n_items, keep_counts=not binary)
    return graph.to_scipy("binary" if binary else "count")


class FitFn(Protocol):
    """Trains ``module`` (``loss(batch)`` + ``train_batches(epoch, rng)``) for ``epochs`` at ``lr``."""

    def __call__(self, module: nn.Module, *, epochs: int, lr: float, seed: int) -> Any: ...


class Recommender(nn.Module):
    """Base class: a model over ``n_users`` × ``n_items`` that scores all items for a user batch."""

    trainable: ClassVar[bool] = False
    registry_name: ClassVar[str] = ""

    def __init__(self, n_users: int, n_items: int):
        super().__init__()
        self.n_users, self.n_items = int(n_users), int(n_items)

    def prepare(self, graph: BipartiteGraph, *, fit: FitFn | None = None) -> None:
        """Fit statistics / operators from the training graph. ``fit``: the training loop for
        models that train a stage here (see the module docs); others ignore it."""
        if not isinstance(graph, BipartiteGraph):
            raise TypeError(f"{type(self).__name__}.prepare takes the training graph, "
                            f"BipartiteGraph.from_interactions(train), got {type(graph).__name__}")
        if (graph.n_users, graph.n_items) != (self.n_users, self.n_items):
            raise ValueError(f"model built for {self.n_users}×{self.n_items} but the graph is "
                             f"{graph.n_users}×{graph.n_items}")

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, n_items]`` for users ``[B]``; higher is better."""
        raise NotImplementedError

    def train_batches(self, epoch: int, rng: np.random.Generator) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} is not trained by gradient descent")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Like ``nn.Module.load_state_dict``, but buffers whose size depends on the data (filled by
        ``prepare``) are resized to the saved shape first, and derived caches are dropped."""
        for name, buf in list(self.named_buffers()):
            if name in state_dict and tuple(state_dict[name].shape) != tuple(buf.shape):
                owner = self.get_submodule(name.rpartition(".")[0]) if "." in name else self
                owner._buffers[name.rpartition(".")[2]] = torch.empty_like(state_dict[name], device=buf.device)
        out = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.clear_cache()
        return out

    def clear_cache(self) -> None:
        """Drop values derived from parameters/buffers (e.g. propagated embeddings)."""
        for attr in ("_sim", "_cache"):
            if hasattr(self, attr):
                setattr(self, attr, None)

    def config(self) -> dict:
        """Constructor arguments, for metrics.json and artifacts."""
        return {"n_users": self.n_users, "n_items": self.n_items}


class BPRSampler:
    """BPR triples for one epoch: ``(users, pos, neg)`` LongTensors of shapes ``[B]``, ``[B]``,
    ``[B]`` (or ``[B, n_neg]``), each negative uniform over the items that are not among the
    user's training positives.

    Args:
        scheme: how the ``(user, positive)`` pairs of an epoch are drawn.
            ``"edge"``: every training edge once, in random order (edge-uniform; heavy users get
            more steps). ``"user"``: the official LightGCN / NGCF sampler — as many draws as there
            are training edges, each a user drawn uniformly (among users with a training item),
            then one of that user's positives uniformly; every user gets the same expected number
            of steps, which matches metrics averaged over users.
    """

    SCHEMES = ("edge", "user")

    def __init__(self, graph: BipartiteGraph, batch_size: int, n_neg: int = 1, scheme: str = "edge"):
        if scheme not in self.SCHEMES:
            raise ValueError(f"unknown BPR sampling scheme {scheme!r}: use one of {self.SCHEMES}")
        self.positives = graph.to_scipy()
        self.indptr = self.positives.indptr.astype(np.int64)
        self.degree = np.diff(self.indptr)
        # CSR order: edge e is (users[e], items[e]), each user's items contiguous from indptr[user]
        self.users = np.repeat(np.arange(self.positives.shape[0], dtype=np.int64), self.degree)
        self.items = self.positives.indices.astype(np.int64)
        self.active_users = np.flatnonzero(self.degree > 0)
        self.n_items, self.batch_size, self.n_neg, self.scheme = graph.n_items, int(batch_size), int(n_neg), scheme

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def pairs(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One epoch's ``(users [E], positives [E])``, ``E`` = number of training edges."""
        if self.scheme == "edge":
            order = rng.permutation(len(self.users))
            return self.users[order], self.items[order]
        users = self.active_users[rng.integers(0, len(self.active_users), size=len(self.users))]
        offset = (rng.random(len(users)) * self.degree[users]).astype(np.int64)
        return users, self.items[self.indptr[users] + offset]

    def __call__(self, epoch: int, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        from ...data.sampling import sample_negatives

        users, pos = self.pairs(rng)
        neg = sample_negatives(users, self.n_items, self.positives, self.n_neg, rng=rng)
        if self.n_neg == 1:
            neg = neg[:, 0]
        users, pos, neg = torch.from_numpy(users), torch.from_numpy(pos), torch.from_numpy(np.ascontiguousarray(neg))
        for s in range(0, len(users), self.batch_size):
            yield users[s:s + self.batch_size], pos[s:s + self.batch_size], neg[s:s + self.batch_size]
