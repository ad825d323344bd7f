"""The ranking stage: a saved CTR model re-scores one user's merged candidates.

:func:`load_ranker` reads a ranking run folder (``recgraph train <ctr model> --out RUN``: the model
artifact, ``features.npz`` with the feature tables, ``vocab.npz``; nothing else is needed).
:class:`CTRRanker` scores a request through the model's one-user request path
(:meth:`recgraph.graph.features.CTRData.request`): the user-side features are gathered once and
broadcast against the ``B`` candidates, at the latest feature snapshot (what the service knows now).

Raw ids join the two stages: the retrieval run's raw item ids are looked up in the ranker's own
vocabulary; candidates the ranker does not know get ``nan`` (the engine orders them after the
scored ones, by retrieval score). A visitor without a user id the ranker knows cannot be ranked by
a model of user features: ``score`` returns None and the retrieval order stands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..io import ArtifactError
from .recommend import IdMap

__all__ = ["CTRRanker", "load_ranker"]


class CTRRanker:
    """Args:
        path: the ranking run folder.
        model: the CTR model (``task == "ctr"``), in eval mode.
        data: its CTR data (feature tables; ``request`` builds one-user batches).
        users, items: raw ids of the ranker's dense indices.
    """

    def __init__(self, path: Path, model, data, users: IdMap, items: IdMap, meta: dict):
        self.path, self.model, self.data, self.users, self.items, self.meta = path, model.eval(), data, users, items, meta
        self.name = str(meta.get("model", type(model).__name__))
        self.snapshot = len(data.features.cutoffs) - 1
        self.needs = getattr(model, "needs", frozenset())
        self.batch_kwargs = getattr(model, "batch_kwargs", {})

    def describe(self) -> dict:
        return {"run": str(self.path), "model": self.name, "dataset": self.meta.get("dataset"),
                "snapshot": self.snapshot, "n_users": self.data.n_users, "n_items": self.data.n_items,
                "git_commit": self.meta.get("git_commit")}

    @torch.no_grad()
    def score(self, user_raw, history_raw, item_raw: list) -> np.ndarray | None:
        """Logits ``[B]`` of the candidates (``nan`` where the ranker does not know the item), or
        None when the request has no user the ranker knows."""
        if user_raw is None:
            return None
        u = int(self.users.lookup([user_raw])[0])
        if u < 0:
            return None
        ii = self.items.lookup(item_raw)
        out = np.full(len(ii), np.nan)
        known = ii >= 0
        if known.any():
            batch = self.data.request(u, ii[known], self.snapshot, self.needs, **self.batch_kwargs)
            out[known] = self.model(batch).double().numpy()
        return out


def load_ranker(path: str | Path) -> CTRRanker:
    """Load a ranking (CTR) run folder for serving.

    Raises:
        ArtifactError: a missing or damaged file, named; a retrieval run passed as the ranker.
    """
    from ..train.runner import load_run

    path = Path(path)
    r = load_run(path)
    if r.task != "ctr":
        raise ArtifactError(path / "config.json", f"is a {r.task} run ({r.config.model}), not a ranking (CTR) run",
                            "pass the folder of e.g. `recgraph train din --dataset movielens-100k --out RUN`")
    meta = {**r.meta, "dataset": r.config.data_name}
    return CTRRanker(path, r.model, r.ctr_data(), IdMap(r.user_vocab), IdMap(r.item_vocab), meta)
