"""index/exact.py: blocked brute force against numpy."""

import numpy as np

from index_vectors import brute
from recgraph.index import ExactIndex


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
