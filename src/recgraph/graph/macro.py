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

from .bipartite import BipartiteGraph
from .disk_csr import DiskCSR

__all__ = ["MacroCounts", "positive_matrix", "one_hot", "assign_item_macros", "assign_user_macros",
           "macro_counts", "recent_lists", "kmeans_assign", "FeatureTables", "build_feature_tables", "snapshot_edges"]


def positive_matrix(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int,
                    weight: np.ndarray | None = None) -> sp.csr_matrix:
    """Count matrix R [n_users, n_items] (float32, duplicates summed)."""
    data = np.ones(len(user), np.float32) if weight is None else np.asarray(weight, np.float32)
    r = sp.csr_matrix((data, (np.asarray(user, np.int64), np.asarray(item, np.int64))), shape=(n_users, n_items))
    r.sum_duplicates()
    return r


def one_hot(assign: np.ndarray, n: int) -> sp.csr_matrix:
    """``[len(assign), n]`` float32 CSR with a 1 at ``(r, assign[r])``, built as CSR directly (a COO detour
    holds ~40 bytes per row of temporaries: 0.8 GB for 20M items)."""
    assign = np.asarray(assign)
    m = assign.shape[0]
    if m and (assign.min() < 0 or assign.max() >= n):
        raise ValueError(f"one_hot: ids must be in [0, {n}), got [{assign.min()}, {assign.max()}]")
    idx = np.int32 if max(m, n) < np.iinfo(np.int32).max else np.int64
    return sp.csr_matrix((np.ones(m, np.float32), assign.astype(idx), np.arange(m + 1, dtype=idx)), shape=(m, n))


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
    sparse = sp.issparse(rows) or isinstance(rows, DiskCSR)
    if sparse:  # by row chunks: abs() of the whole matrix would copy it (4+ GB at 1B events)
        rows = rows if isinstance(rows, DiskCSR) else sp.csr_matrix(rows)
        nnz = np.concatenate([np.asarray(abs(rows[a:a + chunk]).sum(axis=1)).reshape(-1) > 0
                              for a in range(0, n, chunk)]) if n else np.zeros(0, bool)
    else:
        nnz = np.asarray(np.abs(rows).sum(axis=1)).reshape(-1) > 0
    live = np.flatnonzero(nnz)
    out = np.full(n, -1, np.int64)
    if len(live) == 0:
        return out
    k = int(min(k, len(live)))
    rng = np.random.default_rng(seed)
    train_idx = np.sort(rng.choice(live, size=min(len(live), max_train), replace=False))
    dense = lambda idx: _l2_rows(rows[idx].toarray() if sparse else np.asarray(rows[idx]))  # noqa: E731
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


# ----------------------------------------------------------------------------- per-snapshot feature tables

@dataclass(frozen=True, eq=False)
class FeatureTables:
    """Macro-graph features of every (snapshot, node); row ``s * n_users + u`` (users) or
    ``s * n_items + i`` (items). Snapshot ``s`` sees the positive edges with ``t < cutoffs[s]``.

    Slot tables hold macro ids and counts, most frequent first (all macros, zero counts included,
    when ``dense_slots``): ``u1`` user → item macros (R·C), ``u2`` user → user macros (R·RᵀU),
    ``i1`` item → user macros (RᵀU), ``i2`` item → item macros (Rᵀ·RC). Recent lists hold ids
    (pad = n_items / n_users), most recent first, and event times (-1 pad)."""

    cutoffs: np.ndarray  # [S] exclusive: snapshot s uses positives with t < cutoffs[s]
    n_users: int
    n_items: int
    item_macro: np.ndarray  # [n_items] int64
    n_item_macros: int
    user_macro: np.ndarray  # [n_users] int64
    n_user_macros: int
    dense_slots: bool
    u1_ids: np.ndarray  # [S * n_users, W] int64 (pad = n_item_macros)
    u1_cnt: np.ndarray  # [S * n_users, W] float32
    u2_ids: np.ndarray
    u2_cnt: np.ndarray
    i1_ids: np.ndarray
    i1_cnt: np.ndarray
    i2_ids: np.ndarray
    i2_cnt: np.ndarray
    u_rec: np.ndarray  # [S * n_users, R] int64
    u_rec_time: np.ndarray
    i_rec: np.ndarray  # [S * n_items, R] int64
    i_rec_time: np.ndarray
    user_deg: np.ndarray  # [S * n_users] positives before the cutoff
    item_deg: np.ndarray  # [S * n_items]
    u_adj: sp.csr_matrix  # [S * n_users, n_items] positive counts before the cutoff (sampled GNNs)
    i_adj: sp.csr_matrix  # [S * n_items, n_users]
    info: dict

    @property
    def n_snapshots(self) -> int:
        return len(self.cutoffs)

    def nbytes(self) -> int:
        arrays = [getattr(self, k) for k in ("u1_ids", "u1_cnt", "u2_ids", "u2_cnt", "i1_ids", "i1_cnt", "i2_ids",
                                             "i2_cnt", "u_rec", "u_rec_time", "i_rec", "i_rec_time")]
        sparse = sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in (self.u_adj, self.i_adj))
        return int(sum(a.nbytes for a in arrays) + sparse)

    ARRAYS = ("cutoffs", "item_macro", "user_macro", "u1_ids", "u1_cnt", "u2_ids", "u2_cnt", "i1_ids", "i1_cnt",
              "i2_ids", "i2_cnt", "u_rec", "u_rec_time", "i_rec", "i_rec_time", "user_deg", "item_deg")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (npz-ready, no pickle) from which :meth:`from_arrays` rebuilds the tables."""
        out = {k: getattr(self, k) for k in self.ARRAYS}
        for name in ("u_adj", "i_adj"):
            m = getattr(self, name)
            out.update({f"{name}_data": m.data, f"{name}_indices": m.indices, f"{name}_indptr": m.indptr,
                        f"{name}_shape": np.asarray(m.shape, np.int64)})
        out["sizes"] = np.asarray([self.n_users, self.n_items, self.n_item_macros, self.n_user_macros,
                                   int(self.dense_slots)], np.int64)
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], info: dict | None = None) -> "FeatureTables":
        nu, ni, nim, num, dense = (int(x) for x in a["sizes"])
        adj = {n: sp.csr_matrix((a[f"{n}_data"], a[f"{n}_indices"], a[f"{n}_indptr"]),
                                shape=tuple(int(x) for x in a[f"{n}_shape"])) for n in ("u_adj", "i_adj")}
        return cls(n_users=nu, n_items=ni, n_item_macros=nim, n_user_macros=num, dense_slots=bool(dense),
                   info=info or {}, **adj, **{k: a[k] for k in cls.ARRAYS})


def _slots(m: sp.csr_matrix, n_cols: int, max_slots: int, dense: bool, *,
           chunk_nnz: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """CSR rows → padded (ids, counts): all columns when ``dense``, else the ``max_slots`` largest
    counts per row, ties by lower column (pad id = n_cols, count 0). Vectorised: one lexsort per
    block of rows holding about ``chunk_nnz`` non-zeros, so the temporaries stay O(chunk_nnz) however
    many non-zeros ``m`` has (the second-order item counts are near-dense: ~100M at 10M events)."""
    m = m.tocsr()
    if dense:
        ids = np.broadcast_to(np.arange(n_cols, dtype=np.int64), (m.shape[0], n_cols)).copy()
        return ids, m.toarray().astype(np.float32)
    n_rows, indptr = m.shape[0], m.indptr.astype(np.int64)
    width = int(min(max_slots, max(1, np.diff(indptr).max(initial=1))))
    ids = np.full((n_rows, width), n_cols, np.int64)
    cnt = np.zeros((n_rows, width), np.float32)
    r0 = 0
    while r0 < n_rows:
        r1 = int(np.searchsorted(indptr, indptr[r0] + chunk_nnz, side="right")) - 1
        r1 = min(n_rows, max(r1, r0 + 1))
        a, b = indptr[r0], indptr[r1]
        rows = np.repeat(np.arange(r0, r1), np.diff(indptr[r0:r1 + 1]))
        data = m.data[a:b]
        order = np.lexsort((-data, rows))
        rows = rows[order]
        pos = np.arange(a, b) - indptr[rows]
        keep = pos < width
        rows, pos, order = rows[keep], pos[keep], order[keep]
        ids[rows, pos] = m.indices[a:b][order]
        cnt[rows, pos] = data[order]
        r0 = r1
    return ids, cnt


def _cat(parts: list, join=np.concatenate):
    """``join(parts)`` (per-snapshot arrays or CSR matrices) without the copy of a single part (one snapshot: the
    common case)."""
    return parts[0] if len(parts) == 1 else join(parts)


def _vstack_csr(parts: list[sp.csr_matrix]) -> sp.csr_matrix:
    return sp.vstack(parts).tocsr()


def _stack_slots(parts: list[tuple[np.ndarray, np.ndarray]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    width = max(p[0].shape[1] for p in parts)

    def pad(a, fill):
        out = np.full((a.shape[0], width), fill, a.dtype)
        out[:, :a.shape[1]] = a
        return out

    return (np.concatenate([pad(p[0], pad_id) for p in parts]), np.concatenate([pad(p[1], 0.0) for p in parts]))


def snapshot_edges(graph: BipartiteGraph, cutoff) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(user, item, time)`` of the graph's edges with ``time < cutoff`` (user-side order)."""
    if graph.u_timestamp is None:
        raise ValueError("the graph has no timestamps; snapshots need them")
    rows = np.repeat(np.arange(graph.n_users, dtype=np.int64), np.diff(graph.u_indptr))
    m = graph.u_timestamp < cutoff
    return rows[m], graph.u_indices[m].astype(np.int64), graph.u_timestamp[m].astype(np.int64)


def build_feature_tables(graph: BipartiteGraph, cutoffs=None, *, fit_snapshot: int = 0,
                         category: np.ndarray | None = None, item_macro: str = "auto", item_k: int = 50,
                         user_k: int = 20, recent: int = 20, max_slots: int = 64, seed: int = 0,
                         fit_graph: BipartiteGraph | None = None,
                         snapshot_graphs: list[BipartiteGraph] | None = None,
                         macros: tuple[np.ndarray, int, np.ndarray, int] | None = None) -> FeatureTables:
    """Macro assignment, macro-neighbour counts, recent lists and adjacency for every snapshot.

    ``macros = (item_macro, n_item_macros, user_macro, n_user_macros)`` reuses a given assignment
    instead of fitting one (multi-task: every behaviour graph counts over the same macro nodes,
    :mod:`recgraph.graph.task_graphs`).

    ``graph`` holds the positive interactions with timestamps and repeats (``dedupe=False``: counts
    are numbers of events). ``cutoffs=None`` is one snapshot over every edge. Macro ids are fitted
    once, on the edges before ``cutoffs[fit_snapshot]``; counts and lists are per snapshot.
    Recent lists order events by time, ties by neighbour id (independent of the input file's row
    order; before the graph became this function's input, ties followed file order).
    ``fit_graph`` (optional): fit the macro ids on its edges before ``cutoffs[fit_snapshot]`` instead
    (e.g. training events only). ``snapshot_graphs`` (optional, one per cutoff): snapshot ``s`` uses
    the edges of ``snapshot_graphs[s]`` before ``cutoffs[s]`` — for snapshots that are not a global
    time prefix (per-user windows).
    Cost: O(S · E) time, O(S · (N + M) · slots) memory for S snapshots."""
    if cutoffs is None:
        top = np.iinfo(np.int64).max if graph.u_timestamp is None else int(graph.u_timestamp.max(initial=0)) + 1
        cutoffs = [top]
        if graph.u_timestamp is None:
            graph = BipartiteGraph.from_edges(np.repeat(np.arange(graph.n_users), np.diff(graph.u_indptr)),
                                              graph.u_indices, graph.n_users, graph.n_items,
                                              timestamp=np.zeros(graph.n_edges, np.int64), dedupe=False)
    cutoffs = np.asarray(cutoffs, np.int64)
    nu, ni = graph.n_users, graph.n_items

    def counts_before(c, g=graph):
        u, i, t = snapshot_edges(g, c)
        g = BipartiteGraph.from_edges(u, i, nu, ni, dedupe=True, keep_counts=True)
        return u, i, t, g.to_scipy("count")

    if snapshot_graphs is not None and len(snapshot_graphs) != len(cutoffs):
        raise ValueError(f"snapshot_graphs has {len(snapshot_graphs)} graphs for {len(cutoffs)} cutoffs")
    if macros is not None:
        im, n_im, um, n_um = macros
    else:
        _, _, _, R_fit = counts_before(cutoffs[fit_snapshot], fit_graph if fit_graph is not None else
                                       graph if snapshot_graphs is None else snapshot_graphs[fit_snapshot])
        im, n_im = assign_item_macros(item_macro, n_items=ni, category=category, R=R_fit, k=item_k, seed=seed)
        um, n_um = assign_user_macros(R_fit, im, n_im, k=user_k, seed=seed)
        del R_fit
    dense = max(n_im, n_um) <= max_slots
    parts: dict[str, list] = {k: [] for k in ("u1", "u2", "i1", "i2", "ur", "urt", "ir", "irt", "ud", "id", "ua", "ia")}
    for k, c in enumerate(cutoffs):
        u, i, t, R = counts_before(c, graph if snapshot_graphs is None else snapshot_graphs[k])
        mc = macro_counts(R, im, n_im, um, n_um)
        parts["u1"].append(_slots(mc.user1, n_im, max_slots, dense))
        parts["u2"].append(_slots(mc.user2, n_um, max_slots, dense))
        parts["i1"].append(_slots(mc.item1, n_um, max_slots, dense))
        parts["i2"].append(_slots(mc.item2, n_im, max_slots, dense))
        del mc  # near-dense second-order counts (~1.2 GB at 10M events): free before the recent lists
        ur, urt, _ = recent_lists(u, i, t, nu, recent, pad=ni)
        ir, irt, _ = recent_lists(i, u, t, ni, recent, pad=nu)
        parts["ur"].append(ur), parts["urt"].append(urt), parts["ir"].append(ir), parts["irt"].append(irt)
        parts["ud"].append(np.bincount(u, minlength=nu))
        parts["id"].append(np.bincount(i, minlength=ni))
        parts["ua"].append(R)
        parts["ia"].append(R.T.tocsr())
        del u, i, t, R
    u1, u2 = _stack_slots(parts["u1"], n_im), _stack_slots(parts["u2"], n_um)
    i1, i2 = _stack_slots(parts["i1"], n_um), _stack_slots(parts["i2"], n_im)
    return FeatureTables(
        cutoffs=cutoffs, n_users=nu, n_items=ni, item_macro=im, n_item_macros=n_im, user_macro=um,
        n_user_macros=n_um, dense_slots=dense, u1_ids=u1[0], u1_cnt=u1[1], u2_ids=u2[0], u2_cnt=u2[1],
        i1_ids=i1[0], i1_cnt=i1[1], i2_ids=i2[0], i2_cnt=i2[1],
        u_rec=_cat(parts["ur"]), u_rec_time=_cat(parts["urt"]), i_rec=_cat(parts["ir"]), i_rec_time=_cat(parts["irt"]),
        user_deg=_cat(parts["ud"]), item_deg=_cat(parts["id"]),
        u_adj=_cat(parts["ua"], _vstack_csr), i_adj=_cat(parts["ia"], _vstack_csr),
        info={"n_item_macros": n_im, "n_user_macros": n_um, "edges": int(graph.n_edges),
              "snapshots": int(len(cutoffs))})
