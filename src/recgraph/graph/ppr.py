"""Top-k personalized PageRank neighbourhoods by forward push (RankGraph-2 construction stage).

RankGraph-2 precomputes every node's multi-hop neighbourhood once, offline, so that a training
example is *self-contained*: node ``s`` together with its row ``indices[s], scores[s]`` of a
:class:`PPRNeighbourhoods` is everything a model needs to aggregate its multi-hop context. No
graph service, no neighbour sampling and no message passing over the full graph happen at
training or serving time, and every example has the same fixed size (``topk``).

Algorithm
---------
Forward push of Andersen, Chung & Lang (2006, "Local graph partitioning using PageRank
vectors"), non-lazy variant, with the same semantics as ``torch_geometric.utils.get_ppr`` so the
two are directly comparable:

* start with residual ``r = e_s`` and estimate ``p = 0``;
* while some node ``u`` has ``r[u] >= eps * deg(u)``: move ``alpha * r[u]`` into ``p[u]`` and
  spread ``(1 - alpha) * r[u] / deg(u)`` to each neighbour (the source is always pushed first);
* ``p`` is then a lower bound of the exact PPR vector ``pi_s`` (teleport probability ``alpha``
  back to ``s``), and on an undirected graph ``0 <= pi_s(v) - p(v) <= eps * deg(v)`` for every
  node ``v``; ``sum(p) <= 1``.

PyG states its residuals scaled by ``alpha`` (``r = alpha * e_s``, threshold
``alpha * eps * deg``); that is the same process, so for the same ``alpha`` and ``eps`` both
return the same vector up to push order (PyG uses a stack, we use a FIFO queue; both satisfy the
bound above).

Dangling nodes (degree 0)
-------------------------
A node without out-edges is treated as having an implicit self-loop: a walker that reaches it
stays there until it teleports. Its push therefore moves the whole residual into ``p[u]`` in
closed form, and its push threshold uses degree 1. This keeps PPR linear in the source (the
invariant ``pi_s = p + sum_u r[u] * pi_u`` that the error bound rests on still holds) and makes
an isolated source's PPR vector exactly ``e_s``. :func:`exact_ppr` uses the same convention.
(PyG instead drops the ``(1 - alpha)`` share at a dangling node; in the joint user + item graph
that :func:`bipartite_ppr` runs on (``BipartiteGraph.joint_csr``) only isolated users/items are
dangling, and only as sources.)

Implementation
--------------
One numba kernel, ``parallel=True``, ``prange`` over the sources (visited in a random order so
the static schedule stays balanced). Each thread owns dense work arrays of size ``n_nodes``
(estimate, residual, flags, a touched list and a circular FIFO), allocated once per call and
reset after each source through the touched list, so a source costs O(pushes + touched) and no
O(n_nodes) work. The top-k of each estimate is taken with a size-k heap over the touched nodes.
Per-call memory: ``~26 bytes * n_nodes * n_threads`` of workspace plus the ``[S, topk]`` output.
The result does not depend on the number of threads.

Bounded memory (``memory_budget``, ``workspace="hash"``): on a graph too large for dense per-thread
arrays (a billion edges: 70M nodes x 26 B x threads), each thread instead keeps an open-addressing
table over the nodes its current source touches (29 B per slot, linear probing). A source that
would fill more than 70% of its table stops; after the pass, the stopped sources run again with a
4x larger table, up to what ``memory_budget`` allows (then a ``MemoryError`` says what to change).
Push order and arithmetic are the same as in the dense workspace, so the rows are identical
(tested), and only completed runs count in ``num_pushes``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from .bipartite import BipartiteGraph, as_graph
from .external import read_slice
from .pread import memmap_region, pread_into

__all__ = [
    "PPRNeighbourhoods",
    "bipartite_ppr",
    "exact_ppr",
    "ppr_topk",
]


@dataclass(frozen=True)
class PPRNeighbourhoods:
    """Top-k personalized-PageRank neighbourhoods of a set of source nodes.

    Row ``i`` describes source ``sources[i]``: its ``topk`` highest-PPR nodes in ``indices[i]``
    (best first, ties by lower node id) with their PPR estimates in ``scores[i]``. Rows with fewer
    than ``topk`` reachable nodes are padded with index ``-1`` and score ``0``.
    """

    sources: np.ndarray  # [S] int64 node ids
    indices: np.ndarray  # [S, topk] int32 node ids, -1 padded
    scores: np.ndarray  # [S, topk] float32, 0 padded, non-increasing along a row
    alpha: float
    eps: float
    num_pushes: int = 0  # total push operations (cost measure)

    def __post_init__(self) -> None:
        if self.indices.ndim != 2 or self.indices.shape != self.scores.shape:
            raise ValueError(
                f"indices {self.indices.shape} and scores {self.scores.shape} must be equal [S, k]"
            )
        if self.sources.shape != (self.indices.shape[0],):
            raise ValueError(
                f"sources {self.sources.shape} must be [S] with S = {self.indices.shape[0]}"
            )

    @property
    def topk(self) -> int:
        return int(self.indices.shape[1])

    def __len__(self) -> int:
        return int(self.sources.shape[0])

    @staticmethod
    def concat(parts: list["PPRNeighbourhoods"], *, num_pushes: int | None = None) -> "PPRNeighbourhoods":
        """The rows of ``parts`` (at least one, same ``alpha`` / ``eps`` / ``topk``) in order;
        ``num_pushes``: default the parts' sum."""
        if not parts:
            raise ValueError("concat needs at least one PPRNeighbourhoods")
        return PPRNeighbourhoods(
            np.concatenate([q.sources for q in parts]), np.concatenate([q.indices for q in parts]),
            np.concatenate([q.scores for q in parts]), parts[0].alpha, parts[0].eps,
            int(sum(q.num_pushes for q in parts) if num_pushes is None else num_pushes))

    def counts(self) -> np.ndarray:
        """Number of real (non-padding) neighbours per row."""
        return (self.indices >= 0).sum(axis=1)

    def to_csr(self, n_nodes: int) -> sp.csr_matrix:
        """Scores as a sparse ``[S, n_nodes]`` matrix (padding dropped)."""
        mask = self.indices >= 0
        rows = np.repeat(np.arange(len(self), dtype=np.int64), mask.sum(axis=1))
        return sp.csr_matrix(
            (self.scores[mask], (rows, self.indices[mask].astype(np.int64))),
            shape=(len(self), n_nodes),
        )


# --------------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _worse(s_a, i_a, s_b, i_b):
    # ranking: higher score first, then lower node id; "worse" = ranks later
    return s_a < s_b or (s_a == s_b and i_a > i_b)


@njit(cache=True)
def _sift_down(hs, hi, pos, size):
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and _worse(hs[right], hi[right], hs[left], hi[left]):
            child = right
        if _worse(hs[child], hi[child], hs[pos], hi[pos]):
            ts = hs[pos]
            ti = hi[pos]
            hs[pos] = hs[child]
            hi[pos] = hi[child]
            hs[child] = ts
            hi[child] = ti
            pos = child
        else:
            return


@njit(cache=True)
def _sift_up(hs, hi, pos):
    while pos > 0:
        parent = (pos - 1) // 2
        if _worse(hs[pos], hi[pos], hs[parent], hi[parent]):
            ts = hs[pos]
            ti = hi[pos]
            hs[pos] = hs[parent]
            hi[pos] = hi[parent]
            hs[parent] = ts
            hi[parent] = ti
            pos = parent
        else:
            return


@njit(cache=True, inline="always")
def _hash_slot(keys, v, mask):
    """Slot of node ``v`` in the open-addressing table ``keys`` (linear probing): where ``v`` is, or the
    empty slot (``-1``) where it would go."""
    h = np.int64(v) * np.int64(0x9E3779B1)
    h = (h ^ (h >> 16)) & mask
    while keys[h] != v and keys[h] != -1:
        h = (h + 1) & mask
    return h


_FULL, _DONE, _READ_ERROR = 0, 1, -1  # _push_one's status


@njit(cache=True)
def _read_row(fd, base, a, b, buf):
    """Edges ``a:b`` of the on-disk ``indices`` (element 0 at byte ``base`` of ``fd``) into ``buf[:b - a]``
    with one ``pread``; False when the file returned fewer bytes."""
    want = (b - a) * buf.itemsize
    return pread_into(fd, buf, want, base + a * buf.itemsize) == want


@njit(cache=True)
def _push_one(s, indptr, indices, alpha, eps, hashed, keys, mask, limit, p, r, seen, inq, touched,
              queue, fd, base, buf):
    """Forward push from source ``s``; returns (n_touched, n_pushes, status): ``_DONE``, ``_FULL`` (the
    hash table filled up) or ``_READ_ERROR``.

    Dense workspace (``hashed`` False): the work arrays are indexed by node id (size n_nodes) and
    ``seen`` marks touched nodes. Hash workspace: they are indexed by the slot of the node in
    ``keys`` (``mask + 1`` slots, ``-1`` = empty), and a source that would touch more than ``limit``
    nodes stops with ``complete`` False (the caller retries it with a larger table). Both visit the
    same nodes in the same order with the same arithmetic, so their results are identical.
    ``touched[:n_touched]`` lists the used slots (= node ids when dense) in first-touch order; the
    work arrays stay dirty only there (the caller resets them). ``fd >= 0``: ``indices`` is not used; each
    pushed row is read from the file ``fd`` (the CSR's ``indices`` at byte ``base``) into ``buf``, so a
    memory-mapped graph's pages never enter the resident set."""
    n = queue.shape[0]
    one_minus = 1.0 - alpha
    nt = 0
    head = 0
    tail = 0
    qlen = 0
    ss = s
    if hashed:
        ss = _hash_slot(keys, s, mask)
        keys[ss] = s
    else:
        seen[s] = 1
    r[ss] = 1.0
    touched[nt] = ss
    nt += 1
    queue[tail] = ss
    tail += 1
    if tail == n:
        tail = 0
    qlen += 1
    inq[ss] = 1
    pushes = 0
    while qlen > 0:
        us = queue[head]
        head += 1
        if head == n:
            head = 0
        qlen -= 1
        inq[us] = 0
        u = keys[us] if hashed else us
        res = r[us]
        r[us] = 0.0
        pushes += 1
        a = indptr[u]
        b = indptr[u + 1]
        if b == a:
            # dangling: implicit self-loop, the walker stays until it teleports -> all of it
            p[us] += res
            continue
        p[us] += alpha * res
        w = one_minus * res / (b - a)
        if fd >= 0:
            if not _read_row(fd, base, a, b, buf):
                return nt, pushes, _READ_ERROR
            row, shift = buf, a
        else:
            row, shift = indices, 0
        for k in range(a, b):
            v = row[k - shift]
            if hashed:
                vs = _hash_slot(keys, v, mask)
                if keys[vs] == -1:
                    if nt >= limit:
                        return nt, pushes, _FULL
                    keys[vs] = v
                    touched[nt] = vs
                    nt += 1
            else:
                vs = v
                if seen[v] == 0:
                    seen[v] = 1
                    touched[nt] = v
                    nt += 1
            rv = r[vs] + w
            r[vs] = rv
            if inq[vs] == 0:
                d = indptr[v + 1] - indptr[v]
                if rv >= eps * (d if d > 0 else 1):
                    inq[vs] = 1
                    queue[tail] = vs
                    tail += 1
                    if tail == n:
                        tail = 0
                    qlen += 1
    return nt, pushes, _DONE


@njit(cache=True)
def _topk_from_touched(s, p, touched, nt, hashed, keys, topk, exclude_self, hs, hi, out_idx, out_sc):
    size = 0
    for t in range(nt):
        slot = touched[t]
        v = keys[slot] if hashed else slot
        pv = p[slot]
        if pv <= 0.0:
            continue
        if exclude_self and v == s:
            continue
        if size < topk:
            hs[size] = pv
            hi[size] = v
            _sift_up(hs, hi, size)
            size += 1
        elif _worse(hs[0], hi[0], pv, v):
            hs[0] = pv
            hi[0] = v
            _sift_down(hs, hi, 0, size)
    # pop worst first -> fill from the back so the row is best first
    m = size
    while size > 0:
        size -= 1
        out_idx[size] = hi[0]
        out_sc[size] = hs[0]
        hs[0] = hs[size]
        hi[0] = hi[size]
        _sift_down(hs, hi, 0, size)
    for j in range(m, topk):
        out_idx[j] = -1
        out_sc[j] = 0.0


@njit(parallel=True, cache=True)
def _ppr_topk_kernel(indptr, indices, sources, order, alpha, eps, topk, exclude_self,
                     out_idx, out_sc, n_threads, capacity, fd, base, max_row):
    """Returns (pushes of the completed sources, per-source done flags, read errors). ``capacity`` 0:
    dense workspace; else the hash table size (a power of two) and a source stops past 70% of it.
    ``fd >= 0``: rows are read from that file into per-thread buffers of ``max_row`` entries."""
    # n_threads is passed in (numba.get_num_threads() inside the kernel defeats caching)
    n = indptr.shape[0] - 1
    hashed = capacity > 0
    size = capacity if hashed else n
    limit = (capacity * 7) // 10 if hashed else n
    p = np.zeros((n_threads, size), dtype=np.float64)
    r = np.zeros((n_threads, size), dtype=np.float64)
    seen = np.zeros((n_threads, 1 if hashed else size), dtype=np.uint8)
    keys = np.full((n_threads, size if hashed else 1), -1, dtype=np.int32)
    inq = np.zeros((n_threads, size), dtype=np.uint8)
    touched = np.empty((n_threads, size), dtype=np.int32)
    queue = np.empty((n_threads, size), dtype=np.int32)
    hs = np.empty((n_threads, max(topk, 1)), dtype=np.float64)
    hi = np.empty((n_threads, max(topk, 1)), dtype=np.int64)
    bufs = np.empty((n_threads, max_row if fd >= 0 else 1), dtype=indices.dtype)
    pushes = np.zeros(order.shape[0], dtype=np.int64)
    done = np.zeros(order.shape[0], dtype=np.bool_)
    failed = np.zeros(order.shape[0], dtype=np.bool_)
    for j in prange(order.shape[0]):
        tid = numba.get_thread_id()
        i = order[j]
        s = sources[i]
        pt = p[tid]
        rt = r[tid]
        tt = touched[tid]
        kt = keys[tid]
        nt, npush, status = _push_one(s, indptr, indices, alpha, eps, hashed, kt, capacity - 1, limit,
                                      pt, rt, seen[tid], inq[tid], tt, queue[tid], fd, base, bufs[tid])
        failed[i] = status == _READ_ERROR
        if status == _DONE:
            pushes[j] = npush
            done[i] = True
            _topk_from_touched(s, pt, tt, nt, hashed, kt, topk, exclude_self, hs[tid], hi[tid],
                               out_idx[i], out_sc[i])
        it = inq[tid]
        st = seen[tid]
        for t in range(nt):
            v = tt[t]
            pt[v] = 0.0
            rt[v] = 0.0
            it[v] = 0
            if hashed:
                kt[v] = -1
            else:
                st[v] = 0
    return pushes.sum(), done, failed.any()


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


_DENSE_BYTES_PER_NODE = 26  # p, r (float64) + seen, inq (uint8) + touched, queue (int32), per thread
_HASH_BYTES_PER_SLOT = 29  # the same + the key (int32), per slot per thread
_HASH_FIRST_CAPACITY = 1 << 16


def _workspace_plan(n: int, threads: int, memory_budget: int | None, workspace: str) -> tuple[int, int]:
    """(first hash capacity, largest hash capacity) in slots; (0, 0) = the dense workspace."""
    if workspace not in ("auto", "dense", "hash"):
        raise ValueError(f"workspace must be 'auto', 'dense' or 'hash', got {workspace!r}")
    if memory_budget is not None and memory_budget <= 0:
        raise ValueError(f"memory_budget must be > 0 bytes, got {memory_budget}")
    dense_bytes = _DENSE_BYTES_PER_NODE * n * threads
    if workspace == "dense" or (workspace == "auto" and (memory_budget is None or dense_bytes <= memory_budget)):
        return 0, 0
    # a table of 2^k >= n / 0.7 slots holds any source's touched set: it never needs to grow past that
    full = 1 << max(4, int(np.ceil(np.log2(n / 0.7 + 2))))
    largest = full
    if memory_budget is not None:
        fit = memory_budget // (_HASH_BYTES_PER_SLOT * threads)
        if fit < 16:
            raise MemoryError(f"memory_budget={memory_budget:,} bytes is too small for a PPR workspace of "
                              f"{threads} thread(s) (at least {_HASH_BYTES_PER_SLOT * 16 * threads:,} bytes)")
        largest = min(full, 1 << int(np.floor(np.log2(fit))))
    return min(largest, _HASH_FIRST_CAPACITY), largest


def _index_range(indices, on_disk: bool) -> tuple[int, int]:
    """(min, max) of ``indices``; an on-disk one is scanned in chunks read with ``pread``."""
    if not on_disk:
        return int(indices.min()), int(indices.max())
    lo, hi, step = None, None, 1 << 24
    for a in range(0, indices.shape[0], step):
        part = read_slice(indices, a, min(a + step, indices.shape[0]))
        lo = int(part.min()) if lo is None else min(lo, int(part.min()))
        hi = int(part.max()) if hi is None else max(hi, int(part.max()))
    return lo, hi


def _check_csr(indptr, indices, check_indices: bool = True,
               on_disk: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated ``(indptr int64, indices, n_nodes)``; ``indices`` becomes contiguous int32 unless
    ``on_disk`` (a file-backed memmap read with ``pread``: returned as it is, never touched here)."""
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = indices if on_disk else np.asarray(indices)
    if indptr.ndim != 1 or indptr.shape[0] < 1:
        raise ValueError("indptr must be a 1-d array of length n_nodes + 1")
    n = indptr.shape[0] - 1
    if indptr[0] != 0 or indptr[-1] != indices.shape[0]:
        raise ValueError(
            f"indptr must start at 0 and end at len(indices)={indices.shape[0]}, "
            f"got {indptr[0]}..{indptr[-1]}"
        )
    if n > 0 and np.any(np.diff(indptr) < 0):
        raise ValueError("indptr must be non-decreasing")
    if n >= np.iinfo(np.int32).max:
        raise ValueError(f"{n} nodes do not fit int32 node ids")
    if on_disk and indices.dtype.kind not in "iu":
        raise ValueError(f"indices on disk must be integers, got {indices.dtype}")
    if indices.shape[0] and check_indices:
        lo, hi = _index_range(indices, on_disk)
        if lo < 0 or hi >= n:
            raise ValueError(f"indices must lie in [0, {n}), got [{lo}, {hi}]")
    if not on_disk:
        indices = np.ascontiguousarray(indices, dtype=np.int32)
    return indptr, indices, n


def ppr_topk(
    indptr,
    indices,
    sources=None,
    *,
    alpha: float = 0.2,
    eps: float = 1e-5,
    topk: int = 32,
    exclude_self: bool = False,
    num_threads: int | None = None,
    seed: int = 0,
    check_indices: bool = True,
    memory_budget: int | None = None,
    workspace: str = "auto",
    read_rows: str = "auto",
) -> PPRNeighbourhoods:
    """Top-``topk`` personalized PageRank of each source by forward push.

    Args:
        indptr, indices: CSR adjacency of a graph on ``n_nodes = len(indptr) - 1`` nodes (row
            ``u`` lists the out-neighbours of ``u``; for the guarantee below, symmetric).
            Duplicate entries count as parallel edges; values are not used (unweighted).
        sources: node ids to compute PPR for (default: all nodes, in order).
        alpha: teleport (restart) probability, as in PyG's ``get_ppr`` (default 0.2).
        eps: push threshold: push ``u`` while ``r[u] >= eps * deg(u)`` (PyG's default 1e-5).
            Smaller = more accurate and more work (about ``1 / (alpha * eps)`` edge visits per
            source at worst).
        topk: neighbours kept per source.
        exclude_self: drop the source itself from its neighbourhood.
        num_threads: numba threads for this call (default: numba's current setting).
        seed: only shuffles the order in which sources are scheduled (load balance); the
            result does not depend on it.
        check_indices: verify every index lies in ``[0, n_nodes)`` (one pass over ``indices``;
            callers that built the CSR themselves, e.g. over a memory-mapped graph, skip it).
        memory_budget: bytes the push workspace may take (all threads together; the ``[S, topk]``
            output and the graph are not counted). ``None``: no limit.
        workspace: ``"dense"`` (work arrays over all nodes: ``26 B * n_nodes`` per thread, the
            fastest), ``"hash"`` (open-addressing tables over the touched nodes only: ``29 B`` per
            slot per thread; a source that outgrows its table is rerun with a 4x larger one, up
            to ``memory_budget``) or ``"auto"`` (dense when it fits ``memory_budget``). The
            result is identical for every choice.
        read_rows: how the push reads ``indices`` when it is a file-backed ``np.memmap`` (as
            ``np.load(path, mmap_mode="r")`` returns it): ``"map"`` through the mapping (fastest;
            every page visited joins the process's RSS), ``"pread"`` with ``pread`` into a
            per-thread buffer of the longest row (``threads * max_degree * itemsize`` bytes, counted
            in ``memory_budget``; the file stays in the page cache, out of the RSS), ``"auto"``:
            ``"pread"`` when ``memory_budget`` is given and ``indices`` is such a memmap. Same result.

    Returns:
        :class:`PPRNeighbourhoods`; ``scores[i, j] <= pi_{s_i}(indices[i, j])`` and, on an
        undirected graph, the gap is at most ``eps * deg(indices[i, j])``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not eps > 0.0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    if read_rows not in ("auto", "map", "pread"):
        raise ValueError(f"read_rows must be 'auto', 'map' or 'pread', got {read_rows!r}")
    region = memmap_region(indices)
    if read_rows == "pread" and region is None:
        raise ValueError("read_rows='pread' needs indices as a file-backed np.memmap "
                         "(np.load(path, mmap_mode='r')); got an in-memory array or a view")
    on_disk = region is not None and (read_rows == "pread" or (read_rows == "auto" and memory_budget is not None))
    indptr, indices, n = _check_csr(indptr, indices, check_indices, on_disk)
    if sources is None:
        sources = np.arange(n, dtype=np.int64)
    else:
        sources = np.ascontiguousarray(sources, dtype=np.int64).reshape(-1)
        if sources.size and (sources.min() < 0 or sources.max() >= n):
            raise ValueError(f"sources must lie in [0, {n})")
    S = sources.shape[0]
    out_idx = np.full((S, topk), -1, dtype=np.int32)
    out_sc = np.zeros((S, topk), dtype=np.float32)
    if S == 0:
        return PPRNeighbourhoods(sources, out_idx, out_sc, float(alpha), float(eps), 0)
    prev = numba.get_num_threads()
    if num_threads is not None:
        numba.set_num_threads(int(num_threads))
    fd = -1
    try:
        threads = int(numba.get_num_threads())
        row_arg, base, max_row = indices, 0, 1
        if on_disk:
            max_row = max(1, int(np.diff(indptr).max()) if n else 1)
            buf_bytes = threads * max_row * indices.itemsize
            if memory_budget is not None:
                if buf_bytes >= memory_budget:
                    raise MemoryError(
                        f"memory_budget={memory_budget:,} bytes does not hold the row buffers of {threads} "
                        f"thread(s) for the longest row ({max_row:,} entries: {buf_bytes:,} bytes); raise the "
                        f"budget, use fewer threads or read_rows='map'")
                memory_budget -= buf_bytes
            row_arg, base = np.empty(0, dtype=indices.dtype), region[1]
            fd = os.open(region[0], os.O_RDONLY)
        capacity, max_capacity = _workspace_plan(n, threads, memory_budget, workspace)
        pushes, todo = 0, np.arange(S, dtype=np.int64)
        while True:
            sub_idx = np.full((todo.shape[0], topk), -1, dtype=np.int32)
            sub_sc = np.zeros((todo.shape[0], topk), dtype=np.float32)
            order = np.random.default_rng(seed).permutation(todo.shape[0]).astype(np.int64)
            got, done, read_error = _ppr_topk_kernel(
                indptr, row_arg, sources[todo], order, float(alpha), float(eps), int(topk), bool(exclude_self),
                sub_idx, sub_sc, threads, capacity, fd, base, max_row)
            if read_error:
                raise OSError(f"{region[0]}: a row of the adjacency could not be read (the file is shorter than "
                              f"its indptr says: truncated or replaced while in use)")
            pushes += int(got)
            out_idx[todo[done]], out_sc[todo[done]] = sub_idx[done], sub_sc[done]
            todo = todo[~done]
            if todo.shape[0] == 0:
                break
            if capacity >= max_capacity:
                raise MemoryError(
                    f"PPR from node {int(sources[todo[0]])} touches more than {capacity * 7 // 10:,} nodes: the "
                    f"hash workspace for {threads} thread(s) is capped at {capacity:,} slots "
                    f"({_HASH_BYTES_PER_SLOT * capacity * threads / 2**20:,.0f} MiB) by memory_budget="
                    f"{memory_budget:,}; raise the budget, raise eps (fewer pushes) or use fewer threads")
            capacity = min(4 * capacity, max_capacity)
    finally:
        if fd >= 0:
            os.close(fd)
        if num_threads is not None:
            numba.set_num_threads(prev)
    return PPRNeighbourhoods(sources, out_idx, out_sc, float(alpha), float(eps), int(pushes))


def bipartite_ppr(
    graph: BipartiteGraph,
    user_sources=None,
    item_sources=None,
    *,
    joint: tuple[np.ndarray, np.ndarray] | None = None,
    **kwargs,
) -> tuple[PPRNeighbourhoods, PPRNeighbourhoods]:
    """PPR neighbourhoods of users and items on the joint user+item graph of ``graph``
    (:meth:`BipartiteGraph.joint_csr`: each distinct user–item pair is an undirected edge).

    ``graph``: the :class:`BipartiteGraph` (a scipy user×item matrix is converted with
    :meth:`BipartiteGraph.from_scipy`: stored non-zeros are edges, values ignored).
    ``user_sources`` / ``item_sources`` are *local* ids (default: all users / all items). In the
    results, ``sources`` and ``indices`` are homogeneous node ids: users ``0..N-1``, items
    ``N..N+M-1`` (``indices >= N`` are items, subtract ``N`` for the item id). Keyword arguments
    go to :func:`ppr_topk`. Both sets run in one kernel call. ``joint``: ``graph.joint_csr()``
    computed elsewhere (a memory-mapped one for an out-of-core graph:
    :func:`recgraph.graph.streaming.graph_ppr`).
    """
    graph = as_graph(graph)
    indptr, indices = graph.joint_csr() if joint is None else joint
    N, M = graph.n_users, graph.n_items
    users = (np.arange(N, dtype=np.int64) if user_sources is None
             else np.asarray(user_sources, dtype=np.int64).reshape(-1))
    items = (np.arange(M, dtype=np.int64) if item_sources is None
             else np.asarray(item_sources, dtype=np.int64).reshape(-1))
    if users.size and (users.min() < 0 or users.max() >= N):
        raise ValueError(f"user_sources must lie in [0, {N})")
    if items.size and (items.min() < 0 or items.max() >= M):
        raise ValueError(f"item_sources must lie in [0, {M})")
    res = ppr_topk(indptr, indices, np.concatenate([users, items + N]), **kwargs)
    nu = users.shape[0]
    # pushes are reported for the joint call on both halves
    half = dict(alpha=res.alpha, eps=res.eps, num_pushes=res.num_pushes)
    user_nbrs = PPRNeighbourhoods(res.sources[:nu], res.indices[:nu], res.scores[:nu], **half)
    item_nbrs = PPRNeighbourhoods(res.sources[nu:], res.indices[nu:], res.scores[nu:], **half)
    return user_nbrs, item_nbrs


def exact_ppr(indptr, indices, sources, alpha: float = 0.2, tol: float = 1e-10,
              max_iter: int = 100_000) -> np.ndarray:
    """Reference PPR by power iteration (scipy sparse), dense ``[S, n_nodes]`` float64.

    ``pi_s = alpha * e_s + (1 - alpha) * pi_s P`` with ``P = D^-1 A`` and an implicit self-loop at
    dangling nodes (the convention of :func:`ppr_topk`). Iterates until the largest per-source
    L1 change is below ``tol`` (the remaining error is then below ``tol * (1 - alpha) / alpha``).
    Dense over nodes for each source: meant for tests and benchmark references on a sample of
    sources, not for production.
    """
    indptr, indices, n = _check_csr(indptr, indices)
    sources = np.asarray(sources, dtype=np.int64).reshape(-1)
    deg = np.diff(indptr)
    dangling = deg == 0
    A = sp.csr_matrix((np.ones(indices.shape[0]), indices.astype(np.int64), indptr),
                      shape=(n, n))
    At = A.T.tocsr()
    inv = 1.0 / np.maximum(deg, 1).astype(np.float64)
    E = np.zeros((n, sources.shape[0]))
    E[sources, np.arange(sources.shape[0])] = 1.0
    X = E.copy()
    for _ in range(max_iter):
        Y = At @ (X * inv[:, None])
        if dangling.any():
            Y[dangling] += X[dangling]
        Xn = alpha * E + (1.0 - alpha) * Y
        diff = np.abs(Xn - X).sum(axis=0).max()
        X = Xn
        if diff < tol:
            break
    return np.ascontiguousarray(X.T)
