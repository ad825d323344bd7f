"""Metrics per user group — the long-tail view (DCCL's macro-AUC).

Users are sorted by their number of training samples (ties by user index) and cut into ``n_groups``
groups of (nearly) equal numbers of users (``numpy.array_split``): group 0 is the tail (fewest
samples), the last the head. For one sampled-protocol row per user (1 positive + ``N`` negatives,
scores ``[U, 1 + N]``, column 0 the positive):

* group AUC = ROC AUC (:func:`recgraph.eval.metrics.auc`, ties count 1/2) over the pooled
  candidates of the group's rows (label 1 for column 0, else 0);
* ``macro_auc`` = the unweighted mean of the group AUCs, so tail groups weigh as much as head ones;
* per group also the mean ``hit@k`` / ``ndcg@k`` of its rows and the range of sample counts.
"""

from __future__ import annotations

import numpy as np

from .metrics import auc

__all__ = ["user_groups", "group_metrics"]


def user_groups(samples_per_user: np.ndarray, users: np.ndarray, n_groups: int = 20) -> np.ndarray:
    """Group index ``[len(users)]`` (0 = fewest training samples) of each evaluated user."""
    users = np.asarray(users, np.int64)
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    n_groups = min(n_groups, len(users)) or 1
    cnt = np.asarray(samples_per_user)[users]
    order = np.lexsort((users, cnt))
    group = np.empty(len(users), np.int64)
    for g, chunk in enumerate(np.array_split(order, n_groups)):
        group[chunk] = g
    return group


def group_metrics(scores: np.ndarray, group: np.ndarray, per_row: dict, samples: np.ndarray,
                  n_groups: int) -> dict:
    """Per-group metrics and the macro-AUC (module docstring).

    Args:
        scores: ``[U, 1 + N]`` (column 0 = the positive).
        group: ``[U]`` group index per row (:func:`user_groups`).
        per_row: ``{"hit@10": [U], "ndcg@10": [U], ...}`` from ``evaluate_sampled(..., return_per_user=True)``.
        samples: ``[U]`` training samples of each row's user (for the group ranges).
    """
    scores = np.asarray(scores, np.float64)
    labels = np.zeros(scores.shape, np.int8)
    labels[:, 0] = 1
    rows = []
    for g in range(n_groups):
        sel = np.flatnonzero(group == g)
        if len(sel) == 0:
            continue
        row = {"group": g, "users": int(len(sel)), "min_samples": int(samples[sel].min()),
               "max_samples": int(samples[sel].max()),
               "auc": auc(labels[sel].reshape(-1), scores[sel].reshape(-1))}
        for k, v in per_row.items():
            if "@" in k:
                row[k] = float(np.mean(np.asarray(v)[sel]))
        rows.append(row)
    return {"macro_auc": float(np.mean([r["auc"] for r in rows])), "groups": rows}
