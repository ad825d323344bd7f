"""Chunked graph computations over a memory-mapped graph equal the in-memory functions."""

import os

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recgraph.graph import BipartiteGraph
from recgraph.graph.external import BuildOptions, build_graph, open_graph, save_graph
from recgraph.graph.macro import macro_counts, positive_matrix, recent_lists
from recgraph.graph.ppr import bipartite_ppr, ppr_topk
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
    # bounded: rows read with pread into per-thread buffers of the longest row, the hash workspace in
    # 1,024 slots per thread — what the joint indptr and the buffers leave
    threads = numba.get_num_threads()
    low = (n + m + 1) * 8 + threads * 4 * int(np.diff(ptr).max()) + 29 * 1024 * threads
    bud_u, bud_i = graph_ppr(g, us, its, workdir=tmp_path / "b", topk=16, eps=1e-4, memory_budget=low,
                             workspace="hash")
    for a, b in ((got_u, ref_u), (got_i, ref_i), (bud_u, ref_u), (bud_i, ref_i)):
        np.testing.assert_array_equal(a.sources, b.sources)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert a.num_pushes == b.num_pushes
    with pytest.raises(MemoryError, match="joint indptr"):
        graph_ppr(g, us, its, workdir=tmp_path / "c", memory_budget=1000)


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


@pytest.mark.parametrize("max_slots", [64, 2])
def test_macro_graph_streamed_to_disk_equals_in_memory(events, tmp_path, max_slots):
    """out_dir: every table streamed to .npy in row chunks equals the in-memory one (int32 ids); not
    dense, the slot tables are ragged on disk (each row's non-empty slots only) and read back padded."""
    from recgraph.graph.streaming import build_macro_graph_from_graph

    user, item, ts, n, m = events
    save_graph(BipartiteGraph.from_edges(user, item, n, m, timestamp=ts, dedupe=False, order="time"), tmp_path / "g")
    g = open_graph(tmp_path / "g")
    cat = np.random.default_rng(1).integers(0, 9, m)
    kw = dict(category=cat, user_k=5, recent=6, max_slots=max_slots, max_edges=500, id_dtype=np.int32)
    ref = build_macro_graph_from_graph(g, **kw)
    got = build_macro_graph_from_graph(g, out_dir=tmp_path / "macro", **kw)
    ragged = max_slots == 2
    assert got.info["slot_layout"] == ("ragged" if ragged else "dense") and sorted(got.slot_ptr) == (
        ["i1", "i2", "u1", "u2"] if ragged else [])
    for k in ("u1", "u2", "i1", "i2"):
        ids, cnt = got.slots(k)
        a_ids, b_ids, b_cnt = getattr(got, f"{k}_ids"), getattr(ref, f"{k}_ids"), getattr(ref, f"{k}_cnt")
        assert isinstance(a_ids, np.memmap) and ids.dtype == b_ids.dtype and ids.shape[0] == b_ids.shape[0]
        w = b_ids.shape[1]
        np.testing.assert_array_equal(ids[:, :w], b_ids, err_msg=k)
        np.testing.assert_array_equal(cnt[:, :w], b_cnt, err_msg=k)
        assert (cnt[:, w:] == 0).all()
        if ragged:  # flat on disk: exactly the non-empty slots, rows in order
            ptr = got.slot_ptr[k]
            assert a_ids.ndim == 1 and ptr[-1] == a_ids.shape[0] == (b_cnt > 0).sum()
            np.testing.assert_array_equal(np.diff(ptr), (b_cnt > 0).sum(1))
            assert ids.shape[1] == max_slots
            rows = np.array([3, 0, n - 1 if k[0] == "u" else m - 1, 3])
            sub_ids, sub_cnt = got.slots(k, rows)  # a batch of rows, in any order
            np.testing.assert_array_equal(sub_ids, ids[rows])
            np.testing.assert_array_equal(sub_cnt, cnt[rows])
        else:  # dense: every column, no padding
            assert a_ids.shape == b_ids.shape
    for k in ("u_rec", "u_rec_time", "i_rec", "i_rec_time"):
        a, b = getattr(got, k), getattr(ref, k)
        assert isinstance(a, np.memmap) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b, err_msg=k)
    slot_files = ("ids", "cnt", "ptr") if ragged else ("ids", "cnt")
    assert sorted(p.name for p in (tmp_path / "macro").iterdir()) == sorted(["macro.json", *(
        f"{t}_{f}.npy" for t in ("u1", "u2", "i1", "i2") for f in slot_files), *(
        f"{k}.npy" for k in ("u_rec", "u_rec_time", "i_rec", "i_rec_time", "item_macro", "user_macro"))])
    np.testing.assert_array_equal(np.load(tmp_path / "macro" / "user_macro.npy"), ref.user_macro)


def test_macro_slot_tables_need_no_timestamps(events, tmp_path):
    """recent=0: the four slot tables of a deduplicated, item-ordered graph (no timestamps), ragged on
    disk, equal the in-memory tables of the same graph; no recent-list files."""
    from recgraph.graph.streaming import build_macro_graph_from_graph

    user, item, ts, n, m = events
    save_graph(BipartiteGraph.from_edges(user, item, n, m), tmp_path / "g")  # deduped, no time
    g = open_graph(tmp_path / "g")
    cat = np.random.default_rng(2).integers(0, 9, m)
    kw = dict(category=cat, user_k=5, recent=0, max_slots=3, max_edges=300, id_dtype=np.int32)
    ref = build_macro_graph_from_graph(g, **kw)
    got = build_macro_graph_from_graph(g, out_dir=tmp_path / "m", **kw)
    assert ref.u_rec is None and got.i_rec_time is None
    for k in ("u1", "u2", "i1", "i2"):
        w = getattr(ref, f"{k}_ids").shape[1]
        for a, b in zip(got.slots(k), (getattr(ref, f"{k}_ids"), getattr(ref, f"{k}_cnt"))):
            np.testing.assert_array_equal(a[:, :w], b, err_msg=k)
    assert not any("rec" in p.name for p in (tmp_path / "m").iterdir())


def _mmap(events, tmp_path, **kw):
    user, item, ts, n, m = events
    save_graph(BipartiteGraph.from_edges(user, item, n, m, timestamp=ts, **kw), tmp_path / "g")
    return open_graph(tmp_path / "g")


def test_propagation_over_mmap_graph_equals_scipy_operator(events, tmp_path):
    from recgraph.graph.propagation import propagate
    from recgraph.graph.streaming import normalized_matmul

    g = BipartiteGraph.from_edges(*events[:2], events[3], events[4])
    gm = _mmap(events, tmp_path)
    rng = np.random.default_rng(1)
    xu, xi = rng.normal(size=(g.n_users, 8)).astype(np.float32), rng.normal(size=(g.n_items, 8)).astype(np.float32)
    p_iu, p_ui = g.normalized_biadjacency(np.float32)
    du = 1 / np.sqrt(np.maximum(g.user_degree, 1)) * (g.user_degree > 0)
    di = 1 / np.sqrt(np.maximum(g.item_degree, 1)) * (g.item_degree > 0)
    got = normalized_matmul(gm.u_indptr, gm.u_indices, du, di, xi, np.empty((g.n_users, 8), np.float32),
                            max_edges=700)  # many chunks
    np.testing.assert_allclose(got, p_iu @ xi, rtol=1e-5, atol=1e-6)
    ref = propagate(g, xu, xi, 3, memory_budget=None)  # scipy operator in RAM
    out = propagate(gm, xu, xi, 3, memory_budget=None)  # memory-mapped graph: streamed rows
    assert not np.shares_memory(out.user, ref.user)
    np.testing.assert_allclose(out.user, ref.user, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.item, ref.item, rtol=1e-5, atol=1e-6)
    small = propagate(g, xu, xi, 2, memory_budget=16 * g.n_edges - 1, out_dir=tmp_path / "p")  # op over budget
    np.testing.assert_allclose(small.user, ref.user[:3], rtol=1e-5, atol=1e-6)


def test_time_slice_to_disk_equals_from_edges_of_the_window(events, tmp_path):
    from recgraph.graph.streaming import time_slice_to_disk

    user, item, ts, n, m = events
    gm = _mmap(events, tmp_path)
    lo, hi = 5000, 12000
    got = time_slice_to_disk(gm, tmp_path / "slice", lo, hi, max_edges=900)
    g = BipartiteGraph.from_edges(user, item, n, m, timestamp=ts)  # dedupe keeps each pair's first event
    sel = (g.u_timestamp >= lo) & (g.u_timestamp < hi)
    u = np.repeat(np.arange(n), np.diff(g.u_indptr))
    ref = BipartiteGraph.from_edges(u[sel], g.u_indices[sel], n, m, timestamp=g.u_timestamp[sel])
    for f in ("u_indptr", "u_indices", "u_timestamp", "i_indptr", "i_indices", "i_timestamp"):
        np.testing.assert_array_equal(np.asarray(getattr(got, f)), getattr(ref, f), err_msg=f)
    assert 0 < got.n_edges < g.n_edges
    with pytest.raises(ValueError, match="timestamps"):
        time_slice_to_disk(_mmap(events[:2] + (None,) + events[3:], tmp_path / "nt"), tmp_path / "s2", 0, 1)


@pytest.mark.parametrize("degree_floor", [True, False])
def test_subsample_to_disk_keeps_exactly_the_in_memory_edges(events, tmp_path, degree_floor):
    from recgraph.graph.streaming import subsample_to_disk
    from recgraph.graph.subsample import popularity_subsample

    user, item, ts, n, m = events
    g = BipartiteGraph.from_edges(user, item, n, m)
    ref = popularity_subsample(g, keep_rate=0.4, beta=0.5, seed=3, degree_floor=degree_floor)
    save_graph(g, tmp_path / "g")
    got, summary = subsample_to_disk(open_graph(tmp_path / "g"), tmp_path / "sub", keep_rate=0.4, beta=0.5, seed=3,
                                     degree_floor=degree_floor, max_edges=800)
    assert summary["scale"] == ref.scale and summary["n_kept"] == ref.n_kept
    if degree_floor:
        assert summary["n_anchors"] == int(ref.is_anchor.sum())
    kept = ref.to_graph()
    for f in ("u_indptr", "u_indices", "i_indptr", "i_indices"):
        np.testing.assert_array_equal(np.asarray(getattr(got, f)), getattr(kept, f), err_msg=f)
    np.testing.assert_array_equal(np.load(tmp_path / "sub" / "inclusion_prob.npy"), ref.inclusion_prob)
    with pytest.raises(ValueError, match="keep_rate"):
        subsample_to_disk(got, tmp_path / "bad", keep_rate=0.0)


def _rss_file_kib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status (not Linux)")


@pytest.mark.parametrize("read_rows", ["map", "pread"])
def test_ppr_rows_read_with_pread_stay_out_of_the_resident_set(tmp_path, read_rows):
    """A push of a hub reads its whole row. Through the mapping, the row's pages join this process's RSS (the
    control: this test fails for "map"'s expectation if pread is used, and the reverse); read with pread they
    stay in the page cache only. Same neighbourhoods either way."""
    n_leaves = 8 << 20  # one hub with 8M neighbours: a 32 MiB row
    indptr = np.concatenate([[0, n_leaves], n_leaves + np.arange(1, n_leaves + 1)]).astype(np.int64)
    leaves = np.arange(1, n_leaves + 1, dtype=np.int32)
    np.save(tmp_path / "ind.npy", np.concatenate([leaves, np.zeros(n_leaves, np.int32)]))
    del leaves
    ind = np.load(tmp_path / "ind.npy", mmap_mode="r")
    base = _rss_file_kib()
    got = ppr_topk(indptr, ind, [0], eps=0.5, topk=4, check_indices=False, read_rows=read_rows, num_threads=1)
    grown = _rss_file_kib() - base
    assert got.num_pushes == 1 and got.indices[0, 0] == 0  # the hub's row was read once (its leaves hold residue)
    if read_rows == "map":
        assert grown > 24 << 10, grown  # > 24 MiB of the mapped row now resident
    else:
        assert grown < 4 << 10, grown


def test_ppr_pread_rows_equal_mapped_rows_and_errors(tmp_path):
    rng = np.random.default_rng(3)
    g = BipartiteGraph.from_edges(rng.integers(0, 300, 5000), rng.integers(0, 200, 5000), n_users=300, n_items=200,
                                  dedupe=True)
    indptr, ind = g.joint_csr()
    np.save(tmp_path / "j.npy", ind)
    mm = np.load(tmp_path / "j.npy", mmap_mode="r")
    src = np.arange(0, 500, 3)
    ref = ppr_topk(indptr, ind, src, eps=1e-5, topk=16)
    for kw in ({"read_rows": "pread"}, {"memory_budget": 1 << 22}, {"memory_budget": 1 << 22, "workspace": "hash"}):
        got = ppr_topk(indptr, mm, src, eps=1e-5, topk=16, **kw)
        np.testing.assert_array_equal(got.indices, ref.indices)
        np.testing.assert_array_equal(got.scores, ref.scores)
        assert got.num_pushes == ref.num_pushes
    with pytest.raises(ValueError, match="file-backed"):
        ppr_topk(indptr, ind, src, read_rows="pread")
    with pytest.raises(MemoryError, match="row buffers"):
        ppr_topk(indptr, mm, src, memory_budget=64)
    os.truncate(tmp_path / "j.npy", mm.offset + mm.nbytes // 2)  # replaced / truncated while mapped
    with pytest.raises(OSError, match="could not be read"):
        ppr_topk(indptr, mm, src, eps=1e-5, read_rows="pread", check_indices=False)


@pytest.mark.parametrize("max_slots,recent", [(2, 6), (64, 0)])  # ragged with recent lists; dense slots only
def test_macro_build_within_a_memory_budget_writes_the_same_files(events, tmp_path, max_slots, recent):
    """memory_budget: R·C and Rᵀ·U go to disk and are gathered chunk by chunk; every file equals the
    unbudgeted build's byte for byte, and the spilled products are gone afterwards."""
    from recgraph.graph.streaming import build_macro_graph_from_graph

    user, item, ts, n, m = events
    save_graph(BipartiteGraph.from_edges(user, item, n, m, timestamp=ts, dedupe=False, order="time"), tmp_path / "g")
    g = open_graph(tmp_path / "g")
    cat = np.random.default_rng(1).integers(0, 9, m)
    kw = dict(category=cat, user_k=5, recent=recent, max_slots=max_slots, id_dtype=np.int32)
    build_macro_graph_from_graph(g, out_dir=tmp_path / "ref", **kw)
    logs = []
    got = build_macro_graph_from_graph(g, out_dir=tmp_path / "got", memory_budget=2**20, log=logs.append, **kw)
    assert any("memory budget 1,048,576 B" in s for s in logs)
    names = sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "got").iterdir())  # no .products left behind
    for name in names:
        assert (tmp_path / "ref" / name).read_bytes() == (tmp_path / "got" / name).read_bytes(), name
    assert got.info["slot_layout"] == ("dense" if max_slots == 64 else "ragged")


def test_macro_budget_is_checked(events, tmp_path):
    from recgraph.graph.streaming import build_macro_graph_from_graph, macro_budget_plan

    g = _mmap(events, tmp_path)
    with pytest.raises(ValueError, match="needs out_dir"):
        build_macro_graph_from_graph(g, recent=0, memory_budget=2**30)
    with pytest.raises(ValueError, match="at least 1 MiB"):
        build_macro_graph_from_graph(g, recent=0, memory_budget=1000, out_dir=tmp_path / "m")
    plan = macro_budget_plan(2 * 2**30)
    assert plan["max_edges"] == 2**24 and plan["max_gather"] == 2**26 and plan["kmeans_bytes"] == 2**29
    assert macro_budget_plan(None)["max_gather"] is None
