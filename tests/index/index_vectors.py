"""Shared data for the index tests (imported by them): clustered vectors, a brute-force reference, recall."""

import numpy as np


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
