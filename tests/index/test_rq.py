"""index/rq.py: the residual-quantisation cluster index (probes, codebooks, cluster search)."""

import numpy as np
import pytest
import torch

from index_vectors import clustered, recall
from recgraph.index import ExactIndex, RQIndex, build_index
from recgraph.index.rq import ranges_to_flat
from recgraph.nn.quantizer import residual_kmeans, rq_decode, rq_encode


def test_ranges_to_flat():
    np.testing.assert_array_equal(ranges_to_flat([5, 0, 9], [2, 0, 3]), [5, 6, 9, 10, 11])


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
