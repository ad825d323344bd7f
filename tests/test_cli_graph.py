"""``recgraph graph build | info`` (local engine; the Ray engine is tested in tests/distributed)."""

import json

import numpy as np
import pyarrow as pa
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
