"""Out-of-core build: byte-identical to the in-memory BipartiteGraph, resumable, clear errors."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from recgraph.graph import BipartiteGraph
from recgraph.graph.bipartite import _ARRAY_FIELDS
from recgraph.graph.external import BuildOptions, build_graph, open_graph, parse_bytes, save_graph


def write_parts(folder: Path, cols: dict, n_parts: int, fmt: str = "parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(cols.values())))
    cuts = np.linspace(0, n, n_parts + 1).astype(int)
    for k in range(n_parts):
        t = pa.table({c: v[cuts[k]:cuts[k + 1]] for c, v in cols.items()})
        if fmt == "parquet":
            pq.write_table(t, folder / f"part-{k:03d}.parquet", row_group_size=997)
        else:
            pcsv.write_csv(t, folder / f"part-{k:03d}.csv")
    return folder


def assert_same_files(ref: BipartiteGraph, built: Path, tmp: Path):
    """Every array file of the out-of-core build equals, byte for byte, the in-memory graph's."""
    save_graph(ref, tmp / "ref")
    names = sorted(p.name for p in (tmp / "ref").glob("*.npy"))
    assert names == sorted(p.name for p in built.glob("*.npy"))
    for name in names:
        assert (tmp / "ref" / name).read_bytes() == (built / name).read_bytes(), name


@pytest.fixture(scope="module")
def ml100k():
    from recgraph.config import resolve_data_dir

    if not (resolve_data_dir() / "movielens-100k").is_dir():
        pytest.skip("MovieLens-100K not found (set RECGRAPH_DATA)")
    from recgraph.data.datasets import load_dataset

    return load_dataset("movielens-100k").interactions


@pytest.mark.parametrize("order", ["item", "time"])
def test_movielens_byte_identical_to_in_memory(ml100k, tmp_path, order):
    ds = ml100k
    inp = write_parts(tmp_path / "in", {"user": ds.user, "item": ds.item, "timestamp": ds.timestamp}, 3)
    opt = BuildOptions(timestamp_col="timestamp", order=order, n_users=ds.n_users, n_items=ds.n_items,
                       bucket_events=9000, chunk_rows=4000)  # ~12 user and item buckets, many chunks
    g = build_graph(inp, tmp_path / "g", opt)
    assert isinstance(g.u_indices, np.memmap) and isinstance(g.i_edge, np.memmap)
    ref = BipartiteGraph.from_interactions(ds, order=order)
    assert_same_files(ref, tmp_path / "g", tmp_path)
    assert not (tmp_path / "g" / ".work").exists()
    # the memory-mapped graph answers like the in-memory one
    np.testing.assert_array_equal(g.user_degree, ref.user_degree)
    np.testing.assert_array_equal(g.item_degree, ref.item_degree)
    assert g.describe() == ref.describe()
    assert (g.to_scipy() != ref.to_scipy()).nnz == 0


def test_duplicates_ties_behaviours_counts_csv(tmp_path):
    """Repeated pairs with tied timestamps across partitions: "last in input order wins" must
    survive the split into partitions and buckets; CSV input; users/items without edges."""
    rng = np.random.default_rng(0)
    e = 6000
    user = rng.integers(0, 150, e)
    item = rng.integers(0, 90, e)
    ts = rng.integers(0, 20, e)
    beh = rng.integers(0, 4, e).astype(np.int8)
    inp = write_parts(tmp_path / "in", {"u": user, "i": item, "t": ts, "b": beh}, 4, fmt="csv")
    for order in ("item", "time"):
        opt = BuildOptions(user_col="u", item_col="i", timestamp_col="t", behavior_col="b", order=order,
                           keep_counts=True, n_users=160, n_items=95, bucket_events=700, chunk_rows=500)
        build_graph(inp, tmp_path / order, opt)
        g = open_graph(tmp_path / order)
        # CSV reads the behaviour column back as int64: compare with the same dtype
        ref = BipartiteGraph.from_edges(user, item, 160, 95, timestamp=ts, behavior=beh.astype(np.int64),
                                        order=order, keep_counts=True)
        assert_same_files(ref, tmp_path / order, tmp_path / f"r-{order}")
        assert g.u_count.sum() == e and g.n_edges < e


def _build_killed_at(ds, tmp_path, monkeypatch, fault: str):
    """MovieLens in 4 partitions, built with ``RECGRAPH_BUILD_FAULT=fault`` until the injected fault stops it."""
    inp = write_parts(tmp_path / "in", {"user": ds.user, "item": ds.item, "timestamp": ds.timestamp}, 4)
    opt = BuildOptions(timestamp_col="timestamp", bucket_events=20000, chunk_rows=5000)
    monkeypatch.setenv("RECGRAPH_BUILD_FAULT", fault)
    with pytest.raises(RuntimeError, match="injected fault"):
        build_graph(inp, tmp_path / "g", opt)
    return inp, opt


def test_killed_build_resumes_from_finished_partitions(ml100k, tmp_path, monkeypatch):
    ds = ml100k
    inp, opt = _build_killed_at(ds, tmp_path, monkeypatch, "user-bucket:2:raise")
    done_spills = sorted(p.name for p in (tmp_path / "g" / ".work" / "user-spill").iterdir())
    done_buckets = sorted(p.name for p in (tmp_path / "g" / ".work" / "user-bucket").iterdir())
    assert done_spills == [f"p{p:06d}" for p in range(4)] and done_buckets == [f"b{b:06d}" for b in range(3)]
    left = {f.name.split(".")[0] for f in (tmp_path / "g" / ".work" / "user-spill").rglob("b*.*")}
    assert left and not left & set(done_buckets)  # a committed bucket's spilled rows are deleted, the rest kept
    monkeypatch.delenv("RECGRAPH_BUILD_FAULT")
    logs = []
    g = build_graph(inp, tmp_path / "g", opt, log=logs.append)
    assert any("resuming" in s for s in logs) and "spill: 0 to run" in logs
    assert any(s.startswith("user-bucket: ") and not s.startswith("user-bucket: 0") for s in logs)
    assert g.n_edges == ds.user.shape[0]
    ref = BipartiteGraph.from_interactions(ds)
    assert_same_files(ref, tmp_path / "g", tmp_path)  # the work folder is gone, the result is identical


def test_killed_scan_and_item_steps_resume_without_redoing_finished_work(ml100k, tmp_path, monkeypatch):
    """A build killed while scanning keeps its finished scans; one killed in the item steps does not
    spill the users again (their spill is deleted once the user buckets are done)."""
    ds = ml100k
    inp, opt = _build_killed_at(ds, tmp_path, monkeypatch, "scan:2:raise")
    assert sorted(p.name for p in (tmp_path / "g" / ".work" / "scan").iterdir()) == ["p000000", "p000001", "p000002"]
    monkeypatch.setenv("RECGRAPH_BUILD_FAULT", "item-bucket:1:raise")
    logs = []
    with pytest.raises(RuntimeError, match="injected fault"):
        build_graph(inp, tmp_path / "g", opt, log=logs.append)
    assert "scan: 1 to run" in logs
    assert not (tmp_path / "g" / ".work" / "user-spill").exists()
    assert not (tmp_path / "g" / ".work" / "scan").exists()  # deleted once planned (38 GB at 1B when dense)
    monkeypatch.delenv("RECGRAPH_BUILD_FAULT")
    logs = []
    g = build_graph(inp, tmp_path / "g", opt, log=logs.append)
    assert any("resuming" in s for s in logs)
    assert {"spill: 0 to run", "user-bucket: 0 to run", "item-spill: 0 to run"} <= set(logs)
    assert g.n_edges == ds.user.shape[0]
    assert_same_files(BipartiteGraph.from_interactions(ds), tmp_path / "g", tmp_path)


def test_driver_holds_one_scan_histogram_at_a_time(tmp_path):
    """Regression (the 1B build's OOM): every partition's scan histogram spans all user ids, so
    holding them all costs partitions x 8 bytes x users. 30 partitions over 2M user ids: 480 MB if the
    driver kept them; the build's own arrays are a few 16 MB vectors."""
    import tracemalloc

    rng = np.random.default_rng(0)
    n_users, n_parts = 2_000_000, 30
    for k in range(n_parts):
        user = np.append(rng.integers(0, n_users, 99), n_users - 1)
        write_parts(tmp_path / "in", {"user": user, "item": rng.integers(0, 50, 100)}, 1)
        (tmp_path / "in" / "part-000.parquet").rename(tmp_path / "in" / f"p{k:03d}.parquet")
    tracemalloc.start()
    try:
        g = build_graph(tmp_path / "in", tmp_path / "g", BuildOptions(memory_budget=parse_bytes("1GB")))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert g.n_users == n_users and int(g.user_degree.sum()) <= 3000
    assert peak < 200e6, f"driver peak {peak / 1e6:.0f} MB"


def test_other_input_or_options_start_over(tmp_path):
    user, item = np.array([0, 1, 2, 1]), np.array([1, 0, 1, 0])  # (1, 0) twice
    inp = write_parts(tmp_path / "in", {"user": user, "item": item}, 1)
    g1 = build_graph(inp, tmp_path / "g", BuildOptions())
    assert g1.n_edges == 3
    g2 = build_graph(inp, tmp_path / "g", BuildOptions(dedupe=False))
    assert g2.n_edges == 4 and not g2.deduped


@pytest.mark.parametrize("bad, match", [
    ({"user": pa.array([0, None, 2], pa.int64()), "item": pa.array([0, 1, 2])}, r"row 1, column 'user': missing value"),
    ({"user": pa.array([0, 1, 2]), "item": pa.array([0, -4, 2])}, r"row 1, column 'item': negative id -4"),
    ({"user": pa.array(["a", "b", "c"]), "item": pa.array([0, 1, 2])}, r"column 'user' has type string"),
    ({"uid": pa.array([0]), "item": pa.array([0])}, r"missing column\(s\) \['user'\]"),
])
def test_bad_input_names_file_row_column(tmp_path, bad, match):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table(bad), tmp_path / "in" / "p.parquet")
    with pytest.raises((ValueError, TypeError), match=match) as info:
        build_graph(tmp_path / "in", tmp_path / "g", BuildOptions())
    assert "p.parquet" in str(info.value)


def test_ids_beyond_given_sizes_and_budget_errors(tmp_path):
    inp = write_parts(tmp_path / "in", {"user": np.array([0, 5]), "item": np.array([0, 1])}, 1)
    with pytest.raises(ValueError, match=r"column 'user' holds id 5, outside \[0, 3\)"):
        build_graph(inp, tmp_path / "g", BuildOptions(n_users=3))
    with pytest.raises(ValueError, match="raise --memory-budget"):
        build_graph(inp, tmp_path / "g2", BuildOptions(memory_budget=parse_bytes("1MB")))
    assert parse_bytes("4GB") == 4 * 2**30 and parse_bytes("1.5G") == 3 * 2**29 and parse_bytes(512) == 512
    with pytest.raises(ValueError, match="not understood"):
        parse_bytes("4 parsecs")
