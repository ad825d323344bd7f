"""Graph computations in bounded memory over a (memory-mapped) :class:`BipartiteGraph`.

The graph stages that sweep every edge — macro-neighbour counts, recent-behaviour lists, the
homogeneous CSR that PPR pushes on — read the graph here in row chunks of at most ``max_edges``
edges. A chunk of a memory-mapped array is read with ``pread`` (:func:`read_slice`), not through
the mapping, so it costs its own size in RAM and the kernel's page cache, never the resident set
of the whole file. Results equal the in-memory functions of :mod:`recgraph.graph.macro` and
:mod:`recgraph.graph.ppr` (tests/graph/test_streaming.py).

Memory of :func:`macro_counts_from_graph`: the four count matrices it returns (CSR, 8 bytes per
stored entry) plus one chunk (``max_edges`` × (index + weight) bytes) and ``O(n_cols)`` work
arrays — versus ``R`` (16 bytes/edge with its COO temporaries 24+), ``Rᵀ`` and scipy's product
temporaries in :func:`recgraph.graph.macro.macro_counts`. With a ``memory_budget``,
:func:`build_macro_graph_from_graph` keeps even those products on disk (:class:`~recgraph.graph.disk_csr.DiskCSR`)
and each chunk gathers the rows it reads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numba
import numpy as np
import scipy.sparse as sp

from ..io import atomic_npy_writer, atomic_write_json
from .bipartite import BipartiteGraph
from .disk_csr import DiskCSR, DiskCSRWriter
from .external import read_slice
from .macro import MacroCounts, assign_item_macros, kmeans_assign, one_hot
from .ppr import PPRNeighbourhoods, bipartite_ppr

__all__ = ["read_slice", "row_chunks", "spmm_rows", "spmm_slots", "macro_counts_from_graph", "recent_from_graph",
           "MacroSlots", "MACRO_TABLES", "MACRO_FILES", "MACRO_FORMAT", "SLOT_TABLES", "save_macro_meta",
           "macro_products", "macro_budget_plan", "macro_table", "macro_table_rows", "macro_tables", "macro_files",
           "macro_slots_of", "check_recent", "padded_slots",
           "build_macro_graph_from_graph", "joint_csr_to_disk", "graph_ppr"]

DEFAULT_MAX_EDGES = 1 << 24  # 16M edges per chunk: ~128 MB of ids and weights


def row_chunks(indptr: np.ndarray, max_edges: int, max_rows: int | None = None) -> list[tuple[int, int]]:
    """Contiguous row ranges ``(r0, r1)`` holding at most ``max_edges`` edges (a bigger row alone) and,
    if given, at most ``max_rows`` rows."""
    ptr = np.asarray(indptr, np.int64)
    n = ptr.shape[0] - 1
    out, r0 = [], 0
    while r0 < n:
        r1 = int(np.searchsorted(ptr, ptr[r0] + max_edges, side="right")) - 1
        r1 = min(n, max(r1, r0 + 1))
        if max_rows is not None:
            r1 = min(r1, r0 + max(1, int(max_rows)))
        out.append((r0, r1))
        r0 = r1
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _accumulate_row(r, indptr, nbr, w, has_w, b_indptr, b_indices, b_data, acc, mark, touched):  # pragma: no cover
    """``acc[c] = Σ_p w[p] · B[nbr[p], c]`` over row ``r``'s edges, in edge order; the columns touched are
    marked and listed in ``touched`` (first-touch order). Returns how many."""
    nt = 0
    for p in range(indptr[r], indptr[r + 1]):
        v = nbr[p]
        wp = w[p] if has_w else 1.0
        for q in range(b_indptr[v], b_indptr[v + 1]):
            c = b_indices[q]
            if mark[c] == 0:
                mark[c] = 1
                touched[nt] = c
                nt += 1
                acc[c] = 0.0
            acc[c] += wp * b_data[q]
    return nt


@numba.njit(cache=True, nogil=True)
def _spmm_rows(indptr, nbr, w, has_w, b_indptr, b_indices, b_data, acc, mark, touched, out_ptr, out_ind,
               out_val):  # pragma: no cover - compiled
    """Rows of ``A·B`` with ``A`` the chunk CSR (``indptr`` local, values ``w`` or 1) and ``B`` a CSR, in one
    pass: row ``r``'s sorted columns and values go to ``out_ind/out_val[out_ptr[r]:out_ptr[r+1]]`` (the
    buffers are sized by an upper bound; ``out_ptr`` is written here)."""
    pos = 0
    out_ptr[0] = 0
    for r in range(indptr.shape[0] - 1):
        nt = _accumulate_row(r, indptr, nbr, w, has_w, b_indptr, b_indices, b_data, acc, mark, touched)
        t = np.sort(touched[:nt])
        for j in range(nt):
            out_ind[pos + j] = t[j]
            out_val[pos + j] = acc[t[j]]
            mark[t[j]] = 0
        pos += nt
        out_ptr[r + 1] = pos


def _csr_arrays(B: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``B``'s arrays as the kernels read them, copied only where the dtype differs: float32 values stay
    float32 (the kernels sum in float64 either way, so results are identical) — a 1B-edge ``R·C`` would
    otherwise be copied to 12 bytes per entry."""
    val_dt = np.float32 if B.data.dtype == np.float32 else np.float64
    return B.indptr.astype(np.int64, copy=False), B.indices.astype(np.int32, copy=False), B.data.astype(val_dt,
                                                                                                        copy=False)


def _edges(indices, weights, weight_index, a: int, b: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Edges ``[a, b)`` of ``A``: ``(neighbours, float64 weights or a dummy, has_weights)``; ``weight_index``:
    the weights are ``weights[weight_index[p]]``."""
    nb = read_slice(indices, a, b)
    if weights is None:
        return nb, np.zeros(1), False
    if weight_index is None:
        return nb, read_slice(weights, a, b).astype(np.float64), True
    return nb, np.asarray(weights)[read_slice(weight_index, a, b)].astype(np.float64), True


def spmm_rows(indptr: np.ndarray, indices: np.ndarray, B: sp.csr_matrix, *, weights: np.ndarray | None = None,
              weight_index: np.ndarray | None = None, max_edges: int = DEFAULT_MAX_EDGES,
              out: str | os.PathLike | None = None) -> sp.csr_matrix | DiskCSR:
    """``A·B`` for the CSR ``A = (indptr, indices, weights or 1)`` read in row chunks (``[n_rows, B.shape[1]]``
    float32, sorted indices). ``weight_index``: weights are ``weights[weight_index[p]]`` (item-side edges
    reading user-side counts through ``i_edge``). ``B`` must fit in RAM (here: ``≤ n_macros`` columns).
    One pass per chunk: output buffers are sized by the row bound ``min(n_cols, Σ_p nnz(B[indices[p]]))``,
    with chunks cut so a buffer holds at most ``max_edges`` entries. ``out``: a folder the product is
    streamed to chunk by chunk, returned as a :class:`DiskCSR` (RAM: one chunk, not the product)."""
    B = sp.csr_matrix(B)
    n_cols = B.shape[1]
    b_ptr, b_ind, b_val = _csr_arrays(B)
    acc = np.zeros(n_cols, np.float64)
    mark = np.zeros(n_cols, np.uint8)
    touched = np.empty(n_cols, np.int64)
    n_rows = np.asarray(indptr).shape[0] - 1
    ptr_all = read_slice(indptr, 0, n_rows + 1).astype(np.int64, copy=False)
    parts_ptr, parts_ind, parts_val = [np.zeros(1, np.int64)], [], []
    nnz = 0
    with DiskCSRWriter(out, n_rows, n_cols) if out is not None else contextlib.nullcontext() as writer:
        for r0, r1 in row_chunks(ptr_all, max_edges):
            a, b = int(ptr_all[r0]), int(ptr_all[r1])
            nb_all, w_all, has_w = _edges(indices, weights, weight_index, a, b)
            work = np.concatenate([[0], np.cumsum(b_ptr[nb_all + 1] - b_ptr[nb_all])])  # prefix of B row lengths
            lp_all = ptr_all[r0:r1 + 1] - a
            bound = np.minimum(n_cols, work[lp_all[1:]] - work[lp_all[:-1]])
            bptr = np.concatenate([[0], np.cumsum(bound)])
            for s0, s1 in row_chunks(bptr, max_edges):  # sub-chunks whose output bound fits the buffer
                e0, e1 = int(lp_all[s0]), int(lp_all[s1])
                cap = int(bptr[s1] - bptr[s0])
                ind = np.empty(cap, np.int32)
                val = np.empty(cap, np.float32)
                optr = np.empty(s1 - s0 + 1, np.int64)
                _spmm_rows(lp_all[s0:s1 + 1] - e0, nb_all[e0:e1], w_all[e0:e1] if has_w else w_all, has_w, b_ptr,
                           b_ind, b_val, acc, mark, touched, optr, ind, val)
                k = int(optr[-1])
                if writer is not None:
                    writer.write(optr, ind[:k], val[:k])
                    continue
                parts_ptr.append(optr[1:] + nnz)
                parts_ind.append(ind[:k].copy() if k < cap else ind)
                parts_val.append(val[:k].copy() if k < cap else val)
                nnz += k
    if out is not None:
        return DiskCSR.open(out)
    out_ptr = np.concatenate(parts_ptr)
    idx_dt = np.int32 if nnz < np.iinfo(np.int32).max else np.int64
    m = sp.csr_matrix((concat_consuming(parts_val, np.float32), concat_consuming(parts_ind, np.int32),
                       out_ptr.astype(idx_dt)), shape=(n_rows, n_cols), copy=False)
    m.has_sorted_indices = True
    return m


def concat_consuming(parts: list[np.ndarray], dtype) -> np.ndarray:
    """``np.concatenate(parts)`` that empties ``parts`` as it copies: peak = the result + one part, not
    twice the result (R·C of 1B edges: ~2.4 GB of parts)."""
    out = np.empty(sum(p.shape[0] for p in parts), dtype)
    at = 0
    parts.reverse()
    while parts:
        p = parts.pop()
        out[at:at + p.shape[0]] = p
        at += p.shape[0]
    return out


def macro_counts_from_graph(graph: BipartiteGraph, item_macro: np.ndarray, n_item_macros: int,
                            user_macro: np.ndarray, n_user_macros: int, *,
                            max_edges: int = DEFAULT_MAX_EDGES) -> MacroCounts:
    """The four macro-neighbour count matrices of :func:`recgraph.graph.macro.macro_counts`, from a graph.

    ``R`` is the graph's edges weighted by ``u_count`` (a ``keep_counts`` graph) or 1 per edge (a
    ``dedupe=False`` graph counts repeated events as parallel edges): equal to ``macro_counts`` on
    ``positive_matrix`` of the same events. Streams ``R`` (user side) and ``Rᵀ`` (item side) in chunks."""
    C = one_hot(item_macro, n_item_macros)
    U = one_hot(user_macro, n_user_macros)
    w = graph.u_count
    user1 = spmm_rows(graph.u_indptr, graph.u_indices, C, weights=w, max_edges=max_edges)
    item1 = spmm_rows(graph.i_indptr, graph.i_indices, U, weights=w, weight_index=None if w is None else graph.i_edge,
                      max_edges=max_edges)
    user2 = spmm_rows(graph.u_indptr, graph.u_indices, item1, weights=w, max_edges=max_edges)
    item2 = spmm_rows(graph.i_indptr, graph.i_indices, user1, weights=w,
                      weight_index=None if w is None else graph.i_edge, max_edges=max_edges)
    return MacroCounts(user1, user2, item1, item2)


@numba.njit(cache=True, nogil=True)
def _last_per_row(indptr, nbr, ts, has_ts, length, pad, ids, times):  # pragma: no cover - compiled
    for r in range(indptr.shape[0] - 1):
        a, b = indptr[r], indptr[r + 1]
        k = 0
        p = b - 1
        while p >= a and k < length:
            ids[r, k] = nbr[p]
            times[r, k] = ts[p] if has_ts else -1
            k += 1
            p -= 1
        while k < length:
            ids[r, k] = pad
            times[r, k] = -1
            k += 1


def recent_from_graph(graph: BipartiteGraph, length: int = 20, *, side: str = "user", pad: int = -1,
                      max_edges: int = DEFAULT_MAX_EDGES, id_dtype=np.int64,
                      out: tuple[Path, Path] | None = None,
                      rows: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last ``length`` neighbours of every user (``side="user"``) or item, most recent first, from a
    graph built with ``order="time"``: ``(ids [n, length] id_dtype, times [n, length] int64, counts [n])``,
    as :func:`recgraph.graph.macro.recent_lists` returns. Build the graph with ``dedupe=False`` to keep
    repeated events (ties on a timestamp are then in neighbour-id order, not input order).
    ``out=(ids_path, times_path)``: the two tables are streamed to ``.npy`` files in row chunks and
    returned memory-mapped (RAM: one chunk, not ``n × length × 16`` bytes). ``rows=(r0, r1)``: only
    those rows (what one task of :func:`recgraph.distributed.ray.build_macro_ray` computes)."""
    if graph.order != "time":
        raise ValueError("recent_from_graph needs a graph built with order='time'")
    if side == "user":
        ptr, nbr, ts = graph.u_indptr, graph.u_indices, graph.u_timestamp
    elif side == "item":
        ptr, nbr, ts = graph.i_indptr, graph.i_indices, graph.i_timestamp
    else:
        raise ValueError(f"side must be 'user' or 'item', got {side!r}")
    r_lo, r_hi = (0, ptr.shape[0] - 1) if rows is None else (int(rows[0]), int(rows[1]))
    ptr = read_slice(ptr, r_lo, r_hi + 1).astype(np.int64)
    n = ptr.shape[0] - 1

    def fill(r0, r1, ids, times):
        a, b = int(ptr[r0]), int(ptr[r1])
        _last_per_row(ptr[r0:r1 + 1] - a, read_slice(nbr, a, b), read_slice(ts, a, b), True, length, pad, ids, times)

    counts = np.minimum(np.diff(ptr), length)
    if out is None:
        ids, times = np.empty((n, length), np.int64), np.empty((n, length), np.int64)
        for r0, r1 in row_chunks(ptr, max_edges):
            fill(r0, r1, ids[r0:r1], times[r0:r1])
        return ids.astype(id_dtype, copy=False), times, counts
    with atomic_npy_writer(out[0], id_dtype, (n, length)) as wi, atomic_npy_writer(out[1], np.int64, (n, length)) as wt:
        for r0, r1 in row_chunks(ptr, max_edges, max(1, max_edges // max(1, length))):
            ids, times = np.empty((r1 - r0, length), np.int64), np.empty((r1 - r0, length), np.int64)
            fill(r0, r1, ids, times)
            wi.write(ids)
            wt.write(times)
    return np.load(out[0], mmap_mode="r"), np.load(out[1], mmap_mode="r"), counts


@numba.njit(parallel=True, cache=True, nogil=True)
def _spmm_slots(indptr, nbr, w, has_w, b_indptr, b_indices, b_data, acc, mark, touched, dense, pad, out_ids,
                out_cnt):  # pragma: no cover - compiled
    """Rows of ``A·B`` (as :func:`_spmm_rows`) written as slots: ``dense``: ``out_cnt[r, c]`` for every
    column; else the ``width`` largest counts, most first (ties by lower column), padded with ``pad``
    and 0. Returns every row's number of non-zeros ``[n_rows]``. ``acc / mark / touched`` are ``[T, n_cols]``
    work rows, one per thread: thread ``j`` takes rows ``j, j + T, ...`` (interleaved, so heavy rows
    spread over the threads); a row is summed by one thread in edge order, so the result does not
    depend on ``T``."""
    width = out_ids.shape[1]
    n_rows = indptr.shape[0] - 1
    n_threads = acc.shape[0]
    nts = np.zeros(n_rows + 1, np.int64)
    for j in numba.prange(n_threads):
        acc_j, mark_j, touched_j = acc[j], mark[j], touched[j]
        for r in range(j, n_rows, n_threads):
            nt = _accumulate_row(r, indptr, nbr, w, has_w, b_indptr, b_indices, b_data, acc_j, mark_j, touched_j)
            nts[r] = nt
            if dense:
                for k in range(width):
                    out_ids[r, k] = k
                    out_cnt[r, k] = 0.0
                for k in range(nt):
                    out_cnt[r, touched_j[k]] = acc_j[touched_j[k]]
            else:
                t = np.sort(touched_j[:nt])
                key = np.empty(nt, np.float32)  # the count as float32 (what main's CSR holds) decides the order
                for k in range(nt):
                    key[k] = -np.float32(acc_j[t[k]])
                o = np.argsort(key, kind="mergesort")  # stable: ties keep the lower column first
                kk = min(nt, width)
                for k in range(kk):
                    out_ids[r, k] = t[o[k]]
                    out_cnt[r, k] = acc_j[t[o[k]]]
                for k in range(kk, width):
                    out_ids[r, k] = pad
                    out_cnt[r, k] = 0.0
            for k in range(nt):
                mark_j[touched_j[k]] = 0
    return nts[:n_rows]


def spmm_slots(indptr: np.ndarray, indices: np.ndarray, B: sp.csr_matrix | DiskCSR, max_slots: int, dense: bool, *,
               weights: np.ndarray | None = None, weight_index: np.ndarray | None = None,
               id_dtype=np.int64, max_edges: int = DEFAULT_MAX_EDGES, max_gather: int | None = None,
               out: tuple[Path, ...] | None = None) -> tuple[np.ndarray, ...]:
    """Rows of ``A·B`` as the slot tables of :func:`recgraph.graph.macro.build_feature_tables`
    (``_slots``): ``(ids [n_rows, W] id_dtype, counts [n_rows, W] float32)``; ``dense``: ``W = n_cols``
    and every column; else ``W = min(max_slots, max(1, largest row))``, top counts first, pad id
    ``n_cols``. Never materialises ``A·B``: memory is the output plus one chunk.

    ``out``: the tables are streamed to ``.npy`` files in row chunks and returned memory-mapped (RAM: one
    chunk). ``out=(ids_path, counts_path)`` with ``dense``: the ``[n_rows, n_cols]`` tables.
    ``out=(ids_path, counts_path, ptr_path)``, not dense: **ragged** — only each row's non-empty slots
    (at most ``max_slots``, top counts first), returned as ``(ids [nnz], counts [nnz], ptr [n_rows + 1]
    int64)``: row ``r`` is ``ids[ptr[r]:ptr[r + 1]]`` (:func:`padded_slots` pads rows back to
    ``max_slots``). A user with 12 categories costs 12 slots on disk, not 64.

    ``B`` a :class:`DiskCSR`: each chunk reads the rows of ``B`` its edges reach (:meth:`DiskCSR.read_rows`)
    and runs on that compact copy — the same sums in the same order, so the same tables; a chunk whose
    rows would exceed ``max_gather`` (entries + 5 per row for their offsets) is halved (RAM: 12 bytes per
    row of ``B`` — its offsets and a row map — + one chunk + its rows)."""
    disk = isinstance(B, DiskCSR)
    n_cols = B.shape[1]
    if disk:
        b_ptr_all = B.row_offsets()
        pos = np.full(B.shape[0], -1, np.int32 if B.shape[0] < np.iinfo(np.int32).max else np.int64)
        b_ptr = b_ind = b_val = None
    else:
        B = sp.csr_matrix(B)
        b_ptr, b_ind, b_val = _csr_arrays(B)
    nt = numba.get_num_threads()  # one work row per thread (the kernel runs rows in parallel)
    acc, mark, touched = np.zeros((nt, n_cols)), np.zeros((nt, n_cols), np.uint8), np.empty((nt, n_cols), np.int64)
    n_rows = np.asarray(indptr).shape[0] - 1
    ptr = read_slice(indptr, 0, n_rows + 1).astype(np.int64, copy=False)
    width = n_cols if dense else int(max_slots)

    def fill(r0, r1, ids, cnt) -> np.ndarray:
        """Rows ``[r0, r1)`` into ``ids`` / ``cnt``; returns their non-zero counts. A range whose product rows
        exceed ``max_gather`` is done in halves (a work list, not recursion: a closure that calls itself is a
        reference cycle, and its arrays — 1.4 GB at 1B — would outlive the call until the garbage collector)."""
        done, todo = [], [(r0, r1)]
        while todo:
            s0, s1 = todo.pop()
            nts = fill_range(s0, s1, ids[s0 - r0:s1 - r0], cnt[s0 - r0:s1 - r0])
            if nts is None:
                m = (s0 + s1) // 2  # too many rows of B for the budget: two halves, the first one next
                todo += [(m, s1), (s0, m)]
            else:
                done.append(nts)
        return done[0] if len(done) == 1 else np.concatenate(done)

    def fill_range(r0, r1, ids, cnt) -> np.ndarray | None:
        a, b = int(ptr[r0]), int(ptr[r1])
        nb, w, has_w = _edges(indices, weights, weight_index, a, b)
        if not disk:
            return _spmm_slots(ptr[r0:r1 + 1] - a, nb, w, has_w, b_ptr, b_ind, b_val, acc, mark, touched, dense,
                               n_cols, ids, cnt)
        pos[nb] = 0  # the rows of B this chunk reads, sorted, without a sort: O(edges + rows of B)
        need = np.flatnonzero(pos == 0)
        starts = b_ptr_all[need]
        lens = b_ptr_all[need + 1]
        lens -= starts
        # a gathered row costs its entries (8 bytes each) and ~40 bytes of offsets while it is gathered
        if max_gather is not None and r1 - r0 > 1 and int(lens.sum()) + 5 * need.shape[0] > max_gather:
            pos[need] = -1
            return None
        g_ptr, g_ind, g_val = B.read_rows(starts, lens)
        del starts, lens
        pos[need] = np.arange(need.shape[0], dtype=pos.dtype)
        local = pos[nb].astype(nb.dtype, copy=False)  # neighbour -> row of the gathered copy
        pos[need] = -1
        del nb
        return _spmm_slots(ptr[r0:r1 + 1] - a, local, w, has_w, g_ptr, g_ind, g_val, acc, mark, touched, dense,
                           n_cols, ids, cnt)

    chunks = row_chunks(ptr, max_edges, max(1, max_edges // max(1, width)))
    if out is not None and len(out) == 3:
        if dense:
            raise ValueError("ragged slot tables (three output paths) are for max_slots < the number of macros")
        with atomic_npy_writer(out[0], id_dtype, None) as wi, atomic_npy_writer(out[1], np.float32, None) as wc, \
                atomic_npy_writer(out[2], np.int64, n_rows + 1) as wp:
            wp.write(np.zeros(1, np.int64))
            start = 0
            for r0, r1 in chunks:
                ids, cnt = np.empty((r1 - r0, width), id_dtype), np.empty((r1 - r0, width), np.float32)
                k = np.minimum(fill(r0, r1, ids, cnt), width)
                keep = np.arange(width) < k[:, None]  # each row's slots are its first k columns
                wi.write(ids[keep])
                wc.write(cnt[keep])
                wp.write(start + np.cumsum(k))
                start += int(k.sum())
        return tuple(np.load(f, mmap_mode="r") for f in out)
    if out is not None:
        with atomic_npy_writer(out[0], id_dtype, (n_rows, width)) as wi, \
                atomic_npy_writer(out[1], np.float32, (n_rows, width)) as wc:
            for r0, r1 in chunks:
                ids, cnt = np.empty((r1 - r0, width), id_dtype), np.empty((r1 - r0, width), np.float32)
                fill(r0, r1, ids, cnt)
                wi.write(ids)
                wc.write(cnt)
        return np.load(out[0], mmap_mode="r"), np.load(out[1], mmap_mode="r")
    ids = np.empty((n_rows, width), id_dtype)
    cnt = np.empty((n_rows, width), np.float32)
    most = 0
    for r0, r1 in row_chunks(ptr, max_edges):
        most = max(most, int(fill(r0, r1, ids[r0:r1], cnt[r0:r1]).max(initial=0)))
    if not dense and min(max_slots, max(1, most)) < width:
        keep = min(max_slots, max(1, most))
        ids, cnt = np.ascontiguousarray(ids[:, :keep]), np.ascontiguousarray(cnt[:, :keep])
    return ids, cnt


def padded_slots(ids: np.ndarray, cnt: np.ndarray, ptr: np.ndarray, width: int, pad: int,
                 rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a ragged slot table (:func:`spmm_slots` with three output paths) as the fixed-width
    ``(ids [B, width], counts [B, width] float32)`` a model reads, padded with ``pad`` and 0; ``rows``
    (``[B]`` ids, default all rows). Reads only those rows' slots (a gather per row range)."""
    ptr = np.asarray(ptr)
    rows = np.arange(ptr.shape[0] - 1) if rows is None else np.asarray(rows, np.int64)
    lo, hi = ptr[rows], ptr[rows + 1]
    k = (hi - lo).astype(np.int64)
    col = np.arange(width)
    keep = col < k[:, None]
    src = (lo[:, None] + col)[keep]
    out_ids = np.full((rows.shape[0], width), pad, np.asarray(ids).dtype)
    out_cnt = np.zeros((rows.shape[0], width), np.float32)
    out_ids[keep] = np.asarray(ids[src]) if src.size else out_ids[keep]
    out_cnt[keep] = np.asarray(cnt[src]) if src.size else out_cnt[keep]
    return out_ids, out_cnt


@dataclass(frozen=True, eq=False)
class MacroSlots:
    """One snapshot's macro features over all edges, in :class:`~recgraph.graph.macro.FeatureTables`' layout
    (``u1/u2/i1/i2`` slot ids and counts, recent lists with times, degrees, macro assignments); the
    adjacency that FeatureTables copies into ``u_adj`` / ``i_adj`` is the graph itself here.

    A table named in ``slot_ptr`` is ragged (on disk, not dense): its ``*_ids`` / ``*_cnt`` are flat
    ``[nnz]`` and row ``r`` is ``[ptr[r], ptr[r + 1])``; :meth:`slots` reads any table as fixed-width
    rows. ``u_rec`` … are ``None`` when built with ``recent=0``."""

    item_macro: np.ndarray  # [n_items] int64
    n_item_macros: int
    user_macro: np.ndarray  # [n_users] int64
    n_user_macros: int
    dense_slots: bool
    u1_ids: np.ndarray
    u1_cnt: np.ndarray
    u2_ids: np.ndarray
    u2_cnt: np.ndarray
    i1_ids: np.ndarray
    i1_cnt: np.ndarray
    i2_ids: np.ndarray
    i2_cnt: np.ndarray
    u_rec: np.ndarray | None  # [n_users, recent] item ids, most recent first (pad n_items)
    u_rec_time: np.ndarray | None
    i_rec: np.ndarray | None  # [n_items, recent] user ids (pad n_users)
    i_rec_time: np.ndarray | None
    user_deg: np.ndarray
    item_deg: np.ndarray
    info: dict
    slot_ptr: dict = field(default_factory=dict)  # ragged tables: name -> [n_rows + 1] int64 row offsets

    def slots(self, table: str, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids [B, W], counts [B, W])`` of slot table ``table`` (u1, u2, i1, i2) for ``rows`` (default
        all); a ragged table is padded to ``W = max_slots`` with the pad id (the number of macros)."""
        ids, cnt = getattr(self, f"{table}_ids"), getattr(self, f"{table}_cnt")
        if table not in self.slot_ptr:
            return (ids, cnt) if rows is None else (ids[rows], cnt[rows])
        pad = self.n_item_macros if table in ("u1", "i2") else self.n_user_macros
        return padded_slots(ids, cnt, self.slot_ptr[table], int(self.info["max_slots"]), pad, rows)

    def nbytes(self) -> int:
        arrays = [getattr(self, k) for k in ("u1_ids", "u1_cnt", "u2_ids", "u2_cnt", "i1_ids", "i1_cnt", "i2_ids",
                                             "i2_cnt", "u_rec", "u_rec_time", "i_rec", "i_rec_time")]
        return int(sum(a.nbytes for a in [*arrays, *self.slot_ptr.values()] if a is not None))


def build_macro_graph_from_graph(graph: BipartiteGraph, *, category: np.ndarray | None = None,
                                 item_method: str = "auto", item_k: int = 50, user_k: int = 20, recent: int = 20,
                                 max_slots: int = 64, seed: int = 0, id_dtype=np.int64,
                                 max_edges: int = DEFAULT_MAX_EDGES,
                                 out_dir: str | os.PathLike | None = None, memory_budget: int | None = None,
                                 log: Callable[[str], None] = lambda s: None) -> MacroSlots:
    """The single-snapshot :func:`recgraph.graph.macro.build_feature_tables` over a time-ordered graph
    (``dedupe=False``: counts are events), streaming the edges in chunks: macro assignment, the four slot
    tables straight from a compiled product kernel (no ``R``, ``Rᵀ``, int64 edge copies or
    count matrices beyond ``R·C`` and ``Rᵀ·U``, which are at most ``E`` and ``M·n_user_macros``
    entries), recent lists. ``id_dtype``: slot and recent-list id dtype (int64 as FeatureTables;
    int32 halves them). ``item_method="kmeans-rows"`` needs ``R`` in RAM; "category" does not.
    ``recent=0``: no recent lists (the slot tables need no timestamps: any graph, e.g. a deduplicated one).
    ``out_dir``: the slot tables and recent lists are streamed to ``.npy`` files there and returned
    memory-mapped (RAM: ``R·C``, ``Rᵀ·U`` and one chunk); not dense, the slot tables are **ragged**
    there (each row's non-empty slots only, ``*_ptr.npy`` row offsets; :meth:`MacroSlots.slots`).

    ``memory_budget`` (bytes; needs ``out_dir``): ``R·C`` and ``Rᵀ·U`` go to disk too (under
    ``out_dir/.products``, deleted at the end) and every step works in pieces sized from the budget —
    edge chunks, the rows of a product a chunk gathers, k-means blocks (:func:`macro_budget_plan`). RAM is
    then the budget's working set plus per-node arrays (macro ids, row offsets, the one-hot matrix of
    ``Rᵀ·U``: ~25 bytes per node measured at 1B), whatever the number of edges; the tables are identical to the unbudgeted build's."""
    check_recent(graph, recent)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
    plan = macro_budget_plan(memory_budget, max_edges)
    spill = None
    if memory_budget is not None:
        if out_dir is None:
            raise ValueError("memory_budget needs out_dir: the tables themselves would otherwise be held in RAM")
        spill = out_dir / ".products"
        shutil.rmtree(spill, ignore_errors=True)
        log(f"memory budget {int(memory_budget):,} B: chunks of {plan['max_edges']:,} edges, gathers of "
            f"{plan['max_gather']:,} product entries, k-means blocks of {plan['kmeans_bytes']:,} B")
    im, n_im, um, n_um, user1, item1 = macro_products(graph, category=category, item_method=item_method,
                                                      item_k=item_k, user_k=user_k, seed=seed,
                                                      max_edges=plan["max_edges"], spill=spill,
                                                      kmeans_bytes=plan["kmeans_bytes"], log=log)
    dense = max(n_im, n_um) <= max_slots
    ragged = out_dir is not None and not dense
    kw = dict(max_slots=max_slots, dense=dense, recent=recent, id_dtype=id_dtype, max_edges=plan["max_edges"],
              max_gather=plan["max_gather"])
    t = {}
    for name in macro_tables(recent):
        out = None if out_dir is None else tuple(out_dir / f"{f}.npy" for f in macro_files(name, ragged))
        t[name] = macro_table(graph, name, user1, item1, out=out, **kw)
        if name == "u2":
            item1 = _drop(item1)  # last use: free it before the next table
        if name == "i2":
            user1 = _drop(user1)
        log(f"{name} done")
    if spill is not None:
        shutil.rmtree(spill, ignore_errors=True)
    info = {"n_item_macros": n_im, "n_user_macros": n_um, "edges": graph.n_edges, "dense_slots": dense,
            "slot_layout": "dense" if dense else ("ragged" if ragged else "padded"), "max_slots": int(max_slots)}
    if out_dir is not None:
        save_macro_meta(out_dir, im, um, info, max_slots=max_slots, recent=recent, id_dtype=id_dtype)
    return macro_slots_of(t, im, n_im, um, n_um, dense, graph, info, ragged)


def _drop(product) -> None:
    """Forget a product after its last use (a :class:`DiskCSR`'s files are deleted)."""
    if isinstance(product, DiskCSR):
        product.remove()


def macro_budget_plan(memory_budget: int | None, max_edges: int = DEFAULT_MAX_EDGES) -> dict:
    """How :func:`build_macro_graph_from_graph` splits ``memory_budget`` bytes: a quarter for an edge chunk
    (~32 bytes per edge in flight: ids, weights, gathered-row ids, slot rows), a quarter for the product
    rows a chunk gathers (8 bytes per entry), a quarter for a k-means block; ``None``: the defaults
    (16M-edge chunks, no gather limit, k-means blocks of 65,536 rows)."""
    if memory_budget is None:
        return {"max_edges": int(max_edges), "max_gather": None, "kmeans_bytes": None}
    budget = int(memory_budget)
    if budget < 2**20:
        raise ValueError(f"memory_budget={budget:,} bytes is too small for the macro build: give at least 1 MiB")
    return {"max_edges": int(min(max_edges, max(1 << 12, budget // 4 // 32))),
            "max_gather": int(max(1 << 12, budget // 4 // 8)),
            "kmeans_bytes": budget // 4}


def check_recent(graph: BipartiteGraph, recent: int) -> None:
    """Refuse recent lists of a graph without time order before hours of slot tables, not after."""
    if recent < 0:
        raise ValueError(f"recent must be >= 0, got {recent}")
    if recent > 0 and graph.order != "time":
        raise ValueError("recent lists need a graph built with order='time' (recgraph graph build --order time); "
                         "recent=0 (--recent 0) builds the slot tables only")


def macro_slots_of(t: dict, im, n_im, um, n_um, dense, graph: BipartiteGraph, info: dict, ragged: bool) -> MacroSlots:
    """:class:`MacroSlots` from ``{table: arrays}`` as :func:`macro_table` returns them."""
    rec = [a for k in ("u_rec", "i_rec") for a in (t[k][:2] if k in t else (None, None))]
    return MacroSlots(im, n_im, um, n_um, dense, *t["u1"][:2], *t["u2"][:2], *t["i1"][:2], *t["i2"][:2], *rec,
                      graph.user_degree, graph.item_degree, info,
                      slot_ptr={k: t[k][2] for k in SLOT_TABLES} if ragged else {})


MACRO_FORMAT = "recgraph.macro-tables/2"  # 2: ragged slot tables (``*_ptr.npy``) when not dense


def save_macro_meta(out_dir: Path, item_macro: np.ndarray, user_macro: np.ndarray, info: dict, *, max_slots: int,
                    recent: int, id_dtype) -> None:
    """The rest of a macro-table folder: the macro assignments and ``macro.json`` (written last)."""
    for name, a in (("item_macro", item_macro), ("user_macro", user_macro)):
        with atomic_npy_writer(Path(out_dir) / f"{name}.npy", np.int64, a.shape[0]) as w:
            w.write(a)
    ragged = info.get("slot_layout") == "ragged"
    atomic_write_json(Path(out_dir) / "macro.json", {
        "format": MACRO_FORMAT, **info, "max_slots": int(max_slots), "recent": int(recent),
        "id_dtype": str(np.dtype(id_dtype)), "tables": {t: list(macro_files(t, ragged)) for t in macro_tables(recent)}})


SLOT_TABLES = ("u1", "i1", "u2", "i2")
MACRO_TABLES = (*SLOT_TABLES, "u_rec", "i_rec")  # in the order they are computed
MACRO_FILES = {"u1": ("u1_ids", "u1_cnt"), "i1": ("i1_ids", "i1_cnt"), "u2": ("u2_ids", "u2_cnt"),
               "i2": ("i2_ids", "i2_cnt"), "u_rec": ("u_rec", "u_rec_time"), "i_rec": ("i_rec", "i_rec_time")}


def macro_tables(recent: int) -> tuple[str, ...]:
    """The tables a build computes: the slot tables, and the recent lists unless ``recent == 0``."""
    return MACRO_TABLES if recent > 0 else SLOT_TABLES


def macro_files(table: str, ragged: bool) -> tuple[str, ...]:
    """A table's file names (without ``.npy``); a ragged slot table adds its row offsets ``{table}_ptr``."""
    return MACRO_FILES[table] + ((f"{table}_ptr",) if ragged and table in SLOT_TABLES else ())


def macro_products(graph: BipartiteGraph, *, category: np.ndarray | None = None, item_method: str = "auto",
                   item_k: int = 50, user_k: int = 20, seed: int = 0, max_edges: int = DEFAULT_MAX_EDGES,
                   spill: str | os.PathLike | None = None, kmeans_bytes: int | None = None,
                   log: Callable[[str], None] = lambda s: None):
    """The part of the macro build every table needs: item macros, ``user1 = R·C`` (CSR ``[N, n_im]``),
    user macros (k-means on ``user1``'s rows; users without events get macro ``user_k``) and
    ``item1 = Rᵀ·U`` (CSR ``[M, user_k + 1]``). Returns ``(im, n_im, um, n_um, user1, item1)``.
    ``spill``: a folder the two products are streamed to (``spill/user1``, ``spill/item1``), returned as
    :class:`DiskCSR` — RAM one chunk instead of ~8 bytes per stored count (4 GB at 1B events);
    ``kmeans_bytes``: the size of a k-means block (3 dense float32 copies of its rows), default 65,536 rows."""
    R = None
    if item_method == "kmeans-rows" or (item_method == "auto" and category is None):
        R = graph.to_scipy("count")
    im, n_im = assign_item_macros(item_method, n_items=graph.n_items, category=category, R=R, k=item_k, seed=seed)
    del R
    w = graph.u_count
    wi = None if w is None else graph.i_edge
    spill = None if spill is None else Path(spill)
    user1 = spmm_rows(graph.u_indptr, graph.u_indices, one_hot(im, n_im), weights=w, max_edges=max_edges,
                      out=spill and spill / "user1")  # R·C
    log("R·C done")
    chunk = 65536 if kmeans_bytes is None else max(1024, int(kmeans_bytes) // (12 * max(1, n_im)))
    raw = kmeans_assign(user1, user_k, seed=seed, chunk=chunk)
    raw[raw < 0] = user_k  # users without events: their own macro (in place: 8 bytes per user, not 24)
    um, n_um = raw, int(user_k) + 1
    log("user k-means done")
    item1 = spmm_rows(graph.i_indptr, graph.i_indices, one_hot(um, n_um), weights=w, weight_index=wi,
                      max_edges=max_edges, out=spill and spill / "item1")  # Rᵀ·U
    log("Rᵀ·U done")
    return im, n_im, um, n_um, user1, item1


def macro_table_rows(graph: BipartiteGraph, table: str) -> int:
    return graph.n_users if table[0] == "u" else graph.n_items


def macro_table(graph: BipartiteGraph, table: str, user1: sp.csr_matrix, item1: sp.csr_matrix, *, max_slots: int,
                dense: bool, recent: int, id_dtype=np.int64, max_edges: int = DEFAULT_MAX_EDGES,
                max_gather: int | None = None, out: tuple[Path, ...] | None = None,
                rows: tuple[int, int] | None = None):
    """One macro table (``table`` in :data:`MACRO_TABLES`), all rows or ``rows=(r0, r1)``: the slot tables
    ``u1 = user1``, ``i1 = item1``, ``u2 = R·item1``, ``i2 = Rᵀ·user1`` as ``(ids, counts)``, the recent
    lists as ``(ids, times, counts)``; ``out``: streamed to those ``.npy`` files (three for a ragged slot
    table: ids, counts, row offsets — :func:`spmm_slots`)."""
    r0, r1 = (0, macro_table_rows(graph, table)) if rows is None else (int(rows[0]), int(rows[1]))
    w = graph.u_count
    wi = None if w is None else graph.i_edge
    kw = dict(id_dtype=id_dtype, max_edges=max_edges, out=out)
    if table in SLOT_TABLES:
        kw["max_gather"] = max_gather
    if table in ("u1", "i1"):  # the product's own rows as slots: A = identity rows r0..r1
        eye = np.arange(r1 + 1, dtype=np.int64)
        return spmm_slots(eye[r0:r1 + 1], eye, user1 if table == "u1" else item1, max_slots, dense, **kw)
    if table == "u2":
        return spmm_slots(read_slice(graph.u_indptr, r0, r1 + 1), graph.u_indices, item1, max_slots, dense, weights=w,
                          **kw)
    if table == "i2":
        return spmm_slots(read_slice(graph.i_indptr, r0, r1 + 1), graph.i_indices, user1, max_slots, dense, weights=w,
                          weight_index=wi, **kw)
    if table in ("u_rec", "i_rec"):
        side, pad = ("user", graph.n_items) if table == "u_rec" else ("item", graph.n_users)
        return recent_from_graph(graph, recent, side=side, pad=pad, rows=(r0, r1), **kw)
    raise ValueError(f"unknown macro table {table!r}: one of {MACRO_TABLES}")


# ---------------------------------------------------------------------------------------------- PPR


def joint_csr_to_disk(graph: BipartiteGraph, path: str | os.PathLike, *,
                      max_edges: int = DEFAULT_MAX_EDGES) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`BipartiteGraph.joint_csr` of a deduplicated, item-ordered (e.g. memory-mapped) graph with
    ``indices [2E] int32`` streamed in chunks to the ``.npy`` at ``path`` and returned memory-mapped
    (``indptr [N+M+1] int64`` stays in RAM). Same arrays as ``joint_csr()`` (tested)."""
    if not (graph.deduped and graph.order == "item"):
        raise ValueError("joint_csr_to_disk needs a deduplicated graph with order='item'")
    n, m, e = graph.n_users, graph.n_items, graph.n_edges
    if n + m >= np.iinfo(np.int32).max:
        raise ValueError(f"{n + m} nodes do not fit int32 node ids")
    indptr = np.empty(n + m + 1, np.int64)
    indptr[: n + 1] = read_slice(graph.u_indptr, 0, n + 1)
    indptr[n + 1:] = read_slice(graph.i_indptr, 1, m + 1).astype(np.int64) + e
    with atomic_npy_writer(path, np.int32, 2 * e) as wr:
        for a in range(0, e, max_edges):
            wr.write(read_slice(graph.u_indices, a, min(e, a + max_edges)).astype(np.int32) + np.int32(n))
        for a in range(0, e, max_edges):
            wr.write(read_slice(graph.i_indices, a, min(e, a + max_edges)).astype(np.int32))
    return indptr, np.load(path, mmap_mode="r", allow_pickle=False)


def graph_ppr(graph: BipartiteGraph, user_sources=None, item_sources=None, *, workdir: str | os.PathLike,
              memory_budget: int | None = None, **kwargs) -> tuple[PPRNeighbourhoods, PPRNeighbourhoods]:
    """:func:`recgraph.graph.ppr.bipartite_ppr` on a graph larger than RAM: the joint adjacency lives in
    ``workdir/joint_indices.npy`` (memory-mapped). Keyword arguments go to :func:`~recgraph.graph.ppr.ppr_topk`.

    ``memory_budget`` (bytes) bounds what the call holds: the joint ``indptr`` (8 B per node) is in RAM and
    the rest goes to ``ppr_topk``: per-thread buffers of the longest row, into which each push reads its row
    with ``pread`` (so the adjacency's pages stay in the page cache, out of the resident set: reading them
    through the mapping put 5.7 GiB of hub rows in the RSS at 1B edges), and the push workspace (the hash
    workspace when the dense one does not fit). Same rows as without a budget (tested)."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    joint = joint_csr_to_disk(graph, Path(workdir) / "joint_indices.npy")
    if memory_budget is not None:
        rest = int(memory_budget) - joint[0].nbytes
        if rest <= 0:
            raise MemoryError(f"memory_budget={int(memory_budget):,} bytes does not hold the joint indptr of "
                              f"{joint[0].shape[0] - 1:,} nodes ({joint[0].nbytes:,} bytes): raise the budget")
        kwargs = {"memory_budget": rest, "read_rows": "pread", **kwargs}
    return bipartite_ppr(graph, user_sources, item_sources, joint=joint, check_indices=False, **kwargs)


# ----------------------------------------------------------------------------- propagation (DC-GNN)


@numba.njit(cache=True, nogil=True)
def _norm_spmm_dense(indptr, nbr, row0, d_row, d_col, x, out):  # pragma: no cover - compiled
    """``out[r] = Σ_p (d_row[row0 + r] · d_col[nbr[p]]) · x[nbr[p]]`` over row ``r``'s edges (``indptr``
    local to the chunk), float32 weights and accumulation in edge order — scipy's ``csr @ dense`` order."""
    d = x.shape[1]
    for r in range(indptr.shape[0] - 1):
        dr = d_row[row0 + r]
        for k in range(d):
            out[r, k] = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            c = nbr[p]
            w = np.float32(dr * d_col[c])
            for k in range(d):
                out[r, k] += w * x[c, k]


def normalized_matmul(indptr: np.ndarray, indices: np.ndarray, d_row: np.ndarray, d_col: np.ndarray,
                      x: np.ndarray, out: np.ndarray, *, max_edges: int = DEFAULT_MAX_EDGES) -> np.ndarray:
    """``out = D_row^-1/2 A D_col^-1/2 · x`` for a binary CSR ``A`` (``indptr [R+1]``, ``indices [E]``, either
    memory-mapped) read in row chunks of at most ``max_edges`` edges: ``x [C, d]`` float32 and ``out [R, d]``
    (an array or a writable memmap) are the only full-size arrays. Equals ``normalized_biadjacency() @ x``."""
    ptr = read_slice(indptr, 0, indptr.shape[0]).astype(np.int64)
    x = np.ascontiguousarray(x, np.float32)
    for r0, r1 in row_chunks(ptr, max_edges):
        a, b = int(ptr[r0]), int(ptr[r1])
        block = np.empty((r1 - r0, x.shape[1]), np.float32)
        _norm_spmm_dense(ptr[r0:r1 + 1] - a, read_slice(indices, a, b), r0, d_row, d_col, x, block)
        out[r0:r1] = block
    return out


# ----------------------------------------------------------------------- edge filters: slices, subsampling


def _require_item_ordered(graph: BipartiteGraph, what: str) -> None:
    if not (graph.deduped and graph.order == "item"):
        raise ValueError(f"{what} needs a deduplicated graph with order='item' (build it with the defaults)")


def filter_edges_to_disk(graph: BipartiteGraph, out: str | os.PathLike, keep, *, extra: dict | None = None,
                         memory_budget: int = 2 * 2**30, max_edges: int = DEFAULT_MAX_EDGES,
                         log=lambda s: None) -> BipartiteGraph:
    """The sub-graph of the edges ``keep`` selects, built out of core into ``out`` and returned memory-mapped.

    The user side is read in row chunks of at most ``max_edges`` edges; ``keep(r0, users, items, times)``
    returns a boolean mask per edge of the chunk (users ``[e]`` int64, items ``[e]``, times ``[e]`` or None)
    and is called once per chunk in row order. Kept edges are spilled as Parquet partitions (user, item and,
    when the graph has them, timestamp and behaviour) and built by :func:`recgraph.graph.external.build_graph`
    with the graph's own options, so the result is the same graph ``from_edges`` builds of the kept edges.
    ``extra`` names per-kept-edge arrays to write too: ``{name: fn(r0, users, items, times, mask) -> [kept]}``,
    each saved as ``out/NAME.npy`` in kept-edge (row-major) order. RAM: one chunk plus the build's budget."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from .external import BuildOptions, build_graph

    _require_item_ordered(graph, "filter_edges_to_disk")
    out = Path(out)
    parts = out.parent / f".{out.name}.edges"
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    ptr = read_slice(graph.u_indptr, 0, graph.n_users + 1).astype(np.int64)
    has_t, has_b = graph.u_timestamp is not None, graph.u_behavior is not None
    extra = extra or {}
    extra_parts: dict[str, list[Path]] = {name: [] for name in extra}
    n_kept = 0
    for k, (r0, r1) in enumerate(row_chunks(ptr, max_edges)):
        a, b = int(ptr[r0]), int(ptr[r1])
        users = np.repeat(np.arange(r0, r1, dtype=np.int64), np.diff(ptr[r0:r1 + 1]))
        items = read_slice(graph.u_indices, a, b).astype(np.int64)
        times = read_slice(graph.u_timestamp, a, b) if has_t else None
        mask = np.asarray(keep(r0, users, items, times), bool)
        cols = {"user": users[mask], "item": items[mask]}
        if has_t:
            cols["timestamp"] = times[mask]
        if has_b:
            cols["behavior"] = read_slice(graph.u_behavior, a, b)[mask].astype(np.int64)
        pq.write_table(pa.table(cols), parts / f"part-{k:06d}.parquet")
        for name, fn in extra.items():
            p = parts / f"{name}-{k:06d}.npy"
            np.save(p, np.asarray(fn(r0, users, items, times, mask)))
            extra_parts[name].append(p)
        n_kept += int(mask.sum())
        log(f"rows {r0}..{r1}: kept {int(mask.sum())} of {b - a} edges")
    opt = BuildOptions(timestamp_col="timestamp" if has_t else None, behavior_col="behavior" if has_b else None,
                       n_users=graph.n_users, n_items=graph.n_items, behavior_names=tuple(graph.behavior_names),
                       memory_budget=memory_budget)
    sub = build_graph(parts, out, opt, log=log)
    for name, files in extra_parts.items():
        first = np.load(files[0]) if files else np.zeros(0)
        with atomic_npy_writer(out / f"{name}.npy", first.dtype, n_kept) as wr:
            for p in files:
                wr.write(np.load(p))
    shutil.rmtree(parts, ignore_errors=True)
    return sub


def time_slice_to_disk(graph: BipartiteGraph, out: str | os.PathLike, start=None, end=None,
                       **kwargs) -> BipartiteGraph:
    """The edges with ``start <= timestamp < end`` (either bound None: open) as a graph on disk
    (:func:`filter_edges_to_disk`; a deduplicated graph's edge time is its first event's time)."""
    if graph.u_timestamp is None:
        raise ValueError("time_slice_to_disk needs a graph with timestamps (build it with --timestamp-col)")

    def keep(r0, users, items, times):
        m = np.ones(times.shape[0], bool)
        if start is not None:
            m &= times >= start
        if end is not None:
            m &= times < end
        return m

    return filter_edges_to_disk(graph, out, keep, **kwargs)


@numba.njit(cache=True, nogil=True)
def _row_anchor(indptr, nbr, row0, key, anchor):  # pragma: no cover - compiled
    """``anchor[row0 + r]`` = the neighbour of row ``r`` with the least ``(key[nbr], nbr)``, or -1."""
    for r in range(indptr.shape[0] - 1):
        best, bk = -1, 0
        for p in range(indptr[r], indptr[r + 1]):
            c = nbr[p]
            if best < 0 or key[c] < bk or (key[c] == bk and c < best):
                best, bk = c, key[c]
        anchor[row0 + r] = best


def _anchors_of(indptr, indices, key, max_edges) -> np.ndarray:
    ptr = read_slice(indptr, 0, indptr.shape[0]).astype(np.int64)
    anchor = np.empty(ptr.shape[0] - 1, np.int64)
    for r0, r1 in row_chunks(ptr, max_edges):
        a, b = int(ptr[r0]), int(ptr[r1])
        _row_anchor(ptr[r0:r1 + 1] - a, read_slice(indices, a, b), r0, key, anchor)
    return anchor


def subsample_to_disk(graph: BipartiteGraph, out: str | os.PathLike, *, keep_rate: float = 0.5, beta: float = 0.5,
                      seed: int = 0, degree_floor: bool = True, max_edges: int = DEFAULT_MAX_EDGES,
                      **kwargs) -> tuple[BipartiteGraph, dict]:
    """:func:`recgraph.graph.subsample.popularity_subsample` over a (memory-mapped) graph, out of core: the same
    anchors, scale ``c``, Bernoulli draws (one seeded stream in row-major edge order) and hence the same kept
    edges, written as a graph to ``out`` with ``out/inclusion_prob.npy`` (``pi_e`` per kept edge, in the new
    graph's ``u_indices`` order). RAM: ``O(N + M)`` ids and degrees plus one chunk. Returns ``(graph, summary)``."""
    from .subsample import check_subsample_args, solve_scale_hist

    _require_item_ordered(graph, "subsample_to_disk")
    check_subsample_args(keep_rate, beta)
    udeg = np.diff(read_slice(graph.u_indptr, 0, graph.n_users + 1).astype(np.int64))
    ideg = np.diff(read_slice(graph.i_indptr, 0, graph.n_items + 1).astype(np.int64))
    E = graph.n_edges
    if degree_floor:
        user_anchor = _anchors_of(graph.u_indptr, graph.u_indices, ideg, max_edges)  # its least popular item
        item_anchor = _anchors_of(graph.i_indptr, graph.i_indices, udeg, max_edges)  # its least active user
    else:
        user_anchor = np.full(graph.n_users, -1, np.int64)
        item_anchor = np.full(graph.n_items, -1, np.int64)
    # anchors per item: its own (one per item with edges) + users' anchors on it that are not that same edge
    has_u = user_anchor >= 0
    ua_users, ua_items = np.flatnonzero(has_u), user_anchor[has_u]
    double = item_anchor[ua_items] == ua_users
    anchors_per_item = (item_anchor >= 0).astype(np.int64) + np.bincount(ua_items[~double], minlength=graph.n_items)
    n_anchor = int(anchors_per_item.sum())
    target = keep_rate * E
    if degree_floor and n_anchor > target + 1e-9:
        raise ValueError(f"keep_rate={keep_rate} asks for {target:.0f} edges but the degree floor alone keeps "
                         f"{n_anchor} (one per user and item); raise keep_rate or pass degree_floor=False")
    free = ideg - anchors_per_item
    c = solve_scale_hist(ideg[free > 0], free[free > 0], n_anchor, target, beta) if E else 0.0
    rng = np.random.default_rng(seed)

    def parts(users, items):
        anchor = (user_anchor[users] == items) | (item_anchor[items] == users)
        q = np.minimum(1.0, c * ideg[items].astype(np.float64) ** -beta)
        return anchor, q

    def keep(r0, users, items, times):
        anchor, q = parts(users, items)
        return anchor | (rng.random(users.shape[0]) < q)

    def inclusion(r0, users, items, times, mask):
        anchor, q = parts(users[mask], items[mask])
        return np.where(anchor, 1.0, q)

    sub = filter_edges_to_disk(graph, out, keep, extra={"inclusion_prob": inclusion}, max_edges=max_edges, **kwargs)
    summary = {"n_edges": int(E), "n_kept": int(sub.n_edges), "keep_rate": float(keep_rate), "beta": float(beta),
               "seed": int(seed), "scale": float(c), "n_anchors": n_anchor, "degree_floor": bool(degree_floor)}
    atomic_write_json(Path(out) / "subsample.json", summary)
    return sub, summary
