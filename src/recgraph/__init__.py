"""recgraph: graph learning for recommendation, from interaction logs to served recommendations."""

__version__ = "0.1.0"
