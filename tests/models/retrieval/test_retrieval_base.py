"""models/retrieval/base.py: the BPR sampler's two schemes and ``interaction_matrix``."""

import numpy as np
import pytest
import torch

from recgraph.data.schema import Interactions
from recgraph.graph.bipartite import BipartiteGraph
from recgraph.models.retrieval.base import BPRSampler, interaction_matrix
from recgraph.models.retrieval.mf import MFBPR


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
    users, pos, neg = _epoch(BPRSampler(BipartiteGraph.from_interactions(data), batch_size=7, scheme="edge"))
    assert sorted(zip(users.tolist(), pos.tolist())) == sorted(zip(data.user.tolist(), data.item.tolist()))
    positives = set(zip(data.user.tolist(), data.item.tolist()))
    assert not any((a, b) in positives for a, b in zip(users.tolist(), neg.tolist()))


def test_bpr_user_scheme_draws_users_uniformly_then_their_positives():
    data = skewed()
    positives = set(zip(data.user.tolist(), data.item.tolist()))
    sampler = BPRSampler(BipartiteGraph.from_interactions(data), batch_size=16, scheme="user")
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


def test_bpr_sampler_of_a_time_ordered_graph_is_the_same_epoch():
    data = skewed()
    data = Interactions(data.user, data.item, 4, 50, timestamp=np.arange(len(data))[::-1].copy())
    a = _epoch(BPRSampler(BipartiteGraph.from_interactions(data), batch_size=8))
    b = _epoch(BPRSampler(BipartiteGraph.from_interactions(data, order="time"), batch_size=8))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_bpr_sampling_scheme_is_validated_and_recorded():
    with pytest.raises(ValueError, match="sampling"):
        MFBPR(4, 50, sampling="popular")
    with pytest.raises(ValueError, match="scheme"):
        BPRSampler(BipartiteGraph.from_interactions(skewed()), 8, scheme="popular")
    assert MFBPR(4, 50, sampling="user").config()["sampling"] == "user"


def test_interaction_matrix_binary_and_counts():
    inter = Interactions(np.array([0, 0, 0, 1, 1]), np.array([2, 2, 0, 1, 1]), 3, 3)
    np.testing.assert_array_equal(interaction_matrix(inter).toarray(), [[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(interaction_matrix(inter, binary=False).toarray(), [[1, 0, 2], [0, 2, 0], [0, 0, 0]])
    assert interaction_matrix(inter).dtype == np.float32
