"""Vector search for serving: one contract (``search(x, k) -> (scores, ids)``, inner product).

* :class:`ExactIndex` ("Flat") — blocked brute force.
* :class:`FaissIVFIndex` ("IVF64,nprobe8") — Faiss IVF-Flat.
* :class:`RQIndex` ("RQ2x64,nprobe8") — residual-quantisation cluster index (RankGraph-2).

``build_index(description, vectors)`` builds any of them from its description string;
``load_index(dir)`` loads any saved one.
"""

from __future__ import annotations

import re

from .base import INDEX_TYPES, Index, load_index, topk_over_candidates
from .exact import ExactIndex
from .ivf import FaissIVFIndex
from .rq import RQIndex

__all__ = ["ExactIndex", "FaissIVFIndex", "INDEX_TYPES", "Index", "RQIndex", "build_index", "load_index",
           "parse_description", "topk_over_candidates"]

_OPTS = {"nprobe", "depth", "beam"}


def parse_description(description: str) -> tuple[type[Index], dict]:
    """``"RQ2x64,nprobe8,depth2,beam16"`` → ``(RQIndex, {n_levels: 2, codebook_size: 64, …})``."""
    parts = [p.strip() for p in description.split(",") if p.strip()]
    if not parts:
        raise ValueError("empty index description")
    head, opts = parts[0], {}
    for p in parts[1:]:
        m = re.fullmatch(r"([a-z]+)(\d+)", p)
        if not m or m.group(1) not in _OPTS:
            raise ValueError(f"bad option {p!r} in {description!r}; options are nprobe<N>, depth<N>, beam<N>")
        opts[m.group(1)] = int(m.group(2))
    if head == "Flat":
        if opts:
            raise ValueError(f"'Flat' takes no options, got {description!r}")
        return ExactIndex, {}
    if m := re.fullmatch(r"IVF(\d+)", head):
        if set(opts) - {"nprobe"}:
            raise ValueError(f"IVF takes only nprobe, got {description!r}")
        return FaissIVFIndex, {"nlist": int(m.group(1)), **opts}
    if m := re.fullmatch(r"RQ(\d+)x(\d+)", head):
        return RQIndex, {"n_levels": int(m.group(1)), "codebook_size": int(m.group(2)), **opts}
    raise ValueError(f"unknown index description {description!r}; use 'Flat', 'IVF<nlist>,nprobe<n>' "
                     "or 'RQ<L>x<K>,nprobe<n>[,depth<d>,beam<b>]'")


def build_index(description: str, vectors, **kwargs) -> Index:
    """Build (train + add) the index ``description`` over ``vectors [N, d]``; ``kwargs`` go to
    the constructor (e.g. ``seed``)."""
    cls, params = parse_description(description)
    d = int(vectors.shape[1])
    return cls(d, **params, **kwargs).build(vectors)
