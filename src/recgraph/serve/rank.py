"""The ranking stage: a saved CTR model re-scores one user's merged candidates.

:func:`load_ranker` reads a ranking run folder (``recgraph train <ctr model> --out RUN``): the model
artifact and the feature tables it needs (its CTR data, rebuilt from the run's config exactly as
training built it when the folder does not hold them). :class:`CTRRanker` scores a request through
the model's one-user request path (:meth:`recgraph.data.ctr.CTRData.request`): the user-side
features are gathered once and broadcast against the ``B`` candidates, at the latest feature
snapshot (what the service knows now).

Raw ids join the two stages: the retrieval run's raw item ids are looked up in the ranker's own
vocabulary; candidates the ranker does not know get ``nan`` (the engine orders them after the
scored ones, by retrieval score). A visitor without a user id cannot be ranked by a model that
needs user features: ``score`` returns None and the retrieval order stands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..io import ArtifactError, read_json
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


def load_ranker(path: str | Path, *, data_dir: str | None = None) -> CTRRanker:
    """Load a ranking (CTR) run folder for serving.

    Raises:
        ArtifactError: the folder is not a ranking run, or misses its saved model.
    """
    from ..train.ctr_experiment import ctr_data, load_interactions
    from .artifacts import load_model, read_artifact_meta

    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(path, "is not a folder", "pass a ranking run folder written by `recgraph train <ctr model> "
                                                     "--out RUN`")
    rec = read_json(path / "metrics.json", what="a ranking run folder written by `recgraph train --out`")
    cfg = rec.get("config", {})
    if rec.get("metrics", {}).get("auc") is None or "protocol" not in cfg:
        raise ArtifactError(path / "metrics.json", "is not a ranking (CTR) run: no AUC / CTR protocol recorded",
                            "pass the folder of a ranking run, e.g. `recgraph train din --dataset movielens-100k "
                            "--out RUN`")
    meta = read_artifact_meta(path / "model")  # raises, naming model/artifact.json, when the run saved no model
    inter = load_interactions(cfg["dataset"], data_dir or cfg.get("data_dir"))
    data = ctr_data(cfg["dataset"], cfg["protocol"], cfg.get("seed", 0), data_dir or cfg.get("data_dir"),
                    **cfg.get("protocol_args", {}))
    model, meta = load_model(path / "model")
    users = IdMap(inter.user_vocab.raw if inter.user_vocab is not None else np.arange(data.n_users))
    items = IdMap(inter.item_vocab.raw if inter.item_vocab is not None else np.arange(data.n_items))
    return CTRRanker(path, model, data, users, items, meta)
