"""User–item bipartite graph in CSR both ways, with timestamps and behaviours aligned to edges.

:class:`BipartiteGraph` is the graph object every graph stage consumes. It holds

* ``u_indptr [n_users+1]``, ``u_indices [E]``: user → item CSR. Within a user row, edges are sorted
  by item (``order="item"``, the default) or by ``(timestamp, item)`` (``order="time"``).
* ``i_indptr [n_items+1]``, ``i_indices [E]``: item → user CSR. Within an item row, edges are sorted
  by user (``order="item"``) or by ``(timestamp, user)`` (``order="time"``).
* ``i_edge [E]``: for each item-side edge, its position in the user-side arrays, so any per-edge
  attribute ``x_u`` (aligned with ``u_indices``) reads on the item side as ``x_u[i_edge]``.
* ``u_timestamp`` / ``i_timestamp``, ``u_behavior`` / ``i_behavior``: per-edge attributes aligned
  with ``u_indices`` / ``i_indices`` (``None`` when the log has none), and ``u_count`` (optional,
  user side only) the multiplicity of each deduplicated edge.

Cost (``E`` edges after deduplication, ``E0`` input events, ``N`` users, ``M`` items):

* Build: O(E0 + N + M) time -- two stable counting sorts (LSD radix on ``(user, item)``), one
  sequential dedupe/compaction pass and one counting sort for the item side, each a compiled numba
  loop over edges (no Python loop, no comparison sort, no dense matrix). ``order="time"`` adds a
  per-row stable sort, O(Σ d log d). Peak memory beyond the input is about
  ``max(16·E0, final size)`` bytes with int64 timestamps: the user side is gathered through one
  int32 permutation (4 B/event) that is freed before the item side is allocated; measured peak
  growth is within a few % of the final graph (benchmarks/bench_graph_build.py).
* Final memory, with int32 ids (when ``max(E, N, M) < 2**31``; int64 otherwise):
  ``4·(N+M+2)`` for the two indptrs plus, per edge,
  ``4`` (u_indices) + ``4`` (i_indices) + ``4`` (i_edge) = **12 bytes/edge** without attributes,
  + ``2·8`` for int64 timestamps (both directions) = **28 bytes/edge**,
  + ``2·1`` for int8 behaviours, + ``4`` for ``u_count`` when ``keep_counts=True``.
  :attr:`BipartiteGraph.nbytes` reports the exact total.

Matrices: this class is the one place that builds user×item and joint (users + items) sparse
matrices: :meth:`to_scipy` (``R [N, M]``, or ``Rᵀ`` with ``side="item"``), :meth:`joint_csr` (the
unnormalised ``A = [[0, R], [Rᵀ, 0]]`` as CSR arrays), :meth:`normalized_adjacency` (torch
``D^-1/2 A D^-1/2``) and :meth:`normalized_biadjacency` (its two scipy blocks). Every graph stage
(co-occurrence, PPR, subsampling, propagation) and every retrieval model's ``prepare`` takes a
``BipartiteGraph``; a scipy matrix is converted once with :meth:`from_scipy` (:func:`as_graph`).

Deduplication (``dedupe=True``, the default): repeated ``(user, item)`` pairs collapse to one
edge that keeps the **latest** timestamp, and the behaviour of that latest event; among events
tied on the latest timestamp (or without timestamps) the one that comes last in the input wins.
``keep_counts=True`` stores how many events each edge collapsed in ``u_count``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np

from ..data.schema import Interactions
from ..io import ArtifactError, atomic_save_npz, load_npz

_INT32_MAX = np.iinfo(np.int32).max

# ----------------------------------------------------------------------------------------------
# compiled kernels: each is one linear pass over the edges (the loop is the algorithm)
# ----------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _indptr_of(keys, n):  # pragma: no cover - compiled
    """CSR indptr ``[n+1] int64`` of the (unsorted) row keys ``keys``."""
    indptr = np.zeros(n + 1, np.int64)
    for j in range(keys.shape[0]):
        indptr[keys[j] + 1] += 1
    for r in range(n):
        indptr[r + 1] += indptr[r]
    return indptr


@numba.njit(cache=True, nogil=True)
def _indptr_of_perm(keys, perm, n):  # pragma: no cover - compiled
    """CSR indptr of ``keys[perm]`` without materialising the gather."""
    indptr = np.zeros(n + 1, np.int64)
    for j in range(perm.shape[0]):
        indptr[keys[perm[j]] + 1] += 1
    for r in range(n):
        indptr[r + 1] += indptr[r]
    return indptr


@numba.njit(cache=True, nogil=True)
def _counting_order(keys, indptr, out):  # pragma: no cover - compiled
    """Stable counting sort: ``out`` ← positions ``e`` ordered by ``keys[e]`` (ties in input order)."""
    pos = indptr[:-1].copy()
    for e in range(keys.shape[0]):
        k = keys[e]
        out[pos[k]] = e
        pos[k] += 1


@numba.njit(cache=True, nogil=True)
def _counting_order_after(keys, indptr, prev, out):  # pragma: no cover - compiled
    """Stable counting sort of the sequence ``prev`` by ``keys[prev[j]]`` (LSD radix pass)."""
    pos = indptr[:-1].copy()
    for j in range(prev.shape[0]):
        e = prev[j]
        k = keys[e]
        out[pos[k]] = e
        pos[k] += 1


@numba.njit(cache=True, nogil=True)
def _dedupe_rows(indptr, items, ts, has_ts, beh, has_beh, counts, want_counts, new_indptr):  # pragma: no cover
    """Collapse runs of equal item within each CSR row (rows item-sorted, stable), compacting in place.

    Keeps, per run, the attributes of the event with the largest timestamp (the last one in input
    order among ties, or the last one when there are no timestamps). Sequential reads and writes
    only. Returns the number of kept edges ``n``; ``new_indptr`` receives the compacted indptr."""
    n = 0
    n_rows = indptr.shape[0] - 1
    for r in range(n_rows):
        new_indptr[r] = n
        j = indptr[r]
        b = indptr[r + 1]
        while j < b:
            it = items[j]
            best = j
            c = 1
            j += 1
            while j < b and items[j] == it:
                if has_ts:
                    if ts[j] >= ts[best]:
                        best = j
                else:
                    best = j
                c += 1
                j += 1
            # n <= run start <= best: never overwrites an unread entry
            items[n] = it
            if has_ts:
                ts[n] = ts[best]
            if has_beh:
                beh[n] = beh[best]
            if want_counts:
                counts[n] = c
            n += 1
    new_indptr[n_rows] = n
    return n


@numba.njit(cache=True, nogil=True)
def _gather(src, perm, out):  # pragma: no cover - compiled
    for j in range(perm.shape[0]):
        out[j] = src[perm[j]]


@numba.njit(cache=True, nogil=True)
def _transpose(u_indptr, u_indices, i_indptr, i_indices, i_edge, u_ts, i_ts, has_ts, u_beh, i_beh,
               has_beh):  # pragma: no cover - compiled
    """Item-side CSR (and attributes) from the user side, stable in user order (item rows user-sorted)."""
    pos = i_indptr[:-1].copy()
    n_rows = u_indptr.shape[0] - 1
    for r in range(n_rows):
        for p in range(u_indptr[r], u_indptr[r + 1]):
            k = u_indices[p]
            q = pos[k]
            i_indices[q] = r
            i_edge[q] = p
            if has_ts:
                i_ts[q] = u_ts[p]
            if has_beh:
                i_beh[q] = u_beh[p]
            pos[k] += 1


@numba.njit(cache=True, nogil=True)
def _sym_norm_values(indptr, indices, d_row, d_col, out, offset):  # pragma: no cover - compiled
    """``out[offset + p] = d_row[r] * d_col[indices[p]]`` for each edge ``p`` of row ``r``."""
    for r in range(indptr.shape[0] - 1):
        dr = d_row[r]
        for p in range(indptr[r], indptr[r + 1]):
            out[offset + p] = dr * d_col[indices[p]]


@numba.njit(cache=True, nogil=True)
def _row_time_order(indptr, ts, out):  # pragma: no cover - compiled
    """``out`` ← global positions that stably sort each CSR row by ``ts`` (rows already sorted skip)."""
    n_rows = indptr.shape[0] - 1
    for r in range(n_rows):
        a = indptr[r]
        b = indptr[r + 1]
        is_sorted = True
        for p in range(a + 1, b):
            if ts[p] < ts[p - 1]:
                is_sorted = False
                break
        if is_sorted:
            for p in range(a, b):
                out[p] = p
        else:
            o = np.argsort(ts[a:b], kind="mergesort")
            for t in range(b - a):
                out[a + t] = a + o[t]


# ----------------------------------------------------------------------------------------------


def _index_dtype(*sizes: int) -> np.dtype:
    return np.dtype(np.int32) if max(sizes) < _INT32_MAX else np.dtype(np.int64)


def _as_int_array(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        if a.size and a.dtype.kind == "f" and np.all(np.floor(a) == a):
            return a.astype(np.int64)
        raise TypeError(f"{name} must hold integer indices, got dtype {a.dtype}")
    return a


def _take(src: np.ndarray | None, perm: np.ndarray) -> np.ndarray | None:
    if src is None:
        return None
    out = np.empty(perm.shape[0], dtype=src.dtype)
    _gather(src, perm, out)
    return out


def _or_dummy(a: np.ndarray | None) -> np.ndarray:
    return np.zeros(1, np.int64) if a is None else a


def _shrink(a: np.ndarray | None, n: int) -> np.ndarray | None:
    """First ``n`` entries of a freshly allocated array, releasing the tail (in place when possible)."""
    if a is None or a.shape[0] == n:
        return a
    try:
        a.resize(n, refcheck=False)
        return a
    except ValueError:
        return a[:n].copy()


def _inv_sqrt(deg: np.ndarray) -> np.ndarray:
    out = np.zeros(deg.shape[0], np.float64)
    nz = deg > 0
    out[nz] = 1.0 / np.sqrt(deg[nz].astype(np.float64))
    return out


def _build_user_side(user, item, n_users: int, n_items: int, ts, beh, *, dedupe: bool, order: str,
                     keep_counts: bool, idx: np.dtype):
    """User-side CSR of validated edge arrays: ``(u_indptr [N+1] idx, u_indices [E], u_ts, u_beh, u_count)``.

    The user half of :meth:`BipartiteGraph.from_edges` (module docs); the out-of-core build
    (:mod:`recgraph.graph.external`) runs it on one user-range bucket at a time."""
    e0 = user.shape[0]
    # user-major, item-minor order: LSD radix = counting sort by item, then stable by user
    p1 = np.empty(e0, idx)
    _counting_order(item, _indptr_of(item, n_items), p1)
    u_indptr = _indptr_of(user, n_users)
    perm = np.empty(e0, idx)
    _counting_order_after(user, u_indptr, p1, perm)
    del p1
    u_indices = np.empty(e0, idx)
    _gather(item, perm, u_indices)
    u_ts = _take(ts, perm)
    u_beh = _take(beh, perm)
    del perm
    counts = None
    if dedupe:  # runs of a repeated pair are now adjacent: one sequential compaction pass
        want = bool(keep_counts)
        counts = np.empty(e0 if want else 1, np.int32)
        new_indptr = np.empty(n_users + 1, np.int64)
        n = _dedupe_rows(u_indptr, u_indices, _or_dummy(u_ts), u_ts is not None, _or_dummy(u_beh),
                         u_beh is not None, counts, want, new_indptr)
        u_indptr = new_indptr
        u_indices, u_ts, u_beh = _shrink(u_indices, n), _shrink(u_ts, n), _shrink(u_beh, n)
        counts = _shrink(counts, n) if want else None
    u_indptr = u_indptr.astype(idx, copy=False)
    if order == "time" and u_indices.shape[0]:
        rp = np.empty(u_indices.shape[0], idx)
        _row_time_order(u_indptr, u_ts, rp)
        u_indices, u_ts = u_indices[rp], u_ts[rp]
        u_beh = None if u_beh is None else u_beh[rp]
        counts = None if counts is None else counts[rp]
        del rp
    return u_indptr, u_indices, u_ts, u_beh, counts


_ARRAY_FIELDS = ("u_indptr", "u_indices", "i_indptr", "i_indices", "i_edge", "u_timestamp", "i_timestamp",
                 "u_behavior", "i_behavior", "u_count")


@dataclass(frozen=True, eq=False)
class BipartiteGraph:
    """User–item graph, CSR in both directions with edge attributes aligned (see module docs).

    Build with :meth:`from_interactions` or :meth:`from_edges`; treat the arrays as read-only.
    """

    n_users: int
    n_items: int
    u_indptr: np.ndarray  # [n_users+1]
    u_indices: np.ndarray  # [E] item of each user-side edge
    i_indptr: np.ndarray  # [n_items+1]
    i_indices: np.ndarray  # [E] user of each item-side edge
    i_edge: np.ndarray  # [E] position of each item-side edge in the user-side arrays
    u_timestamp: np.ndarray | None = None
    i_timestamp: np.ndarray | None = None
    u_behavior: np.ndarray | None = None
    i_behavior: np.ndarray | None = None
    u_count: np.ndarray | None = None  # [E] int32 multiplicity of each deduplicated edge
    order: str = "item"  # "item" or "time": the order of edges within a row
    deduped: bool = True
    behavior_names: tuple[str, ...] = ()

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_interactions(cls, inter: Interactions, *, dedupe: bool = True, order: Literal["item", "time"] = "item",
                          keep_counts: bool = False) -> "BipartiteGraph":
        """Graph of an :class:`~recgraph.data.schema.Interactions` log (labels are ignored)."""
        return cls.from_edges(inter.user, inter.item, inter.n_users, inter.n_items, timestamp=inter.timestamp,
                              behavior=inter.behavior, dedupe=dedupe, order=order, keep_counts=keep_counts,
                              behavior_names=tuple(inter.behavior_names))

    @classmethod
    def from_edges(cls, user, item, n_users: int, n_items: int, timestamp=None, behavior=None, *,
                   dedupe: bool = True, order: Literal["item", "time"] = "item", keep_counts: bool = False,
                   behavior_names: tuple[str, ...] = ()) -> "BipartiteGraph":
        """Graph from parallel edge arrays (any integer dtype; int32 inputs save memory).

        Args:
            user, item: ``[E]`` dense indices in ``[0, n_users)`` / ``[0, n_items)``.
            timestamp: ``[E]`` numeric times (kept in their dtype), or None.
            behavior: ``[E]`` small integer codes (kept in their dtype), or None.
            dedupe: collapse repeated pairs to one edge with the latest timestamp (module docs).
            order: ``"item"`` sorts each row by neighbour id; ``"time"`` by ``(timestamp, id)``,
                which makes :meth:`neighbors_before` a binary search.
            keep_counts: with ``dedupe``, store each edge's multiplicity in ``u_count``.
        Cost: O(E + N + M) time and memory (module docs).
        """
        n_users, n_items = int(n_users), int(n_items)
        if n_users < 0 or n_items < 0:
            raise ValueError(f"n_users and n_items must be >= 0, got {n_users}, {n_items}")
        if order not in ("item", "time"):
            raise ValueError(f"order must be 'item' or 'time', got {order!r}")
        user = _as_int_array("user", user)
        item = _as_int_array("item", item)
        if item.shape != user.shape:
            raise ValueError(f"user and item must have equal length, got {user.shape[0]} and {item.shape[0]}")
        e0 = user.shape[0]
        for name, arr in (("timestamp", timestamp), ("behavior", behavior)):
            if arr is not None and np.shape(arr) != (e0,):
                raise ValueError(f"{name} has shape {np.shape(arr)}, expected ({e0},)")
        if e0:
            for name, arr, n in (("user", user, n_users), ("item", item, n_items)):
                lo, hi = int(arr.min()), int(arr.max())
                if lo < 0 or hi >= n:
                    bad = int(np.flatnonzero((arr < 0) | (arr >= n))[0])
                    raise ValueError(f"{name} index out of range [0, {n}) at row {bad}: {int(arr[bad])}")
        if order == "time" and timestamp is None:
            raise ValueError("order='time' needs timestamps")
        ts = None if timestamp is None else np.asarray(timestamp)
        beh = None if behavior is None else np.asarray(behavior)
        idx = _index_dtype(e0, n_users, n_items)

        u_indptr, u_indices, u_ts, u_beh, counts = _build_user_side(
            user, item, n_users, n_items, ts, beh, dedupe=dedupe, order=order, keep_counts=keep_counts, idx=idx)
        e = u_indices.shape[0]
        i_indptr = _indptr_of(u_indices, n_items).astype(idx, copy=False)
        i_indices = np.empty(e, idx)
        i_edge = np.empty(e, idx)
        i_ts = None if u_ts is None else np.empty(e, u_ts.dtype)
        i_beh = None if u_beh is None else np.empty(e, u_beh.dtype)
        _transpose(u_indptr, u_indices, i_indptr, i_indices, i_edge, _or_dummy(u_ts), _or_dummy(i_ts),
                   u_ts is not None, _or_dummy(u_beh), _or_dummy(i_beh), u_beh is not None)
        if order == "time" and e:
            rp = np.empty(e, idx)
            _row_time_order(i_indptr, i_ts, rp)
            i_indices, i_ts, i_edge = i_indices[rp], i_ts[rp], i_edge[rp]
            i_beh = None if i_beh is None else i_beh[rp]
            del rp
        return cls(n_users=n_users, n_items=n_items, u_indptr=u_indptr, u_indices=u_indices, i_indptr=i_indptr,
                   i_indices=i_indices, i_edge=i_edge, u_timestamp=u_ts, i_timestamp=i_ts, u_behavior=u_beh,
                   i_behavior=i_beh, u_count=counts, order=order, deduped=bool(dedupe),
                   behavior_names=tuple(behavior_names))

    @classmethod
    def from_scipy(cls, matrix, *, dedupe: bool = True) -> "BipartiteGraph":
        """Graph of a scipy sparse ``[n_users, n_items]`` matrix: each stored non-zero is an edge
        (values are ignored, explicit zeros dropped, repeated entries merged when ``dedupe``)."""
        import scipy.sparse as sp

        if not sp.issparse(matrix):
            raise TypeError(f"expected a scipy sparse [n_users, n_items] matrix, got {type(matrix).__name__}")
        coo = matrix.tocoo()
        keep = coo.data != 0
        row, col = (coo.row, coo.col) if keep.all() else (coo.row[keep], coo.col[keep])
        return cls.from_edges(row, col, matrix.shape[0], matrix.shape[1], dedupe=dedupe)

    # ---------------------------------------------------------------- sizes
    @property
    def n_edges(self) -> int:
        return int(self.u_indices.shape[0])

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    @property
    def user_degree(self) -> np.ndarray:
        """``[n_users]`` edges per user (int64)."""
        return np.diff(self.u_indptr).astype(np.int64, copy=False)

    @property
    def item_degree(self) -> np.ndarray:
        """``[n_items]`` edges per item (int64)."""
        return np.diff(self.i_indptr).astype(np.int64, copy=False)

    @property
    def i_count(self) -> np.ndarray | None:
        """Item-side multiplicities (a gather of ``u_count``), or None."""
        return None if self.u_count is None else self.u_count[self.i_edge]

    @property
    def nbytes(self) -> int:
        """Bytes held by the graph's arrays."""
        return int(sum(getattr(self, f).nbytes for f in _ARRAY_FIELDS if getattr(self, f) is not None))

    @property
    def bytes_per_edge(self) -> float:
        return self.nbytes / max(1, self.n_edges)

    # ---------------------------------------------------------------- neighbourhoods
    def user_slice(self, u: int) -> slice:
        return slice(int(self.u_indptr[u]), int(self.u_indptr[u + 1]))

    def item_slice(self, i: int) -> slice:
        return slice(int(self.i_indptr[i]), int(self.i_indptr[i + 1]))

    def user_items(self, u: int) -> np.ndarray:
        """Items of user ``u`` (a view), in the graph's row order."""
        return self.u_indices[self.user_slice(u)]

    def item_users(self, i: int) -> np.ndarray:
        """Users of item ``i`` (a view), in the graph's row order."""
        return self.i_indices[self.item_slice(i)]

    def neighbors_before(self, node: int, t, *, side: Literal["user", "item"] = "user",
                         return_timestamps: bool = False):
        """Neighbours of ``node`` through edges with timestamp strictly before ``t``.

        ``side="user"``: items of user ``node``; ``side="item"``: users of item ``node``. With
        ``order="time"`` this is a binary search returning a view, O(log d), in time order;
        otherwise an O(d) mask over the row (a copy, in item/user order).
        """
        if self.u_timestamp is None:
            raise ValueError("neighbors_before needs a graph built with timestamps")
        if side == "user":
            sl, nbr, ts = self.user_slice(node), self.u_indices, self.u_timestamp
        elif side == "item":
            sl, nbr, ts = self.item_slice(node), self.i_indices, self.i_timestamp
        else:
            raise ValueError(f"side must be 'user' or 'item', got {side!r}")
        row_t = ts[sl]
        if self.order == "time":
            k = int(np.searchsorted(row_t, t, side="left"))
            sel = slice(sl.start, sl.start + k)
            out_n, out_t = nbr[sel], ts[sel]
        else:
            mask = row_t < t
            out_n, out_t = nbr[sl][mask], row_t[mask]
        return (out_n, out_t) if return_timestamps else out_n

    # ---------------------------------------------------------------- conversions
    def _binary_sides(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(u_indptr, u_indices, i_indptr, i_indices)`` over *distinct* pairs, rows sorted by
        neighbour id: the graph's own arrays when it is deduplicated and item-ordered (zero copy),
        else one O(E) merge."""
        if self.deduped and self.order == "item":
            return self.u_indptr, self.u_indices, self.i_indptr, self.i_indices
        r = self.to_scipy("binary", dtype=np.int8)
        rt = r.T.tocsr()
        rt.sort_indices()
        return r.indptr, r.indices, rt.indptr, rt.indices

    def to_scipy(self, values: Literal["binary", "count"] = "binary", dtype=np.float32, *,
                 side: Literal["user", "item"] = "user"):
        """``scipy.sparse.csr_matrix`` ``R [n_users, n_items]`` (``side="item"``: ``Rᵀ [n_items,
        n_users]``) with sorted, unique column indices.

        ``values="binary"``: 1 per distinct (user, item) pair; ``"count"``: number of events
        (``u_count`` of a ``keep_counts`` graph, repeated edges of a ``dedupe=False`` graph, else 1).
        Shares the graph's indptr/indices when it is deduplicated and item-ordered (zero copy);
        otherwise O(E) copy.
        """
        import scipy.sparse as sp

        if values not in ("binary", "count"):
            raise ValueError(f"values must be 'binary' or 'count', got {values!r}")
        if side not in ("user", "item"):
            raise ValueError(f"side must be 'user' or 'item', got {side!r}")
        if side == "user":
            shape, indptr, indices, counts = (self.n_users, self.n_items), self.u_indptr, self.u_indices, self.u_count
        else:
            shape, indptr, indices, counts = (self.n_items, self.n_users), self.i_indptr, self.i_indices, self.i_count
        if values == "count" and counts is not None:
            data = counts.astype(dtype)
        else:
            data = np.ones(self.n_edges, dtype)
        if self.deduped and self.order == "item":
            m = sp.csr_matrix((data, indices, indptr), shape=shape)
            m.has_sorted_indices = True
            return m
        m = sp.csr_matrix((data, indices.copy(), indptr.copy()), shape=shape)
        m.sum_duplicates()  # sorts indices and merges repeats (summing their values)
        if values == "binary":
            m.data[:] = 1
        return m

    def joint_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR ``(indptr [N+M+1] int64, indices [2E'])`` of ``A = [[0, R], [Rᵀ, 0]]`` over joint ids
        (users ``0..N-1``, items ``N..N+M-1``); ``R`` binary over the ``E'`` distinct pairs, each
        row sorted. ``indices`` are int32 when ``N + M < 2**31``. The input of PPR and random walks.
        Cost O(E + N + M)."""
        u_ptr, u_idx, i_ptr, i_idx = self._binary_sides()
        n, e = self.n_users, u_idx.shape[0]
        indptr = np.empty(self.n_nodes + 1, np.int64)
        indptr[: n + 1] = u_ptr
        indptr[n + 1:] = i_ptr[1:]
        indptr[n + 1:] += e
        indices = np.empty(2 * e, _index_dtype(self.n_nodes))
        indices[:e] = u_idx
        indices[:e] += n
        indices[e:] = i_idx
        return indptr, indices

    def _normalized_parts(self, weighted: bool):
        """Both CSR sides and the ``D^-1/2`` of each node type, plus per-edge weights when ``weighted``."""
        if weighted:
            r = self.to_scipy("count", dtype=np.float64)
            rt = r.T.tocsr()
            rt.sort_indices()
            u_ptr, u_idx, i_ptr, i_idx, w_u, w_i = r.indptr, r.indices, rt.indptr, rt.indices, r.data, rt.data
            deg_u = np.asarray(r.sum(axis=1)).ravel()  # weighted degree = row sums of A
            deg_i = np.asarray(r.sum(axis=0)).ravel()
        else:
            u_ptr, u_idx, i_ptr, i_idx = self._binary_sides()
            w_u = w_i = None
            deg_u, deg_i = np.diff(u_ptr), np.diff(i_ptr)
        return u_ptr, u_idx, i_ptr, i_idx, _inv_sqrt(deg_u), _inv_sqrt(deg_i), w_u, w_i

    def normalized_biadjacency(self, dtype=np.float32, *, weighted: bool = False):
        """The two blocks of :meth:`normalized_adjacency` as scipy CSR:
        ``P_iu = D_u^-1/2 R D_i^-1/2 [N, M]`` (users aggregate items) and ``P_ui = P_iuᵀ [M, N]``.
        Cost O(E + N + M); values written in one compiled pass per side."""
        import scipy.sparse as sp

        u_ptr, u_idx, i_ptr, i_idx, du, di, w_u, w_i = self._normalized_parts(weighted)
        out = []
        for ptr, idx, d_row, d_col, w, shape in ((u_ptr, u_idx, du, di, w_u, (self.n_users, self.n_items)),
                                                 (i_ptr, i_idx, di, du, w_i, (self.n_items, self.n_users))):
            vals = np.empty(idx.shape[0], dtype)
            _sym_norm_values(ptr, idx, d_row, d_col, vals, 0)
            if w is not None:
                vals *= w
            m = sp.csr_matrix((vals, idx, ptr), shape=shape)
            m.has_sorted_indices = True
            out.append(m)
        return out[0], out[1]

    def normalized_adjacency(self, dtype=None, *, layout: Literal["csr", "coo"] = "csr", weighted: bool = False):
        """``D^-1/2 A D^-1/2`` of ``A = [[0, R], [Rᵀ, 0]]`` as a torch sparse ``(N+M)×(N+M)`` tensor.

        Users are nodes ``0..N-1``, items ``N..N+M-1``. ``R`` is binary over distinct pairs
        (``weighted=True``: event counts, see :meth:`to_scipy`). Zero-degree nodes get an empty
        row and column (their ``D^-1/2`` is taken as 0, never inf/nan). Column indices are sorted
        and unique within each row (valid CSR invariants). Cost: O(E + N + M) time; output holds
        ``2E`` values plus ``2E`` indices (int32 when ``2E + N + M < 2**31``).
        """
        import torch

        dtype = torch.float32 if dtype is None else dtype
        if layout not in ("csr", "coo"):
            raise ValueError(f"layout must be 'csr' or 'coo', got {layout!r}")
        n, m = self.n_users, self.n_items
        u_ptr, u_idx, i_ptr, i_idx, du, di, w_u, w_i = self._normalized_parts(weighted)
        e = u_idx.shape[0]
        np_dtype = np.float32 if dtype == torch.float32 else np.float64
        vals = np.empty(2 * e, np_dtype)  # written in place by a compiled pass: no per-edge temporaries
        _sym_norm_values(u_ptr, u_idx, du, di, vals, 0)
        _sym_norm_values(i_ptr, i_idx, di, du, vals, e)
        if w_u is not None:
            vals[:e] *= w_u
            vals[e:] *= w_i
        idx = _index_dtype(2 * e + n + m + 1)
        if layout == "coo":
            idx = np.dtype(np.int64)
        crow = np.empty(n + m + 1, idx)
        crow[: n + 1] = u_ptr
        crow[n + 1:] = i_ptr[1:] + e
        col = np.empty(2 * e, idx)
        col[:e] = u_idx
        col[:e] += n
        col[e:] = i_idx
        values = torch.from_numpy(vals).to(dtype)  # zero copy for float32 / float64
        del vals
        size = (n + m, n + m)
        if layout == "coo":
            rows = np.repeat(np.arange(n + m, dtype=np.int64), np.diff(crow))
            ind = torch.from_numpy(np.stack([rows, col]))
            return torch.sparse_coo_tensor(ind, values, size, is_coalesced=True, check_invariants=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(col), values, size,
                                           check_invariants=False)

    # ---------------------------------------------------------------- report / persistence
    def describe(self) -> dict:
        """Counts and costs a table can show."""
        du, di = self.user_degree, self.item_degree
        out = {
            "n_users": self.n_users, "n_items": self.n_items, "n_edges": self.n_edges,
            "users_with_edges": int(np.count_nonzero(du)), "items_with_edges": int(np.count_nonzero(di)),
            "density": self.n_edges / max(1, self.n_users * self.n_items),
            "user_degree_max": int(du.max()) if du.size else 0,
            "item_degree_max": int(di.max()) if di.size else 0,
            "user_degree_mean": float(du.mean()) if du.size else 0.0,
            "item_degree_mean": float(di.mean()) if di.size else 0.0,
            "order": self.order, "deduped": self.deduped,
            "has_timestamps": self.u_timestamp is not None, "has_behaviors": self.u_behavior is not None,
            "index_dtype": str(self.u_indices.dtype), "nbytes": self.nbytes, "bytes_per_edge": self.bytes_per_edge,
        }
        if self.u_timestamp is not None and self.n_edges:
            out["time_min"], out["time_max"] = self.u_timestamp.min().item(), self.u_timestamp.max().item()
        return out

    def save(self, path) -> None:
        """Write to an ``.npz`` (no pickle), atomically (:func:`recgraph.io.atomic_save_npz`)."""
        arrays = {f: getattr(self, f) for f in _ARRAY_FIELDS if getattr(self, f) is not None}
        atomic_save_npz(path, {"_meta": np.array([self.n_users, self.n_items, int(self.deduped)], np.int64),
                               "_order": np.array(self.order),
                               "_behavior_names": np.array(self.behavior_names, dtype=str), **arrays})

    @classmethod
    def load(cls, path) -> "BipartiteGraph":
        """Read a graph written by :meth:`save`; a damaged or foreign file raises
        :class:`~recgraph.io.ArtifactError` naming it."""
        z = load_npz(path)
        missing = [k for k in ("_meta", "_order", "_behavior_names", *_ARRAY_FIELDS[:5]) if k not in z]
        if missing:
            raise ArtifactError(path, f"is not a BipartiteGraph file (missing {', '.join(missing)})",
                                "write it with BipartiteGraph.save")
        n_users, n_items, deduped = (int(x) for x in z["_meta"])
        kw = {f: z[f] for f in _ARRAY_FIELDS if f in z}
        return cls(n_users=n_users, n_items=n_items, order=str(z["_order"]), deduped=bool(deduped),
                   behavior_names=tuple(str(s) for s in z["_behavior_names"]), **kw)

    def __repr__(self) -> str:
        return (f"BipartiteGraph(n_users={self.n_users}, n_items={self.n_items}, n_edges={self.n_edges}, "
                f"order={self.order!r}, {self.nbytes / 2**20:.1f} MiB)")


def as_graph(graph, name: str = "graph") -> BipartiteGraph:
    """``graph`` itself, or the :class:`BipartiteGraph` of a scipy sparse user×item matrix
    (:meth:`BipartiteGraph.from_scipy`); anything else is a ``TypeError`` naming ``name``."""
    if isinstance(graph, BipartiteGraph):
        return graph
    import scipy.sparse as sp

    if sp.issparse(graph):
        return BipartiteGraph.from_scipy(graph)
    raise TypeError(f"{name} must be a BipartiteGraph (BipartiteGraph.from_interactions(train)) or a scipy sparse "
                    f"user×item matrix, got {type(graph).__name__}")
