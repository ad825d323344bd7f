"""Per-group metrics: group assignment and the pooled group AUC against scikit-learn."""

import numpy as np
from sklearn.metrics import roc_auc_score

from recgraph.eval.groups import group_metrics, user_groups


def test_user_groups_sorted_by_samples_equal_sizes():
    samples = np.array([5, 1, 9, 3, 3, 7, 2])
    users = np.array([0, 1, 2, 3, 4, 5, 6])
    g = user_groups(samples, users, 3)
    assert np.bincount(g).tolist() == [3, 2, 2]
    assert g.tolist() == [1, 0, 2, 0, 1, 2, 0]  # counts 1,2,3 | 3,5 | 7,9 (ties by user id)


def test_group_auc_and_macro():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, 11))
    scores[:, 0] += np.linspace(-1, 2, 40)
    samples = np.arange(40)
    g = user_groups(samples, np.arange(40), 4)
    per_row = {"hit@10": (scores[:, 1:] >= scores[:, :1]).sum(1) < 10}
    res = group_metrics(scores, g, per_row, samples, 4)
    for row in res["groups"]:
        sel = g == row["group"]
        y = np.zeros((sel.sum(), 11))
        y[:, 0] = 1
        assert abs(row["auc"] - roc_auc_score(y.ravel(), scores[sel].ravel())) < 1e-12
        assert row["hit@10"] == per_row["hit@10"][sel].mean()
    assert abs(res["macro_auc"] - np.mean([r["auc"] for r in res["groups"]])) < 1e-12
    assert res["groups"][0]["auc"] < res["groups"][-1]["auc"]  # the planted trend
