"""Chunked graph computations over a memory-mapped graph equal the in-memory functions."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recgraph.graph import BipartiteGraph
from recgraph.graph.external import BuildOptions, build_graph, open_graph, save_graph
from recgraph.graph.macro import macro_counts, positive_matrix, recent_lists
from recgraph.graph.ppr import bipartite_ppr
from recgraph.graph.streaming import (graph_ppr, joint_csr_to_disk, macro_counts_from_graph, read_slice,
                                      recent_from_graph, row_chunks)


@pytest.fixture(scope="module")
def events():
    """Power-law-ish events with repeats; distinct timestamps so recent lists have no ties."""
    rng = np.random.default_rng(5)
    e, n, m = 20000, 400, 300
    user = np.minimum(rng.zipf(1.6, e) - 1, n - 1)
    item = np.minimum(rng.zipf(1.4, e) - 1, m - 1)
    ts = rng.permutation(e).astype(np.int64)
    return user, item, ts, n, m


def _same_csr(a, b):
    a, b = a.tocsr(), b.tocsr()
    a.sort_indices()
    b.sort_indices()
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("dedupe", [False, True])
def test_macro_counts_over_mmap_graph_equal_scipy_products(events, tmp_path, dedupe):
    user, item, ts, n, m = events
    g = BipartiteGraph.from_edges(user, item, n, m, timestamp=ts, dedupe=dedupe, keep_counts=dedupe)
    save_graph(g, tmp_path / "g")
    gm = open_graph(tmp_path / "g")
    rng = np.random.default_rng(0)
    im, um = rng.integers(0, 7, m), rng.integers(0, 5, n)
    ref = macro_counts(positive_matrix(user, item, n, m), im, 7, um, 5)  # counts every event
    got = macro_counts_from_graph(gm, im, 7, um, 5, max_edges=1500)  # many chunks
    for name in ("user1", "user2", "item1", "item2"):
        _same_csr(getattr(got, name), getattr(ref, name))


def test_recent_lists_from_time_ordered_graph(events, tmp_path):
    user, item, ts, n, m = events
    g = BipartiteGraph.from_edges(user, item, n, m, timestamp=ts, dedupe=False, order="time")
    save_graph(g, tmp_path / "g")
    gm = open_graph(tmp_path / "g")
    for side, (a, b, k) in (("user", (user, item, n)), ("item", (item, user, m))):
        ref = recent_lists(a, b, ts, k, 7)
        got = recent_from_graph(gm, 7, side=side, max_edges=999)
        for x, y in zip(got, ref):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="order='time'"):
        recent_from_graph(BipartiteGraph.from_edges(user, item, n, m), 3)


def test_ppr_over_mmap_graph_equals_in_memory(events, tmp_path):
    user, item, ts, n, m = events
    pq.write_table(pa.table({"user": user, "item": item}), tmp_path / "e.parquet")
    g = build_graph(tmp_path / "e.parquet", tmp_path / "g", BuildOptions(n_users=n, n_items=m))
    ref_graph = BipartiteGraph.from_edges(user, item, n, m)
    ptr, ind = ref_graph.joint_csr()
    got_ptr, got_ind = joint_csr_to_disk(g, tmp_path / "j.npy", max_edges=777)
    assert isinstance(got_ind, np.memmap) and got_ind.dtype == ind.dtype
    np.testing.assert_array_equal(got_ptr, ptr)
    np.testing.assert_array_equal(got_ind, ind)
    us, its = np.arange(0, n, 7), np.arange(0, m, 11)
    ref_u, ref_i = bipartite_ppr(ref_graph, us, its, topk=16, eps=1e-4)
    got_u, got_i = graph_ppr(g, us, its, workdir=tmp_path, topk=16, eps=1e-4)
    for a, b in ((got_u, ref_u), (got_i, ref_i)):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert a.num_pushes == b.num_pushes


def test_read_slice_and_row_chunks(tmp_path):
    a = np.arange(1000, dtype=np.int64) * 3
    np.save(tmp_path / "a.npy", a)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    out = read_slice(mm, 17, 503)
    assert not isinstance(out, np.memmap) and np.array_equal(out, a[17:503])
    assert read_slice(a, 5, 5).shape == (0,)
    ptr = np.array([0, 3, 3, 10, 11, 30])
    ch = row_chunks(ptr, 5)
    assert ch == [(0, 2), (2, 3), (3, 4), (4, 5)]  # row 2 (7 edges) and row 4 (19 edges) alone


@pytest.mark.parametrize("max_slots", [64, 4])  # dense slots, and top-4 of 9 item / 6 user macros
def test_streamed_macro_graph_equals_feature_tables(events, tmp_path, max_slots):
    """The streamed single-snapshot macro features equal build_feature_tables' (slots, recent lists)."""
    from recgraph.graph.macro import build_feature_tables
    from recgraph.graph.streaming import build_macro_graph_from_graph

    user, item, ts, n, m = events
    g = BipartiteGraph.from_edges(user, item, n, m, timestamp=ts // 3, dedupe=False, order="time")  # ties
    save_graph(g, tmp_path / "g")
    cat = np.random.default_rng(1).integers(0, 9, m)
    ref = build_feature_tables(g, category=cat, user_k=5, recent=6, max_slots=max_slots)
    got = build_macro_graph_from_graph(open_graph(tmp_path / "g"), category=cat, user_k=5, recent=6,
                                       max_slots=max_slots, max_edges=2000)
    assert got.dense_slots == ref.dense_slots == (max_slots == 64)
    for k in ("item_macro", "user_macro", "u1_ids", "u1_cnt", "u2_ids", "u2_cnt", "i1_ids", "i1_cnt", "i2_ids",
              "i2_cnt", "u_rec", "u_rec_time", "i_rec", "i_rec_time", "user_deg", "item_deg"):
        a, b = getattr(got, k), getattr(ref, k)
        assert a.dtype == b.dtype and a.shape == b.shape, (k, a.dtype, b.dtype, a.shape, b.shape)
        np.testing.assert_array_equal(a, b, err_msg=k)
