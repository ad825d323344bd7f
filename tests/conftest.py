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


# ----------------------------------------------------------------------------- multi-task (issue 17)

@pytest.fixture(scope="session")
def small_mt_log():
    """A small hand-made multi-behaviour log (a test fixture, not a benchmark): 30 users, 40 items in
    5 categories, 8 days of views with carts / favs / buys hours after some views (likelier on some
    items, so the labels are learnable), some carts without a view."""
    import numpy as np

    from recgraph.data.schema import Interactions

    rng = np.random.default_rng(0)
    day, n_users, n_items, n_days = 86400, 30, 40, 8
    t0 = 1_511_539_200  # 2017-11-25 00:00 UTC+8
    n = 1500
    u = rng.integers(0, n_users, n)
    i = (u * 3 + rng.integers(0, 12, n)) % n_items       # users prefer a band of items
    t = t0 + rng.integers(0, n_days * day, n)
    us, its, ts, bs = [u], [i], [t], [np.zeros(n, np.int8)]
    for code, k in ((1, 3), (2, 5), (3, 4)):              # cart / fav / buy after a view, likelier for i % k == 0
        m = rng.random(n) < np.where(i % k == 0, 0.5, 0.08)
        us.append(u[m]), its.append(i[m]), bs.append(np.full(m.sum(), code, np.int8))
        ts.append(np.minimum(t[m] + rng.integers(0, 2 * day, m.sum()), t0 + n_days * day - 1))
    m = rng.random(n) < 0.1                               # carts without a view
    us.append(u[m]), its.append(rng.integers(0, n_items, m.sum())), bs.append(np.full(m.sum(), 1, np.int8))
    ts.append(t[m])
    return Interactions(np.concatenate(us).astype(np.int64), np.concatenate(its).astype(np.int64), n_users, n_items,
                        timestamp=np.concatenate(ts).astype(np.int64), behavior=np.concatenate(bs),
                        behavior_names=("pv", "cart", "fav", "buy"), item_features={"category": np.arange(n_items) % 5},
                        name="small-log")
