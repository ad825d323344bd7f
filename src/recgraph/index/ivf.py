"""Faiss IVF-Flat with inner product (the standard ANN baseline for the RQ index)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import ArtifactError, atomic_write_bytes, read_bytes
from .base import Index, _check_k, as_queries

__all__ = ["FaissIVFIndex"]


class FaissIVFIndex(Index):
    """``faiss.IndexIVFFlat`` (``METRIC_INNER_PRODUCT``): k-means into ``nlist`` cells, a query
    scores the ``nlist`` centroids and then every vector of its best ``nprobe`` cells.

    Candidates per query come from Faiss' own counter (``indexIVF_stats.ndis``)."""

    type_name = "faiss-ivf"

    def __init__(self, d: int, nlist: int = 64, nprobe: int = 8, seed: int = 0):
        import faiss

        super().__init__(d)
        self.nlist, self.seed = int(nlist), int(seed)
        self._quantizer = faiss.IndexFlatIP(d)
        self.index = faiss.IndexIVFFlat(self._quantizer, d, self.nlist, faiss.METRIC_INNER_PRODUCT)
        self.index.cp.seed = self.seed
        self.nprobe = int(nprobe)

    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"nprobe must be >= 1, got {value}")
        self.index.nprobe = int(value)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def is_trained(self) -> bool:
        return bool(self.index.is_trained)

    def train(self, vectors) -> "FaissIVFIndex":
        x = as_queries(vectors, self.d, "vectors").numpy()
        if x.shape[0] < self.nlist:
            raise ValueError(f"IVF with nlist={self.nlist} needs at least {self.nlist} training vectors, got {x.shape[0]}")
        self.index.train(x)
        return self

    def add(self, vectors) -> "FaissIVFIndex":
        if not self.is_trained:
            raise RuntimeError("train the IVF index before adding vectors (or call build)")
        self.index.add(as_queries(vectors, self.d, "vectors").numpy())
        return self

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        q = as_queries(queries, self.d).numpy()
        k = _check_k(k)
        faiss.cvar.indexIVF_stats.reset()
        D, I = self.index.search(q, k)
        ndis = faiss.cvar.indexIVF_stats.ndis
        D = np.where(I < 0, -np.inf, D).astype(np.float32)
        self._set_stats(q.shape[0], ndis / max(q.shape[0], 1), self.nlist)
        return D, I.astype(np.int64)

    def describe(self) -> str:
        return f"IVF{self.nlist},nprobe{self.nprobe}"

    def _params(self) -> dict:
        return {"nlist": self.nlist, "nprobe": self.nprobe, "seed": self.seed}

    def _save_payload(self, directory: Path) -> str:
        import faiss

        atomic_write_bytes(directory / "index.faiss", faiss.serialize_index(self.index).tobytes())
        return "index.faiss"

    @classmethod
    def _load_payload(cls, params: dict, path: Path) -> "FaissIVFIndex":
        import faiss

        obj = cls.__new__(cls)
        Index.__init__(obj, params["d"])
        obj.nlist, obj.seed = int(params["nlist"]), int(params["seed"])
        try:
            obj.index = faiss.deserialize_index(np.frombuffer(read_bytes(path), dtype=np.uint8))
        except RuntimeError as exc:  # faiss reports truncated / foreign bytes as a RuntimeError
            raise ArtifactError(path, f"is not a readable Faiss index ({str(exc).splitlines()[0][:200]})",
                                "save the index again") from None
        obj._quantizer = None  # owned by the deserialised index
        obj.nprobe = params["nprobe"]
        return obj
