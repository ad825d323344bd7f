"""Retrieval baselines: hand-checkable cases, artifact round trips, and quality on real data."""

import numpy as np
import pytest
import torch

from recgraph.data.schema import Interactions
from recgraph.models.retrieval.itemknn import ItemKNN
from recgraph.models.retrieval.lightgcn import LightGCN
from recgraph.models.retrieval.pop import Pop
from recgraph.serve.artifacts import load_model, save_model


def toy():
    #        items: 0 1 2 3
    # user 0:       x x . .
    # user 1:       x x x .
    # user 2:       . x x x
    u = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    i = np.array([0, 1, 0, 1, 2, 1, 2, 3])
    return Interactions(u, i, 3, 4)


def test_pop_scores_are_training_counts():
    m = Pop(3, 4)
    m.prepare(toy())
    assert m.score(torch.tensor([0, 2])).tolist() == [[2, 3, 2, 1]] * 2


def test_itemknn_matches_dense_cosine_reference():
    data = toy()
    m = ItemKNN(3, 4, k=2)
    m.prepare(data)
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


def test_lightgcn_propagation_matches_dense_formula():
    data = toy()
    torch.manual_seed(0)
    m = LightGCN(3, 4, dim=5, n_layers=2)
    m.prepare(data)
    A = np.zeros((7, 7))
    A[data.user, 3 + data.item] = 1
    A[3 + data.item, data.user] = 1
    d = A.sum(1)
    An = A / np.sqrt(np.outer(d, d))
    x0 = torch.cat([m.user_emb.weight, m.item_emb.weight]).detach().numpy().astype(np.float64)
    final = (x0 + An @ x0 + An @ An @ x0) / 3
    m.eval()
    with torch.no_grad():
        got = m.score(torch.arange(3)).numpy()
    np.testing.assert_allclose(got, final[:3] @ final[3:].T, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [ItemKNN, LightGCN])
def test_artifact_round_trip_scores_identically(tmp_path, cls):
    data = toy()
    m = cls(3, 4)
    m.prepare(data)
    m.eval()
    with torch.no_grad():
        before = m.score(torch.arange(3))
    save_model(tmp_path / "model", m, {"dataset": "toy"})
    assert not list((tmp_path / "model").glob("*.tmp"))
    loaded, meta = load_model(tmp_path / "model", train=data)
    with torch.no_grad():
        after = loaded.score(torch.arange(3))
    assert meta["dataset"] == "toy" and torch.equal(before, after)


def test_corrupt_artifact_gives_clear_error(tmp_path):
    m = Pop(3, 4)
    m.prepare(toy())
    save_model(tmp_path, m)
    (tmp_path / "artifact.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        load_model(tmp_path)
