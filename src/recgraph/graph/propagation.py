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
storage rounds each hop once and never accumulates rounding over hops).

Storage: when ``(K+1)(N+M)d`` × itemsize exceeds ``memory_budget`` bytes (or ``out_dir`` is given
and ``in_memory=False``), the hops are streamed into ``.npy`` files (``user.npy``, ``item.npy``
plus ``meta.json``) of a directory, one hop at a time: the directory is written under a temporary
name next to the target and renamed when complete (atomic: a crash leaves no half-written
result under the target name), and :meth:`PropagatedFeatures.load` opens it lazily with
``np.load(mmap_mode="r")`` (no pickle). Only two hops (previous and current, float32) of each side
are in memory at a time: peak extra memory ≈ ``8 (N+M) d`` bytes plus the sparse operators.

Cost: ``K`` sparse–dense products per side, ``O(K · E · d)`` time; the operators hold ``2E``
values + indices. Zero-degree nodes get all-zero hops ``k ≥ 1``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..io import read_checked_json

__all__ = ["PropagatedFeatures", "relation_operators", "propagate", "FORMAT"]

FORMAT = "recgraph.propagation/1"


def _inv_sqrt(deg: np.ndarray) -> np.ndarray:
    out = np.zeros(deg.shape, np.float64)
    nz = deg > 0
    out[nz] = 1.0 / np.sqrt(deg[nz])
    return out


def relation_operators(graph) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``(P_iu [N, M], P_ui [M, N])`` float32 CSR: the two blocks of ``D^-1/2 A D^-1/2``.

    ``graph`` is a :class:`~recgraph.graph.bipartite.BipartiteGraph` or a ``[N, M]`` scipy matrix
    (binary over its stored entries). Cost O(E + N + M)."""
    if sp.issparse(graph):
        r = sp.csr_matrix(graph, dtype=np.float32, copy=True)
        r.sum_duplicates()
        r.data[:] = 1.0
    else:
        r = graph.to_scipy("binary", dtype=np.float32)
        r = sp.csr_matrix((r.data.copy(), r.indices, r.indptr), shape=r.shape)
    du = _inv_sqrt(np.diff(r.indptr).astype(np.float64))
    di = _inv_sqrt(np.bincount(r.indices, minlength=r.shape[1]).astype(np.float64))
    rows = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr))
    r.data = (du[rows] * di[r.indices]).astype(np.float32)
    del rows
    return r, r.T.tocsr()


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
        meta = read_checked_json(path / "meta.json", fmt=FORMAT, what="a propagation directory")
        user = np.load(path / "user.npy", mmap_mode="r", allow_pickle=False)
        item = np.load(path / "item.npy", mmap_mode="r", allow_pickle=False)
        for name, arr, n in (("user", user, meta["n_users"]), ("item", item, meta["n_items"])):
            want = (meta["n_hops"] + 1, n, meta["dim"])
            if arr.shape != want:
                raise ValueError(f"{path / (name + '.npy')}: shape {arr.shape}, meta.json says {want}")
        return cls(user=user, item=item, path=path)


def propagate(graph, x_user: np.ndarray, x_item: np.ndarray, n_hops: int, *, dtype=np.float32,
              memory_budget: int | None = 1 << 30, out_dir: str | Path | None = None,
              overwrite: bool = True) -> PropagatedFeatures:
    """Hops ``0..n_hops`` of ``Â^k [x_user; x_item]``, split per node type (module docs).

    Args:
        graph: :class:`BipartiteGraph`, a ``[N, M]`` scipy matrix, or a ``(P_iu, P_ui)`` pair from
            :func:`relation_operators`.
        x_user, x_item: ``[N, d]`` / ``[M, d]`` input features (hop 0).
        n_hops: ``K >= 0``.
        dtype: storage dtype, ``np.float32`` or ``np.float16``.
        memory_budget: bytes; results larger than this go to disk (``out_dir``, or a fresh
            temporary directory). None: never spill unless ``out_dir`` is given.
        out_dir: target directory. When given, the result is always written there (atomically) and
            returned memory-mapped.
        overwrite: replace an existing ``out_dir``; otherwise an existing one is an error.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ValueError(f"dtype must be float32 or float16, got {dtype}")
    if n_hops < 0:
        raise ValueError(f"n_hops must be >= 0, got {n_hops}")
    p_iu, p_ui = graph if isinstance(graph, tuple) else relation_operators(graph)
    n, m = p_iu.shape
    x_user = np.asarray(x_user)
    x_item = np.asarray(x_item)
    if x_user.ndim != 2 or x_item.ndim != 2 or x_user.shape[1] != x_item.shape[1]:
        raise ValueError(f"x_user and x_item must be [N, d] and [M, d] with equal d, got {x_user.shape}, {x_item.shape}")
    if x_user.shape[0] != n or x_item.shape[0] != m:
        raise ValueError(f"features for {x_user.shape[0]} users / {x_item.shape[0]} items, graph has {n} / {m}")
    d = x_user.shape[1]
    total = (n_hops + 1) * (n + m) * d * dtype.itemsize
    to_disk = out_dir is not None or (memory_budget is not None and total > memory_budget)

    tmp_dir = final = None
    if to_disk:
        final = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="recgraph-prop-"))
        if out_dir is not None and final.exists() and not overwrite:
            raise FileExistsError(f"{final} exists (pass overwrite=True to replace it)")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        user = np.lib.format.open_memmap(tmp_dir / "user.npy", mode="w+", dtype=dtype, shape=(n_hops + 1, n, d))
        item = np.lib.format.open_memmap(tmp_dir / "item.npy", mode="w+", dtype=dtype, shape=(n_hops + 1, m, d))
    else:
        user = np.empty((n_hops + 1, n, d), dtype)
        item = np.empty((n_hops + 1, m, d), dtype)
    try:
        hu = np.ascontiguousarray(x_user, dtype=np.float32)
        hi = np.ascontiguousarray(x_item, dtype=np.float32)
        user[0], item[0] = hu, hi
        for k in range(1, n_hops + 1):
            hu, hi = np.asarray(p_iu @ hi, np.float32), np.asarray(p_ui @ hu, np.float32)
            user[k], item[k] = hu, hi
        if not to_disk:
            return PropagatedFeatures(user=user, item=item)
        user.flush()
        item.flush()
        del user, item
        meta = {"format": FORMAT, "n_users": int(n), "n_items": int(m), "n_hops": int(n_hops), "dim": int(d),
                "dtype": dtype.name, "operator": "D^-1/2 A D^-1/2 per relation (item->user, user->item)"}
        (tmp_dir / "meta.json").write_text(json.dumps(meta, indent=2))
        if final.exists():  # replace: move the old one aside first, then swap in, then delete
            old = final.parent / f".{final.name}.old.{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp_dir, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp_dir, final)
        tmp_dir = None
        return PropagatedFeatures.load(final)
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
