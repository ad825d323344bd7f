"""BipartiteGraph against naive dict/set references built here on random edges."""

from collections import defaultdict

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recgraph.data.schema import Interactions
from recgraph.graph import BipartiteGraph
from recgraph.graph.bipartite import as_graph
from recgraph.io import ArtifactError


def random_edges(seed, n_users=40, n_items=30, e=500, with_behavior=True):
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_users, e)
    item = rng.integers(0, n_items, e)
    ts = rng.integers(0, 50, e)  # small range: many ties, duplicates with equal times
    beh = rng.integers(0, 3, e).astype(np.int8) if with_behavior else None
    return user, item, ts, beh, n_users, n_items


def naive_latest(user, item, ts, beh):
    """(u, i) -> (timestamp, behavior, count) of the latest event; ties -> last in input order."""
    out = {}
    for e, (u, i) in enumerate(zip(user.tolist(), item.tolist())):
        t = int(ts[e])
        b = None if beh is None else int(beh[e])
        if (u, i) not in out or t >= out[(u, i)][0]:
            c = out.get((u, i), (0, 0, 0))[2]
            out[(u, i)] = (t, b, c + 1)
        else:
            t0, b0, c0 = out[(u, i)]
            out[(u, i)] = (t0, b0, c0 + 1)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("order", ["item", "time"])
def test_csr_both_ways_match_naive(seed, order):
    user, item, ts, beh, n_users, n_items = random_edges(seed)
    g = BipartiteGraph.from_edges(user, item, n_users, n_items, timestamp=ts, behavior=beh, order=order,
                                  keep_counts=True)
    ref = naive_latest(user, item, ts, beh)
    u_items, i_users = defaultdict(set), defaultdict(set)
    for u, i in ref:
        u_items[u].add(i)
        i_users[i].add(u)
    assert g.n_edges == len(ref)
    assert g.u_indptr.shape == (n_users + 1,) and g.i_indptr.shape == (n_items + 1,)
    assert g.u_indices.dtype == np.int32 and g.i_indices.dtype == np.int32
    for u in range(n_users):
        items = g.user_items(u)
        assert len(items) == len(set(items.tolist())) == len(u_items[u])
        assert set(items.tolist()) == u_items[u]
        assert g.user_degree[u] == len(u_items[u])
        if order == "item":
            assert np.all(np.diff(items) > 0)
        else:
            t = g.u_timestamp[g.user_slice(u)]
            assert np.all(np.diff(t) >= 0)
            # ties in time broken by item id
            assert all((t[j] < t[j + 1]) or (items[j] < items[j + 1]) for j in range(len(t) - 1))
    for i in range(n_items):
        users = g.item_users(i)
        assert set(users.tolist()) == i_users[i] and len(users) == len(i_users[i])
        assert g.item_degree[i] == len(i_users[i])
        if order == "item":
            assert np.all(np.diff(users) > 0)
        else:
            assert np.all(np.diff(g.i_timestamp[g.item_slice(i)]) >= 0)


@pytest.mark.parametrize("order", ["item", "time"])
def test_attributes_aligned_both_directions(order):
    user, item, ts, beh, n_users, n_items = random_edges(3)
    g = BipartiteGraph.from_edges(user, item, n_users, n_items, timestamp=ts, behavior=beh, order=order,
                                  keep_counts=True)
    ref = naive_latest(user, item, ts, beh)
    urow = np.repeat(np.arange(n_users), g.user_degree)
    for e in range(g.n_edges):
        t, b, c = ref[(int(urow[e]), int(g.u_indices[e]))]
        assert (g.u_timestamp[e], g.u_behavior[e], g.u_count[e]) == (t, b, c)
    irow = np.repeat(np.arange(n_items), g.item_degree)
    for e in range(g.n_edges):
        t, b, c = ref[(int(g.i_indices[e]), int(irow[e]))]
        assert (g.i_timestamp[e], g.i_behavior[e], g.i_count[e]) == (t, b, c)
    # i_edge points at the same edge on the user side
    np.testing.assert_array_equal(urow[g.i_edge], g.i_indices)
    np.testing.assert_array_equal(g.u_indices[g.i_edge], irow)


def test_no_dedupe_keeps_every_event_with_its_timestamp():
    user, item, ts, beh, n_users, n_items = random_edges(4)
    g = BipartiteGraph.from_edges(user, item, n_users, n_items, timestamp=ts, behavior=beh, dedupe=False)
    assert g.n_edges == len(user) and not g.deduped
    ev = sorted(zip(user.tolist(), item.tolist(), ts.tolist(), beh.tolist()))
    urow = np.repeat(np.arange(n_users), g.user_degree)
    got = sorted(zip(urow.tolist(), g.u_indices.tolist(), g.u_timestamp.tolist(), g.u_behavior.tolist()))
    assert got == ev
    irow = np.repeat(np.arange(n_items), g.item_degree)
    got_i = sorted(zip(g.i_indices.tolist(), irow.tolist(), g.i_timestamp.tolist(), g.i_behavior.tolist()))
    assert got_i == ev
    # stability: repeated pairs stay in input order on the user side
    for u in range(n_users):
        it = g.user_items(u)
        assert np.all(np.diff(it) >= 0)


def test_dedupe_semantics_explicit():
    # (0,1) three times: latest is t=9 (behavior 2); (0,2) tie on t=5: last in input wins (behavior 1)
    user = np.array([0, 0, 0, 0, 0, 1])
    item = np.array([1, 2, 1, 1, 2, 0])
    ts = np.array([3, 5, 9, 4, 5, 7])
    beh = np.array([0, 0, 2, 1, 1, 0], np.int8)
    g = BipartiteGraph.from_edges(user, item, 2, 3, timestamp=ts, behavior=beh, keep_counts=True)
    assert g.n_edges == 3
    np.testing.assert_array_equal(g.user_items(0), [1, 2])
    np.testing.assert_array_equal(g.u_timestamp[g.user_slice(0)], [9, 5])
    np.testing.assert_array_equal(g.u_behavior[g.user_slice(0)], [2, 1])
    np.testing.assert_array_equal(g.u_count, [3, 2, 1])
    # without timestamps the last event wins
    g2 = BipartiteGraph.from_edges(user, item, 2, 3, behavior=beh)
    np.testing.assert_array_equal(g2.u_behavior[g2.user_slice(0)], [1, 1])
    assert g2.u_timestamp is None and g2.u_count is None
    # counts view
    assert g.to_scipy("count").toarray().tolist() == [[0, 3, 2], [1, 0, 0]]
    assert g.to_scipy("binary").toarray().tolist() == [[0, 1, 1], [1, 0, 0]]
    g3 = BipartiteGraph.from_edges(user, item, 2, 3, timestamp=ts, dedupe=False)
    assert g3.to_scipy("count").toarray().tolist() == [[0, 3, 2], [1, 0, 0]]
    assert g3.to_scipy("binary").toarray().tolist() == [[0, 1, 1], [1, 0, 0]]
    assert g3.n_edges == 6  # the graph itself is untouched by to_scipy
    np.testing.assert_array_equal(g3.user_items(0), [1, 1, 1, 2, 2])


@pytest.mark.parametrize("order", ["item", "time"])
@pytest.mark.parametrize("dedupe", [True, False])
def test_neighbors_before_matches_naive_filter(order, dedupe):
    user, item, ts, beh, n_users, n_items = random_edges(5)
    g = BipartiteGraph.from_edges(user, item, n_users, n_items, timestamp=ts, order=order, dedupe=dedupe)
    if dedupe:
        ref = {k: v[0] for k, v in naive_latest(user, item, ts, None).items()}
        events = [(u, i, t) for (u, i), t in ref.items()]
    else:
        events = list(zip(user.tolist(), item.tolist(), ts.tolist()))
    rng = np.random.default_rng(0)
    for _ in range(200):
        u, i, t = int(rng.integers(n_users)), int(rng.integers(n_items)), int(rng.integers(-1, 52))
        want = sorted((ii, tt) for uu, ii, tt in events if uu == u and tt < t)
        got_n, got_t = g.neighbors_before(u, t, return_timestamps=True)
        assert sorted(zip(got_n.tolist(), got_t.tolist())) == want
        want_i = sorted(uu for uu, ii, tt in events if ii == i and tt < t)
        assert sorted(g.neighbors_before(i, t, side="item").tolist()) == want_i


def test_neighbors_before_time_order_is_a_view():
    g = BipartiteGraph.from_edges([0, 0, 0], [2, 0, 1], 1, 3, timestamp=[30, 10, 20], order="time")
    out = g.neighbors_before(0, 25)
    np.testing.assert_array_equal(out, [0, 1])
    assert out.base is not None  # a slice of u_indices, no copy
    with pytest.raises(ValueError, match="timestamps"):
        BipartiteGraph.from_edges([0], [0], 1, 1).neighbors_before(0, 1)


def dense_normalized(R):
    n, m = R.shape
    A = np.zeros((n + m, n + m))
    A[:n, n:] = R
    A[n:, :n] = R.T
    d = A.sum(1)
    dinv = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0.0)
    return dinv[:, None] * A * dinv[None, :]


@pytest.mark.parametrize("layout", ["csr", "coo"])
@pytest.mark.parametrize("order", ["item", "time"])
def test_normalized_adjacency_matches_dense(layout, order):
    user, item, ts, _, n_users, n_items = random_edges(6, n_users=12, n_items=9, e=40)
    # isolated user 11 and isolated item 8
    keep = (user != 11) & (item != 8)
    user, item, ts = user[keep], item[keep], ts[keep]
    g = BipartiteGraph.from_edges(user, item, n_users, n_items, timestamp=ts, order=order)
    R = np.zeros((n_users, n_items))
    R[user, item] = 1
    A = g.normalized_adjacency(layout=layout)
    assert A.shape == (n_users + n_items, n_users + n_items)
    assert A.dtype == torch.float32
    dense = A.to_dense().numpy()
    assert np.isfinite(dense).all()
    np.testing.assert_allclose(dense, dense_normalized(R), rtol=1e-6, atol=1e-7)
    assert not dense[11].any() and not dense[n_users + 8].any()
    if layout == "csr":  # valid CSR: sorted, distinct columns per row
        torch.sparse_csr_tensor(A.crow_indices(), A.col_indices(), A.values(), A.shape, check_invariants=True)
        x = torch.randn(n_users + n_items, 4, dtype=torch.float64)
        y = torch.sparse.mm(g.normalized_adjacency(dtype=torch.float64), x)
        np.testing.assert_allclose(y.numpy(), dense_normalized(R) @ x.numpy(), rtol=1e-10)


def test_normalized_adjacency_multigraph_and_weighted():
    user, item, ts, _, n_users, n_items = random_edges(7, n_users=8, n_items=6, e=60)
    g = BipartiteGraph.from_edges(user, item, n_users, n_items, timestamp=ts, dedupe=False)
    C = np.zeros((n_users, n_items))
    np.add.at(C, (user, item), 1)
    np.testing.assert_allclose(g.normalized_adjacency().to_dense().numpy(), dense_normalized(C > 0), rtol=1e-6)
    np.testing.assert_allclose(g.normalized_adjacency(weighted=True).to_dense().numpy(), dense_normalized(C),
                               rtol=1e-6)
    gc = BipartiteGraph.from_edges(user, item, n_users, n_items, timestamp=ts, keep_counts=True)
    np.testing.assert_allclose(gc.normalized_adjacency(weighted=True).to_dense().numpy(), dense_normalized(C),
                               rtol=1e-6)


def test_to_scipy_matches_dense_and_does_not_alias_time_order():
    user, item, ts, _, n_users, n_items = random_edges(8)
    R = np.zeros((n_users, n_items))
    R[user, item] = 1
    for order in ("item", "time"):
        g = BipartiteGraph.from_edges(user, item, n_users, n_items, timestamp=ts, order=order)
        before = g.u_indices.copy()
        m = g.to_scipy()
        assert isinstance(m, sp.csr_matrix) and m.shape == (n_users, n_items)
        m.sort_indices()
        np.testing.assert_array_equal(m.toarray(), R)
        np.testing.assert_array_equal(g.u_indices, before)


@pytest.mark.parametrize("order", ["item", "time"])
@pytest.mark.parametrize("dedupe", [True, False])
def test_item_side_matrix_joint_csr_and_blocks_match_dense(order, dedupe):
    """The one builder of user×item / joint matrices: every view equals the dense reference."""
    user, item, ts, _, n_users, n_items = random_edges(10, n_users=14, n_items=11, e=90)
    keep = (user != 13) & (item != 10)  # an isolated user and item
    user, item, ts = user[keep], item[keep], ts[keep]
    g = BipartiteGraph.from_edges(user, item, n_users, n_items, timestamp=ts, order=order, dedupe=dedupe)
    R = np.zeros((n_users, n_items))
    R[user, item] = 1
    rt = g.to_scipy(side="item")
    assert rt.shape == (n_items, n_users) and rt.has_sorted_indices
    np.testing.assert_array_equal(rt.toarray(), R.T)
    C = np.zeros((n_users, n_items))
    np.add.at(C, (user, item), 1)
    if not dedupe:
        np.testing.assert_array_equal(g.to_scipy("count", side="item").toarray(), C.T)
    # joint CSR: A = [[0, R], [R^T, 0]], rows sorted, each distinct pair once
    indptr, indices = g.joint_csr()
    n = n_users + n_items
    A = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n, n))
    dense_a = np.zeros((n, n))
    dense_a[:n_users, n_users:], dense_a[n_users:, :n_users] = R, R.T
    np.testing.assert_array_equal(A.toarray(), dense_a)
    assert all(np.all(np.diff(indices[indptr[r]:indptr[r + 1]]) > 0) for r in range(n))
    assert indptr.dtype == np.int64 and indices.dtype == np.int32
    # the two blocks of D^-1/2 A D^-1/2 (propagation operators), same values as the torch adjacency
    p_iu, p_ui = g.normalized_biadjacency()
    an = dense_normalized(R)
    np.testing.assert_allclose(p_iu.toarray(), an[:n_users, n_users:], rtol=1e-6)
    np.testing.assert_allclose(p_ui.toarray(), an[n_users:, :n_users], rtol=1e-6)
    adj = g.normalized_adjacency().to_dense().numpy()
    np.testing.assert_array_equal(p_iu.toarray(), adj[:n_users, n_users:])
    np.testing.assert_array_equal(p_ui.toarray(), adj[n_users:, :n_users])
    assert p_iu.dtype == np.float32


def test_from_scipy_drops_zeros_and_merges_duplicates():
    R = sp.coo_matrix(([1.0, 2.0, 0.0, 1.0], ([0, 0, 1, 1], [1, 1, 0, 1])), shape=(2, 3))
    g = BipartiteGraph.from_scipy(R.tocsr())
    assert (g.n_users, g.n_items, g.n_edges) == (2, 3, 2)  # (0,1) merged, the explicit zero (1,0) dropped
    np.testing.assert_array_equal(g.to_scipy().toarray(), [[0, 1, 0], [0, 1, 0]])
    indptr, _ = g.joint_csr()
    assert np.diff(indptr).tolist() == [1, 1, 0, 2, 0]  # u0:{i1}, u1:{i1}, i0:{}, i1:{u0,u1}, i2:{}
    assert as_graph(g) is g and as_graph(R).n_edges == 2
    with pytest.raises(TypeError, match="BipartiteGraph"):
        as_graph(np.eye(2))
    with pytest.raises(TypeError, match="scipy sparse"):
        BipartiteGraph.from_scipy(np.eye(2))


def test_load_of_damaged_or_foreign_file_names_it(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="bad.npz"):
        BipartiteGraph.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(ArtifactError, match="missing _meta"):
        BipartiteGraph.load(tmp_path / "other.npz")
    with pytest.raises(ArtifactError, match="not found"):
        BipartiteGraph.load(tmp_path / "absent.npz")


def test_from_interactions_and_save_load(tmp_path):
    user, item, ts, beh, n_users, n_items = random_edges(9)
    inter = Interactions(user=user, item=item, n_users=n_users + 2, n_items=n_items, timestamp=ts, behavior=beh,
                         behavior_names=("click", "cart", "buy"))
    g = BipartiteGraph.from_interactions(inter, order="time")
    assert g.n_users == n_users + 2 and g.user_degree[-2:].tolist() == [0, 0]
    assert g.behavior_names == ("click", "cart", "buy")
    g.save(tmp_path / "g.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.npz"]  # atomic write: no temp file left
    h = BipartiteGraph.load(tmp_path / "g.npz")
    assert (h.n_users, h.n_items, h.order, h.deduped, h.behavior_names) == (g.n_users, g.n_items, "time", True,
                                                                             g.behavior_names)
    for f in ("u_indptr", "u_indices", "i_indptr", "i_indices", "i_edge", "u_timestamp", "i_timestamp",
              "u_behavior", "i_behavior"):
        np.testing.assert_array_equal(getattr(h, f), getattr(g, f))
    assert h.u_count is None
    d = g.describe()
    assert d["n_edges"] == g.n_edges and d["nbytes"] == g.nbytes
    # int32 ids (4+4+4) + int64 timestamps (8+8) + int8 behaviours (1+1) per edge, plus the indptrs
    assert g.nbytes == 30 * g.n_edges + 4 * (g.n_users + 1 + g.n_items + 1)


def test_empty_and_bad_input():
    g = BipartiteGraph.from_edges(np.zeros(0, int), np.zeros(0, int), 3, 2, timestamp=np.zeros(0, int),
                                  order="time")
    assert g.n_edges == 0 and g.user_degree.tolist() == [0, 0, 0]
    assert g.normalized_adjacency().to_dense().abs().sum() == 0
    with pytest.raises(ValueError, match=r"item index out of range \[0, 2\) at row 1"):
        BipartiteGraph.from_edges([0, 1], [1, 2], 3, 2)
    with pytest.raises(ValueError, match="user index out of range"):
        BipartiteGraph.from_edges([-1], [0], 3, 2)
    with pytest.raises(ValueError, match="equal length"):
        BipartiteGraph.from_edges([0, 1], [0], 3, 2)
    with pytest.raises(ValueError, match="needs timestamps"):
        BipartiteGraph.from_edges([0], [0], 3, 2, order="time")
    with pytest.raises(TypeError, match="integer"):
        BipartiteGraph.from_edges(np.array(["a"]), [0], 3, 2)


def test_int32_inputs_and_large_id_space_without_dense_allocation():
    # 2M x 2M id space: a dense user x item allocation (4e12 cells) would fail
    rng = np.random.default_rng(0)
    user = rng.integers(0, 2_000_000, 1000).astype(np.int32)
    item = rng.integers(0, 2_000_000, 1000).astype(np.int32)
    g = BipartiteGraph.from_edges(user, item, 2_000_000, 2_000_000)
    assert g.n_edges == len(set(zip(user.tolist(), item.tolist())))
    A = g.normalized_adjacency()
    assert A.values().numel() == 2 * g.n_edges
