"""The Ray engine: byte-identical to the local out-of-core build on real data, and a worker killed
mid-task is retried by Ray with the identical result. Ray starts in each test (slow on 2 cores:
these are the only two Ray tests)."""

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

from recgraph.graph.external import BuildOptions, build_graph  # noqa: E402
from recgraph.distributed.ray import build_graph_ray  # noqa: E402



def write_parts(folder: Path, cols: dict, n_parts: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    cuts = np.linspace(0, len(next(iter(cols.values()))), n_parts + 1).astype(int)
    for k in range(n_parts):
        pq.write_table(pa.table({c: v[cuts[k]:cuts[k + 1]] for c, v in cols.items()}), folder / f"p{k}.parquet")
    return folder


def _ml100k():
    from recgraph.config import resolve_data_dir

    if not (resolve_data_dir() / "movielens-100k").is_dir():
        pytest.skip("MovieLens-100K not found (set RECGRAPH_DATA)")
    from recgraph.data.datasets import load_dataset

    return load_dataset("movielens-100k").interactions


def _same_folder(a: Path, b: Path):
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for n in names:
        if n != "graph.json":  # it records the (different) partition paths and budget
            assert (a / n).read_bytes() == (b / n).read_bytes(), n


@pytest.mark.slow
def test_ray_engine_matches_local_and_survives_a_killed_worker(tmp_path, monkeypatch):
    ds = _ml100k()
    inp = write_parts(tmp_path / "in", {"user": ds.user, "item": ds.item, "timestamp": ds.timestamp}, 6)
    opt = BuildOptions(timestamp_col="timestamp", order="time", bucket_events=12000, chunk_rows=8000)
    build_graph(inp, tmp_path / "local", opt)

    # the first attempt of user bucket 3 writes its pid and sleeps 600 s before committing: we SIGKILL it.
    # A build that waited the victim out would take > 600 s; a retried one takes what the build takes (~60 s
    # quiet, ~125 s at load 6, which is why the bound is 300 s and the sleep twice that)
    pidfile = tmp_path / "victim.pid"
    monkeypatch.setenv("RECGRAPH_BUILD_FAULT", "user-bucket-mid:3:sleep600")
    monkeypatch.setenv("RECGRAPH_BUILD_FAULT_PIDFILE", str(pidfile))
    killed = []

    def killer():
        t0 = time.time()
        while time.time() - t0 < 180 and not pidfile.exists():
            time.sleep(0.05)
        time.sleep(0.2)
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    t0 = time.time()
    g = build_graph_ray(inp, tmp_path / "ray", opt, num_cpus=2)
    th.join(timeout=5)
    assert killed, "the victim task never started"
    assert time.time() - t0 < 300, "the killed task was waited out instead of retried"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # the worker is really gone
    _same_folder(tmp_path / "local", tmp_path / "ray")
    assert g.n_edges == len(ds.user) and isinstance(g.u_indices, np.memmap)


@pytest.mark.slow
def test_ppr_as_ray_tasks_equals_one_process(tmp_path):
    from recgraph.distributed.ray import graph_ppr_ray
    from recgraph.graph.external import open_graph
    from recgraph.graph.streaming import graph_ppr

    ds = _ml100k()
    inp = write_parts(tmp_path / "in", {"user": ds.user, "item": ds.item}, 3)
    build_graph(inp, tmp_path / "g")
    rng = np.random.default_rng(0)
    us, its = rng.choice(943, 150, replace=False), rng.choice(1682, 90, replace=False)
    kw = dict(topk=16, eps=1e-4, alpha=0.2)
    ref = graph_ppr(open_graph(tmp_path / "g"), us, its, workdir=tmp_path / "w1", **kw)
    got = graph_ppr_ray(tmp_path / "g", us, its, workdir=tmp_path / "w2", batch_sources=64, num_cpus=2, **kw)
    for r, o in zip(ref, got):  # batches of 64 sources (one mixes users and items) → the same rows, same order
        np.testing.assert_array_equal(o.sources, r.sources)
        np.testing.assert_array_equal(o.indices, r.indices)
        np.testing.assert_array_equal(o.scores, r.scores)
        assert o.num_pushes == r.num_pushes


@pytest.mark.slow
def test_macro_tables_as_ray_tasks_equal_local_files(tmp_path):
    """Every table file of the Ray macro job equals the local out_dir build's, byte for byte (row ranges of
    97 rows as tasks, so every table is cut into several parts)."""
    from recgraph.distributed.ray import build_macro_ray
    from recgraph.graph.external import open_graph
    from recgraph.graph.streaming import build_macro_graph_from_graph

    ds = _ml100k()
    inp = write_parts(tmp_path / "in", {"user": ds.user, "item": ds.item, "timestamp": ds.timestamp}, 2)
    build_graph(inp, tmp_path / "g", BuildOptions(timestamp_col="timestamp", dedupe=False, order="time"))
    cat = np.random.default_rng(0).integers(0, 30, ds.n_items)
    kw = dict(category=cat, user_k=8, recent=10, max_slots=16, id_dtype=np.int32)
    ref = build_macro_graph_from_graph(open_graph(tmp_path / "g"), out_dir=tmp_path / "local", **kw)
    got = build_macro_ray(tmp_path / "g", tmp_path / "ray", rows_per_task=97, num_cpus=2, **kw)
    assert got.info["tasks"] > 6 and not (tmp_path / "ray" / ".work").exists()
    _same_folder(tmp_path / "local", tmp_path / "ray")
    np.testing.assert_array_equal(got.user_macro, ref.user_macro)
    np.testing.assert_array_equal(got.item_macro, ref.item_macro)
    # with a memory budget (1 MiB per task; the products read from disk chunk by chunk): the same files
    build_macro_ray(tmp_path / "g", tmp_path / "ray_budget", rows_per_task=400, num_cpus=2, memory_budget=2**21, **kw)
    _same_folder(tmp_path / "local", tmp_path / "ray_budget")
