"""Graph construction: bipartite user–item CSR graph and item–item co-occurrence."""

from .bipartite import BipartiteGraph
from .cooccurrence import item_cosine_topk, to_csr

__all__ = ["BipartiteGraph", "item_cosine_topk", "to_csr"]
