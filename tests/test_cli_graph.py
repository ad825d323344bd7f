"""``recgraph graph build | info`` (local engine; the Ray engine is tested in tests/distributed)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv  # noqa: F401  (pa.csv)
import pyarrow.parquet as pq
from typer.testing import CliRunner

from recgraph.cli import app
from recgraph.graph import BipartiteGraph
from recgraph.graph.external import open_graph


def test_graph_build_and_info(tmp_path):
    rng = np.random.default_rng(3)
    user, item, ts = rng.integers(0, 50, 3000), rng.integers(0, 40, 3000), rng.integers(0, 99, 3000)
    (tmp_path / "in").mkdir()
    for k in range(2):
        sl = slice(k * 1500, (k + 1) * 1500)
        pq.write_table(pa.table({"u": user[sl], "i": item[sl], "t": ts[sl]}), tmp_path / "in" / f"{k}.parquet")
    r = CliRunner().invoke(app, ["graph", "build", str(tmp_path / "in"), "--out", str(tmp_path / "g"),
                                 "--user-col", "u", "--item-col", "i", "--timestamp-col", "t", "--order", "time",
                                 "--memory-budget", "256MB"])
    assert r.exit_code == 0, r.output
    g = open_graph(tmp_path / "g")
    ref = BipartiteGraph.from_edges(user, item, 50, 40, timestamp=ts, order="time")
    for f in ("u_indptr", "u_indices", "u_timestamp", "i_indptr", "i_indices", "i_edge", "i_timestamp"):
        np.testing.assert_array_equal(getattr(g, f), getattr(ref, f))
    r = CliRunner().invoke(app, ["graph", "info", str(tmp_path / "g")])
    assert r.exit_code == 0 and json.loads(r.output)["n_edges"] == ref.n_edges
    r = CliRunner().invoke(app, ["graph", "build", str(tmp_path / "in"), "--out", str(tmp_path / "g2"),
                                 "--memory-budget", "lots"])
    assert r.exit_code == 2 and "not understood" in r.output
    r = CliRunner().invoke(app, ["graph", "build", str(tmp_path / "in"), "--out", str(tmp_path / "g2")])
    assert r.exit_code == 2 and "missing column(s) ['user', 'item']" in r.output.replace(chr(10), '')


def test_graph_slice_and_subsample(tmp_path):
    rng = np.random.default_rng(4)
    user, item, ts = rng.integers(0, 60, 4000), rng.integers(0, 50, 4000), rng.integers(0, 1000, 4000)
    pq.write_table(pa.table({"user": user, "item": item, "timestamp": ts}), tmp_path / "e.parquet")
    g = str(tmp_path / "g")
    assert CliRunner().invoke(app, ["graph", "build", str(tmp_path / "e.parquet"), "--out", g,
                                    "--timestamp-col", "timestamp"]).exit_code == 0
    r = CliRunner().invoke(app, ["graph", "slice", g, "--out", str(tmp_path / "s"), "--start", "100", "--end", "500"])
    assert r.exit_code == 0, r.output
    s = open_graph(tmp_path / "s")
    assert s.n_edges > 0 and s.u_timestamp.min() >= 100 and s.u_timestamp.max() < 500
    r = CliRunner().invoke(app, ["graph", "subsample", g, "--out", str(tmp_path / "sub"), "--keep-rate", "0.5"])
    assert r.exit_code == 0, r.output
    sub = open_graph(tmp_path / "sub")
    assert 0 < sub.n_edges < open_graph(g).n_edges
    assert np.load(tmp_path / "sub" / "inclusion_prob.npy").shape == (sub.n_edges,)
    r = CliRunner().invoke(app, ["graph", "subsample", g, "--out", str(tmp_path / "x"), "--keep-rate", "0.001"])
    assert r.exit_code == 2 and "degree floor" in r.output
    r = CliRunner().invoke(app, ["graph", "slice", str(tmp_path / "nothing"), "--out", str(tmp_path / "y")])
    assert r.exit_code == 2 and "graph.json" in r.output.replace(chr(10), "")


def test_graph_macro_tables_to_disk(tmp_path):
    """``recgraph graph macro``: the same files as build_macro_graph_from_graph(out_dir=...); bad category
    files are refused naming the file and the row."""
    from recgraph.graph.streaming import build_macro_graph_from_graph

    rng = np.random.default_rng(5)
    user, item, ts = rng.integers(0, 70, 5000), rng.integers(0, 45, 5000), rng.integers(0, 500, 5000)
    pq.write_table(pa.table({"user": user, "item": item, "timestamp": ts}), tmp_path / "e.parquet")
    g = str(tmp_path / "g")
    assert CliRunner().invoke(app, ["graph", "build", str(tmp_path / "e.parquet"), "--out", g, "--timestamp-col",
                                    "timestamp", "--order", "time", "--no-dedupe"]).exit_code == 0
    cat = rng.integers(0, 12, 45)
    pa.csv.write_csv(pa.table({"item": np.arange(45), "category": cat}), tmp_path / "cat.csv")
    r = CliRunner().invoke(app, ["graph", "macro", g, "--out", str(tmp_path / "m"), "--categories",
                                 str(tmp_path / "cat.csv"), "--user-k", "6", "--recent", "5", "--max-slots", "8"])
    assert r.exit_code == 0, r.output
    build_macro_graph_from_graph(open_graph(g), category=cat, user_k=6, recent=5, max_slots=8, id_dtype=np.int32,
                                 out_dir=tmp_path / "ref")
    names = sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "m").iterdir()) and "u2_cnt.npy" in names
    assert "u1_ptr.npy" in names  # 13 item macros > 8 slots: ragged tables
    for n in names:
        assert (tmp_path / "m" / n).read_bytes() == (tmp_path / "ref" / n).read_bytes(), n
    r = CliRunner().invoke(app, ["graph", "macro", g, "--out", str(tmp_path / "mb"), "--categories",
                                 str(tmp_path / "cat.csv"), "--user-k", "6", "--recent", "5", "--max-slots", "8",
                                 "--memory-budget", "1MB"])  # products on disk: the same files
    assert r.exit_code == 0, r.output
    assert names == sorted(p.name for p in (tmp_path / "mb").iterdir())
    for n in names:
        assert (tmp_path / "mb" / n).read_bytes() == (tmp_path / "ref" / n).read_bytes(), n
    r = CliRunner().invoke(app, ["graph", "macro", g, "--out", str(tmp_path / "x"), "--memory-budget", "lots"])
    assert r.exit_code == 2 and "not understood" in r.output
    pa.csv.write_csv(pa.table({"item": np.array([0, 99]), "category": np.array([1, 2])}), tmp_path / "bad.csv")
    r = CliRunner().invoke(app, ["graph", "macro", g, "--out", str(tmp_path / "x"), "--categories",
                                 str(tmp_path / "bad.csv")])
    assert r.exit_code == 2 and "row 2, column 'item': id 99 outside [0, 45)" in r.output.replace(chr(10), "")
    np.save(tmp_path / "short.npy", np.zeros(10, np.int64))
    r = CliRunner().invoke(app, ["graph", "macro", g, "--out", str(tmp_path / "x"), "--categories",
                                 str(tmp_path / "short.npy")])
    assert r.exit_code == 2 and "expected 45 integer category ids" in r.output.replace(chr(10), "")
    # --recent 0: the slot tables of a graph without timestamps (deduplicated, item order)
    g2 = str(tmp_path / "g2")
    assert CliRunner().invoke(app, ["graph", "build", str(tmp_path / "e.parquet"), "--out", g2]).exit_code == 0
    r = CliRunner().invoke(app, ["graph", "macro", g2, "--out", str(tmp_path / "m2"), "--categories",
                                 str(tmp_path / "cat.csv"), "--recent", "0", "--max-slots", "8"])
    assert r.exit_code == 0, r.output
    files = sorted(p.name for p in (tmp_path / "m2").iterdir())
    assert "i2_ptr.npy" in files and not any("rec" in f for f in files)
    r = CliRunner().invoke(app, ["graph", "macro", g2, "--out", str(tmp_path / "m3"), "--recent", "-1"])
    assert r.exit_code == 2 and "--recent" in r.output
    r = CliRunner().invoke(app, ["graph", "macro", g2, "--out", str(tmp_path / "m4"), "--categories",
                                 str(tmp_path / "cat.csv")])  # recent lists need a time-ordered graph: said first
    assert r.exit_code == 2 and "--order time" in r.output and not (tmp_path / "m4" / "u1_ids.npy").exists()
