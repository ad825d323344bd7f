"""Residual-quantisation cluster index (RankGraph-2 serving).

Vectors are coded by a residual quantiser (``L`` levels × ``K`` codes, see
:mod:`recgraph.nn.quantizer`) and bucketed by the prefix ``(c_1, …, c_depth)`` of their code path
(``K ** depth`` clusters; ``depth = 1`` is IVF-like with the level-1 codebook as coarse centroids).

Search for a query ``q``:

1. score ``q`` against the level-1 codebook (``K`` dot products); with ``depth > 1`` keep the best
   ``beam`` paths and extend each by every code of the next level, the path score being
   ``Σ_l q·C_l[c_l]`` (the inner product with the path's reconstruction), ``K`` more dot products
   per level;
2. take the ``nprobe`` best clusters;
3. score only the vectors in those clusters exactly, return the top-k.

Storage: the vectors are kept in **cluster order** (``_sorted`` ``[N, d]``, ``_order`` maps a
position to its id, ``_offsets`` the start of each cluster), so a probed cluster is a contiguous
slice and step 3 is one matrix-vector product per probed cluster written into one score buffer —
no gather of the candidates' rows (which cost a cache miss per candidate, ~0.4 µs, when the
vectors were kept in id order). ``vectors`` (id order) is rebuilt on demand.

Cost per query: ``depth × K`` coarse dot products + the candidates (``stats``). The codebooks
come either from post-hoc :func:`~recgraph.nn.quantizer.residual_kmeans` (``train``) or from a
model that co-learned them (:meth:`RQIndex.from_codebooks`, e.g. RankGraph-2's quantiser).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..nn.quantizer import residual_kmeans, rq_decode, rq_encode
from ..io import atomic_save_tensors, load_tensors
from .base import Index, _check_k, as_queries, topk_over_candidates

__all__ = ["RQIndex", "ranges_to_flat"]

_MAX_CLUSTERS = 1 << 22


def ranges_to_flat(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(starts[j], starts[j] + lens[j])`` over ``j``, vectorised."""
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    lens = np.asarray(lens, dtype=np.int64).reshape(-1)
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    excl = np.cumsum(lens) - lens
    return np.repeat(starts - excl, lens) + np.arange(total, dtype=np.int64)


class RQIndex(Index):
    """Args:
        d: vector size.
        n_levels, codebook_size: the residual quantiser, L × K.
        nprobe: clusters whose members are scored exactly.
        depth: code-path prefix length that defines a cluster (1 ≤ depth ≤ L).
        beam: paths kept per level while descending (depth > 1; default ``max(nprobe, 8)``).
        kmeans_iters, seed: post-hoc codebook learning (:meth:`train`).
    """

    type_name = "rq"

    def __init__(self, d: int, n_levels: int = 2, codebook_size: int = 64, nprobe: int = 8, depth: int = 1,
                 beam: int | None = None, kmeans_iters: int = 20, seed: int = 0):
        super().__init__(d)
        if not 1 <= depth <= n_levels:
            raise ValueError(f"depth must be in [1, n_levels={n_levels}], got {depth}")
        if codebook_size ** depth > _MAX_CLUSTERS:
            raise ValueError(f"{codebook_size}^{depth} clusters is too many; lower depth or codebook_size")
        self.n_levels, self.codebook_size, self.depth = int(n_levels), int(codebook_size), int(depth)
        self.nprobe = int(nprobe)
        self.beam = int(beam) if beam is not None else max(self.nprobe, 8)
        self.kmeans_iters, self.seed = int(kmeans_iters), int(seed)
        self.codebooks: torch.Tensor | None = None  # [L, K, d]
        self._sorted = torch.empty(0, d)  # [N, d] in cluster order
        self.codes = torch.empty(0, n_levels, dtype=torch.long)  # [N, L] in id order
        self._order = np.zeros(0, np.int64)  # position in _sorted -> id
        self._rebuild()

    # ------------------------------------------------------------------ building
    @classmethod
    def from_codebooks(cls, codebooks: torch.Tensor, vectors=None, *, codes: torch.Tensor | None = None,
                       **kwargs) -> "RQIndex":
        """An index over learned ``codebooks [L, K, d]`` (e.g. a co-trained quantiser); ``vectors``
        are added (coded greedily unless their ``codes [N, L]`` are given)."""
        L, K, d = codebooks.shape
        index = cls(d, n_levels=L, codebook_size=K, **kwargs)
        index.codebooks = codebooks.detach().to("cpu", torch.float32).clone()
        if vectors is not None:
            index.add(vectors, codes=codes)
        return index

    @property
    def ntotal(self) -> int:
        return int(self._sorted.shape[0])

    @property
    def vectors(self) -> torch.Tensor:
        """The stored vectors ``[N, d]`` in id order (a copy: the index keeps them in cluster order)."""
        out = torch.empty_like(self._sorted)
        out[torch.from_numpy(self._order)] = self._sorted
        return out

    @property
    def is_trained(self) -> bool:
        return self.codebooks is not None

    @property
    def n_clusters(self) -> int:
        return self.codebook_size ** self.depth

    def train(self, vectors) -> "RQIndex":
        x = as_queries(vectors, self.d, "vectors")
        self.codebooks, _ = residual_kmeans(x, self.n_levels, self.codebook_size, iters=self.kmeans_iters,
                                            seed=self.seed)
        return self

    def add(self, vectors, codes: torch.Tensor | None = None) -> "RQIndex":
        if not self.is_trained:
            raise RuntimeError("train the RQ index (or build it from codebooks) before adding vectors")
        x = as_queries(vectors, self.d, "vectors")
        if codes is None:
            codes = rq_encode(x, self.codebooks)
        elif tuple(codes.shape) != (x.shape[0], self.n_levels):
            raise ValueError(f"codes must be [{x.shape[0]}, {self.n_levels}], got {tuple(codes.shape)}")
        vectors = torch.cat([self.vectors, x]) if self.ntotal else x
        self.codes = torch.cat([self.codes, codes.detach().cpu().long()])
        self._rebuild(vectors)
        return self

    def _rebuild(self, vectors: torch.Tensor | None = None) -> None:
        """Cluster order of the codes; with ``vectors [N, d]`` (id order) store them in that order."""
        cid = self.cluster_of(np.arange(self.codes.shape[0]))
        self._order = np.argsort(cid, kind="stable").astype(np.int64)
        self._offsets = np.zeros(self.n_clusters + 1, dtype=np.int64)
        np.cumsum(np.bincount(cid, minlength=self.n_clusters), out=self._offsets[1:])
        if vectors is not None:
            self._sorted = vectors[torch.from_numpy(self._order)].contiguous()
        self._pos = np.empty_like(self._order)  # id -> position in _sorted
        self._pos[self._order] = np.arange(len(self._order))

    def cluster_of(self, ids) -> np.ndarray:
        """Cluster id (mixed-radix code prefix) of vectors ``ids``."""
        c = self.codes[torch.as_tensor(np.asarray(ids, dtype=np.int64))][:, : self.depth].numpy()
        out = np.zeros(c.shape[0], dtype=np.int64)
        for level in range(self.depth):
            out = out * self.codebook_size + c[:, level]
        return out

    def cluster_sizes(self) -> np.ndarray:
        return np.diff(self._offsets)

    def reconstruct(self, ids=None) -> torch.Tensor:
        codes = self.codes if ids is None else self.codes[torch.as_tensor(np.asarray(ids, dtype=np.int64))]
        return rq_decode(codes, self.codebooks)

    def quantization_error(self) -> float:
        """Mean ``||x − x̂||²`` over the stored vectors."""
        return float((self._sorted - self.reconstruct(self._order)).pow(2).sum(1).mean()) if self.ntotal else 0.0

    # ------------------------------------------------------------------ searching
    def probe(self, q: torch.Tensor) -> torch.Tensor:
        """The ``nprobe`` best clusters ``[Q, nprobe]`` of queries ``q [Q, d]`` (beam over levels)."""
        K = self.codebook_size
        s = q @ self.codebooks[0].T  # [Q, K]
        if self.depth == 1:
            return s.topk(min(self.nprobe, K), dim=1).indices
        path_s, path = s.topk(min(self.beam, K), dim=1)  # [Q, B]
        for level in range(1, self.depth):
            nxt = q @ self.codebooks[level].T  # [Q, K]
            cand = (path_s.unsqueeze(2) + nxt.unsqueeze(1)).flatten(1)  # [Q, B*K]
            width = self.nprobe if level == self.depth - 1 else self.beam
            path_s, pos = cand.topk(min(width, cand.shape[1]), dim=1)
            path = path.gather(1, pos // K) * K + pos % K
        return path

    def _ranges(self, clusters) -> tuple[np.ndarray, np.ndarray]:
        """``(starts [Q, P], lens [Q, P])`` of the slices of ``_sorted`` holding ``clusters [Q, P]``
        (-1 = none; a cluster repeated within a row counts once: length 0)."""
        cl = np.array(clusters, dtype=np.int64, copy=True)
        if cl.ndim != 2:
            raise ValueError(f"clusters must be [Q, P], got shape {cl.shape}")
        cl.sort(axis=1)
        dup = np.zeros_like(cl, dtype=bool)
        dup[:, 1:] = cl[:, 1:] == cl[:, :-1]
        valid = (cl >= 0) & ~dup
        cl = np.where(valid, cl, 0)
        return self._offsets[cl], np.where(valid, self._offsets[cl + 1] - self._offsets[cl], 0)

    def members(self, clusters) -> tuple[np.ndarray, np.ndarray]:
        """Candidate lists of ``clusters [Q, P]`` (-1 = none; repeats within a row count once)
        as CSR ``(indptr [Q+1], ids)``."""
        starts, lens = self._ranges(clusters)
        indptr = np.zeros(starts.shape[0] + 1, dtype=np.int64)
        np.cumsum(lens.sum(1), out=indptr[1:])
        return indptr, self._order[ranges_to_flat(starts, lens)]

    def _scan(self, q: torch.Tensor, starts: np.ndarray, lens: np.ndarray, k: int
              ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Exact top-``k`` of each query ``q [Q, d]`` over its own slices of ``_sorted`` (one
        matrix-vector product per slice into one score buffer, then one top-k); ``(scores [Q, k],
        ids [Q, k], candidates scored)``, padded with ``-inf`` / -1."""
        Q = q.shape[0]
        scores_out = torch.full((Q, k), -float("inf"))
        ids_out = torch.full((Q, k), -1, dtype=torch.long)
        total = 0
        for j in range(Q):
            keep = lens[j] > 0
            st, ln = starts[j][keep], lens[j][keep]
            n = int(ln.sum())
            total += n
            if n == 0:
                continue
            buf = torch.empty(n)
            pos = 0
            for a, m in zip(st.tolist(), ln.tolist()):
                torch.mv(self._sorted[a:a + m], q[j], out=buf[pos:pos + m])
                pos += m
            kk = min(k, n)
            top, where = buf.topk(kk)
            # buffer position -> its slice -> position in _sorted -> id
            ends = np.cumsum(ln)
            w = where.numpy()
            seg = np.searchsorted(ends, w, side="right")
            ids_out[j, :kk] = torch.from_numpy(self._order[st[seg] + w - (ends[seg] - ln[seg])])
            scores_out[j, :kk] = top
        return scores_out, ids_out, total

    def search_clusters(self, queries, clusters, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of each query over the members of its own ``clusters [Q, P]`` (U2I2I)."""
        q = as_queries(queries, self.d)
        D, I, total = self._scan(q, *self._ranges(clusters), _check_k(k))
        self._set_stats(q.shape[0], total / max(q.shape[0], 1), 0)
        return D.numpy(), I.numpy()

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.is_trained:
            raise RuntimeError("the RQ index is not trained")
        q = as_queries(queries, self.d)
        k = _check_k(k)
        D, I, total = self._scan(q, *self._ranges(self.probe(q).numpy()), k)
        self._set_stats(q.shape[0], total / max(q.shape[0], 1), self.depth * self.codebook_size)
        return D.numpy(), I.numpy()

    def describe(self) -> str:
        s = f"RQ{self.n_levels}x{self.codebook_size},nprobe{self.nprobe}"
        return s + (f",depth{self.depth},beam{self.beam}" if self.depth > 1 else "")

    # ------------------------------------------------------------------ persistence
    def _params(self) -> dict:
        return {"n_levels": self.n_levels, "codebook_size": self.codebook_size, "nprobe": self.nprobe,
                "depth": self.depth, "beam": self.beam, "kmeans_iters": self.kmeans_iters, "seed": self.seed}

    def _save_payload(self, directory: Path) -> str:
        """Format version 2: ``vectors_by_cluster [N, d]`` (cluster order, loaded as is), ``order [N]``
        (position → id), ``codes [N, L]`` (id order), ``codebooks``. Version 1 stored ``vectors`` in
        id order (still loaded: reordered at load)."""
        if not self.is_trained:
            raise RuntimeError("cannot save an untrained RQ index")
        atomic_save_tensors(directory / "index.safetensors",
                            {"codebooks": self.codebooks, "vectors_by_cluster": self._sorted, "codes": self.codes,
                             "order": torch.from_numpy(self._order)})
        return "index.safetensors"

    @classmethod
    def _load_payload(cls, params: dict, path: Path) -> "RQIndex":
        from ..io import ArtifactError

        t = load_tensors(path)
        index = cls(**params)
        index.codebooks = t["codebooks"].float()
        index.codes = t["codes"].long()
        if "vectors" in t:  # format version 1: vectors in id order
            index._rebuild(t["vectors"].float().contiguous())
            return index
        if "vectors_by_cluster" not in t or "order" not in t:
            raise ArtifactError(path, f"holds neither 'vectors' (format 1) nor 'vectors_by_cluster' + 'order' "
                                      f"(format 2) but {sorted(t)}", "save the index again")
        index._rebuild()
        if not np.array_equal(index._order, t["order"].numpy()):
            raise ArtifactError(path, "the stored cluster order does not match the stored codes",
                                "save the index again")
        index._sorted = t["vectors_by_cluster"].float().contiguous()
        return index
