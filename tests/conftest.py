"""Shared fixtures: the real MovieLens-100K split and the baselines trained on it once per session,
so every "model X must beat Pop and MF-BPR" test compares against the same default-schedule runs."""

import pytest

from recgraph.config import resolve_data_dir


def _require_ml100k():
    folder = resolve_data_dir() / "movielens-100k"
    if not folder.is_dir():
        pytest.skip(f"real-data test: MovieLens-100K not found at {folder}; point RECGRAPH_DATA at the "
                    "datasets folder (../shared/datasets in this project), or run `recgraph quickstart` "
                    "once online to download it")


@pytest.fixture(scope="session")
def ml100k_split():
    """Per-user random 80/10/10 split of MovieLens-100K, seed 0 (the quickstart's split)."""
    _require_ml100k()
    from recgraph.data.datasets import load_dataset
    from recgraph.data.split import random_ratio

    return random_ratio(load_dataset("movielens-100k").interactions, seed=0)


@pytest.fixture(scope="session")
def ml100k_baselines(ml100k_split):
    """Test metrics of Pop, MF-BPR and LightGCN with their default training schedules
    (early-stopped on validation NDCG@20)."""
    from recgraph.train.runner import ExperimentConfig, run as run_experiment

    return {m: run_experiment(ExperimentConfig(model=m, dataset="movielens-100k", device="cpu", progress=False),
                              split=ml100k_split)["metrics"] for m in ("pop", "bpr", "lightgcn")}
