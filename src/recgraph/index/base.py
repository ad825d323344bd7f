"""The one search contract of :mod:`recgraph.index` (Faiss-like).

Every index holds ``ntotal`` vectors ``[N, d]`` (ids ``0..N-1``) and answers
``search(queries [Q, d] float32, k) -> (scores [Q, k] float32, ids [Q, k] int64)`` by **inner
product**, best first; rows with fewer than ``k`` candidates are padded with id ``-1`` and score
``-inf``. ``describe()`` is a short Faiss-style string ("Flat", "IVF64,nprobe8",
"RQ2x64,nprobe8") that is saved with the index. After each search, ``stats`` holds what it cost:
``candidates_per_query`` (vectors scored exactly), ``flops_per_query`` (multiply-adds × 2 of
coarse and exact scoring) and ``n_queries``; ``n_candidates_last`` is the candidate count.

On disk an index is a folder: ``index.json`` (type, description, parameters; written last) plus
``index.safetensors`` (tensors) or ``index.faiss`` (Faiss bytes); every file atomically, no pickle.
``index.json`` carries a format ``version`` (:data:`FORMAT_VERSION`); older versions load, newer
ones are refused with a message saying to upgrade.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..io import ArtifactError, atomic_write_json, read_checked_json

__all__ = ["Index", "INDEX_TYPES", "as_queries", "filter_excluded", "load_index", "topk_over_candidates"]

INDEX_TYPES: dict[str, type["Index"]] = {}
FORMAT = "recgraph-index"
#: 2: the RQ payload holds its vectors in cluster order (``vectors_by_cluster`` + ``order``); version 1
#: folders (RQ vectors in id order) still load. A library older than a folder's version refuses it by name.
FORMAT_VERSION = 2


def as_queries(x, d: int | None = None, name: str = "queries") -> torch.Tensor:
    """``x`` as a contiguous float32 CPU tensor ``[Q, d]``; a clear error otherwise."""
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [Q, d] array, got shape {tuple(t.shape)}")
    if d is not None and t.shape[1] != d:
        raise ValueError(f"{name} have dimension {t.shape[1]} but the index holds d={d} vectors")
    if not torch.is_floating_point(t):
        raise ValueError(f"{name} must be floating point, got {t.dtype}")
    t = t.detach().to("cpu", torch.float32).contiguous()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contain NaN or inf")
    return t


def _check_k(k: int) -> int:
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


_FEW_QUERIES = 8  # up to this many queries, candidates are scored query by query


def topk_over_candidates(queries: torch.Tensor, vectors: torch.Tensor, indptr: np.ndarray,
                         cand: np.ndarray, k: int, max_elements: int = 1 << 24
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact inner-product top-``k`` of each query over its own candidate list.

    Query ``q`` scores ``vectors[cand[indptr[q]:indptr[q+1]]]`` (ids must be distinct within a
    row). Vectorised: candidates are scored as one flat gather-multiply, then padded into
    ``[Q_chunk, max_len]`` (queries chunked so that ``total candidates × d`` and the padded block
    stay under ``max_elements``). Returns ``(scores [Q, k], ids [Q, k])`` padded with ``-inf`` / -1.
    """
    Q = queries.shape[0]
    d = vectors.shape[1]
    scores_out = torch.full((Q, k), -float("inf"))
    ids_out = torch.full((Q, k), -1, dtype=torch.long)
    indptr = np.asarray(indptr, dtype=np.int64)
    lens = np.diff(indptr)
    if Q <= _FEW_QUERIES:  # serving-sized calls: a gather, a GEMV and a top-k per query (no padding)
        for j in range(Q):
            c = torch.from_numpy(np.ascontiguousarray(cand[indptr[j]:indptr[j + 1]], dtype=np.int64))
            if c.numel():
                kk = min(k, c.numel())
                top, pos = (vectors[c] @ queries[j]).topk(kk)
                scores_out[j, :kk], ids_out[j, :kk] = top, c[pos]
        return scores_out, ids_out
    s = 0
    while s < Q:
        # grow the chunk while it fits the element budget
        e, tot, mx = s, 0, 0
        while e < Q:
            nt, nm = tot + lens[e], max(mx, lens[e])
            if e > s and (nt * d > max_elements or (e - s + 1) * nm > max_elements):
                break
            tot, mx, e = nt, nm, e + 1
        if mx == 0:
            s = e
            continue
        c = torch.from_numpy(np.ascontiguousarray(cand[indptr[s]:indptr[e]], dtype=np.int64))
        ln = torch.from_numpy(lens[s:e])
        row = torch.repeat_interleave(torch.arange(e - s), ln)
        sc = (vectors[c] * queries[s:e][row]).sum(-1)
        col = torch.arange(c.numel()) - torch.repeat_interleave(torch.cumsum(ln, 0) - ln, ln)
        block = torch.full((e - s, mx), -float("inf"))
        block[row, col] = sc
        idblock = torch.full((e - s, mx), -1, dtype=torch.long)
        idblock[row, col] = c
        kk = min(k, mx)
        top, pos = block.topk(kk, dim=1)
        ids = idblock.gather(1, pos)
        ids[torch.isinf(top)] = -1
        scores_out[s:e, :kk], ids_out[s:e, :kk] = top, ids
        s = e
    return scores_out, ids_out


def filter_excluded(rows: np.ndarray, scores: np.ndarray, ids: np.ndarray, exclude, k: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Drop from ranked ``ids [B, K']`` every id stored in row ``rows[b]`` of the CSR ``exclude``
    (e.g. a user's training items) and -1 padding; keep the first ``k`` (re-padded with -1 /
    ``-inf``). Vectorised: one ``searchsorted`` over the sorted (row, id) keys of ``exclude``."""
    import scipy.sparse as sp

    ex = sp.csr_matrix(exclude)
    ex.sort_indices()
    n_cols = ex.shape[1]
    key_ex = np.repeat(np.arange(ex.shape[0], dtype=np.int64), np.diff(ex.indptr)) * n_cols + ex.indices
    rows = np.asarray(rows, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    key = rows[:, None] * n_cols + np.maximum(ids, 0)
    bad = ids < 0
    if len(key_ex):
        pos = np.searchsorted(key_ex, key).clip(0, len(key_ex) - 1)
        bad |= key_ex[pos] == key
    order = np.argsort(bad, axis=1, kind="stable")[:, :k]
    ids_out = np.take_along_axis(np.where(bad, -1, ids), order, 1)
    sc_out = np.take_along_axis(np.where(bad, -np.inf, scores), order, 1).astype(np.float32)
    if ids_out.shape[1] < k:
        pad = ((0, 0), (0, k - ids_out.shape[1]))
        ids_out, sc_out = np.pad(ids_out, pad, constant_values=-1), np.pad(sc_out, pad, constant_values=-np.inf)
    return sc_out, ids_out


class Index(ABC):
    """Base class: see the module docstring for the contract."""

    type_name: ClassVar[str] = ""

    def __init__(self, d: int):
        if int(d) < 1:
            raise ValueError(f"dimension must be >= 1, got {d}")
        self.d = int(d)
        self.stats: dict = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.type_name:
            INDEX_TYPES[cls.type_name] = cls

    # --- building
    @property
    @abstractmethod
    def ntotal(self) -> int: ...

    @property
    def is_trained(self) -> bool:
        return True

    def train(self, vectors) -> "Index":
        """Learn the index structure (no-op for exact search)."""
        return self

    @abstractmethod
    def add(self, vectors) -> "Index":
        """Append vectors; they get ids ``ntotal, ntotal + 1, …``."""

    def build(self, vectors) -> "Index":
        """``train`` then ``add`` the same vectors."""
        return self.train(vectors).add(vectors)

    # --- searching
    @abstractmethod
    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores [Q, k] float32, ids [Q, k] int64)``, inner product, best first."""

    @property
    def n_candidates_last(self) -> float:
        """Mean number of vectors scored exactly per query in the last search."""
        return float(self.stats.get("candidates_per_query", float("nan")))

    def _set_stats(self, n_queries: int, candidates: float, coarse_dots: float) -> None:
        self.stats = {"n_queries": int(n_queries), "candidates_per_query": float(candidates),
                      "coarse_per_query": float(coarse_dots),
                      "flops_per_query": float(2 * self.d * (candidates + coarse_dots))}

    @abstractmethod
    def describe(self) -> str: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r}, d={self.d}, ntotal={self.ntotal})"

    # --- persistence
    @abstractmethod
    def _params(self) -> dict: ...

    @abstractmethod
    def _save_payload(self, directory: Path) -> str:
        """Write the tensor / bytes file atomically; return its file name."""

    @classmethod
    @abstractmethod
    def _load_payload(cls, params: dict, path: Path) -> "Index": ...

    def save(self, directory: str | Path) -> Path:
        """Write the index to ``directory`` (``index.json`` last, so a crash leaves the old one)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        fname = self._save_payload(directory)
        atomic_write_json(directory / "index.json",
                          {"format": FORMAT, "version": FORMAT_VERSION, "type": self.type_name,
                           "description": self.describe(), "d": self.d, "ntotal": self.ntotal,
                           "payload": fname, "params": self._params()})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Index":
        index = load_index(directory)
        if not isinstance(index, cls):
            raise TypeError(f"{directory} holds a {type(index).__name__}, not a {cls.__name__}")
        return index


def load_index(directory: str | Path) -> Index:
    """Load any index saved by :meth:`Index.save` (dispatch on the stored type)."""
    directory = Path(directory)
    meta_path = directory / "index.json"
    meta = read_checked_json(meta_path, fmt=FORMAT, what="a saved recgraph index",
                             required=("type", "d", "ntotal", "payload", "params"))
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ArtifactError(meta_path, f"version {meta['version']} is newer than this library ({FORMAT_VERSION})",
                            "upgrade recgraph")
    if meta["type"] not in INDEX_TYPES:
        raise ArtifactError(meta_path, f"unknown index type {meta['type']!r}; known: {sorted(INDEX_TYPES)}")
    index = INDEX_TYPES[meta["type"]]._load_payload(dict(meta["params"], d=meta["d"]), directory / meta["payload"])
    if index.ntotal != meta["ntotal"]:
        raise ArtifactError(meta_path, f"payload holds {index.ntotal} vectors, metadata says {meta['ntotal']}",
                            "save the index again")
    return index
