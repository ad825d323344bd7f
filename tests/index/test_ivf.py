"""index/ivf.py (and the RQ index) as approximate indexes: recall against exact search on
clustered data, with far fewer vectors scored."""

import pytest

from index_vectors import clustered, recall
from recgraph.index import ExactIndex, build_index


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
