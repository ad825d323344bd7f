"""recgraph.serve.app against a real uvicorn server on a free loopback port: known / unknown users,
bad bodies, k bounds, exclude_seen, I2I, metrics, hot reload under traffic (admin endpoint and
SIGHUP to a `recgraph serve` process), the OpenAPI schema fuzzed by schemathesis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from recgraph.serve.app import Service, create_app


@pytest.fixture(scope="module")
def server(bpr_run, live_server):
    service = Service(bpr_run[0], threads=None)
    with live_server(create_app(service, handle_sighup=False)) as srv:
        srv.service = service
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def test_health_names_model_index_and_artifact(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["generation"] == 0
    r = h["retrieval"]
    assert r["model"] == "bpr" and r["index"] == "Flat" and r["sources"] == ["u2i"]
    assert (r["n_users"], r["n_items"]) == (943, 1682)
    assert r["artifact"]["format"] == 1 and r["artifact"]["recgraph_version"]


def test_known_user(client, server):
    engine = server.service.engine
    body = client.post("/recommend", json={"user": "1", "k": 7}).json()
    items = [row["item"] for row in body["items"]]
    assert len(items) == 7 and body["model"] == "bpr"
    assert items == engine.run.items.to_raw(engine.recommend(user="1", k=7).items)
    seen = set(engine.run.items.to_raw(engine.seen_items(0)))
    assert not seen & set(items)
    assert all(row["source"] == "u2i" and row["title"] for row in body["items"])
    scores = [row["score"] for row in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert {"lookup", "retrieve_u2i", "merge", "total"} <= set(body["timings_ms"])
    # integer ids are accepted as well as strings
    assert client.post("/recommend", json={"user": 1, "k": 7}).json()["items"] == body["items"]


def test_exclude_seen_false_can_return_seen_items(client, server):
    engine = server.service.engine
    seen = set(engine.run.items.to_raw(engine.seen_items(0)))
    body = client.post("/recommend", json={"user": "1", "k": 50, "exclude_seen": False}).json()
    assert seen & {row["item"] for row in body["items"]}


def test_unknown_user_is_404_and_says_send_a_history(client):
    r = client.post("/recommend", json={"user": "no-such-user"})
    assert r.status_code == 404 and "history" in r.json()["detail"]


def test_history_for_a_new_visitor(client):
    r = client.post("/recommend", json={"history": ["50", "172", "181", "ghost"], "k": 5})
    body = r.json()
    assert r.status_code == 200 and len(body["items"]) == 5
    assert body["history_used"] == 3 and body["skipped_history"] == ["ghost"]
    assert not {50, 172, 181} & {row["item"] for row in body["items"]}
    r = client.post("/recommend", json={"history": ["ghost", "0"]})
    assert r.status_code == 404 and "catalogue" in r.json()["detail"]


@pytest.mark.parametrize("body", [
    {"user": "1", "k": 0}, {"user": "1", "k": 1001}, {"user": "1", "k": "ten"}, {"user": "1", "k": 2.5},
    {"user": "1", "history": ["1"]}, {}, {"k": 5}, {"user": "1", "colour": "red"}, {"history": []},
    {"user": ""}, {"user": None}, {"user": True}, {"user": "1", "exclude_seen": "maybe"},
    {"user": "1", "sources": ["nope"]}, {"user": "1", "sources": []}, [1, 2], "user=1",
])
def test_bad_bodies_are_422(client, body):
    r = client.post("/recommend", json=body)
    assert r.status_code == 422, (body, r.text)


def test_source_the_run_does_not_serve_is_409(client):
    r = client.post("/recommend", json={"user": "1", "sources": ["u2i2i"]})
    assert r.status_code == 409 and "u2i" in r.json()["detail"]
    assert client.post("/recommend", json={"user": "1", "sources": ["u2i"]}).status_code == 200


@pytest.mark.parametrize("raw", [b"{user: 1", b"\xff\xfe\x00", b""])
def test_not_json_is_422(client, raw):
    r = client.post("/recommend", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text


def test_k_bounds(client):
    assert len(client.post("/recommend", json={"user": "1", "k": 1}).json()["items"]) == 1
    body = client.post("/recommend", json={"user": "1", "k": 1000}).json()
    assert len(body["items"]) == 1000  # user 1 has 218 training items: 1464 unseen


def test_similar(client):
    body = client.post("/similar", json={"item": "50", "k": 5}).json()
    assert len(body["items"]) == 5 and 50 not in [row["item"] for row in body["items"]]
    assert client.post("/similar", json={"item": "999999"}).status_code == 404
    assert client.post("/similar", json={"item": "50", "k": 0}).status_code == 422


def test_demo_endpoints(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    users = client.get("/users?limit=5").json()
    assert users == {"total": 943, "users": [1, 2, 3, 4, 5]}
    hist = client.get("/users/1/history?limit=3").json()
    assert hist["total"] == len(hist["items"]) + hist["total"] - 3 and len(hist["items"]) == 3
    assert client.get("/users/nobody/history").status_code == 404
    star = client.get("/items", params={"q": "star wars"}).json()
    assert star["total"] == 1 and star["items"][0]["title"] == "Star Wars (1977)"
    top = client.get("/items?limit=3").json()["items"]
    assert [r["count"] for r in top] == sorted([r["count"] for r in top], reverse=True)


def test_metrics_have_per_stage_timings(client):
    client.post("/recommend", json={"user": "2", "k": 5})
    text = client.get("/metrics").text
    assert 'recgraph_stage_seconds_count{endpoint="recommend",stage="retrieve_u2i"}' in text
    assert 'recgraph_stage_seconds_count{endpoint="recommend",stage="lookup"}' in text
    assert 'recgraph_http_requests_total{route="/recommend",status="404"}' in text
    n = float(text.split('recgraph_http_requests_total{route="/recommend",status="200"} ')[1].split()[0])
    client.post("/recommend", json={"user": "2", "k": 5})
    text = client.get("/metrics").text
    assert float(text.split('recgraph_http_requests_total{route="/recommend",status="200"} ')[1].split()[0]) == n + 1


def test_reload_under_traffic_fails_no_request(bpr_run, bpr_run_seed1, live_server):
    """Four client threads keep requesting while the admin endpoint swaps between two run folders
    three times: every request answers 200, and answers switch to the new model's."""
    service = Service(bpr_run[0], threads=None)
    with live_server(create_app(service, handle_sighup=False)) as srv:
        stop, results, lock = threading.Event(), [], threading.Lock()

        def hammer(seed):
            rng = np.random.default_rng(seed)
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                while not stop.is_set():
                    body = ({"user": str(rng.integers(1, 944)), "k": 10} if rng.random() < 0.7 else
                            {"history": [str(x) for x in rng.integers(1, 1683, 3)], "k": 10})
                    r = c.post("/recommend", json=body)
                    with lock:
                        results.append((r.status_code, r.json().get("generation") if r.status_code == 200 else r.text))

        threads = [threading.Thread(target=hammer, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        with httpx.Client(base_url=srv.url, timeout=120) as admin:
            time.sleep(0.3)
            for j, run in enumerate([bpr_run_seed1[0], bpr_run[0], bpr_run_seed1[0]]):
                r = admin.post("/admin/reload", json={"run": str(run)})
                assert r.status_code == 200 and r.json()["generation"] == j + 1
                time.sleep(0.2)
            stop.set()
            for t in threads:
                t.join()
            assert admin.get("/health").json()["retrieval"]["run"] == str(bpr_run_seed1[0])
            bad = admin.post("/admin/reload", json={"run": "/no/such/run"})
            assert bad.status_code == 404 and "still serving generation 3" in bad.json()["detail"]
            bad = admin.post("/admin/reload", json={"run": str(Path(bpr_run[0]) / "model")})
            assert bad.status_code == 409 and "config.json" in bad.json()["detail"]
            assert "recgraph_reloads_total{outcome=\"ok\"} 3.0" in admin.get("/metrics").text
    failures = [r for r in results if r[0] != 200]
    assert len(results) > 50 and not failures, failures[:5]
    assert {g for _, g in results} >= {0, 3}


def test_admin_token_and_non_loopback_bind(bpr_run, server, live_server):
    app = create_app(server.service, admin_token="s3cret", handle_sighup=False)
    with live_server(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        assert c.post("/admin/reload").status_code == 403
        assert c.post("/admin/reload", headers={"X-Admin-Token": "wrong"}).status_code == 403
        assert c.post("/admin/reload", headers={"X-Admin-Token": "s3cret"}).status_code == 200
    app = create_app(server.service, bind_host="0.0.0.0", handle_sighup=False)
    with live_server(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        r = c.post("/admin/reload")
        assert r.status_code == 403 and "admin-token" in r.json()["detail"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_reloads_on_sighup(bpr_run):
    """`recgraph serve RUN` in its own process: binds loopback, answers, and reloads on SIGHUP."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "recgraph.cli", "serve", str(bpr_run[0]), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise AssertionError(f"server did not come up: {proc.stdout.read().decode() if proc.poll() else ''}")
            time.sleep(0.2)
        assert httpx.post(url + "/recommend", json={"user": "3", "k": 3}).status_code == 200
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 60
        while httpx.get(url + "/health").json()["generation"] != 1:
            assert time.time() < deadline, "SIGHUP did not reload"
            assert httpx.post(url + "/recommend", json={"user": "3", "k": 3}).status_code == 200
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ------------------------------------------------------------------------------------ schemathesis
@pytest.fixture(scope="module")
def fuzz_server(bpr_run, live_server):
    """Its own server: fuzzed admin calls reload it."""
    with live_server(create_app(Service(bpr_run[0], threads=None), handle_sighup=False)) as srv:
        yield srv


@pytest.fixture(scope="module")
def api_schema(fuzz_server):
    import schemathesis

    return schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")


@pytest.fixture(scope="module")
def admin_schema(fuzz_server):
    import schemathesis

    return schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")


_st = pytest.importorskip("schemathesis")
schema = _st.pytest.from_fixture("api_schema").exclude(path="/admin/reload")
admin = _st.pytest.from_fixture("admin_schema").include(path="/admin/reload")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_openapi_fuzz_no_server_errors(case):
    """Bounded fuzzing (25 examples per operation, fixed seed) of every operation in the OpenAPI
    schema: no server error, status codes and bodies conform to the schema."""
    case.call_and_validate()


@admin.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_openapi_fuzz_admin_reload(case):
    """The reload endpoint, fewer examples (a valid call reloads the run: about a second each)."""
    case.call_and_validate()
