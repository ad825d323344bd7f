import numpy as np
import pytest
import torch

from recgraph.data.sampling import is_positive, positive_keys
from recgraph.data.schema import Interactions
from recgraph.graph.bipartite import BipartiteGraph
from recgraph.models.registry import get_model_class
from recgraph.models.retrieval.dcgnn import (DCGNN, DCGNNPretrainer, _joint_csr, degree_negatives, info_nce,
                                             khop_negatives, random_walk_with_restart)

def _toy(seed=0, n=40, m=60, e=400):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, n, e), rng.integers(0, m, e)
    inter = Interactions(user=u.astype(np.int64), item=i.astype(np.int64), n_users=n, n_items=m)
    return inter, BipartiteGraph.from_interactions(inter)


def _uniform_fallback(m):
    return lambda us: np.full(len(us), -7, np.int64)


def test_random_walk_stays_on_edges():
    _, g = _toy()
    ptr, idx = _joint_csr(g)
    rng = np.random.default_rng(0)
    start = np.flatnonzero(np.diff(ptr) > 0)
    walk = random_walk_with_restart(ptr, idx, start, 6, 0.3, rng)
    assert walk.shape == (len(start), 6)
    prev = start
    adj = g.normalized_adjacency().to_dense().numpy() > 0
    for s in range(6):
        cur = walk[:, s]
        assert np.all((cur == start) | adj[prev, cur])  # a restart or a step along an edge
        prev = cur


def test_khop_and_degree_negatives_are_valid():
    inter, g = _toy()
    r = g.to_scipy()
    keys = positive_keys(r)
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(g.n_users), np.diff(g.u_indptr))
    pos = g.u_indices.astype(np.int64)
    hop = khop_negatives(users, g, keys, rng, _uniform_fallback(g.n_items))
    ok = hop >= 0
    assert ok.mean() > 0.5
    assert not is_positive(users[ok], hop[ok], keys, g.n_items).any()
    # every found item is exactly 3 hops away: reachable via R Rᵀ R
    rd = r.toarray() > 0
    three = (rd.astype(int) @ rd.T.astype(int) @ rd.astype(int)) > 0
    assert three[users[ok], hop[ok]].all()
    deg = g.item_degree
    dn = degree_negatives(users, pos, deg, keys, g.n_items, 3, rng, _uniform_fallback(g.n_items))
    ok = dn >= 0
    assert ok.mean() > 0.5 and not is_positive(users[ok], dn[ok], keys, g.n_items).any()
    order = np.argsort(deg, kind="stable")
    rank = np.empty(g.n_items, np.int64)
    rank[order] = np.arange(g.n_items)
    assert np.all(np.abs(rank[dn[ok]] - rank[pos[ok]]) <= 3)


def test_info_nce_prefers_aligned_views():
    a = torch.randn(16, 8)
    assert info_nce(a, a, 0.2) < info_nce(a, torch.randn(16, 8), 0.2)


def test_pretrainer_reduces_loss_and_is_seeded():
    _, g = _toy(e=800)
    p1 = DCGNNPretrainer(dim=8, epochs=4, batch_size=128, cl_batch=16, init="normal", seed=3)
    xu, xi = p1.fit(g)
    assert xu.shape == (g.n_users, 8) and xi.shape == (g.n_items, 8)
    assert p1.history[-1]["edge_loss"] < p1.history[0]["edge_loss"]
    assert p1.history[0]["cl_loss"] > 0
    xu2, _ = DCGNNPretrainer(dim=8, epochs=4, batch_size=128, cl_batch=16, init="normal", seed=3).fit(g)
    np.testing.assert_array_equal(xu, xu2)


def test_dcgnn_contract_and_memmap_equivalence(tmp_path):
    inter, g = _toy()
    assert get_model_class("dcgnn") is DCGNN
    kw = dict(dim=8, n_hops=2, hidden=16, out_dim=8, pretrain_epochs=1, pretrain_batch_size=128, batch_size=64)
    torch.manual_seed(0)
    mem = DCGNN(inter.n_users, inter.n_items, **kw)
    mem.prepare(inter)
    torch.manual_seed(0)
    disk = DCGNN(inter.n_users, inter.n_items, memory_budget=0, feature_dir=str(tmp_path / "f"), **kw)
    disk.prepare(inter)
    assert disk.features is not None and disk.features.on_disk and mem.features is None
    users = torch.arange(inter.n_users)
    mem.eval(), disk.eval()
    with torch.no_grad():
        s1, s2 = mem.score(users), disk.score(users)
    assert s1.shape == (inter.n_users, inter.n_items)
    torch.testing.assert_close(s1, s2)
    # batch-size independent scores
    with torch.no_grad():
        torch.testing.assert_close(mem.score(users[:7]), s1[:7])
    # one training step
    mem.train()
    batch = next(iter(mem.train_batches(0, np.random.default_rng(0))))
    loss = mem.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and mem.user_tower.mlp[-1].weight.grad is not None
    # samples_per_epoch fixes the number of examples regardless of graph size
    mem.samples_per_epoch = 100
    assert sum(len(b[0]) for b in mem.train_batches(0, np.random.default_rng(0))) == 100
    # state dict round trip (features are buffers when in memory)
    fresh = DCGNN(inter.n_users, inter.n_items, **kw)
    fresh.load_state_dict(mem.state_dict())
    fresh.eval(), mem.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh.score(users), mem.score(users))
    cfg = mem.config()
    assert DCGNN(**cfg).config() == cfg


def test_softmax_loss_scores_by_cosine_and_learns():
    """loss="softmax": tower outputs are unit vectors (scores are cosines in [-1, 1]) and a few
    steps lower the loss."""
    inter, _ = _toy()
    torch.manual_seed(0)
    m = DCGNN(inter.n_users, inter.n_items, dim=8, n_hops=2, hidden=16, out_dim=8, loss="softmax",
              temperature=0.2, pretrain_epochs=1, pretrain_batch_size=128, batch_size=64)
    m.prepare(inter)
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m.item_embeddings().norm(dim=-1), torch.ones(inter.n_items))
        assert m.score(torch.arange(5)).abs().max() <= 1 + 1e-5
    m.train()
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    batch = next(iter(m.train_batches(0, np.random.default_rng(0))))
    first = float(m.loss(batch).detach())
    for _ in range(20):
        opt.zero_grad()
        m.loss(batch).backward()
        opt.step()
    assert float(m.loss(batch).detach()) < first


@pytest.mark.slow
def test_dcgnn_beats_pop_and_bpr_on_movielens(ml100k_split, ml100k_baselines):
    """Against Pop and MF-BPR trained with their default schedules on the same split (tests/conftest.py)."""
    from recgraph.train.runner import ExperimentConfig, run as run_experiment

    rec = run_experiment(ExperimentConfig(model="dcgnn", dataset="movielens-100k", progress=False, device="cpu"),
                         split=ml100k_split)
    ours, pop, bpr = (r["recall@20"] for r in (rec["metrics"], ml100k_baselines["pop"], ml100k_baselines["bpr"]))
    assert ours > pop, f"DC-GNN {ours:.4f} vs Pop {pop:.4f}"
    assert ours > bpr, f"DC-GNN {ours:.4f} vs MF-BPR {bpr:.4f}"
