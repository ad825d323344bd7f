"""The DCCL runner end to end on a small real slice (60 MovieLens users): stages, the no-device users'
identity at the MetaPatch stage, run-folder artifacts (ONNX agreeing with PyTorch, theta, report)."""

import json

import numpy as np
import pytest

from recgraph.train.dccl import DCCLConfig, run_dccl


@pytest.fixture(scope="module")
def small_data():
    from tests.conftest import _require_ml100k

    _require_ml100k()
    from recgraph.data.datasets import load_dataset
    from recgraph.data.sequence_ctr import build_sequence_ctr

    inter = load_dataset("movielens-100k").interactions
    return build_sequence_ctr(inter.select(np.flatnonzero(inter.user < 60)), neg_ratio=1, recent=5, seed=0)


@pytest.mark.slow
def test_run_dccl_small(small_data, tmp_path):
    cfg = DCCLConfig(dataset="movielens-100k", rounds=1, dim=8, hidden=(16, 8), vec_dim=4, patch_rank=3,
                     cloud_epochs=2, distill_epochs=1, device_steps=4, device_eval_every=2, recent=5,
                     n_groups=4, device_fraction=0.7, out=str(tmp_path / "run"))
    rec = run_dccl(cfg, data=small_data)
    assert list(rec["stages"]) == ["cloud", "metapatch", "round1_cloud_alone", "momodistill_round1"]
    st = rec["stages"]
    # users without device training keep theta = 0, and the round-0 basis is the identity at 0:
    # at the MetaPatch stage they are scored exactly like the cloud model
    assert st["metapatch"]["no_device_users"] == st["cloud"]["no_device_users"]
    assert st["cloud"]["no_device_users"]["n"] + st["cloud"]["device_users"]["n"] == len(small_data.test)
    assert len(st["cloud"]["groups"]) == 4
    assert abs(st["cloud"]["macro_auc"] - np.mean([g["auc"] for g in st["cloud"]["groups"]])) < 1e-12
    run = tmp_path / "run"
    theta = np.load(run / "device" / "theta.npz")["theta"]
    assert theta.shape == (small_data.n_users, 4)
    assert (np.abs(theta).sum(1) > 0).sum() == rec["device_cost"]["device_users"]
    o = rec["ondevice"]
    assert o["max_abs_diff_vs_torch"] < 1e-5 and o["onnx_bytes"] == (run / "ondevice" / "model.onnx").stat().st_size
    assert json.loads((run / "metrics.json").read_text())["final_stage"] == "momodistill_round1"
    from recgraph.report.html import write_dccl_report

    page = write_dccl_report(run / "report.html", rec).read_text()
    assert page.count("data:image/png;base64") == 1 and "momodistill_round1" in page


def test_cli_rounds_only_for_dccl():
    from typer.testing import CliRunner

    from recgraph.cli import app

    res = CliRunner().invoke(app, ["train", "lightgcn", "--dataset", "movielens-100k", "--rounds", "2"])
    assert res.exit_code == 2 and "dccl" in res.output
