"""Macro graph: sparse products equal dense definitions, recent lists, assignment."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recgraph.graph.bipartite import BipartiteGraph
from recgraph.graph.macro import (assign_item_macros, assign_user_macros, build_feature_tables, macro_counts,
                                  positive_matrix, recent_lists)


def _random(seed=0, e=400, nu=30, ni=50):
    rng = np.random.default_rng(seed)
    return rng.integers(0, nu, e), rng.integers(0, ni, e), rng.integers(0, 1000, e), nu, ni


def test_macro_counts_match_dense_definition():
    u, i, t, nu, ni = _random()
    R = positive_matrix(u, i, nu, ni)
    im = np.random.default_rng(1).integers(0, 6, ni)
    um = np.random.default_rng(2).integers(0, 4, nu)
    mc = macro_counts(R, im, 6, um, 4)
    Rd = R.toarray()
    C, U = np.eye(6)[im], np.eye(4)[um]
    for got, want in ((mc.user1, Rd @ C), (mc.item1, Rd.T @ U), (mc.user2, Rd @ (Rd.T @ U)),
                      (mc.item2, Rd.T @ (Rd @ C))):
        assert sp.issparse(got)
        np.testing.assert_allclose(got.toarray(), want)
        assert got.shape[1] <= 6  # never users×users or items×items


def test_recent_lists_are_last_events_most_recent_first():
    u, i, t, nu, ni = _random(3)
    ids, times, cnt = recent_lists(u, i, t, nu, 5, pad=ni)
    for node in range(nu):
        idx = np.flatnonzero(u == node)
        order = idx[np.lexsort((idx, t[idx]))][::-1][:5]
        assert ids[node, :len(order)].tolist() == i[order].tolist()
        assert np.all(ids[node, len(order):] == ni)
        assert cnt[node] == len(order)


def test_item_macro_methods_and_unknown():
    u, i, t, nu, ni = _random(4)
    R = positive_matrix(u, i, nu, ni)
    cat = np.where(np.arange(ni) % 7 == 0, -1, np.arange(ni) % 3)
    a, n = assign_item_macros("category", n_items=ni, category=cat)
    assert n == 4 and np.all(a[cat == -1] == 3)
    a, n = assign_item_macros("kmeans-rows", n_items=ni, R=R, k=5)
    assert a.max() < n and n <= 6
    emb = np.random.default_rng(0).normal(size=(ni, 8)).astype(np.float32)
    a, n = assign_item_macros("kmeans-embeddings", n_items=ni, embeddings=emb, k=4)
    assert n == 5 and a.max() <= 3
    um, nm = assign_user_macros(R, a, n, k=3)
    assert nm == 4 and um.max() <= 3


def test_feature_tables_one_snapshot_small():
    """One snapshot over every edge: slot counts equal R·C computed densely, recent lists hold
    the latest items (ties by item id)."""
    u, i, t, nu, ni = _random(5)
    g = BipartiteGraph.from_edges(u, i, nu, ni, timestamp=t, dedupe=False)
    f = build_feature_tables(g, category=np.arange(ni) % 4)
    assert f.n_item_macros == 5 and f.u1_ids.shape == (nu, 5) and f.u_rec.shape == (nu, 20)
    R = np.zeros((nu, ni))
    np.add.at(R, (u, i), 1)
    C = np.eye(5)[f.item_macro]
    dense = np.zeros((nu, 5))
    np.put_along_axis(dense, f.u1_ids, f.u1_cnt, axis=1)
    np.testing.assert_allclose(dense, R @ C)
    last = np.lexsort((i, t, u))
    for user in range(nu):
        mine = last[u[last] == user][::-1][:20]
        np.testing.assert_array_equal(f.u_rec[user, :len(mine)], i[mine])


def test_slots_in_row_blocks_match_a_per_row_oracle():
    """Top-``max_slots`` per row (count descending, ties by lower column), whatever the block size."""
    from recgraph.graph.macro import _slots

    rng = np.random.default_rng(3)
    m = sp.random(120, 40, density=0.3, format="csr", random_state=3)
    m.data = np.round(m.data * 4) + 1  # small integer counts: many ties
    m.data[m.indptr[7]:m.indptr[8]] = 0  # an empty row
    m.eliminate_zeros()
    width = 6
    want_ids = np.full((120, width), 40, np.int64)
    want_cnt = np.zeros((120, width), np.float32)
    for r in range(120):
        a, b = m.indptr[r], m.indptr[r + 1]
        best = sorted(zip(-m.data[a:b], m.indices[a:b]))[:width]
        for k, (neg, col) in enumerate(best):
            want_ids[r, k], want_cnt[r, k] = col, -neg
    for chunk in (1, 7, int(rng.integers(20, 200)), 1 << 22):
        ids, cnt = _slots(m, 40, width, False, chunk_nnz=chunk)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(cnt, want_cnt)
