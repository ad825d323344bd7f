"""LightGCN must beat Pop and MF-BPR on real data by a clear margin (the issue's acceptance test).

Same split, same evaluator, each model with its default training schedule (early-stopped on the
validation split; the test split is only read for the final numbers)."""

import pytest

from recgraph.config import resolve_data_dir
from recgraph.data.datasets import load_dataset
from recgraph.data.split import random_ratio
from recgraph.train.experiment import ExperimentConfig, run_experiment

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (resolve_data_dir() / "movielens-100k").is_dir(),
                                 reason="MovieLens-100K not in the data dir (set RECGRAPH_DATA)")]


@pytest.fixture(scope="module")
def results():
    split = random_ratio(load_dataset("movielens-100k").interactions, seed=0)
    return {m: run_experiment(ExperimentConfig(model=m, dataset="movielens-100k", device="cpu", progress=False),
                              split=split)["metrics"] for m in ("pop", "bpr", "lightgcn")}


@pytest.mark.parametrize("metric", ["recall@20", "ndcg@20"])
def test_lightgcn_beats_pop_and_bpr_clearly(results, metric):
    lgcn, bpr, pop = results["lightgcn"][metric], results["bpr"][metric], results["pop"][metric]
    assert lgcn >= 1.5 * pop, f"LightGCN {lgcn:.4f} vs Pop {pop:.4f}"
    assert lgcn >= 1.05 * bpr, f"LightGCN {lgcn:.4f} vs MF-BPR {bpr:.4f}"


def test_bpr_beats_pop(results):
    assert results["bpr"]["ndcg@20"] >= 1.5 * results["pop"]["ndcg@20"]
