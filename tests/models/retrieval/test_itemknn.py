"""ItemKNN: scores against dense cosine references (the co-occurrence comes from the graph)."""

import numpy as np
import pytest
import torch

from recgraph.data.schema import Interactions
from recgraph.graph.bipartite import BipartiteGraph
from recgraph.models.retrieval.itemknn import ItemKNN


def test_itemknn_matches_dense_cosine_reference(toy, toy_graph):
    data = toy
    m = ItemKNN(3, 4, k=2)
    m.prepare(toy_graph)
    R = np.zeros((3, 4))
    R[data.user, data.item] = 1
    cos = (R.T @ R) / np.sqrt(np.outer(R.sum(0), R.sum(0)))
    np.fill_diagonal(cos, 0)
    # keep, for each target item j, its 2 most similar items (ties -> lower index)
    keep = np.zeros_like(cos)
    for j in range(4):
        order = sorted(range(4), key=lambda i: (-cos[i, j], i))
        for i in [i for i in order if i != j and cos[i, j] > 0][:2]:
            keep[i, j] = cos[i, j]
    expected = R @ keep
    got = m.score(torch.arange(3)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_itemknn_asymmetric_iuf_matches_dense_reference():
    rng = np.random.default_rng(0)
    R = (rng.random((30, 20)) < 0.2).astype(np.float64)
    R[0, :] = 1  # a heavy user, down-weighted by IUF
    u, i = np.nonzero(R)
    m = ItemKNN(30, 20, k=5, shrink=1.0, alpha=0.7, user_weighting="iuf")
    m.prepare(BipartiteGraph.from_interactions(Interactions(u, i, 30, 20)))
    w = 1 / np.log2(1 + np.maximum(R.sum(1), 1))  # users without items: weight 1 (they add nothing)
    deg = R.sum(0)
    # sim(i, j) for history item i and target j: Σ_u w_u R_ui R_uj / (deg_i^0.7 deg_j^0.3 + 1)
    sim = (R.T * w) @ R / (np.outer(deg ** 0.7, deg ** 0.3) + 1.0)
    np.fill_diagonal(sim, 0)
    keep = np.zeros_like(sim)
    for j in range(20):
        order = sorted((i for i in range(20) if i != j and sim[i, j] > 0), key=lambda i: (-sim[i, j], i))
        keep[order[:5], j] = sim[order[:5], j]
    np.testing.assert_allclose(m.score(torch.arange(30)).numpy(), R @ keep, rtol=1e-5, atol=1e-6)
    assert m.config()["alpha"] == 0.7 and m.config()["user_weighting"] == "iuf"
    with pytest.raises(ValueError, match="user_weighting"):
        ItemKNN(3, 4, user_weighting="bm25")
    with pytest.raises(ValueError, match="alpha"):
        ItemKNN(3, 4, alpha=-0.1)
