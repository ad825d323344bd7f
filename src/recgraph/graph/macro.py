"""Macro graph (MacGNN): micro nodes → macro nodes, macro-neighbour counts, recent behaviours.

Macro assignment is pluggable:

* items: ``"category"`` (the item's category / first genre; no clustering), ``"kmeans-rows"``
  (faiss k-means on L2-normalised item behaviour rows, i.e. columns of R, trained on a sample and
  assigned in chunks so no dense items×users array exists) or ``"kmeans-embeddings"`` (k-means on
  given learned item embeddings);
* users: k-means (``k = 20`` by default) on L2-normalised user × item-macro count vectors (R·C,
  densified one chunk of users at a time: ``chunk × n_item_macros`` floats).

Macro-neighbour counts with R = positive user×item (CSR), C = item→item-macro one-hot, U =
user→user-macro one-hot: user 1-hop = R·C, user 2-hop = R·(Rᵀ·U), item 1-hop = Rᵀ·U, item 2-hop =
Rᵀ·(R·C). Every product has at most ``n_macros`` columns, so cost and memory grow linearly with
the number of edges; R·Rᵀ or a dense users×items array is never formed.

Nodes without a macro (a category of -1, or no behaviour to cluster on) get the extra macro id
``n_macros - 1`` ("unknown"), so every id is valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["MacroCounts", "positive_matrix", "one_hot", "assign_item_macros", "assign_user_macros",
           "macro_counts", "recent_lists", "kmeans_assign", "build_macro_graph", "MacroGraph"]


def positive_matrix(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int,
                    weight: np.ndarray | None = None) -> sp.csr_matrix:
    """Count matrix R [n_users, n_items] (float32, duplicates summed)."""
    data = np.ones(len(user), np.float32) if weight is None else np.asarray(weight, np.float32)
    r = sp.csr_matrix((data, (np.asarray(user, np.int64), np.asarray(item, np.int64))), shape=(n_users, n_items))
    r.sum_duplicates()
    return r


def one_hot(assign: np.ndarray, n: int) -> sp.csr_matrix:
    m = len(assign)
    return sp.csr_matrix((np.ones(m, np.float32), (np.arange(m), np.asarray(assign, np.int64))), shape=(m, n))


def _l2_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def kmeans_assign(rows: sp.spmatrix | np.ndarray, k: int, *, seed: int = 0, niter: int = 20,
                  max_train: int = 256 * 64, chunk: int = 65536) -> np.ndarray:
    """faiss k-means on L2-normalised rows (sparse or dense); rows that are all zero get -1.

    Trained on at most ``max_train`` non-empty rows (seeded sample), then every row is assigned
    in chunks (a chunk is densified: ``chunk × n_cols`` floats)."""
    import faiss

    n = rows.shape[0]
    nnz = np.asarray((abs(rows) if sp.issparse(rows) else np.abs(rows)).sum(axis=1)).reshape(-1) > 0
    live = np.flatnonzero(nnz)
    out = np.full(n, -1, np.int64)
    if len(live) == 0:
        return out
    k = int(min(k, len(live)))
    rng = np.random.default_rng(seed)
    train_idx = np.sort(rng.choice(live, size=min(len(live), max_train), replace=False))
    dense = lambda idx: _l2_rows(rows[idx].toarray() if sp.issparse(rows) else np.asarray(rows[idx]))  # noqa: E731
    xt = np.ascontiguousarray(dense(train_idx))
    km = faiss.Kmeans(xt.shape[1], k, niter=niter, seed=int(seed) % (2**31 - 1), verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=10**9)
    km.train(xt)
    for a in range(0, len(live), chunk):
        idx = live[a:a + chunk]
        _, lab = km.index.search(np.ascontiguousarray(dense(idx)), 1)
        out[idx] = lab.reshape(-1)
    return out


def assign_item_macros(method: str, *, n_items: int, category: np.ndarray | None = None,
                       R: sp.csr_matrix | None = None, embeddings: np.ndarray | None = None,
                       k: int = 50, seed: int = 0) -> tuple[np.ndarray, int]:
    """Item → macro id in ``[0, n)``; returns ``(assign, n)`` where ``n - 1`` is the "unknown" macro."""
    if method == "auto":
        method = "category" if category is not None else "kmeans-rows"
    if method == "category":
        if category is None:
            raise ValueError("item macro method 'category' needs item_features['category']")
        cat = np.asarray(category, np.int64)
        raw = cat
    elif method == "kmeans-rows":
        if R is None:
            raise ValueError("item macro method 'kmeans-rows' needs the positive matrix R")
        raw = kmeans_assign(R.T.tocsr(), k, seed=seed)
    elif method == "kmeans-embeddings":
        if embeddings is None:
            raise ValueError("item macro method 'kmeans-embeddings' needs item embeddings")
        raw = kmeans_assign(np.asarray(embeddings, np.float32), k, seed=seed)
    else:
        raise ValueError(f"unknown item macro method {method!r}: category, kmeans-rows, kmeans-embeddings, auto")
    if len(raw) != n_items:
        raise ValueError(f"item macro assignment has {len(raw)} rows, expected {n_items}")
    known = raw >= 0
    uniq, codes = np.unique(raw[known], return_inverse=True)
    out = np.full(n_items, len(uniq), np.int64)
    out[known] = codes
    return out, len(uniq) + 1


def assign_user_macros(R: sp.csr_matrix, item_macro: np.ndarray, n_item_macros: int, *, k: int = 20,
                       seed: int = 0) -> tuple[np.ndarray, int]:
    """User → macro id by k-means on L2-normalised user × item-macro counts (R·C); users with no
    positives get the extra "unknown" id ``k``. Returns ``(assign, k + 1)``."""
    rc = (R @ one_hot(item_macro, n_item_macros)).tocsr()
    raw = kmeans_assign(rc, k, seed=seed)
    out = np.where(raw >= 0, raw, k).astype(np.int64)
    return out, int(k) + 1


@dataclass(frozen=True, eq=False)
class MacroCounts:
    """Macro-neighbour count matrices (CSR, float32)."""

    user1: sp.csr_matrix  # [n_users, n_item_macros]  R·C
    user2: sp.csr_matrix  # [n_users, n_user_macros]  R·(Rᵀ·U)
    item1: sp.csr_matrix  # [n_items, n_user_macros]  Rᵀ·U
    item2: sp.csr_matrix  # [n_items, n_item_macros]  Rᵀ·(R·C)


def macro_counts(R: sp.csr_matrix, item_macro: np.ndarray, n_item_macros: int, user_macro: np.ndarray,
                 n_user_macros: int) -> MacroCounts:
    """The four macro-neighbour count matrices by sparse products (linear in edges)."""
    C = one_hot(item_macro, n_item_macros)
    U = one_hot(user_macro, n_user_macros)
    Rt = R.T.tocsr()
    user1 = (R @ C).tocsr()
    item1 = (Rt @ U).tocsr()
    user2 = (R @ item1).tocsr()
    item2 = (Rt @ user1).tocsr()
    for m in (user1, user2, item1, item2):
        m.sort_indices()
    return MacroCounts(user1, user2, item1, item2)


def recent_lists(node: np.ndarray, other: np.ndarray, time: np.ndarray, n_nodes: int, length: int = 20,
                 *, pad: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last ``length`` ``other`` ids of every node, most recent first, by (time, input order).

    Returns ``(ids [n_nodes, length], times [n_nodes, length], counts [n_nodes])``; missing slots
    hold ``pad`` and time ``-1``. One lexsort, no loop over nodes or events. Callers pass only the
    events strictly before the cutoff."""
    node = np.asarray(node, np.int64)
    order = np.lexsort((np.arange(len(node)), np.asarray(time), node))
    ns, os_, ts = node[order], np.asarray(other, np.int64)[order], np.asarray(time, np.int64)[order]
    counts = np.bincount(ns, minlength=n_nodes)
    ends = np.cumsum(counts)
    from_end = ends[ns] - 1 - np.arange(len(ns))  # 0 = most recent
    keep = from_end < length
    ids = np.full((n_nodes, length), pad, np.int64)
    times = np.full((n_nodes, length), -1, np.int64)
    ids[ns[keep], from_end[keep]] = os_[keep]
    times[ns[keep], from_end[keep]] = ts[keep]
    return ids, times, np.minimum(counts, length)


@dataclass(frozen=True, eq=False)
class MacroGraph:
    item_macro: np.ndarray
    n_item_macros: int
    user_macro: np.ndarray
    n_user_macros: int
    counts: MacroCounts
    user_recent: np.ndarray
    item_recent: np.ndarray
    info: dict


def build_macro_graph(user: np.ndarray, item: np.ndarray, time: np.ndarray, n_users: int, n_items: int, *,
                      category: np.ndarray | None = None, item_method: str = "auto", item_k: int = 50,
                      user_k: int = 20, recent: int = 20, seed: int = 0) -> MacroGraph:
    """All macro-graph parts from one set of positive edges (the benchmark's unit of work)."""
    R = positive_matrix(user, item, n_users, n_items)
    im, n_im = assign_item_macros(item_method, n_items=n_items, category=category, R=R, k=item_k, seed=seed)
    um, n_um = assign_user_macros(R, im, n_im, k=user_k, seed=seed)
    counts = macro_counts(R, im, n_im, um, n_um)
    ur, _, _ = recent_lists(user, item, time, n_users, recent)
    ir, _, _ = recent_lists(item, user, time, n_items, recent)
    return MacroGraph(im, n_im, um, n_um, counts, ur, ir,
                      {"n_item_macros": n_im, "n_user_macros": n_um, "edges": int(R.nnz)})
