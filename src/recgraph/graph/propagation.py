"""Deep linear propagation, precomputed per relation and hop (SIGN / SGC-style; no parameters).

For the user–item graph ``A = [[0, R], [Rᵀ, 0]]`` with ``Â = D^-1/2 A D^-1/2`` and node features
``X = [X_user; X_item]``, :func:`propagate` computes ``Â^k X`` for ``k = 0..K``. ``Â`` is
block-off-diagonal, so it splits into the two relation operators

* ``P_iu = D_u^-1/2 R D_i^-1/2`` (``[N, M]``, relation *item → user*: users aggregate their items),
* ``P_ui = P_iuᵀ``               (``[M, N]``, relation *user → item*: items aggregate their users),

and hop ``k`` of the users is ``P_iu · item_hop[k-1]`` while hop ``k`` of the items is
``P_ui · user_hop[k-1]`` — exactly the user / item rows of ``Â^k X`` (odd hops of a user come from
items, even hops from users). The result is two arrays, ``user [K+1, N, d]`` and
``item [K+1, M, d]`` (float32 or float16; the recursion itself always runs in float32, so float16
storage rounds each hop once and never accumulates rounding over hops). The operators come from
the graph (:meth:`~recgraph.graph.bipartite.BipartiteGraph.normalized_biadjacency`), the one
place that builds them.

Storage: when ``(K+1)(N+M)d`` × itemsize exceeds ``memory_budget`` bytes (or ``out_dir`` is given
and ``in_memory=False``), the hops are streamed into ``.npy`` files (``user.npy``, ``item.npy``
plus ``meta.json``) of a directory, one hop at a time: the directory is built under a temporary
name next to the target and swapped in when complete (:func:`recgraph.io.atomic_write_dir`: a
crash leaves no half-written result under the target name), and :meth:`PropagatedFeatures.load`
opens it lazily, memory-mapped and read-only (:func:`recgraph.io.load_npy`, no pickle). Only
two hops (previous and current, float32) of each side are in memory at a time: peak extra
memory ≈ ``8 (N+M) d`` bytes plus the sparse operators. When that exceeds ``memory_budget``
(a billion edges: 70M nodes x 16 columns x 3 hops x 4 B = 13 GB), the columns are propagated in
slices of ``w`` columns (``w`` from the budget; the hops of different columns never mix), each
slice's hops go to their own files, and a last pass merges them into ``[K+1, N, d]`` in row
chunks; file-backed input features are read in row chunks with ``pread``, so their pages never
count toward the process's resident set. Each slice reads the graph again (``d / w`` passes).

Cost: ``K`` sparse–dense products per side, ``O(K · E · d)`` time; the operators hold ``2E``
values + indices. Zero-degree nodes get all-zero hops ``k ≥ 1``.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import ArtifactError, atomic_npy_writer, atomic_write_dir, atomic_write_json, load_npy, read_checked_json
from .bipartite import BipartiteGraph, _inv_sqrt, as_graph
from .external import read_slice

__all__ = ["PropagatedFeatures", "propagate", "FORMAT"]

FORMAT = "recgraph.propagation/1"


@dataclass
class PropagatedFeatures:
    """``user [K+1, N, d]`` and ``item [K+1, M, d]`` hop features (numpy arrays or read-only memmaps).

    ``path`` is the directory when disk-backed, else None."""

    user: np.ndarray
    item: np.ndarray
    path: Path | None = None

    @property
    def n_hops(self) -> int:
        """``K`` (the arrays hold hops ``0..K``)."""
        return int(self.user.shape[0]) - 1

    @property
    def dim(self) -> int:
        return int(self.user.shape[2])

    @property
    def dtype(self) -> np.dtype:
        return self.user.dtype

    @property
    def on_disk(self) -> bool:
        return self.path is not None

    @property
    def nbytes(self) -> int:
        return int(self.user.nbytes + self.item.nbytes)

    def gather(self, side: str, index: np.ndarray) -> np.ndarray:
        """``[len(index), K+1, d]`` float32 rows of ``side`` ("user" / "item")."""
        arr = self.user if side == "user" else self.item
        index = np.asarray(index, np.int64)
        return np.ascontiguousarray(arr[:, index].transpose(1, 0, 2), dtype=np.float32)

    @classmethod
    def load(cls, path: str | Path) -> "PropagatedFeatures":
        """Open a directory written by :func:`propagate` lazily (memory-mapped, read-only)."""
        path = Path(path)
        meta = read_checked_json(path / "meta.json", fmt=FORMAT, what="a propagation directory",
                                 required=("n_users", "n_items", "n_hops", "dim"))
        user = load_npy(path / "user.npy", mmap=True)
        item = load_npy(path / "item.npy", mmap=True)
        for name, arr, n in (("user", user, meta["n_users"]), ("item", item, meta["n_items"])):
            want = (meta["n_hops"] + 1, n, meta["dim"])
            if arr.shape != want:
                raise ArtifactError(path / f"{name}.npy", f"has shape {arr.shape}, meta.json says {want}",
                                    "propagate again into this folder")
        return cls(user=user, item=item, path=path)


_CHUNK_BYTES = 64 << 20  # rows read at a time when slicing columns / merging slices


def _slice_width(n: int, m: int, d: int, memory_budget: int | None) -> int:
    """Feature columns propagated at a time: all ``d`` unless a slice's working set (its input, the previous
    and the current hop of both sides, float32: ``~3 x 4 (N + M)`` bytes per column) plus the degree arrays
    and one side's ``indptr`` (``~16 (N + M)`` bytes) exceeds ``memory_budget``."""
    if memory_budget is None:
        return d
    per_column, fixed = 12 * (n + m), 16 * (n + m)
    if fixed + per_column * d <= memory_budget:
        return d
    if fixed + per_column > memory_budget:
        warnings.warn(f"memory_budget={int(memory_budget):,} bytes cannot hold one feature column of {n + m:,} "
                      f"nodes in propagation (about {fixed + per_column:,} bytes): propagating one column at a "
                      f"time, the least this can hold; raise the budget to silence this", ResourceWarning,
                      stacklevel=3)
        return 1
    return int((memory_budget - fixed) // per_column)


def _columns(x: np.ndarray, c0: int, c1: int) -> np.ndarray:
    """``x[:, c0:c1]`` as a float32 array in RAM; a file-backed memmap is read in row chunks with ``pread``
    (its pages never join this process's RSS)."""
    if not (isinstance(x, np.memmap) and getattr(x, "filename", None) and x.flags.c_contiguous):
        return np.ascontiguousarray(x[:, c0:c1], dtype=np.float32)
    rows, d = x.shape
    flat, step = x.reshape(-1), max(1, _CHUNK_BYTES // (x.itemsize * d))
    out = np.empty((rows, c1 - c0), np.float32)
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        out[r0:r1] = read_slice(flat, r0 * d, r1 * d).reshape(r1 - r0, d)[:, c0:c1]
    return out


def _merge_columns(parts: list[Path], target: Path, dtype, shape: tuple[int, int, int], rows_per_chunk: int) -> None:
    """Write ``target`` ``[K+1, R, d]`` from column slices ``parts`` (each ``[K+1, R, w]``, in column order)
    in row chunks, deleting each part once merged."""
    arrs = [load_npy(f, mmap=True) for f in parts]
    flats = [a.reshape(-1) for a in arrs]
    hops, rows, _ = shape
    with atomic_npy_writer(target, dtype, shape) as w:
        for k in range(hops):
            for r0 in range(0, rows, rows_per_chunk):
                r1 = min(rows, r0 + rows_per_chunk)
                w.write(np.concatenate([read_slice(f, (k * rows + r0) * a.shape[2], (k * rows + r1) * a.shape[2])
                                        .reshape(r1 - r0, a.shape[2]) for f, a in zip(flats, arrs)], axis=1))
    del arrs, flats
    for f in parts:
        f.unlink()


def _streamed_steps(graph, memory_budget: int | None):
    """The two hop operators streamed from the graph's CSR in row chunks (no ``P`` matrices in RAM), for a
    memory-mapped graph or one whose normalized operator (``~16`` bytes per edge) exceeds ``memory_budget``;
    None when the in-memory scipy operator is used."""
    if not isinstance(graph, BipartiteGraph) or not (graph.deduped and graph.order == "item"):
        return None
    mapped = isinstance(graph.u_indices, np.memmap)
    if not mapped and (memory_budget is None or 16 * graph.n_edges <= memory_budget):
        return None
    from .streaming import normalized_matmul

    du = _inv_sqrt(np.diff(np.asarray(graph.u_indptr, np.int64)))
    di = _inv_sqrt(np.diff(np.asarray(graph.i_indptr, np.int64)))
    # hops stay float32 in RAM ([N, d] + [M, d]), as on the scipy path
    return (lambda hi: normalized_matmul(graph.u_indptr, graph.u_indices, du, di, hi,
                                         np.empty((graph.n_users, hi.shape[1]), np.float32)),
            lambda hu: normalized_matmul(graph.i_indptr, graph.i_indices, di, du, hu,
                                         np.empty((graph.n_items, hu.shape[1]), np.float32)))


def propagate(graph: BipartiteGraph | tuple, x_user: np.ndarray, x_item: np.ndarray, n_hops: int, *,
              dtype=np.float32, memory_budget: int | None = 1 << 30, out_dir: str | Path | None = None,
              overwrite: bool = True) -> PropagatedFeatures:
    """Hops ``0..n_hops`` of ``Â^k [x_user; x_item]``, split per node type (module docs).

    Args:
        graph: the :class:`BipartiteGraph` (a scipy ``[N, M]`` matrix is converted), or a
            ``(P_iu, P_ui)`` pair from :meth:`BipartiteGraph.normalized_biadjacency`.
        x_user, x_item: ``[N, d]`` / ``[M, d]`` input features (hop 0).
        n_hops: ``K >= 0``.
        dtype: storage dtype, ``np.float32`` or ``np.float16``.
        memory_budget: bytes; results larger than this go to disk (``out_dir``, or a fresh
            temporary directory). None: never spill unless ``out_dir`` is given. On disk, when the
            working set of all ``d`` columns (``~12 (N+M) d`` bytes) would exceed it, the features
            are propagated in slices of columns that fit and merged in row chunks (same result).
        out_dir: target directory. When given, the result is always written there (atomically) and
            returned memory-mapped.
        overwrite: replace an existing ``out_dir``; otherwise an existing one is an error.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ValueError(f"dtype must be float32 or float16, got {dtype}")
    if n_hops < 0:
        raise ValueError(f"n_hops must be >= 0, got {n_hops}")
    step = _streamed_steps(graph, memory_budget) if not isinstance(graph, tuple) else None
    if step is None:
        p_iu, p_ui = graph if isinstance(graph, tuple) else as_graph(graph).normalized_biadjacency(np.float32)
        n, m = p_iu.shape
        step = (lambda hi: np.asarray(p_iu @ hi, np.float32), lambda hu: np.asarray(p_ui @ hu, np.float32))
    else:
        n, m = graph.n_users, graph.n_items
    # a memory-mapped input stays one (np.asarray would drop the subclass): column slices read it with pread
    x_user = x_user if isinstance(x_user, np.memmap) else np.asarray(x_user)
    x_item = x_item if isinstance(x_item, np.memmap) else np.asarray(x_item)
    if x_user.ndim != 2 or x_item.ndim != 2 or x_user.shape[1] != x_item.shape[1]:
        raise ValueError(f"x_user and x_item must be [N, d] and [M, d] with equal d, got {x_user.shape}, {x_item.shape}")
    if x_user.shape[0] != n or x_item.shape[0] != m:
        raise ValueError(f"features for {x_user.shape[0]} users / {x_item.shape[0]} items, graph has {n} / {m}")
    d = x_user.shape[1]
    total = (n_hops + 1) * (n + m) * d * dtype.itemsize
    to_disk = out_dir is not None or (memory_budget is not None and total > memory_budget)

    def hops(xu=x_user, xi=x_item):
        """``(side, hop)`` in the order computed; each hop's input is dropped as soon as its last product is
        taken, so RAM holds the caller's features plus ~2 hops (not all of them)."""
        hu = np.ascontiguousarray(xu, dtype=np.float32)
        hi = np.ascontiguousarray(xi, dtype=np.float32)
        yield "user", hu
        yield "item", hi
        for _ in range(n_hops):
            new_u = step[0](hi)
            yield "user", new_u
            hi = None  # the next item hop reads the users' hop only
            new_i = step[1](hu)
            yield "item", new_i
            hu, hi = new_u, new_i

    if not to_disk:
        out = {"user": np.empty((n_hops + 1, n, d), dtype), "item": np.empty((n_hops + 1, m, d), dtype)}
        k = {"user": 0, "item": 0}
        for side, h in hops():
            out[side][k[side]] = h
            k[side] += 1
        return PropagatedFeatures(user=out["user"], item=out["item"])

    final = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="recgraph-prop-")) / "features"
    if out_dir is not None and final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists (pass overwrite=True to replace it)")

    width = _slice_width(n, m, d, memory_budget)

    def build(tmp: Path) -> None:
        # hops appended to the two .npy files as they are computed: plain writes, not a writable mapping
        # whose dirty pages would stay in this process's RSS (13 GB at 1B events)
        if width >= d:
            with atomic_npy_writer(tmp / "user.npy", dtype, (n_hops + 1, n, d)) as wu, \
                    atomic_npy_writer(tmp / "item.npy", dtype, (n_hops + 1, m, d)) as wi:
                for side, h in hops(_columns(x_user, 0, d), _columns(x_item, 0, d)):
                    (wu if side == "user" else wi).write(h)
        else:  # feature slices of `width` columns, each propagated on its own, then merged row-chunk-wise
            cuts = list(range(0, d, width)) + [d]
            for c0, c1 in zip(cuts[:-1], cuts[1:]):
                with atomic_npy_writer(tmp / f"part{c0}_user.npy", dtype, (n_hops + 1, n, c1 - c0)) as wu, \
                        atomic_npy_writer(tmp / f"part{c0}_item.npy", dtype, (n_hops + 1, m, c1 - c0)) as wi:
                    for side, h in hops(_columns(x_user, c0, c1), _columns(x_item, c0, c1)):
                        (wu if side == "user" else wi).write(h)
            for side, rows in (("user", n), ("item", m)):
                _merge_columns([tmp / f"part{c0}_{side}.npy" for c0 in cuts[:-1]], tmp / f"{side}.npy", dtype,
                               (n_hops + 1, rows, d), max(1, _CHUNK_BYTES // (4 * d)))
        atomic_write_json(tmp / "meta.json", {
            "format": FORMAT, "n_users": int(n), "n_items": int(m), "n_hops": int(n_hops), "dim": int(d),
            "dtype": dtype.name, "operator": "D^-1/2 A D^-1/2 per relation (item->user, user->item)",
            "feature_slices": int(-(-d // width))})

    return PropagatedFeatures.load(atomic_write_dir(final, build))
