"""Multi-task ranking in the service: a saved multi-task run (MGOE on the Taobao UserBehavior sample,
tasks cart / fav / buy) re-scores the retrieved candidates by the weighted sum of task
probabilities the request sends; every item carries each task's probability. Checked against the
model on the same (user, item) samples built the batch way, and against a real uvicorn server
(validation: unknown task, negative / NaN / all-zero weights, weights without a multi-task ranker)."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, settings
import numpy as np
import pytest
import torch

from recgraph.serve.app import Service, create_app
from recgraph.serve.rank import MultiTaskRanker, load_ranker
from recgraph.serve.recommend import Engine, TaskWeightError, load_run

TASKS = ("cart", "fav", "buy")


def _require_taobao():
    from recgraph.config import resolve_data_dir

    if not (resolve_data_dir() / "taobao-userbehavior-sample").is_dir():
        pytest.skip("real-data test: taobao-userbehavior-sample not found; point RECGRAPH_DATA at the datasets folder")


def _runs(root, loaded, mt_epochs: int = 1):
    """A BPR retrieval run and an MGOE multi-task run (d = 8) on the same interactions (same raw ids):
    ``(bpr folder, mgoe folder, the MultiTaskData MGOE was trained on)``."""
    from recgraph.train.runner import ExperimentConfig, _multitask_data, run

    name = loaded.info["dataset"]
    run(ExperimentConfig(model="bpr", dataset=name, epochs=1, seed=0, device="cpu", progress=False,
                         out=str(root / "bpr")), loaded=loaded)
    cfg = ExperimentConfig(model="mgoe", dataset=name, tasks=TASKS, epochs=mt_epochs, seed=0, device="cpu",
                           progress=False, out=str(root / "mgoe"), model_args={"dim": 8})
    data = _multitask_data(cfg, loaded)
    run(cfg, loaded=loaded, data=data)  # loaded too: the folder's vocab.npz comes from it
    return root / "bpr", root / "mgoe", data


@pytest.fixture(scope="module")
def taobao_runs(tmp_path_factory):
    """One epoch each on the 814-user Taobao sample (enough to serve, not for quality)."""
    from recgraph.train.runner import ExperimentConfig, load_data

    _require_taobao()
    loaded = load_data(ExperimentConfig(model="bpr", dataset="taobao-userbehavior-sample"))
    return _runs(tmp_path_factory.mktemp("taobao-serve"), loaded)


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory, small_mt_log):
    """The same on the small hand-made multi-behaviour log of tests/conftest.py (seconds, not a benchmark)."""
    from recgraph.train.runner import LoadedData

    loaded = LoadedData(small_mt_log, None, {"dataset": "small-log", "given": "in memory (test fixture)"})
    return _runs(tmp_path_factory.mktemp("small-mt-serve"), loaded, mt_epochs=2)


@pytest.fixture(scope="module")
def mt_ranker(small_runs):
    return load_ranker(small_runs[1])


def _check_request_equals_batch(mt_ranker, data, u: int, items: np.ndarray) -> None:
    """The run folder alone (``features.npz`` + ``task_features.npz``) gives, through the one-user
    request path, the same per-task probabilities as the model on the same samples through the
    training data's ``batch`` at the latest snapshot."""
    from recgraph.data.multitask import MultiTaskSamples

    assert isinstance(mt_ranker, MultiTaskRanker) and mt_ranker.tasks == TASKS
    assert "task_macro" in mt_ranker.needs  # MGOE reads every task graph's macro slots
    raw_u = mt_ranker.users.to_raw([u])[0]
    got = mt_ranker.score_tasks(raw_u, None, mt_ranker.items.to_raw(items))
    snap = mt_ranker.snapshot
    n = len(items)
    s = MultiTaskSamples(np.full(n, u, np.int64), items.astype(np.int64),
                         np.full(n, int(data.features.cutoffs[snap]), np.int64), np.full(n, snap, np.int64),
                         np.zeros((n, len(TASKS)), np.float32))
    with torch.no_grad():
        want = torch.sigmoid(mt_ranker.model(data.batch(s, None, mt_ranker.needs))).double().numpy()
    assert got.shape == (n, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    w = mt_ranker.weights({"cart": 0.2, "buy": 1.0})
    np.testing.assert_allclose(w, [0.2, 0.0, 1.0])
    np.testing.assert_allclose(mt_ranker.score(raw_u, None, mt_ranker.items.to_raw(items), {"cart": 0.2, "buy": 1.0}),
                               want @ w, rtol=1e-6)
    np.testing.assert_allclose(mt_ranker.weights(None), [1 / 3] * 3)
    assert np.isnan(mt_ranker.score_tasks(raw_u, None, ["no-such-item"])).all()
    assert mt_ranker.score_tasks(None, ["1"], ["1"]) is None


def test_saved_task_tables_give_the_batch_scores(small_runs, mt_ranker):
    _check_request_equals_batch(mt_ranker, small_runs[2], 3, np.array([0, 5, 17, 22, 39]))


@pytest.mark.slow  # builds the Taobao sample's per-task macro graphs and trains two models (~40 s)
def test_saved_task_tables_give_the_batch_scores_taobao(taobao_runs):
    data = taobao_runs[2]
    _check_request_equals_batch(load_ranker(taobao_runs[1]), data, 3, np.array([0, 5, 17, 1000, 30000,
                                                                                data.n_items - 1]))


@pytest.mark.parametrize("weights, match", [({"cat": 1.0}, "cart"), ({"buy": -1.0}, ">= 0"),
                                            ({"buy": float("nan")}, "finite"), ({"buy": "x"}, "number")])
def test_bad_task_weights(mt_ranker, weights, match):
    with pytest.raises(TaskWeightError, match=match):
        mt_ranker.weights(weights)


def test_engine_ranks_by_the_weighted_sum(small_runs, mt_ranker):
    run = load_run(small_runs[0])
    plain = Engine(run)
    e = Engine(run, ranker=mt_ranker, n_candidates=20)
    user = run.users.to_raw([10])[0]
    pool = plain.recommend(user=user, k=20).items
    p = mt_ranker.score_tasks(user, None, run.items.to_raw(pool))
    for weights, w in ((None, np.full(3, 1 / 3)), ({"buy": 1.0}, np.array([0, 0, 1.0])),
                       ({"cart": 0.2, "buy": 1.0}, np.array([0.2, 0, 1.0]))):
        rec = e.recommend(user=user, k=10, task_weights=weights)
        assert rec.ranked and rec.tasks == TASKS
        order = np.lexsort((np.arange(20), -(p @ w)))[:10]  # ties: retrieval order
        np.testing.assert_array_equal(rec.items, pool[order])
        np.testing.assert_allclose(rec.task_scores, p[order], rtol=1e-6)
        np.testing.assert_allclose(rec.scores, (p @ w)[order], rtol=1e-5)
        np.testing.assert_allclose(rec.task_weights, w)
    with pytest.raises(TaskWeightError, match="multi-task ranker"):
        plain.recommend(user=user, k=10, task_weights={"buy": 1.0})


def test_served_with_a_multitask_ranker(small_runs, live_server):
    bpr, mgoe, _ = small_runs
    with live_server(create_app(Service(bpr, ranker=mgoe, threads=None), handle_sighup=False)) as srv:
        c = httpx.Client(base_url=srv.url, timeout=30)
        h = c.get("/health").json()["retrieval"]["ranker"]
        assert h["model"] == "mgoe" and h["tasks"] == list(TASKS)
        user = c.get("/users?limit=3").json()["users"][2]
        body = c.post("/recommend", json={"user": user, "k": 8, "task_weights": {"cart": 0.2, "buy": 1}}).json()
        assert body["ranked"] and body["ranker"] == "mgoe"
        assert body["task_weights"] == {"cart": 0.2, "fav": 0.0, "buy": 1.0}
        for row in body["items"]:
            ts = row["task_scores"]
            assert set(ts) == set(TASKS)
            assert row["score"] == pytest.approx(0.2 * ts["cart"] + ts["buy"], rel=1e-5)
        scores = [r["score"] for r in body["items"]]
        assert scores == sorted(scores, reverse=True) and len(scores) == 8
        default = c.post("/recommend", json={"user": user, "k": 8}).json()
        assert default["task_weights"] == pytest.approx({t: 1 / 3 for t in TASKS})
        for row in default["items"]:
            assert row["score"] == pytest.approx(np.mean(list(row["task_scores"].values())), rel=1e-5)
        # validation: 422 with a message naming the known tasks / the rule
        r = c.post("/recommend", json={"user": user, "task_weights": {"click": 1.0}})
        assert r.status_code == 422 and all(t in json.dumps(r.json()["detail"]) for t in TASKS)
        schema = c.get("/openapi.json").text  # the schema lists the ranker's tasks
        assert all(f'"{t}"' in schema for t in TASKS)
        for bad in ({"buy": -0.5}, {"buy": "1"}, {"buy": True}, {}, {"buy": 1, "cart": 1, "fav": 1, "click": 1}):
            assert c.post("/recommend", json={"user": user, "task_weights": bad}).status_code == 422, bad
        zero = c.post("/recommend", json={"user": user, "k": 8, "task_weights": {"buy": 0}}).json()  # retrieval order
        assert [r["item"] for r in zero["items"]] == [r["item"] for r in sorted(
            zero["items"], key=lambda r: -r["retrieval_score"])] and {r["score"] for r in zero["items"]} == {0.0}
        raw = json.dumps({"user": user, "task_weights": {"buy": float("nan")}})  # Python writes NaN
        r = c.post("/recommend", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422
        # a visitor has no user for the ranker: retrieval order, no task scores
        items = c.get("/items?limit=3").json()["items"]
        v = c.post("/recommend", json={"history": [i["item"] for i in items], "k": 5}).json()
        assert not v["ranked"] and all(row.get("task_scores") is None for row in v["items"])
        c.close()
    with live_server(create_app(Service(bpr, threads=None), handle_sighup=False)) as srv:
        r = httpx.post(srv.url + "/recommend", json={"user": user, "task_weights": {"buy": 1.0}})
        assert r.status_code == 422 and "task_weights" in json.dumps(r.json()["detail"])  # not part of this body


@pytest.fixture(scope="module")
def mt_fuzz_schema(small_runs, live_server):
    import schemathesis

    bpr, mgoe, _ = small_runs
    with live_server(create_app(Service(bpr, ranker=mgoe, threads=None), handle_sighup=False)) as srv:
        yield schemathesis.openapi.from_url(srv.url + "/openapi.json")


_st = pytest.importorskip("schemathesis")
_mt_schema = _st.pytest.from_fixture("mt_fuzz_schema").include(path="/recommend")


@_mt_schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_openapi_fuzz_multitask_recommend(case):
    """The multi-task body (task_weights keyed by the ranker's tasks) fuzzed: no server error, every
    schema-valid body accepted, responses conform to the schema."""
    case.call_and_validate()
