import numpy as np
import pytest
import torch

from recgraph.data.sampling import is_positive, positive_keys
from recgraph.data.schema import Interactions
from recgraph.data.split import Split
from recgraph.graph.bipartite import BipartiteGraph
from recgraph.models.registry import get_model_class
from recgraph.models.retrieval.dcgnn import (DCGNN, DCGNNPretraining, degree_negatives, khop_negatives,
                                             random_walk_with_restart)
from recgraph.train.runner import stage_fitter
from recgraph.train.trainer import Trainer

FIT = stage_fitter("cpu")

def _toy(seed=0, n=40, m=60, e=400):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, n, e), rng.integers(0, m, e)
    inter = Interactions(user=u.astype(np.int64), item=i.astype(np.int64), n_users=n, n_items=m)
    return inter, BipartiteGraph.from_interactions(inter)


def _uniform_fallback(m):
    return lambda us: np.full(len(us), -7, np.int64)


def test_random_walk_stays_on_edges():
    _, g = _toy()
    ptr, idx = g.joint_csr()
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


def _pretrain(g, epochs=4, seed=3, **kw):
    pre = DCGNNPretraining(g, dim=8, batch_size=128, cl_batch=16, init="normal", seed=seed, **kw)
    result = Trainer(max_epochs=epochs, lr=1e-2, monitor=None, patience=None, device="cpu", seed=seed,
                     progress=False).fit(pre)
    return pre, result


def test_pretraining_runs_in_the_one_trainer_reduces_loss_and_is_seeded():
    _, g = _toy(e=800)
    p1, result = _pretrain(g)
    xu, xi = p1.embeddings()
    assert xu.shape == (g.n_users, 8) and xi.shape == (g.n_items, 8)
    assert [h["epoch"] for h in p1.history] == [0, 1, 2, 3] and result.epochs_run == 4
    assert p1.history[-1]["edge_loss"] < p1.history[0]["edge_loss"]
    assert p1.history[0]["cl_loss"] > 0
    # the trainer's loss is the module's objective: edge + reg + cl_weight · contrastive
    assert result.history[0]["loss"] >= p1.history[0]["edge_loss"] + 0.1 * p1.history[0]["cl_loss"] - 1e-6
    xu2, _ = _pretrain(g)[0].embeddings()
    np.testing.assert_array_equal(xu, xu2)
    batch = next(iter(p1.train_batches(0, np.random.default_rng(0))))
    assert batch.negs.shape == (128, 3) and len(batch.views) == 2  # a user view and an item view
    walks, mask = batch.views[0]
    assert walks.shape == mask.shape == (2, 16, p1.walk_length) and mask.dtype == torch.bool
    # masked-out visits are returns to the walker's start node: one node per walker, in both views
    assert all(len(set(walks[:, r][~mask[:, r]].tolist())) <= 1 for r in range(16))


def test_pretraining_loss_matches_hand_computation_without_contrast():
    _, g = _toy(e=300)
    pre = DCGNNPretraining(g, dim=4, n_layers=1, batch_size=32, cl_weight=0.0, init="normal", seed=0,
                           neg_weights=(1.0, 0.0, 1.0), reg=0.5)
    batch = next(iter(pre.train_batches(0, np.random.default_rng(1))))
    assert batch.views == ()
    a = g.normalized_adjacency().to_dense()
    e = pre.ego.detach()
    z = (e + a @ e) / 2
    u, p, n = batch.users, batch.pos, batch.negs
    pos = (z[u] * z[p]).sum(-1, keepdim=True)
    neg = (z[u].unsqueeze(1) * z[n]).sum(-1)
    bpr = torch.nn.functional.softplus(neg - pos).mean(0)
    edge = 0.5 * bpr[0] + 0.5 * bpr[2]
    reg = 0.5 * (e[u].pow(2).sum() + e[p].pow(2).sum() + e[n].pow(2).sum() / 3) / 2 / len(u)
    torch.testing.assert_close(pre.loss(batch).detach(), edge + reg)


def test_dcgnn_contract_and_memmap_equivalence(tmp_path):
    inter, g = _toy()
    assert get_model_class("dcgnn") is DCGNN
    kw = dict(dim=8, n_hops=2, hidden=16, out_dim=8, pretrain_epochs=1, pretrain_batch_size=128, batch_size=64)
    torch.manual_seed(0)
    mem = DCGNN(inter.n_users, inter.n_items, **kw)
    mem.prepare(g, fit=FIT)
    torch.manual_seed(0)
    disk = DCGNN(inter.n_users, inter.n_items, memory_budget=0, feature_dir=str(tmp_path / "f"), **kw)
    disk.prepare(g, fit=FIT)
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
    fresh.prepare(g)  # without fit: no pretraining, the features come from the saved state
    assert fresh.stats["features"].startswith("not computed")
    with pytest.raises(RuntimeError, match="no hop features"):
        fresh.score(users[:2])
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
    m.prepare(BipartiteGraph.from_interactions(inter), fit=FIT)
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


def test_runner_pretrains_through_the_trainer_and_the_saved_run_scores_identically(tmp_path):
    """The runner builds the graph once, injects its Trainer as ``fit`` (pretraining history recorded
    per epoch), and a saved run reloads without pretraining again: same scores from the saved state."""
    from recgraph.train.runner import ExperimentConfig, load_run, run

    inter, _ = _toy(e=600)
    test = Interactions(inter.user[:40], inter.item[:40], inter.n_users, inter.n_items)
    split = Split(inter, test, None, {"split": "toy"})
    args = dict(dim=8, n_hops=2, hidden=16, out_dim=8, pretrain_epochs=2, pretrain_batch_size=128, batch_size=64)
    rec = run(ExperimentConfig(model="dcgnn", dataset="toy", device="cpu", progress=False, epochs=1, model_args=args,
                               out=str(tmp_path / "run")), split=split, return_model=True)
    model = rec["model"]
    assert [h["epoch"] for h in model.stats["pretrain_history"]] == [0, 1]
    loaded = load_run(tmp_path / "run").model
    assert loaded.stats["features"].startswith("not computed")  # prepare(graph) without fit: no pretraining
    users = torch.arange(inter.n_users)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.score(users), model.score(users))
