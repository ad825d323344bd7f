"""Shared fixtures of the serving tests: small real runs trained once per session on MovieLens-100K
(MF-BPR, ItemKNN, a small RankGraph-2) and a real uvicorn server on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time

import pytest


def _require_ml100k():
    from recgraph.config import resolve_data_dir

    folder = resolve_data_dir() / "movielens-100k"
    if not folder.is_dir():
        pytest.skip(f"real-data test: MovieLens-100K not found at {folder}; point RECGRAPH_DATA at the datasets folder")


def _train(tmp_path_factory, model: str, epochs: int | None, seed: int = 0, **model_args):
    from recgraph.train.runner import ExperimentConfig, run

    _require_ml100k()
    out = tmp_path_factory.mktemp(f"run-{model}-{seed}") / "run"
    rec = run(ExperimentConfig(model=model, dataset="movielens-100k", epochs=epochs, seed=seed, device="cpu",
                               progress=False, out=str(out), model_args=model_args), return_model=True)
    return out, rec


@pytest.fixture(scope="session")
def bpr_run(tmp_path_factory):
    """MF-BPR, 10 epochs: (run folder, record with the trained model under "model")."""
    return _train(tmp_path_factory, "bpr", 10)


@pytest.fixture(scope="session")
def bpr_run_seed1(tmp_path_factory):
    """A second MF-BPR run (seed 1): the folder a hot reload swaps in."""
    return _train(tmp_path_factory, "bpr", 3, seed=1)


@pytest.fixture(scope="session")
def itemknn_run(tmp_path_factory):
    return _train(tmp_path_factory, "itemknn", None)


@pytest.fixture(scope="session")
def din_run(tmp_path_factory):
    """DIN (ranking, MacGNN quantile protocol on MovieLens-100K), one epoch: the ranker stage."""
    return _train(tmp_path_factory, "din", 1)


@pytest.fixture(scope="session")
def rankgraph_run(tmp_path_factory):
    """A small RankGraph-2 (d=32, one epoch of large batches): enough for its co-learned RQ indexes
    and the U2I2I / U2U2I paths, not for quality."""
    return _train(tmp_path_factory, "rankgraph", 1, dim=32, batch_size=8192, rq_items_k=16, rq_users_k=16)


class LiveServer:
    """A real uvicorn server for ``app`` in a thread, on a free 127.0.0.1 port."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="session")
def live_server():
    """The :class:`LiveServer` class (test modules here are not a package, so it comes as a fixture)."""
    return LiveServer
