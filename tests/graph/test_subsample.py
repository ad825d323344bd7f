import numpy as np
import pytest
import scipy.sparse as sp

from recgraph.graph.bipartite import BipartiteGraph
from recgraph.graph.subsample import popularity_subsample, solve_scale


def _powerlaw(n_users=3000, n_items=800, n_edges=40000, seed=0):
    """``(graph, R)``: a power-law graph (repeated pairs merged) and its user×item matrix."""
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, n_items + 1) ** 1.1
    items = rng.choice(n_items, n_edges, p=w / w.sum())
    users = rng.integers(0, n_users, n_edges)
    g = BipartiteGraph.from_edges(users, items, n_users, n_items)
    return g, g.to_scipy()


def test_keep_rate_hits_target():
    g, R = _powerlaw()
    for rate, beta in [(0.5, 0.5), (0.2, 1.0), (0.3, 0.0)]:
        res = popularity_subsample(g, keep_rate=rate, beta=beta, seed=1)
        assert res.expected_kept() == pytest.approx(rate * R.nnz, rel=1e-6)
        pi = np.where(res.is_anchor, 1.0, res.base_prob)
        sd = np.sqrt((pi * (1 - pi)).sum())
        assert abs(res.n_kept - rate * R.nnz) <= 5 * sd + 1
        assert res.describe()["keep_rate_realised"] == pytest.approx(rate, abs=0.02)


def test_probability_non_increasing_in_popularity():
    g, R = _powerlaw()
    res = popularity_subsample(g, keep_rate=0.3, beta=0.7)
    deg = res.item_degree[R.indices]
    order = np.argsort(deg, kind="stable")
    q = res.base_prob[order]
    assert np.all(np.diff(q) <= 1e-15)
    assert q[0] == 1.0 and q[-1] < 0.2  # tail kept, head thinned
    # realised keep rate per popularity bucket falls too (ignoring anchors' small effect)
    rates = [b["keep_rate"] for b in res.describe()["by_item_popularity"]]
    assert rates[0] == 1.0 and rates[-1] < 0.3
    assert all(a >= b - 0.05 for a, b in zip(rates, rates[1:]))


def test_beta_zero_is_uniform():
    g, R = _powerlaw()
    res = popularity_subsample(g, keep_rate=0.4, beta=0.0)
    free = res.base_prob[~res.is_anchor]
    assert np.ptp(free) == 0.0
    assert free[0] < 0.4  # anchors count toward the target


def test_realised_frequency_matches_stated_probability():
    g, R = _powerlaw(n_users=300, n_items=80, n_edges=3000, seed=4)
    T = 400
    counts = np.zeros(R.nnz)
    pis = None
    for seed in range(T):
        res = popularity_subsample(g, keep_rate=0.35, beta=0.5, seed=seed)
        counts[res.kept] += 1
        pi = np.ones(R.nnz)
        pi[res.kept] = res.inclusion_prob
        if pis is None:
            pis = np.where(res.is_anchor, 1.0, res.base_prob)
        # the stated probability does not depend on the seed
        np.testing.assert_allclose(pi[res.kept], pis[res.kept])
    freq = counts / T
    var = pis * (1 - pis) / T
    z = (freq - pis) / np.sqrt(np.maximum(var, 1e-12))
    certain = pis == 1.0
    assert np.all(freq[certain] == 1.0)
    # binomial check, per edge and pooled
    assert np.abs(z[~certain]).max() < 5.5
    p_free = pis[~certain]
    sd_total = np.sqrt(T * (p_free * (1 - p_free)).sum())
    pooled = (counts[~certain].sum() - T * p_free.sum()) / sd_total
    assert abs(pooled) < 4
    # a chi-square-like statistic has mean ~1 per edge
    assert np.mean(z[~certain] ** 2) == pytest.approx(1.0, abs=0.2)


def test_degree_floor():
    g, R = _powerlaw(n_users=2000, n_items=500, n_edges=6000, seed=2)
    udeg = np.diff(R.indptr)
    ideg = np.bincount(R.indices, minlength=R.shape[1])
    for seed in range(5):
        res = popularity_subsample(g, keep_rate=0.6, beta=1.0, seed=seed)
        K = res.to_graph().to_scipy()
        assert np.all(np.diff(K.indptr)[udeg > 0] >= 1)
        assert np.all(np.bincount(K.indices, minlength=R.shape[1])[ideg > 0] >= 1)
        assert np.all(res.inclusion_prob[res.is_anchor[res.kept]] == 1.0)
        d = res.describe()
        assert d["users_with_edges_after"] == d["users_with_edges_before"]
        assert d["items_with_edges_after"] == d["items_with_edges_before"]
    # each user's anchor is its least popular item
    anchors = np.flatnonzero(res.is_anchor)
    u_of = np.repeat(np.arange(R.shape[0]), udeg)
    for u in range(0, 2000, 97):
        if udeg[u] == 0:
            continue
        its = R.indices[R.indptr[u]:R.indptr[u + 1]]
        mine = anchors[(u_of[anchors] == u)]
        assert ideg[its].min() in ideg[R.indices[mine]]
    # without the floor, a tiny rate disconnects users; with it, an infeasible rate errors
    res = popularity_subsample(g, keep_rate=0.05, beta=1.0, degree_floor=False)
    assert (res.to_graph().user_degree[udeg > 0] == 0).any()
    with pytest.raises(ValueError, match="degree floor"):
        popularity_subsample(g, keep_rate=0.05, beta=1.0)


def test_graph_input_edge_ids_and_weights():
    g, R = _powerlaw(n_users=100, n_items=50, n_edges=800)
    users = np.repeat(np.arange(100), np.diff(R.indptr))
    a = popularity_subsample(g, keep_rate=0.5, seed=3)
    # edge ids index the graph's distinct pairs in row-major order (= g.u_indices here)
    np.testing.assert_array_equal(a.users, users[a.kept])
    np.testing.assert_array_equal(a.items, g.u_indices[a.kept])
    # a time-ordered graph of the same edges, or its scipy matrix, gives the same draw
    t = np.random.default_rng(0).permutation(g.n_edges)
    gt = BipartiteGraph.from_edges(users, g.u_indices, 100, 50, timestamp=t, order="time")
    for other in (gt, sp.csr_matrix(R)):
        b = popularity_subsample(other, keep_rate=0.5, seed=3)
        np.testing.assert_array_equal(a.kept, b.kept)
    kept = a.to_graph()
    assert kept.n_edges == a.n_kept and (kept.n_users, kept.n_items) == (100, 50)
    np.testing.assert_allclose(a.weights, 1 / a.inclusion_prob)
    assert np.all(a.weights >= 1)
    with pytest.raises(TypeError, match="BipartiteGraph"):
        popularity_subsample([[0, 1]])
    with pytest.raises(ValueError, match="keep_rate"):
        popularity_subsample(g, keep_rate=0.0)


def test_solve_scale_monotone():
    d = np.array([1, 1, 2, 5, 10, 100, 100, 1000])
    anchors = np.zeros(len(d), bool)
    cs = [solve_scale(d, anchors, t, 0.5) for t in (1, 2, 4, 6)]
    assert all(x < y for x, y in zip(cs, cs[1:]))
    q = np.minimum(1, cs[1] * d ** -0.5)
    assert q.sum() == pytest.approx(2.0, rel=1e-9)
