"""recgraph.serve.rank: a saved CTR model re-scores the merged candidates through its one-user
request path; scores equal the model on the same (user, item) samples built the batch way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recgraph.io import ArtifactError
from recgraph.serve.rank import load_ranker
from recgraph.serve.recommend import Engine, load_run


@pytest.fixture(scope="module")
def ranker(din_run):
    return load_ranker(din_run[0])


def test_request_scores_equal_batch_scores(ranker):
    """``score`` (one user, B candidates, user side gathered once) equals the model on the same B
    (user, item) samples through ``CTRData.batch`` at the same (latest) snapshot."""
    from recgraph.data.ctr import CTRSamples

    data, u, items = ranker.data, 4, np.array([0, 7, 49, 180, 1000, 1681])
    got = ranker.score(str(u + 1), None, [str(i + 1) for i in items])
    n = len(items)
    t = int(data.features.cutoffs[ranker.snapshot])
    samples = CTRSamples(np.full(n, u, np.int64), items.astype(np.int64), np.zeros(n, np.float32),
                         np.full(n, t, np.int64), np.full(n, ranker.snapshot, np.int64))
    with torch.no_grad():
        want = ranker.model(data.batch(samples, None, ranker.needs, **ranker.batch_kwargs)).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.isnan(ranker.score("5", None, ["no-such-item", "8"])[0])
    assert ranker.score(None, ["8"], ["8"]) is None and ranker.score("nobody", None, ["8"]) is None


def test_engine_reranks_retrieved_candidates(bpr_run, ranker):
    run = load_run(bpr_run[0])
    plain = Engine(run)
    e = Engine(run, ranker=ranker, n_candidates=60)
    rec = e.recommend(user="7", k=10)
    assert rec.ranked and "rank" in rec.timings and rec.candidates == {"u2i": 60}
    pool = plain.recommend(user="7", k=60).items
    assert set(rec.items) <= set(pool)
    scores = ranker.score("7", None, run.items.to_raw(pool))
    want = pool[np.argsort(-scores, kind="stable")[:10]]
    np.testing.assert_array_equal(rec.items, want)
    np.testing.assert_allclose(rec.scores, np.sort(scores)[::-1][:10], rtol=1e-5)
    visitor = e.recommend(history=["50", "181"], k=10)  # no user for the ranker: retrieval order stands
    assert not visitor.ranked
    np.testing.assert_array_equal(visitor.items, plain.recommend(history=["50", "181"], k=10).items)


def test_wrong_kind_of_run(bpr_run, tmp_path):
    with pytest.raises(ArtifactError, match="not a ranking"):
        load_ranker(bpr_run[0])
    with pytest.raises(ArtifactError):
        load_ranker(tmp_path)


def test_served_with_a_ranker(bpr_run, din_run, live_server):
    import httpx

    from recgraph.serve.app import Service, create_app

    with live_server(create_app(Service(bpr_run[0], ranker=din_run[0], threads=None), handle_sighup=False)) as srv:
        h = httpx.get(srv.url + "/health").json()["retrieval"]
        assert h["ranker"]["model"] == "din" and h["ranker"]["run"] == str(din_run[0])
        body = httpx.post(srv.url + "/recommend", json={"user": "7", "k": 10}).json()
        assert body["ranker"] == "din" and body["ranked"] and "rank" in body["timings_ms"]
        scores = [r["score"] for r in body["items"]]
        assert scores == sorted(scores, reverse=True)
        assert 'stage="rank"' in httpx.get(srv.url + "/metrics").text
