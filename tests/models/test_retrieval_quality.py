"""LightGCN must beat Pop and MF-BPR on real data by a clear margin (the issue's acceptance test).

Same split, same evaluator, each model with its default training schedule (early-stopped on the
validation split; the test split is only read for the final numbers). Fixtures: tests/conftest.py."""

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("metric", ["recall@20", "ndcg@20"])
def test_lightgcn_beats_pop_and_bpr_clearly(ml100k_baselines, metric):
    lgcn, bpr, pop = (ml100k_baselines[m][metric] for m in ("lightgcn", "bpr", "pop"))
    assert lgcn >= 1.5 * pop, f"LightGCN {lgcn:.4f} vs Pop {pop:.4f}"
    assert lgcn >= 1.05 * bpr, f"LightGCN {lgcn:.4f} vs MF-BPR {bpr:.4f}"


def test_bpr_beats_pop(ml100k_baselines):
    assert ml100k_baselines["bpr"]["ndcg@20"] >= 1.5 * ml100k_baselines["pop"]["ndcg@20"]
