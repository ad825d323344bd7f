"""Small hand-checkable training graphs shared by the retrieval model tests."""

import numpy as np
import pytest

from recgraph.data.schema import Interactions
from recgraph.graph.bipartite import BipartiteGraph


def toy_interactions() -> Interactions:
    #        items: 0 1 2 3
    # user 0:       x x . .
    # user 1:       x x x .
    # user 2:       . x x x
    u = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    i = np.array([0, 1, 0, 1, 2, 1, 2, 3])
    return Interactions(u, i, 3, 4)


@pytest.fixture
def toy() -> Interactions:
    return toy_interactions()


@pytest.fixture
def toy_graph() -> BipartiteGraph:
    return BipartiteGraph.from_interactions(toy_interactions())
