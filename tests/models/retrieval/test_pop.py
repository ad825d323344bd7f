"""Pop: scores are the training counts; a corrupt artifact gives a clear error."""

import numpy as np
import pytest
import torch

from recgraph.data.schema import Interactions
from recgraph.graph.bipartite import BipartiteGraph
from recgraph.models.retrieval.pop import Pop
from recgraph.train.artifacts import load_model, save_model


def test_pop_scores_are_training_counts(toy_graph):
    m = Pop(3, 4)
    m.prepare(toy_graph)
    assert m.score(torch.tensor([0, 2])).tolist() == [[2, 3, 2, 1]] * 2


def test_pop_counts_distinct_users_in_a_raw_log():
    # user 0 bought item 1 three times: it still counts once (as in the deduplicated graph)
    inter = Interactions(np.array([0, 0, 0, 1]), np.array([1, 1, 1, 0]), 2, 3)
    for g in (BipartiteGraph.from_interactions(inter), BipartiteGraph.from_interactions(inter, dedupe=False)):
        m = Pop(2, 3)
        m.prepare(g)
        assert m.counts.tolist() == [1, 1, 0]


def test_prepare_takes_the_graph(toy, toy_graph):
    m = Pop(3, 4)
    with pytest.raises(TypeError, match="BipartiteGraph.from_interactions"):
        m.prepare(toy)
    with pytest.raises(ValueError, match="3×5"):
        Pop(3, 5).prepare(toy_graph)


def test_corrupt_artifact_gives_clear_error(tmp_path, toy_graph):
    m = Pop(3, 4)
    m.prepare(toy_graph)
    save_model(tmp_path, m)
    (tmp_path / "artifact.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        load_model(tmp_path)
