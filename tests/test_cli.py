"""The command line, end to end on real data (small models so it stays quick)."""

import json

import pytest
from typer.testing import CliRunner

from recgraph.cli import app
from recgraph.config import parse_model_args, resolve_data_dir

runner = CliRunner()
needs_ml100k = pytest.mark.skipif(not (resolve_data_dir() / "movielens-100k").is_dir(),
                                  reason="MovieLens-100K not in the data dir (set RECGRAPH_DATA)")


@needs_ml100k
def test_train_writes_metrics_json_and_eval_reproduces_it(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "itemknn", "--dataset", "movielens-100k", "--seed", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "metrics.json").read_text())
    for key in ("model", "dataset", "protocol", "metrics", "seconds", "peak_memory_bytes", "seed", "version",
                "git_commit"):
        assert key in rec
    assert rec["model"] == "itemknn" and rec["seed"] == 3
    assert rec["protocol"]["split"] == "random-ratio" and rec["protocol"]["ks"] == [10, 20]
    assert "training items" in rec["protocol"]["excluded"]
    assert 0.2 < rec["metrics"]["recall@20"] < 0.6
    res = runner.invoke(app, ["eval", str(out)])
    assert res.exit_code == 0, res.output
    assert f"{rec['metrics']['recall@20']:.4f}" in res.output


@needs_ml100k
def test_datasets_lists_known_datasets():
    res = runner.invoke(app, ["datasets"])
    assert res.exit_code == 0, res.output
    for name in ("movielens-100k", "lightgcn-gowalla", "taobao-userbehavior-sample"):
        assert name in res.output


def test_unknown_model_and_dataset_give_clear_errors(tmp_path):
    res = runner.invoke(app, ["train", "nosuchmodel", "--dataset", "movielens-100k", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown model" in res.output
    res = runner.invoke(app, ["train", "pop", "--dataset", "nosuchdata", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "nosuchdata" in res.output


def test_set_pairs_parse_json_values_else_strings_and_reject_missing_equals(tmp_path):
    assert parse_model_args(["reg=1e-3", "sampling=user", "fanouts=[10, 5]", "note=a=b"]) == {
        "reg": 1e-3, "sampling": "user", "fanouts": [10, 5], "note": "a=b"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_model_args(["reg"])
    res = runner.invoke(app, ["train", "pop", "--dataset", "movielens-100k", "--set", "reg", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output


@needs_ml100k
def test_train_lr_schedule_and_resume(tmp_path):
    out = tmp_path / "run"
    base = ["train", "bpr", "--dataset", "movielens-100k", "--epochs", "2", "--eval-every", "1", "--out", str(out)]
    res = runner.invoke(app, base + ["--lr-schedule", "cosine"])
    assert res.exit_code == 0, res.output
    first = json.loads((out / "metrics.json").read_text())
    assert first["train"]["lr_schedule"] == "cosine"
    assert [h["lr"] for h in first["train"]["history"]] == pytest.approx([1e-3, 5e-4])
    res = runner.invoke(app, base + ["--lr-schedule", "cosine", "--resume"])  # finished: nothing left to train
    assert res.exit_code == 0, res.output
    again = json.loads((out / "metrics.json").read_text())
    assert again["metrics"] == first["metrics"]
    res = runner.invoke(app, base + ["--lr-schedule", "linear"])
    assert res.exit_code != 0 and "--lr-schedule 'linear': use constant or cosine" in res.output


def test_checkpoint_every_must_be_positive(tmp_path):
    res = runner.invoke(app, ["train", "bpr", "--dataset", "movielens-100k", "--checkpoint-every", "0",
                              "--out", str(tmp_path)])
    assert res.exit_code == 2 and "checkpoint-every" in res.output


def test_ranking_runs_are_saved_resumable_and_re_evaluable(tmp_path):
    """A CTR model's run folder holds its artifact and feature tables; --resume continues it (and
    refuses another seed); `recgraph eval` reproduces the recorded metrics."""
    out = tmp_path / "lr"
    base = ["train", "lr", "--dataset", "movielens-100k", "--protocol", "leave-last-out", "--epochs", "2",
            "--device", "cpu", "--out", str(out)]
    res = runner.invoke(app, base)
    assert res.exit_code == 0, res.output
    for f in ("config.json", "metrics.json", "model/artifact.json", "model/weights.safetensors", "features.npz",
              "vocab.npz", "checkpoint/last/meta.json"):
        assert (out / f).exists(), f
    first = json.loads((out / "metrics.json").read_text())
    assert first["task"] == "ctr" and first["train"]["epochs_run"] == 2
    res = runner.invoke(app, base + ["--resume"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "metrics.json").read_text())["metrics"] == first["metrics"]
    res = runner.invoke(app, base + ["--resume", "--seed", "1"])
    assert res.exit_code == 2 and "different settings" in res.output and "seed" in res.output
    res = runner.invoke(app, ["eval", str(out)])
    assert res.exit_code == 0, res.output
    assert f"{first['metrics']['auc']:.4f}" in res.output
