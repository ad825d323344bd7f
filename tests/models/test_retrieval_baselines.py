"""Retrieval baselines: hand-checkable cases, artifact round trips, and quality on real data."""

import numpy as np
import pytest
import torch

from recgraph.data.schema import Interactions
from recgraph.models.retrieval.base import BPRSampler
from recgraph.models.retrieval.itemknn import ItemKNN
from recgraph.models.retrieval.mf import MFBPR
from recgraph.models.retrieval.lightgcn import LightGCN
from recgraph.models.retrieval.pop import Pop
from recgraph.train.artifacts import load_model, save_model


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


def test_itemknn_asymmetric_iuf_matches_dense_reference():
    rng = np.random.default_rng(0)
    R = (rng.random((30, 20)) < 0.2).astype(np.float64)
    R[0, :] = 1  # a heavy user, down-weighted by IUF
    u, i = np.nonzero(R)
    m = ItemKNN(30, 20, k=5, shrink=1.0, alpha=0.7, user_weighting="iuf")
    m.prepare(Interactions(u, i, 30, 20))
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


def skewed():
    """User 0: 1 item, user 1: 40 items, user 2: 3 items, user 3: none (only in the id space)."""
    u = np.r_[0, np.full(40, 1), 2, 2, 2]
    i = np.r_[7, np.arange(40), 40, 41, 42]
    return Interactions(u, i, 4, 50)


def _epoch(sampler, seed=0):
    batches = list(sampler(0, np.random.default_rng(seed)))
    return [torch.cat(parts).numpy() for parts in zip(*batches)]


def test_bpr_edge_scheme_visits_every_edge_once():
    data = skewed()
    users, pos, neg = _epoch(BPRSampler(data, batch_size=7, scheme="edge"))
    assert sorted(zip(users.tolist(), pos.tolist())) == sorted(zip(data.user.tolist(), data.item.tolist()))
    positives = set(zip(data.user.tolist(), data.item.tolist()))
    assert not any((a, b) in positives for a, b in zip(users.tolist(), neg.tolist()))


def test_bpr_user_scheme_draws_users_uniformly_then_their_positives():
    data = skewed()
    positives = set(zip(data.user.tolist(), data.item.tolist()))
    sampler = BPRSampler(data, batch_size=16, scheme="user")
    counts, pos_of_heavy = np.zeros(4), []
    for seed in range(200):
        users, pos, neg = _epoch(sampler, seed)
        assert len(users) == len(data)  # as many draws as training edges, like the official sampler
        counts += np.bincount(users, minlength=4)
        assert all((a, b) in positives for a, b in zip(users.tolist(), pos.tolist()))
        assert not any((a, b) in positives for a, b in zip(users.tolist(), neg.tolist()))
        pos_of_heavy.append(pos[users == 1])
    assert counts[3] == 0  # a user without training items is never drawn
    share = counts[:3] / counts.sum()
    np.testing.assert_allclose(share, 1 / 3, atol=0.02)  # edge sampling would give 1/44, 40/44, 3/44
    heavy = np.bincount(np.concatenate(pos_of_heavy), minlength=40)[:40]
    assert heavy.min() > 0.6 * heavy.mean() and heavy.max() < 1.4 * heavy.mean()  # uniform over its items


def test_bpr_sampling_scheme_is_validated_and_recorded():
    with pytest.raises(ValueError, match="sampling"):
        MFBPR(4, 50, sampling="popular")
    with pytest.raises(ValueError, match="scheme"):
        BPRSampler(skewed(), 8, scheme="popular")
    assert MFBPR(4, 50, sampling="user").config()["sampling"] == "user"


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
    loaded, meta = load_model(tmp_path / "model", graph=data)
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
