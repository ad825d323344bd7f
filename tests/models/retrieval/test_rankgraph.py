"""RankGraph-2: self-contained PPR examples, subsampling correction, co-learned RQ index, retrieval
modes (fast, synthetic), and the acceptance test on MovieLens-100K (slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recgraph.data.schema import Interactions
from recgraph.graph.bipartite import BipartiteGraph
from recgraph.graph.ppr import bipartite_ppr
from recgraph.graph.subsample import popularity_subsample
from recgraph.index import ExactIndex, RQIndex
from recgraph.models.registry import get_model_class
from recgraph.models.retrieval.rankgraph import RankGraph2


def synthetic(n_users=240, n_items=160, n_groups=8, per_user=12, seed=0) -> Interactions:
    """Users of group g mostly pick items of group g (a planted block structure)."""
    rng = np.random.default_rng(seed)
    ug = np.arange(n_users) % n_groups
    users, items = [], []
    for u in range(n_users):
        own = np.flatnonzero(np.arange(n_items) % n_groups == ug[u])
        pick = rng.choice(own, size=per_user - 2, replace=False)
        noise = rng.choice(n_items, size=2, replace=False)
        for i in np.unique(np.concatenate([pick, noise])):
            users.append(u)
            items.append(i)
    users, items = np.array(users), np.array(items)
    return Interactions(users, items, n_users, n_items, timestamp=np.arange(len(users)))


def trained(train, epochs=15, **kw) -> RankGraph2:
    torch.manual_seed(0)
    m = RankGraph2(train.n_users, train.n_items, dim=32, batch_size=256, rq_items_k=8, rq_users_k=8,
                   rq_nprobe=2, **kw)
    m.prepare(BipartiteGraph.from_interactions(train))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for epoch in range(epochs):
        m.train()
        for batch in m.train_batches(epoch, np.random.default_rng(epoch)):
            opt.zero_grad()
            m.loss(batch).backward()
            opt.step()
    m.eval()
    return m


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def model(data):
    return trained(data)


def test_registered_and_has_train_defaults():
    assert get_model_class("rankgraph") is RankGraph2
    assert set(RankGraph2.train_defaults) == {"lr", "epochs", "patience", "eval_every"}


def test_training_examples_are_self_contained(data):
    m = RankGraph2(data.n_users, data.n_items, dim=16, batch_size=128)
    m.prepare(BipartiteGraph.from_interactions(data))
    batch = next(iter(m.train_batches(0, np.random.default_rng(0))))
    before = m.loss(batch)
    m.nbr_idx.fill_(-1)  # wipe the model's own graph tables: the loss must not read them
    m.nbr_w.zero_()
    torch.testing.assert_close(m.loss(batch), before)
    # the batch carries each node's PPR neighbourhood
    assert batch["nbr_idx"].shape == (len(batch["nodes"]), m.ppr_k)


def test_ego_only_ablation_ignores_neighbourhood(data):
    m = RankGraph2(data.n_users, data.n_items, dim=16, use_ppr=False)
    m.prepare(BipartiteGraph.from_interactions(data))
    nodes = torch.arange(10)
    torch.testing.assert_close(m.encode(nodes, m.nbr_idx[nodes], m.nbr_w[nodes]),
                               torch.nn.functional.normalize(m.node_emb(nodes), dim=-1))


def test_subsampling_weights_are_inverse_inclusion_probabilities(data):
    m = RankGraph2(data.n_users, data.n_items, keep_rate=0.6)
    m.prepare(BipartiteGraph.from_interactions(data))
    assert m.subsample_info["edges_after"] < m.subsample_info["edges_before"]
    assert (m.edge_weight >= 1).all() and m.edge_weight.max() > 1
    off = RankGraph2(data.n_users, data.n_items, keep_rate=0.6, subsample_correction=False)
    off.prepare(BipartiteGraph.from_interactions(data))
    assert (off.edge_weight == 1).all()
    np.testing.assert_array_equal(off.edge_item, m.edge_item)  # same draw, only the weights differ
    # PPR ran on the graph of the kept edges, not on the full training graph
    g = BipartiteGraph.from_interactions(data)
    sub = popularity_subsample(g, keep_rate=0.6, beta=m.subsample_beta, seed=m.seed)
    kw = dict(alpha=m.ppr_alpha, eps=m.ppr_eps, topk=m.ppr_k, exclude_self=True, seed=m.seed)
    on_sub, _ = bipartite_ppr(sub.to_graph(), **kw)
    on_full, _ = bipartite_ppr(g, **kw)
    np.testing.assert_array_equal(m.nbr_idx[: data.n_users].numpy(), on_sub.indices)
    assert not np.array_equal(on_sub.indices, on_full.indices)


def test_recent_items_are_the_latest_distinct_items():
    # user 0: items 5 (t=1), 2 (t=3), 5 again (t=9: latest), 7 (t=3, tie with 2 -> item order); user 1: none
    inter = Interactions(np.array([0, 0, 0, 0, 2]), np.array([5, 2, 5, 7, 1]), 3, 8,
                         timestamp=np.array([1, 3, 9, 3, 4]))
    recent = RankGraph2._recent_items(BipartiteGraph.from_interactions(inter), 2)
    assert recent.tolist() == [[5, 7], [-1, -1], [1, -1]]  # newest first
    untimed = Interactions(inter.user, inter.item, 3, 8)
    assert RankGraph2._recent_items(BipartiteGraph.from_interactions(untimed), 3)[0].tolist() == [7, 5, 2]


def test_learns_the_planted_structure(model, data):
    # group of user u is u % 8; items of the same group should dominate its top-10 (chance: 1/8)
    with torch.no_grad():
        top = model.score(torch.arange(data.n_users)).topk(10, dim=1).indices.numpy()
    same = (top % 8) == (np.arange(data.n_users) % 8)[:, None]
    assert same.mean() > 0.6


@pytest.mark.parametrize("mode", ["u2i", "u2i-index", "u2i2i", "u2u2i"])
def test_retrieve_modes_return_unseen_relevant_items(model, data, mode):
    users = np.arange(0, data.n_users, 3)
    scores, ids = model.retrieve(users, 10, mode=mode)
    assert ids.shape == (len(users), 10) and scores.shape == ids.shape
    seen = model.seen
    for u, row in zip(users, ids):
        real = row[row >= 0]
        assert len(set(real)) == len(real)
        assert not set(real) & set(seen[u].indices)
    real = ids >= 0
    assert real.mean() > 0.9
    same_group = (ids % 8) == (users % 8)[:, None]
    assert same_group[real].mean() > 0.6, mode
    assert model.last_candidates > 0
    if mode == "u2i":
        with torch.no_grad():
            s = model.score(torch.from_numpy(users)).numpy()
        for r, u in enumerate(users):
            s[r, seen[u].indices] = -np.inf
        np.testing.assert_array_equal(ids, np.argsort(-s, axis=1, kind="stable")[:, :10])
    if mode == "u2i-index":
        assert model.last_candidates < data.n_items


@pytest.mark.parametrize("cotrain", [True, False])
def test_exported_index_recall_vs_exact(data, cotrain):
    m = trained(data, epochs=8, cotrain_index=cotrain)
    index = m.export_index("items", nprobe=3)
    assert isinstance(index, RQIndex) and index.describe() == "RQ2x8,nprobe3"
    if cotrain:  # co-learned: the exported codebooks are the quantiser's
        torch.testing.assert_close(index.codebooks, m.item_rq.codebooks)
    u, i = m.embeddings()
    _, exact = ExactIndex(i.shape[1]).build(i).search(u, 10)
    _, approx = index.search(u, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, exact)])
    assert overlap > 0.8 and index.n_candidates_last < 0.6 * data.n_items


def test_state_dict_round_trip(model, data):
    fresh = RankGraph2(data.n_users, data.n_items, dim=32, batch_size=256, rq_items_k=8, rq_users_k=8)
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    users = torch.arange(20)
    with torch.no_grad():
        torch.testing.assert_close(fresh.score(users), model.score(users))


def test_bad_arguments():
    with pytest.raises(ValueError, match="keep_rate"):
        RankGraph2(3, 3, keep_rate=0)
    m = RankGraph2(3, 3)
    with pytest.raises(RuntimeError, match="prepare"):
        m.retrieve([0], 2)


# ---------------------------------------------------------------------- acceptance (real data)

@pytest.mark.slow
def test_beats_pop_and_mf_bpr_on_movielens_100k(ml100k_split, ml100k_baselines):
    """Same split, same evaluator, each model with its default schedule (validation early stop);
    Pop and MF-BPR come from the shared session fixtures (tests/conftest.py)."""
    from recgraph.train.runner import ExperimentConfig, run as run_experiment

    ours = run_experiment(ExperimentConfig(model="rankgraph", dataset="movielens-100k", device="cpu", progress=False),
                          split=ml100k_split)["metrics"]["recall@20"]
    pop, bpr = ml100k_baselines["pop"]["recall@20"], ml100k_baselines["bpr"]["recall@20"]
    assert ours >= 1.5 * pop, f"RankGraph-2 {ours:.4f} vs Pop {pop:.4f}"
    assert ours > bpr, f"RankGraph-2 {ours:.4f} vs MF-BPR {bpr:.4f}"
