"""Negative sampling, vectorised.

:func:`sample_negatives` draws, for each user of a batch, ``n_neg`` items that are not among the
user's positives. Candidates are drawn for the whole batch at once and rejected ones are redrawn
in vectorised rounds; membership is tested with one ``searchsorted`` over the sorted CSR keys
``user * n_items + item`` (no dense user×item matrix, no Python loop over samples).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp


def positive_keys(positives: sp.csr_matrix) -> np.ndarray:
    """Sorted ``int64`` keys ``user * n_items + item`` of the stored entries of ``positives``."""
    csr = sp.csr_matrix(positives)
    csr.sort_indices()
    n_items = csr.shape[1]
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    return rows * np.int64(n_items) + csr.indices.astype(np.int64)  # row-major ⇒ already sorted


def is_positive(users: np.ndarray, items: np.ndarray, keys: np.ndarray, n_items: int) -> np.ndarray:
    """Vectorised membership test of (user, item) pairs against sorted ``keys``."""
    q = np.asarray(users, np.int64) * np.int64(n_items) + np.asarray(items, np.int64)
    if len(keys) == 0:
        return np.zeros(q.shape, bool)
    pos = np.searchsorted(keys, q)
    return keys[np.minimum(pos, len(keys) - 1)] == q


def sample_negatives(users: np.ndarray, n_items: int, positives: sp.csr_matrix, n_neg: int, *,
                     strategy: Literal["uniform", "popularity"] = "uniform",
                     item_popularity: np.ndarray | None = None,
                     rng: np.random.Generator | int | None = None,
                     max_rounds: int = 100, keys: np.ndarray | None = None) -> np.ndarray:
    """``[B, n_neg] int64`` negatives for ``users [B]``, none of them a positive of its user.

    Args:
        users: ``[B]`` dense user indices (repeats allowed).
        n_items: size of the item space.
        positives: ``[n_users, n_items]`` CSR of each user's positives (the training interactions).
        n_neg: negatives per user (sampled with replacement across the ``n_neg`` slots).
        strategy: ``"uniform"`` over items, or ``"popularity"`` ∝ ``item_popularity`` (default:
            the column counts of ``positives``) — popular items are harder negatives.
        rng: a ``numpy.random.Generator`` or seed.
        max_rounds: rejection rounds before the remaining slots are filled exactly from the user's
            complement (only users with almost every item positive ever get there).
        keys: precomputed :func:`positive_keys` (pass it when sampling many batches).

    Raises:
        ValueError: when a user has no possible negative (every item with non-zero sampling
            probability is one of its positives).
    """
    rng = np.random.default_rng(rng)
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    if positives.shape[1] != n_items:
        raise ValueError(f"positives has {positives.shape[1]} columns, expected n_items={n_items}")
    if n_neg < 0:
        raise ValueError("n_neg must be >= 0")
    if len(users) and (users.min() < 0 or users.max() >= positives.shape[0]):
        raise ValueError(f"user index out of range [0, {positives.shape[0]})")
    csr = sp.csr_matrix(positives)
    if keys is None:
        keys = positive_keys(csr)
    out = np.empty((len(users), n_neg), dtype=np.int64)
    if len(users) == 0 or n_neg == 0:
        return out

    if strategy == "uniform":
        probs = None
        support = np.ones(n_items, bool)
    elif strategy == "popularity":
        pop = (np.asarray(csr.sum(axis=0)).ravel() if item_popularity is None
               else np.asarray(item_popularity, np.float64).reshape(-1))
        if pop.shape != (n_items,):
            raise ValueError(f"item_popularity must have shape ({n_items},), got {pop.shape}")
        if np.any(pop < 0) or not np.isfinite(pop).all() or pop.sum() <= 0:
            raise ValueError("item_popularity must be finite, non-negative and not all zero")
        probs = pop / pop.sum()
        cdf = np.cumsum(probs)
        cdf[-1] = 1.0
        support = pop > 0
    else:
        raise ValueError(f"unknown strategy {strategy!r}; use 'uniform' or 'popularity'")

    # users that cannot have any negative: all supported items are positives
    uniq = np.unique(users)
    n_support = int(support.sum())
    deg_support = np.asarray(csr[uniq][:, np.flatnonzero(support)].sum(axis=1)).ravel() if n_support < n_items \
        else np.diff(csr.indptr)[uniq]
    # count distinct positives (csr may hold explicit duplicates/zeros after arithmetic; treat stored entries as positives)
    full = deg_support >= n_support
    if full.any():
        bad = uniq[full]
        raise ValueError(f"{len(bad)} user(s) have no possible negative (all {n_support} samplable items are "
                         f"positives), e.g. users {bad[:5].tolist()}; drop them from the batch or use another "
                         "strategy")

    def draw(k: int) -> np.ndarray:
        if probs is None:
            return rng.integers(0, n_items, size=k, dtype=np.int64)
        return np.minimum(np.searchsorted(cdf, rng.random(k), side="right"), n_items - 1).astype(np.int64)

    flat_users = np.repeat(users, n_neg)
    flat = draw(len(flat_users))
    todo = np.flatnonzero(is_positive(flat_users, flat, keys, n_items))
    rounds = 0
    while len(todo) and rounds < max_rounds:
        flat[todo] = draw(len(todo))
        still = is_positive(flat_users[todo], flat[todo], keys, n_items)
        todo = todo[still]
        rounds += 1
    if len(todo):  # exact fallback: sample from the complement of these (few, dense) users
        for u in np.unique(flat_users[todo]):
            slots = todo[flat_users[todo] == u]
            mask = support.copy()
            mask[csr.indices[csr.indptr[u]:csr.indptr[u + 1]]] = False
            cand = np.flatnonzero(mask)
            p = None if probs is None else probs[cand] / probs[cand].sum()
            flat[slots] = rng.choice(cand, size=len(slots), p=p)
    return flat.reshape(len(users), n_neg)
