import numpy as np
import pytest
import scipy.sparse as sp

from recgraph.graph.bipartite import BipartiteGraph
from recgraph.graph.ppr import (
    PPRNeighbourhoods,
    bipartite_ppr,
    exact_ppr,
    ppr_topk,
)


def _undirected(n, m, seed):
    """Random undirected simple graph as CSR (indptr, indices)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, m)
    b = rng.integers(0, n, m)
    keep = a != b
    A = sp.coo_matrix((np.ones(keep.sum()), (a[keep], b[keep])), shape=(n, n)).tocsr()
    A = ((A + A.T) > 0).astype(np.float64).tocsr()
    A.sort_indices()
    return A.indptr.astype(np.int64), A.indices.astype(np.int32)


def _dense(res: PPRNeighbourhoods, n):
    return res.to_csr(n).toarray().astype(np.float64)


def _dense_solve(indptr, indices, sources, alpha):
    n = len(indptr) - 1
    A = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n, n)).toarray()
    deg = A.sum(1)
    A[deg == 0, deg == 0] = 0
    for v in np.flatnonzero(deg == 0):
        A[v, v] = 1.0  # dangling convention: implicit self-loop
    P = A / A.sum(1, keepdims=True)
    M = np.linalg.inv(np.eye(n) - (1 - alpha) * P)
    return alpha * M[sources]


def _star(leaves):
    # node 0 is the centre
    rows = np.r_[np.zeros(leaves, int), np.arange(1, leaves + 1)]
    cols = np.r_[np.arange(1, leaves + 1), np.zeros(leaves, int)]
    A = sp.csr_matrix((np.ones(2 * leaves), (rows, cols)), shape=(leaves + 1, leaves + 1))
    return A.indptr.astype(np.int64), A.indices.astype(np.int32)


def test_star_closed_form():
    L, alpha = 7, 0.2
    indptr, indices = _star(L)
    # from the centre: pi_c = alpha / (1 - (1-alpha)^2), each leaf (1-alpha) pi_c / L
    pi_c = alpha / (1 - (1 - alpha) ** 2)
    pi_leaf = (1 - alpha) * pi_c / L
    ex = exact_ppr(indptr, indices, [0], alpha=alpha, tol=1e-14)[0]
    assert ex[0] == pytest.approx(pi_c, abs=1e-12)
    np.testing.assert_allclose(ex[1:], pi_leaf, atol=1e-12)
    res = ppr_topk(indptr, indices, [0], alpha=alpha, eps=1e-9, topk=L + 1)
    assert res.indices[0, 0] == 0
    assert res.scores[0, 0] == pytest.approx(pi_c, abs=1e-6)
    # leaves tie: ordered by node id
    assert res.indices[0, 1:].tolist() == list(range(1, L + 1))
    np.testing.assert_allclose(res.scores[0, 1:], pi_leaf, atol=1e-6)


def test_path_matches_dense_solve():
    # path 0 - 1 - 2 - 3
    A = sp.diags([np.ones(3), np.ones(3)], [-1, 1], shape=(4, 4)).tocsr()
    indptr, indices = A.indptr.astype(np.int64), A.indices.astype(np.int32)
    ref = _dense_solve(indptr, indices, np.arange(4), 0.3)
    ex = exact_ppr(indptr, indices, np.arange(4), alpha=0.3, tol=1e-14)
    np.testing.assert_allclose(ex, ref, atol=1e-12)
    res = ppr_topk(indptr, indices, alpha=0.3, eps=1e-10, topk=4)
    np.testing.assert_allclose(_dense(res, 4), ref, atol=1e-6)
    # from an end node, PPR decreases along the path
    assert res.indices[0].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [1e-3, 1e-4])
def test_push_error_bound(seed, eps):
    n = 150
    indptr, indices = _undirected(n, 500, seed)
    deg = np.diff(indptr)
    ex = exact_ppr(indptr, indices, np.arange(n), alpha=0.2, tol=1e-13)
    res = ppr_topk(indptr, indices, alpha=0.2, eps=eps, topk=n)
    P = _dense(res, n)
    gap = ex - P
    # lower bound, and on an undirected graph 0 <= pi - p <= eps * deg per node
    assert gap.min() >= -1e-6
    assert np.all(gap <= eps * np.maximum(deg, 1)[None, :] + 1e-6)
    # the bound is not vacuous: estimates carry most of the mass
    assert P.sum(1).min() > 0.5
    assert np.all(P.sum(1) <= 1 + 1e-5)


def test_topk_sets_agree_when_separated():
    n, k, eps = 300, 10, 1e-7
    indptr, indices = _undirected(n, 1200, 7)
    deg = np.diff(indptr)
    ex = exact_ppr(indptr, indices, np.arange(n), alpha=0.2, tol=1e-13)
    res = ppr_topk(indptr, indices, alpha=0.2, eps=eps, topk=k)
    checked = 0
    for s in range(n):
        order = np.argsort(-ex[s], kind="stable")
        gap = ex[s, order[k - 1]] - ex[s, order[k]]
        if gap > 2 * eps * deg.max():
            assert set(res.indices[s].tolist()) == set(order[:k].tolist()), s
            checked += 1
    assert checked > n // 2
    # scores are sorted, best first
    assert np.all(np.diff(res.scores, axis=1) <= 0)


def test_parallel_equals_single_thread():
    indptr, indices = _undirected(2000, 10000, 3)
    a = ppr_topk(indptr, indices, eps=1e-5, topk=16, num_threads=1)
    b = ppr_topk(indptr, indices, eps=1e-5, topk=16, seed=5)  # all threads, other schedule
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.scores, b.scores)
    assert a.num_pushes == b.num_pushes


@pytest.mark.parametrize("eps", [1e-3, 1e-5])
def test_hash_workspace_equals_dense(monkeypatch, eps):
    """The bounded-memory workspace gives the same rows and push count, including sources rerun after
    outgrowing their table (first table 16 slots: most sources overflow and grow 16 -> 64 -> ...)."""
    import recgraph.graph.ppr as ppr

    indptr, indices = _undirected(3000, 20000, 4)
    dense = ppr_topk(indptr, indices, eps=eps, topk=16, exclude_self=True)
    monkeypatch.setattr(ppr, "_HASH_FIRST_CAPACITY", 16)
    runs = [{"workspace": "hash"}]
    if eps == 1e-3:  # "auto" under a budget just below the dense workspace (26 B x 3000 nodes, 1 thread): hash
        runs.append({"memory_budget": 26 * 3000 - 1, "num_threads": 1})
    for kw in runs:
        got = ppr_topk(indptr, indices, eps=eps, topk=16, exclude_self=True, **kw)
        np.testing.assert_array_equal(got.indices, dense.indices)
        np.testing.assert_array_equal(got.scores, dense.scores)
        assert got.num_pushes == dense.num_pushes


def test_hash_workspace_budget_too_small_says_what_to_do():
    indptr, indices = _undirected(3000, 20000, 4)
    with pytest.raises(MemoryError, match="raise the budget"):
        ppr_topk(indptr, indices, eps=1e-5, topk=16, memory_budget=29 * 64, num_threads=1)
    with pytest.raises(MemoryError, match="too small"):
        ppr_topk(indptr, indices, eps=1e-5, topk=16, memory_budget=100, num_threads=1)
    with pytest.raises(ValueError, match="workspace"):
        ppr_topk(indptr, indices, workspace="sparse")


def test_sources_subset_exclude_self_and_padding():
    indptr, indices = _star(3)  # 4 nodes
    full = ppr_topk(indptr, indices, topk=6)
    assert full.indices.shape == (4, 6)
    assert np.all(full.indices[:, 4:] == -1) and np.all(full.scores[:, 4:] == 0)
    assert full.counts().tolist() == [4, 4, 4, 4]
    sub = ppr_topk(indptr, indices, [2, 0], topk=6, exclude_self=True)
    assert sub.sources.tolist() == [2, 0]
    assert 2 not in sub.indices[0] and 0 not in sub.indices[1]
    assert sub.indices[0, 0] == 0  # a leaf's best neighbour is the centre
    np.testing.assert_array_equal(sub.indices[1, :3], full.indices[0, 1:4])


def test_dangling_nodes():
    # directed: 0 -> 1 -> 2, node 2 has no out-edge; node 3 isolated
    indptr = np.array([0, 1, 2, 2, 2])
    indices = np.array([1, 2])
    res = ppr_topk(indptr, indices, topk=4, eps=1e-10)
    # isolated source keeps all its mass (implicit self-loop)
    assert res.indices[3, 0] == 3 and res.scores[3, 0] == pytest.approx(1.0)
    assert res.indices[2, 0] == 2 and res.scores[2, 0] == pytest.approx(1.0)
    ref = _dense_solve(indptr, indices, np.arange(4), 0.2)
    np.testing.assert_allclose(_dense(res, 4), ref, atol=1e-6)
    np.testing.assert_allclose(exact_ppr(indptr, indices, np.arange(4), tol=1e-14), ref,
                               atol=1e-10)
    # from 0: 0.2 at 0, 0.16 at 1, the rest (0.64) piles up at the dangling node 2
    np.testing.assert_allclose(ref[0], [0.2, 0.16, 0.64, 0.0], atol=1e-12)


def test_bipartite_ppr_runs_on_the_joint_graph():
    rng = np.random.default_rng(0)
    R = sp.random(40, 25, density=0.15, random_state=3, format="csr")
    R.data[:] = rng.random(R.nnz) + 0.1
    g = BipartiteGraph.from_scipy(R)
    N, M = g.n_users, g.n_items
    indptr, indices = g.joint_csr()
    users, items = bipartite_ppr(g, topk=8, eps=1e-6)
    assert users.indices.shape == (N, 8) and items.indices.shape == (M, 8)
    np.testing.assert_array_equal(users.sources, np.arange(N))
    np.testing.assert_array_equal(items.sources, np.arange(M) + N)
    ref = ppr_topk(indptr, indices, topk=8, eps=1e-6)
    np.testing.assert_array_equal(np.vstack([users.indices, items.indices]), ref.indices)
    # every neighbour returned is reachable from the source (exact PPR > 0)
    exact = exact_ppr(indptr, indices, [0], alpha=0.2)[0]
    assert np.all(exact[users.indices[0][users.indices[0] >= 0]] > 0)
    u2, i2 = bipartite_ppr(g, user_sources=[3], item_sources=[0, 5], topk=8, eps=1e-6)
    np.testing.assert_array_equal(u2.indices[0], users.indices[3])
    np.testing.assert_array_equal(i2.indices, items.indices[[0, 5]])
    # a scipy matrix is converted through the graph: same answer
    u3, i3 = bipartite_ppr(R, topk=8, eps=1e-6)
    np.testing.assert_array_equal(u3.indices, users.indices)
    np.testing.assert_array_equal(i3.scores, items.scores)
    with pytest.raises(ValueError, match="user_sources"):
        bipartite_ppr(g, user_sources=[N])
    with pytest.raises(TypeError, match="BipartiteGraph"):
        bipartite_ppr(np.ones((3, 3)))


def test_matches_pyg_semantics_on_simple_graph():
    """Pure-python transcription of PyG's push (stack, alpha-scaled residual): same vector up
    to the push order, hence both within the bound of the exact one."""
    indptr, indices = _undirected(60, 200, 11)
    alpha, eps = 0.2, 1e-4
    deg = np.diff(indptr)
    ex = exact_ppr(indptr, indices, np.arange(60), alpha=alpha, tol=1e-13)
    ours = _dense(ppr_topk(indptr, indices, alpha=alpha, eps=eps, topk=60), 60)
    for s in range(60):
        p, r, q = {s: 0.0}, {s: alpha}, [s]
        while q:
            u = q.pop()
            res = r.get(u, 0.0)
            p[u] = p.get(u, 0.0) + res
            r[u] = 0.0
            a, b = indptr[u], indptr[u + 1]
            for v in indices[a:b]:
                r[v] = r.get(v, 0.0) + (1 - alpha) * res / (b - a)
                if r[v] >= alpha * eps * deg[v] and v not in q:
                    q.append(v)
        pyg = np.zeros(60)
        for k, val in p.items():
            pyg[k] = val
        for est in (pyg, ours[s]):
            assert np.all(ex[s] - est >= -1e-6)
            assert np.all(ex[s] - est <= eps * deg + 1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="indices must lie"):
        ppr_topk(np.array([0, 1]), np.array([5]))
    with pytest.raises(ValueError, match="indptr must start"):
        ppr_topk(np.array([0, 2]), np.array([0]))
    with pytest.raises(ValueError, match="alpha"):
        ppr_topk(np.array([0, 0]), np.array([], int), alpha=1.5)
    with pytest.raises(ValueError, match="sources"):
        ppr_topk(np.array([0, 0]), np.array([], int), [3])
    empty = ppr_topk(np.array([0, 0]), np.array([], int), [], topk=3)
    assert empty.indices.shape == (0, 3)
