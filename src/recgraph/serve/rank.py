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

:class:`MultiTaskRanker` does the same for a multi-task run (``recgraph train mgoe --tasks
cart,fav,buy --out RUN``: ``features.npz`` + ``task_features.npz``): one forward pass gives every
task's probability per candidate, and the ranking score is their weighted sum
``Σ_t w_t · p_t`` (:meth:`recgraph.models.multitask.base.MultiTaskModel.score`) with the weights a
request sends (``task_weights``; default equal weights ``1/T``, i.e. the mean probability).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..io import ArtifactError
from .recommend import IdMap, TaskWeightError

__all__ = ["CTRRanker", "MultiTaskRanker", "TaskWeightError", "load_ranker"]


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
        return self._outputs(user_raw, item_raw, (), lambda x: x)

    def _outputs(self, user_raw, item_raw: list, columns: tuple, transform) -> np.ndarray | None:
        """``transform(model(...))`` for the known candidates (``nan`` rows elsewhere), or None for a user
        the ranker does not know."""
        if user_raw is None:
            return None
        u = int(self.users.lookup([user_raw])[0])
        if u < 0:
            return None
        ii = self.items.lookup(item_raw)
        out = np.full((len(ii), *columns), np.nan)
        known = ii >= 0
        if known.any():
            batch = self.data.request(u, ii[known], self.snapshot, self.needs, **self.batch_kwargs)
            out[known] = transform(self.model(batch)).double().numpy()
        return out


class MultiTaskRanker(CTRRanker):
    """A multi-task ranking run: ``tasks`` names the model's outputs (in order); :meth:`score_tasks`
    gives every task's probability per candidate, :meth:`score` their weighted sum."""

    def __init__(self, path: Path, model, data, users: IdMap, items: IdMap, meta: dict):
        super().__init__(path, model, data, users, items, meta)
        self.tasks = tuple(data.tasks)

    def describe(self) -> dict:
        return {**super().describe(), "tasks": list(self.tasks),
                "default_task_weights": dict(zip(self.tasks, self.weights(None).tolist()))}

    def weights(self, task_weights: dict | None) -> np.ndarray:
        """``[T]`` weights of a request: ``task_weights`` maps task names to weights >= 0 (tasks not
        named get 0); None means equal weights ``1/T``.

        Raises:
            TaskWeightError: an unknown task (the message names the known ones), a negative or
                non-finite weight."""
        T = len(self.tasks)
        if task_weights is None:
            return np.full(T, 1.0 / T)
        unknown = [t for t in task_weights if t not in self.tasks]
        if unknown:
            raise TaskWeightError(f"unknown task(s) {unknown} in task_weights; this ranker ({self.name}) predicts "
                                  f"{list(self.tasks)}")
        w = np.zeros(T)
        for j, t in enumerate(self.tasks):
            v = task_weights.get(t, 0.0)
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise TaskWeightError(f"task_weights[{t!r}] must be a number, got {v!r}") from None
            if not np.isfinite(v) or v < 0:
                raise TaskWeightError(f"task_weights[{t!r}] must be a finite number >= 0, got {v!r}")
            w[j] = v
        return w  # all zero is allowed: every score is 0 and the retrieval order stands

    @torch.no_grad()
    def score_tasks(self, user_raw, history_raw, item_raw: list) -> np.ndarray | None:
        """Probabilities ``[B, T]`` per candidate and task (``nan`` rows where the ranker does not
        know the item), or None when the request has no user the ranker knows."""
        return self._outputs(user_raw, item_raw, (len(self.tasks),), torch.sigmoid)

    def score(self, user_raw, history_raw, item_raw: list, task_weights: dict | None = None) -> np.ndarray | None:
        """``Σ_t w_t · p_t`` per candidate (``nan`` where unknown), or None (see :meth:`score_tasks`)."""
        p = self.score_tasks(user_raw, history_raw, item_raw)
        return None if p is None else p @ self.weights(task_weights)


def load_ranker(path: str | Path) -> CTRRanker:
    """Load a ranking run folder for serving: a CTR run (:class:`CTRRanker`) or a multi-task run
    (:class:`MultiTaskRanker`).

    Raises:
        ArtifactError: a missing or damaged file, named; a retrieval run passed as the ranker.
    """
    from ..train.runner import load_run

    path = Path(path)
    r = load_run(path)
    meta = {**r.meta, "dataset": r.config.data_name}
    if r.task == "multitask":
        return MultiTaskRanker(path, r.model, r.multitask_data(), IdMap(r.user_vocab), IdMap(r.item_vocab), meta)
    if r.task != "ctr":
        raise ArtifactError(path / "config.json", f"is a {r.task} run ({r.config.model}), not a ranking (CTR or "
                            "multi-task) run", "pass the folder of e.g. `recgraph train din --dataset movielens-100k "
                            "--out RUN` or `recgraph train mgoe --dataset taobao-userbehavior-sample --tasks "
                            "cart,fav,buy --out RUN`")
    return CTRRanker(path, r.model, r.ctr_data(), IdMap(r.user_vocab), IdMap(r.item_vocab), meta)
