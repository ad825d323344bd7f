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
    assert list(rec["stages"]) == ["cloud", "metapatch", "cloud_plus1_bce_no_kl", "round1_cloud_alone",
                                   "momodistill_round1"]
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


TINY = dict(dataset="movielens-100k", max_users=40, rounds=1, dim=8, hidden=(16, 8), vec_dim=4, patch_rank=3,
            cloud_epochs=1, distill_epochs=1, device_steps=2, device_eval_every=1, recent=5, n_groups=4,
            device_fraction=0.7)


def test_lr_grids_chosen_on_validation_and_control_stage():
    from tests.conftest import _require_ml100k

    _require_ml100k()
    grids = {"lr_grid": (1e-3, 1e-2), "ref_lr_grid": (1e-3, 1e-2), "device_lr_grid": (0.01, 0.1),
             "distill_lr_grid": (1e-3, 1e-2), "basis_lr_grid": (1e-3, 1e-2), "control_lr_grid": (1e-3, 1e-2)}
    rec = run_dccl(DCCLConfig(**TINY, reference=("din",), onnx=False, **grids))
    hp = rec["hyperparameters"]
    assert set(hp) == {"lr", "device_lr", "distill_lr", "basis_lr", "control_lr", "din_lr"}
    for name, h in hp.items():
        scores = h["valid_ndcg@10"]
        assert len(h["grid"]) == len(scores) == 2 and h["how"].startswith("grid on validation")
        assert h["value"] == h["grid"][int(np.argmax(scores))]  # the first best on validation
    assert rec["train"]["cloud"]["lr"] == hp["lr"]["value"] and rec["train"]["din"]["lr"] == hp["din_lr"]["value"]
    assert rec["train"]["round1_device"]["lr"] == hp["device_lr"]["value"]
    assert list(rec["stages"]) == ["cloud", "metapatch", "cloud_plus1_bce_no_kl", "round1_cloud_alone",
                                   "momodistill_round1", "din"]
    # without grids every rate is the given one
    rec = run_dccl(DCCLConfig(**{**TINY, "rounds": 0}, onnx=False, lr=2e-3, device_lr=0.07))
    assert rec["hyperparameters"]["lr"] == {"value": 2e-3, "how": "given", "grid": [2e-3], "valid_ndcg@10": [
        rec["train"]["cloud"]["best_valid"]]}
    assert rec["hyperparameters"]["device_lr"]["value"] == 0.07


def test_dccl_run_folder_is_re_evaluable(tmp_path):
    """`recgraph eval RUN` on a DCCL run: files checked, the deployed model rebuilt, the final stage's
    sampled metrics and macro-AUC recomputed equal to metrics.json; a changed file is refused."""
    from typer.testing import CliRunner

    from recgraph.cli import app
    from recgraph.io import ArtifactError
    from recgraph.train.runner import evaluate_run, load_run
    from tests.conftest import _require_ml100k

    _require_ml100k()
    run = tmp_path / "run"
    rec = run_dccl(DCCLConfig(**TINY, out=str(run)))
    now, before = evaluate_run(run)
    for key in ("hit@10", "ndcg@10", "auc", "macro_auc", "device_users.ndcg@10", "no_device_users.auc"):
        assert abs(now[key] - before[key]) < 1e-9, key
    assert before["macro_auc"] == rec["metrics"]["macro_auc"]
    res = CliRunner().invoke(app, ["eval", str(run)])
    assert res.exit_code == 0, res.output
    assert "macro_auc" in res.output and "re-evaluated" in res.output
    with pytest.raises(ArtifactError, match="DCCL"):
        load_run(run)  # recommend / serve say what they cannot do
    w = run / "model" / "weights.safetensors"
    raw = bytearray(w.read_bytes())
    raw[-1] ^= 1
    w.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="sha256"):
        evaluate_run(run)
    res = CliRunner().invoke(app, ["eval", str(run)])
    assert res.exit_code != 0 and "sha256" in res.output
