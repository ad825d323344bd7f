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


def _previous_search(index, q, k):
    """The search before the cluster-order layout: gather the probed clusters' members by id from the
    id-order vectors and score them exactly (``topk_over_candidates``)."""
    from recgraph.index.base import topk_over_candidates

    indptr, cand = index.members(index.probe(torch.from_numpy(q)).numpy())
    D, I = topk_over_candidates(torch.from_numpy(q), index.vectors, indptr, cand, k)
    return D.numpy(), I.numpy()


@pytest.mark.parametrize("desc", ["RQ2x64,nprobe5", "RQ3x8,nprobe6,depth2,beam4", "RQ2x32,nprobe32"])
def test_cluster_order_search_equals_the_previous_gather_search(desc):
    x, q = clustered(n=5000, seed=11)
    index = build_index(desc, x)
    np.testing.assert_array_equal(index.vectors.numpy(), x)  # id order given back exactly
    for k in (1, 10, 200):
        D, I = index.search(q[:40], k)
        D0, I0 = _previous_search(index, q[:40], k)
        np.testing.assert_array_equal(I, I0)
        np.testing.assert_allclose(D, D0, rtol=1e-6, atol=1e-6)
    # one query at a time (the serving path) and U2I2I's cluster search
    for j in range(5):
        np.testing.assert_array_equal(index.search(q[j:j + 1], 50)[1], _previous_search(index, q[j:j + 1], 50)[1])
    cl = index.cluster_of([0, 7, 9])[None].repeat(2, 0)
    D, I = index.search_clusters(q[:2], cl, 300)
    indptr, cand = index.members(cl)
    from recgraph.index.base import topk_over_candidates

    D0, I0 = topk_over_candidates(torch.from_numpy(q[:2]), torch.from_numpy(x), indptr, cand, 300)
    np.testing.assert_array_equal(I, I0.numpy())


def test_format_1_rq_folder_still_loads(tmp_path):
    """A folder written before the cluster-order layout (format 1: vectors in id order) loads and
    searches the same; a folder from a newer library is refused by name."""
    import json

    from recgraph.index import load_index
    from recgraph.io import ArtifactError, atomic_save_tensors, atomic_write_json

    x, q = clustered(n=2000, seed=12)
    index = build_index("RQ2x16,nprobe3", x)
    old = tmp_path / "v1"
    old.mkdir()
    atomic_save_tensors(old / "index.safetensors", {"codebooks": index.codebooks, "vectors": torch.from_numpy(x),
                                                    "codes": index.codes})
    atomic_write_json(old / "index.json", {"format": "recgraph-index", "version": 1, "type": "rq",
                                           "description": index.describe(), "d": 32, "ntotal": len(x),
                                           "payload": "index.safetensors",
                                           "params": {"n_levels": 2, "codebook_size": 16, "nprobe": 3, "depth": 1,
                                                      "beam": 8, "kmeans_iters": 20, "seed": 0}})
    loaded = load_index(old)
    for a, b in zip(loaded.search(q[:20], 10), index.search(q[:20], 10)):
        np.testing.assert_array_equal(a, b)
    new = index.save(tmp_path / "v2")
    meta = json.loads((new / "index.json").read_text())
    assert meta["version"] == 2
    for a, b in zip(load_index(new).search(q[:20], 10), index.search(q[:20], 10)):
        np.testing.assert_array_equal(a, b)
    meta["version"] = 3
    (new / "index.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="newer"):
        load_index(new)
