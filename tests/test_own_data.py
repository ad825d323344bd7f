"""Your own data from the CLI: a CSV with string ids and ISO-8601 timestamps trains, is recorded
(sha256 + column mapping) and re-evaluates, for a retrieval and a ranking model."""

import datetime as dt
import gzip
import hashlib
import json

import pytest
from typer.testing import CliRunner

from recgraph.cli import app
from recgraph.config import resolve_data_dir

runner = CliRunner()


@pytest.fixture(scope="module")
def own_csv(tmp_path_factory):
    src = resolve_data_dir() / "movielens-100k" / "u.data.gz"
    if not src.exists():
        pytest.skip(f"real-data test: {src} not found; point RECGRAPH_DATA at the datasets folder")
    rows = [line.split("\t") for line in gzip.open(src, "rt").read().splitlines()[:30000]]
    path = tmp_path_factory.mktemp("own") / "my ratings.csv"
    with open(path, "w") as f:
        f.write("user_id,movie,rating,when\n")
        for u, i, r, t in rows:
            when = dt.datetime.fromtimestamp(int(t), dt.timezone.utc).isoformat()
            f.write(f"user-{u},film_{i},{r},{when}\n")
    return path


def _cols(path):
    return ["--data", str(path), "--user", "user_id", "--item", "movie", "--time", "when", "--rating", "rating",
            "--positive-threshold", "4"]


def test_retrieval_on_own_csv_records_data_and_re_evaluates(own_csv, tmp_path):
    out = tmp_path / "bpr"
    res = runner.invoke(app, ["train", "bpr", *_cols(own_csv), "--split", "leave-last-out", "--epochs", "2",
                              "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data"]["sha256"] == hashlib.sha256(own_csv.read_bytes()).hexdigest()
    assert cfg["data"]["columns"] == {"user": "user_id", "item": "movie", "time": "when", "rating": "rating"}
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["protocol"]["split"] == "leave-last-out" and rec["metrics"]["recall@20"] > 0
    import numpy as np

    vocab = np.load(out / "vocab.npz")
    assert str(vocab["user"][0]).startswith("user-") and str(vocab["item"][0]).startswith("film_")
    res = runner.invoke(app, ["eval", str(out)])
    assert res.exit_code == 0 and f"{rec['metrics']['recall@20']:.4f}" in res.output, res.output
    # the file changed after training: re-evaluation refuses rather than scoring other data
    own_csv.write_text(own_csv.read_text() + "user-1,film_1,5,1998-01-01T00:00:00+00:00\n")
    try:
        res = runner.invoke(app, ["eval", str(out)])
        assert res.exit_code == 2 and "the file changed" in " ".join(res.output.split())
    finally:
        own_csv.write_text("".join(own_csv.read_text().splitlines(keepends=True)[:-1]))


def test_ranking_on_own_csv(own_csv, tmp_path):
    out = tmp_path / "din"
    res = runner.invoke(app, ["train", "din", *_cols(own_csv), "--protocol", "leave-last-out", "--epochs", "1",
                              "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["task"] == "ctr" and 0.5 < rec["metrics"]["auc"] < 1.0
    assert rec["protocol"]["labels"].startswith("rating >= 4")


@pytest.mark.parametrize("args, message", [
    (["--data", "nope.csv", "--user", "u", "--item", "i"], "no such file"),
    (["--data", "."], "is a directory"),
    (["--data", "x.csv"], "--user COL and --item COL"),
    (["--user", "u"], "add --data PATH"),
    ([], "name the data"),
])
def test_own_data_options_fail_clearly(args, message, tmp_path):
    if "x.csv" in args:
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        args = ["--data", str(tmp_path / "x.csv")]
    res = runner.invoke(app, ["train", "bpr", *args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output


def test_quickstart_on_own_csv(own_csv, tmp_path):
    """`recgraph quickstart --data ...`: the newcomer's second command works on their own file."""
    out = tmp_path / "qs"
    res = runner.invoke(app, ["quickstart", *_cols(own_csv), "--models", "pop,itemknn", "--split", "leave-last-out",
                              "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "metrics.json").read_text())
    assert [r["model"] for r in rec["runs"]] == ["pop", "itemknn"]
    assert rec["runs"][1]["metrics"]["recall@20"] > rec["runs"][0]["metrics"]["recall@20"]  # ItemKNN beats Pop
    assert (out / "report.html").exists() and (out / "itemknn" / "model" / "artifact.json").exists()
