"""Item–item co-occurrence: cosine top-k neighbours for item-based CF (ItemKNN).

``sim(i, j) = |U_i ∩ U_j| / (sqrt|U_i| · sqrt|U_j| + shrink)`` with ``U_i`` the users of item ``i``.
Two standard generalisations: the asymmetric cosine of Aiolli (RecSys 2013),
``|U_i ∩ U_j| / (|U_i|^(1-α) · |U_j|^α + shrink)`` for the neighbour ``j`` of row ``i`` (α = 0.5
is the cosine; α > 0.5 penalises popular neighbours), and per-user weights in the overlap,
``Σ_{u ∈ U_i ∩ U_j} w_u`` (e.g. inverse user frequency ``1 / log2(1 + |I_u|)``: a user with many
items says less about any one pair of them).

Cost: the co-occurrence counts are computed blockwise as ``Rᵀ[block] · R`` (scipy sparse
products), so the dense ``n_items²`` matrix never exists. The work of an item ``i`` is bounded by
``c_i = Σ_{u ∈ U_i} |I_u|`` (the length-2 paths leaving it); total time is O(Σ_i c_i) =
O(Σ_u |I_u|²) plus a per-block sort of the surviving pairs, O(nnz log nnz). Blocks are cut so that
``Σ_{i ∈ block} c_i <= max_block_pairs`` (default 2**23 ≈ 8.4M pairs, ≲ 350 MB of
temporaries), or hold ``block_size`` items when given. Output: ``n_items·k`` int32 + float32.

Input: the training :class:`~recgraph.graph.bipartite.BipartiteGraph` (both of its CSR sides are
used as they are, no rebuild); a scipy user×item matrix is converted with
:meth:`~recgraph.graph.bipartite.BipartiteGraph.from_scipy`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .bipartite import BipartiteGraph, as_graph


def _blocks(cost: np.ndarray, block_size: int | None, max_block_pairs: int) -> list[tuple[int, int]]:
    n = cost.shape[0]
    if block_size is not None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        return [(a, min(n, a + block_size)) for a in range(0, n, block_size)]
    # greedy contiguous cut on the cumulative path count (vectorised: searchsorted over the cumsum)
    cum = np.concatenate([[0], np.cumsum(cost, dtype=np.int64)])
    out, a = [], 0
    while a < n:
        b = int(np.searchsorted(cum, cum[a] + max_block_pairs, side="right")) - 1
        b = min(n, max(b, a + 1))  # at least one item per block
        out.append((a, b))
        a = b
    return out


def inverse_user_frequency(graph: BipartiteGraph) -> np.ndarray:
    """``[n_users]`` weights ``1 / log2(1 + |I_u|)`` (1 for users without items), ``|I_u|`` the
    user's distinct items in ``graph``."""
    deg = np.diff(as_graph(graph).to_scipy().indptr).astype(np.float64)
    return 1.0 / np.log2(1.0 + np.maximum(deg, 1.0))


def item_cosine_topk(graph: BipartiteGraph, k: int, shrink: float = 0.0, block_size: int | None = None,
                     max_block_pairs: int = 2**23, *, alpha: float = 0.5,
                     user_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` cosine neighbours of every item.

    Args:
        graph: the user–item graph; binary (a pair interacted several times counts once). A scipy
            ``[n_users, n_items]`` matrix is accepted and converted (explicit zeros dropped).
        k: neighbours kept per item.
        shrink: added to the denominator (damps similarities backed by few users).
        block_size: items per block; default: adaptive blocks of at most ``max_block_pairs``
            length-2 paths. The result does not depend on the blocking.
        alpha: exponent on the neighbour's degree, ``1 - alpha`` on the row item's (0.5: cosine).
        user_weights: ``[n_users]`` non-negative weights summed in the overlap instead of counts
            (the degrees in the denominator stay counts); None: every user counts 1.
    Returns:
        ``indices [n_items, k] int32`` (most similar first; ties by smaller item id; ``-1`` pads
        items with fewer than ``k`` co-occurring items) and ``scores [n_items, k] float32`` (0 pads).
        An item is never its own neighbour.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if shrink < 0:
        raise ValueError(f"shrink must be >= 0, got {shrink}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    graph = as_graph(graph)
    R = graph.to_scipy(dtype=np.int32)  # [n_users, n_items], binary
    if user_weights is not None:
        user_weights = np.asarray(user_weights, dtype=np.float64)
        if user_weights.shape != (R.shape[0],):
            raise ValueError(f"user_weights must have shape [n_users={R.shape[0]}], got {user_weights.shape}")
        if not np.all(np.isfinite(user_weights)) or np.any(user_weights < 0):
            raise ValueError("user_weights must be finite and >= 0")
    n_items = R.shape[1]
    indices = np.full((n_items, k), -1, np.int32)
    scores = np.zeros((n_items, k), np.float32)
    if k == 0 or n_items == 0 or R.nnz == 0:
        return indices, scores
    Rt = graph.to_scipy(dtype=np.int32, side="item")  # [n_items, n_users]
    user_deg = np.diff(R.indptr).astype(np.int64)
    item_deg = np.diff(Rt.indptr).astype(np.int64)
    row_norm = item_deg.astype(np.float64) ** (1.0 - alpha)
    col_norm = item_deg.astype(np.float64) ** alpha
    cost = Rt @ user_deg  # length-2 paths per item (an upper bound on its product row's nnz)
    # right factor of the product: R itself (counts) or diag(w) · R (weighted overlaps)
    right = R if user_weights is None else sp.csr_matrix(
        (np.repeat(user_weights, np.diff(R.indptr)), R.indices, R.indptr), shape=R.shape)
    for a, b in _blocks(np.asarray(cost, np.int64), block_size, int(max_block_pairs)):
        C = (Rt[a:b] @ right).tocsr()  # [b-a, n_items] co-occurrence counts (or weighted sums)
        rows = np.repeat(np.arange(a, b, dtype=np.int64), np.diff(C.indptr))
        cols = C.indices.astype(np.int64, copy=False)
        keep = cols != rows  # exclude self-similarity
        if user_weights is not None:
            keep &= C.data > 0  # overlaps made only of zero-weight users are no neighbours
        rows, cols, cnt = rows[keep], cols[keep], C.data[keep]
        del C, keep
        if rows.size == 0:
            continue
        sim = cnt / (row_norm[rows] * col_norm[cols] + shrink)
        # per row: score desc, then column asc; rank within row = position - row start
        o = np.lexsort((cols, -sim, rows))
        rows, cols, sim = rows[o], cols[o], sim[o]
        starts = np.searchsorted(rows, np.arange(a, b), side="left")
        rank = np.arange(rows.size, dtype=np.int64) - starts[rows - a]
        top = rank < k
        indices[rows[top], rank[top]] = cols[top]
        scores[rows[top], rank[top]] = sim[top]
    return indices, scores


def to_csr(indices: np.ndarray, scores: np.ndarray, n_items: int) -> sp.csr_matrix:
    """``[n_items, n_items]`` float32 CSR with ``S[i, indices[i, r]] = scores[i, r]`` (``-1`` pads dropped)."""
    indices = np.asarray(indices)
    scores = np.asarray(scores, np.float32)
    if indices.shape != scores.shape or indices.ndim != 2 or indices.shape[0] != n_items:
        raise ValueError(f"indices {indices.shape} and scores {scores.shape} must both be [n_items={n_items}, k]")
    valid = indices >= 0
    counts = valid.sum(axis=1)
    indptr = np.zeros(n_items + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    m = sp.csr_matrix((scores[valid], indices[valid].astype(np.int32), indptr), shape=(n_items, n_items))
    m.sort_indices()
    return m
