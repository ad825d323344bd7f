"""recgraph.index: one search contract, checked against brute-force numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recgraph.index import (ExactIndex, FaissIVFIndex, RQIndex, build_index, load_index, parse_description,
                            topk_over_candidates)
from recgraph.index.rq import ranges_to_flat
from recgraph.io import ArtifactError
from recgraph.nn.quantizer import residual_kmeans, rq_decode, rq_encode


def clustered(n=6000, d=32, n_clusters=60, n_queries=200, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, d)).astype(np.float32) * 3
    x = centers[rng.integers(n_clusters, size=n)] + rng.normal(size=(n, d)).astype(np.float32)
    q = centers[rng.integers(n_clusters, size=n_queries)] + rng.normal(size=(n_queries, d)).astype(np.float32)
    return x.astype(np.float32), q.astype(np.float32)


def brute(x, q, k):
    s = q @ x.T
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, ids, 1), ids


def recall(found, truth):
    return np.mean([len(set(a[a >= 0]) & set(b)) / len(b) for a, b in zip(found, truth)])


def test_exact_matches_numpy_with_small_blocks():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 16)).astype(np.float32)
    q = rng.normal(size=(37, 16)).astype(np.float32)
    index = ExactIndex(16, query_block=8, item_block=97).build(x)
    D, I = index.search(q, 15)
    Dr, Ir = brute(x, q, 15)
    np.testing.assert_array_equal(I, Ir)
    np.testing.assert_allclose(D, Dr, rtol=1e-5, atol=1e-4)
    assert D.dtype == np.float32 and I.dtype == np.int64
    assert index.stats["candidates_per_query"] == 1000


def test_exact_pads_when_k_exceeds_ntotal():
    x = np.eye(3, 4, dtype=np.float32)
    D, I = ExactIndex(4).build(x).search(np.ones((2, 4), np.float32), 5)
    assert (I[:, 3:] == -1).all() and np.isneginf(D[:, 3:]).all()
    assert sorted(I[0, :3]) == [0, 1, 2]


@pytest.mark.parametrize("sizes", [(0, 3, 50, 7, 120),                     # few queries: one by one
                                   (0, 3, 50, 7, 120, 1, 9, 64, 2, 33, 0, 5)])  # many: padded blocks
def test_topk_over_candidates_matches_numpy(sizes):
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.normal(size=(200, 8)).astype(np.float32))
    q = torch.from_numpy(rng.normal(size=(len(sizes), 8)).astype(np.float32))
    lists = [rng.choice(200, size=n, replace=False) for n in sizes]
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in lists])])
    D, I = topk_over_candidates(q, x, indptr, np.concatenate(lists), 4, max_elements=300)
    for r, cand in enumerate(lists):
        s = (x[cand] @ q[r]).numpy()
        best = cand[np.argsort(-s)[:4]]
        got = I[r].numpy()
        np.testing.assert_array_equal(got[: len(best)], best)
        assert (got[len(best):] == -1).all()


def test_ranges_to_flat():
    np.testing.assert_array_equal(ranges_to_flat([5, 0, 9], [2, 0, 3]), [5, 6, 9, 10, 11])


@pytest.mark.parametrize("description,min_recall,max_fraction", [
    ("IVF64,nprobe8", 0.95, 0.30),
    ("RQ2x64,nprobe8", 0.95, 0.30),
    ("RQ2x16,nprobe24,depth2,beam8", 0.9, 0.30),
])
def test_ann_recall_vs_exact_on_clustered_data(description, min_recall, max_fraction):
    x, q = clustered()
    _, truth = ExactIndex(x.shape[1]).build(x).search(q, 10)
    index = build_index(description, x)
    assert index.describe() == description
    _, I = index.search(q, 10)
    r = recall(I, truth)
    assert r >= min_recall, f"{description}: recall@10 {r:.3f}"
    # it must actually save work: far fewer vectors scored than brute force
    assert index.n_candidates_last < max_fraction * len(x)
    assert index.stats["flops_per_query"] < max_fraction * 2 * x.shape[1] * len(x)


def test_rq_more_probes_more_recall():
    x, q = clustered(seed=3)
    _, truth = ExactIndex(x.shape[1]).build(x).search(q, 10)
    index = build_index("RQ2x64,nprobe1", x)
    recalls, cands = [], []
    for nprobe in (1, 4, 16, 64):
        index.nprobe = nprobe
        recalls.append(recall(index.search(q, 10)[1], truth))
        cands.append(index.n_candidates_last)
    assert recalls == sorted(recalls) and cands == sorted(cands)
    assert recalls[-1] == 1.0 and cands[-1] == len(x)  # all clusters probed = exact


@pytest.mark.parametrize("description", ["Flat", "IVF32,nprobe4", "RQ2x32,nprobe4", "RQ3x8,nprobe6,depth2,beam4"])
def test_save_load_round_trip(tmp_path, description):
    x, q = clustered(n=2000, n_queries=40, seed=4)
    index = build_index(description, x)
    D, I = index.search(q, 20)
    index.save(tmp_path / "ix")
    assert not list((tmp_path / "ix").glob("*.tmp"))
    loaded = load_index(tmp_path / "ix")
    assert type(loaded) is type(index) and loaded.describe() == description and loaded.ntotal == len(x)
    D2, I2 = loaded.search(q, 20)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_array_equal(D, D2)
    assert type(index).load(tmp_path / "ix").describe() == description
    if description != "Flat":
        with pytest.raises(TypeError):
            ExactIndex.load(tmp_path / "ix")
    # a damaged payload or metadata file is named in the error
    meta = json.loads((tmp_path / "ix" / "index.json").read_text())
    payload = tmp_path / "ix" / meta["payload"]
    payload.write_bytes(payload.read_bytes()[:40])
    with pytest.raises(ArtifactError, match=f"{meta['payload']}: is not a readable"):
        load_index(tmp_path / "ix")
    payload.unlink()
    with pytest.raises(ArtifactError, match=f"{meta['payload']}: not found"):
        load_index(tmp_path / "ix")


def test_rq_codebook_learning_reduces_quantisation_error():
    x, _ = clustered(n=3000, seed=5)
    xt = torch.from_numpy(x)
    rand_books, _ = residual_kmeans(xt, 2, 32, iters=0, seed=0)  # random data points, no Lloyd step
    learned, codes = residual_kmeans(xt, 2, 32, iters=20, seed=0)
    err = lambda books: float((xt - rq_decode(rq_encode(xt, books), books)).pow(2).sum(1).mean())  # noqa: E731
    assert err(learned) < 0.8 * err(rand_books)
    assert err(learned) < err(learned[:1])  # a second level lowers the error further
    np.testing.assert_array_equal(rq_encode(xt, learned), codes)
    index = RQIndex(x.shape[1], 2, 32).build(x)
    assert index.quantization_error() == pytest.approx(err(index.codebooks), rel=1e-5)
    assert index.cluster_sizes().sum() == len(x)


def test_rq_search_clusters_dedupes_and_scores_members():
    x, q = clustered(n=1000, n_queries=3, seed=6)
    index = build_index("RQ1x16,nprobe2", x)
    cl = index.cluster_of([0, 1, 2])
    D, I = index.search_clusters(q, np.array([[cl[0], cl[0], -1]] * 3), 1000)
    members = set(np.flatnonzero(index.cluster_of(np.arange(1000)) == cl[0]))
    assert set(I[0][I[0] >= 0]) == members and index.n_candidates_last == len(members)


def test_errors_are_clear():
    x = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="unknown index description"):
        build_index("HNSW32", x)
    with pytest.raises(ValueError, match="bad option"):
        parse_description("RQ2x8,nprobe4,foo3")
    index = build_index("Flat", x)
    with pytest.raises(ValueError, match="dimension 4"):
        index.search(np.zeros((2, 4), np.float32), 3)
    with pytest.raises(ValueError, match="k must be"):
        index.search(np.zeros((2, 8), np.float32), 0)
    with pytest.raises(RuntimeError, match="train"):
        RQIndex(8).add(x)
    with pytest.raises(RuntimeError, match="train"):
        FaissIVFIndex(8, nlist=4).add(x)
    with pytest.raises(ArtifactError, match="index.json: not found"):
        load_index("/nonexistent/index")
