"""item_cosine_topk against dense numpy / sklearn references; the input is the training
BipartiteGraph (scipy matrices are converted through it)."""

import numpy as np
import pytest
import scipy.sparse as sp

from recgraph.data.schema import Interactions
from recgraph.graph import BipartiteGraph, item_cosine_topk, to_csr
from recgraph.graph.cooccurrence import inverse_user_frequency


def graph_of(R) -> BipartiteGraph:
    return BipartiteGraph.from_scipy(sp.csr_matrix(R))


def random_binary(seed, n_users=60, n_items=45, density=0.08):
    rng = np.random.default_rng(seed)
    R = (rng.random((n_users, n_items)) < density).astype(np.float64)
    R[:, 7] = 0  # an item nobody touched
    R[:, 11] = 0
    R[3, 11] = 1  # an item with a single user
    return R


def dense_cosine(R, shrink=0.0):
    co = R.T @ R
    norm = np.sqrt(R.sum(0))
    S = co / (norm[:, None] * norm[None, :] + shrink + (norm[:, None] * norm[None, :] + shrink == 0))
    np.fill_diagonal(S, 0)
    return S


def dense_asymmetric(R, shrink=0.0, alpha=0.5, w=None):
    """Row i, neighbour j: Σ_u w_u R_ui R_uj / (|U_i|^(1-α) |U_j|^α + shrink), written independently."""
    w = np.ones(R.shape[0]) if w is None else w
    n_items = R.shape[1]
    deg = R.sum(0)
    S = np.zeros((n_items, n_items))
    for i in range(n_items):
        for j in range(n_items):
            overlap = sum(w[u] for u in range(R.shape[0]) if R[u, i] and R[u, j])
            if i != j and overlap > 0:
                S[i, j] = overlap / (deg[i] ** (1 - alpha) * deg[j] ** alpha + shrink)
    return S


def check_topk(idx, sc, S, k):
    n = S.shape[0]
    assert idx.shape == sc.shape == (n, k) and idx.dtype == np.int32 and sc.dtype == np.float32
    for i in range(n):
        nz = np.flatnonzero(S[i] > 0)
        want = np.sort(S[i, nz])[::-1][:k]
        got_valid = idx[i] >= 0
        m = int(got_valid.sum())
        assert m == min(k, len(nz)), i
        assert np.all(got_valid[:m]) and np.all(idx[i, m:] == -1) and np.all(sc[i, m:] == 0)
        np.testing.assert_allclose(sc[i, :m], want, rtol=1e-6)  # the k best scores, descending
        assert i not in idx[i, :m].tolist()  # no self-similarity
        assert len(set(idx[i, :m].tolist())) == m
        np.testing.assert_allclose(S[i, idx[i, :m]], sc[i, :m], rtol=1e-6)  # each score is that pair's


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [1, 5, 50])
@pytest.mark.parametrize("shrink", [0.0, 3.0])
def test_matches_dense_reference(seed, k, shrink):
    R = random_binary(seed)
    idx, sc = item_cosine_topk(graph_of(R), k, shrink=shrink)
    check_topk(idx, sc, dense_cosine(R, shrink), k)
    assert np.all(idx[7] == -1)  # untouched item has no neighbours


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_asymmetric_and_user_weighted_match_dense_reference(alpha, weighted):
    R = random_binary(5, n_users=40, n_items=30, density=0.12)
    w = np.random.default_rng(1).random(R.shape[0]) * 2 if weighted else None
    idx, sc = item_cosine_topk(graph_of(R), 6, shrink=2.0, alpha=alpha, user_weights=w)
    check_topk(idx, sc, dense_asymmetric(R, 2.0, alpha, w), 6)
    # blocking does not change the weighted / asymmetric answer either
    idx2, sc2 = item_cosine_topk(graph_of(R), 6, shrink=2.0, alpha=alpha, user_weights=w, block_size=4)
    np.testing.assert_array_equal(idx2, idx)
    np.testing.assert_array_equal(sc2, sc)


def test_alpha_half_and_unit_weights_are_the_cosine():
    R = graph_of(random_binary(6))
    idx, sc = item_cosine_topk(R, 7, shrink=1.0)
    idx2, sc2 = item_cosine_topk(R, 7, shrink=1.0, alpha=0.5, user_weights=np.ones(R.n_users))
    np.testing.assert_array_equal(idx2, idx)
    np.testing.assert_allclose(sc2, sc, rtol=1e-6)


def test_inverse_user_frequency_and_bad_weights():
    R = graph_of(np.array([[1, 0, 0], [1, 1, 1], [0, 0, 0]], np.float64))
    np.testing.assert_allclose(inverse_user_frequency(R), [1.0, 1 / np.log2(4), 1.0])
    with pytest.raises(ValueError, match="shape"):
        item_cosine_topk(R, 2, user_weights=np.ones(2))
    with pytest.raises(ValueError, match=">= 0"):
        item_cosine_topk(R, 2, user_weights=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        item_cosine_topk(R, 2, user_weights=np.array([1.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="alpha"):
        item_cosine_topk(R, 2, alpha=1.5)


def test_matches_sklearn_cosine():
    from sklearn.metrics.pairwise import cosine_similarity

    R = random_binary(2)
    S = cosine_similarity(R.T)
    np.fill_diagonal(S, 0)
    idx, sc = item_cosine_topk(graph_of(R), 10)
    check_topk(idx, sc, S, 10)


@pytest.mark.parametrize("block_size", [1, 3, 7, 16, 1000])
def test_block_size_invariance(block_size):
    R = graph_of(random_binary(3, n_users=80, n_items=50, density=0.15))
    ref_idx, ref_sc = item_cosine_topk(R, 8, shrink=1.0)
    idx, sc = item_cosine_topk(R, 8, shrink=1.0, block_size=block_size)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(sc, ref_sc)
    # adaptive blocking with a tiny path budget (one item per block) gives the same answer
    idx2, sc2 = item_cosine_topk(R, 8, shrink=1.0, max_block_pairs=1)
    np.testing.assert_array_equal(idx2, ref_idx)
    np.testing.assert_array_equal(sc2, ref_sc)


def test_ties_broken_by_item_id_and_binary_treatment():
    # items 1, 2, 3 each co-occur with item 0 identically -> ties resolved by smaller id
    R = np.array([[1, 1, 1, 1], [1, 1, 1, 1]], np.float64)
    idx, sc = item_cosine_topk(graph_of(R), 2)
    assert idx[0].tolist() == [1, 2] and idx[3].tolist() == [0, 1]
    np.testing.assert_allclose(sc, 1.0)
    # counts > 1, duplicates and explicit zeros in a scipy input are treated as binary
    Rc = sp.csr_matrix((np.array([5.0, 0.0, 2.0, 1.0]), (np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))),
                       shape=(2, 2))
    idx, sc = item_cosine_topk(Rc, 1)
    assert idx.tolist() == [[1], [0]]
    np.testing.assert_allclose(sc[:, 0], 1 / np.sqrt(2))


def test_to_csr_roundtrip():
    R = random_binary(4)
    idx, sc = item_cosine_topk(graph_of(R), 6)
    S = to_csr(idx, sc, R.shape[1])
    assert S.shape == (R.shape[1], R.shape[1]) and S.dtype == np.float32
    dense = S.toarray()
    for i in range(R.shape[1]):
        valid = idx[i] >= 0
        np.testing.assert_array_equal(dense[i, idx[i, valid]], sc[i, valid])
        assert np.count_nonzero(dense[i]) == valid.sum()
    with pytest.raises(ValueError):
        to_csr(idx, sc[:, :2], R.shape[1])


def test_empty_and_k_zero():
    idx, sc = item_cosine_topk(graph_of(sp.csr_matrix((5, 4))), 3)
    assert idx.shape == (4, 3) and np.all(idx == -1) and np.all(sc == 0)
    idx, sc = item_cosine_topk(sp.csr_matrix(np.eye(3)), 0)
    assert idx.shape == (3, 0)


def test_graph_from_a_raw_log_equals_the_binary_matrix():
    """Repeated events and a time-ordered graph change nothing: co-occurrence is over distinct pairs."""
    R = random_binary(7)
    u, i = np.nonzero(R)
    rng = np.random.default_rng(0)
    rep = rng.integers(1, 4, len(u))  # each pair logged 1-3 times, shuffled
    order = rng.permutation(rep.sum())
    uu, ii = np.repeat(u, rep)[order], np.repeat(i, rep)[order]
    inter = Interactions(uu, ii, R.shape[0], R.shape[1], timestamp=rng.integers(0, 100, len(uu)))
    ref = item_cosine_topk(graph_of(R), 9, shrink=1.0, alpha=0.7)
    for g in (BipartiteGraph.from_interactions(inter), BipartiteGraph.from_interactions(inter, order="time"),
              BipartiteGraph.from_interactions(inter, dedupe=False)):
        idx, sc = item_cosine_topk(g, 9, shrink=1.0, alpha=0.7)
        np.testing.assert_array_equal(idx, ref[0])
        np.testing.assert_array_equal(sc, ref[1])
        np.testing.assert_array_equal(inverse_user_frequency(g), inverse_user_frequency(graph_of(R)))
