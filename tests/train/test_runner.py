"""run_experiment: optimizer settings reach the Trainer and are recorded."""

import numpy as np
import pytest

from recgraph.data.schema import Interactions
from recgraph.data.split import Split
from recgraph.train.runner import ExperimentConfig, run as run_experiment


def tiny_split(n_users=40, n_items=30, seed=0):
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_users), 6)
    i = np.concatenate([rng.choice(n_items, 6, replace=False) for _ in range(n_users)])
    train = Interactions(u[np.arange(len(u)) % 6 != 0], i[np.arange(len(u)) % 6 != 0], n_users, n_items)
    test = Interactions(u[::6], i[::6], n_users, n_items)
    return Split(train, test, None, {"split": "toy"})


def run(**kw):
    kw.setdefault("epochs", 3)
    cfg = ExperimentConfig(model="bpr", dataset="toy", device="cpu", progress=False,
                           model_args={"batch_size": 32, "init_std": 0.1, "reg": 0.0}, **kw)
    return run_experiment(cfg, split=tiny_split(), return_model=True)


def test_weight_decay_and_optimizer_reach_the_trainer():
    plain, decayed = run(), run(weight_decay=0.5, lr=1e-2)
    assert plain["train"]["weight_decay"] == 0.0 and plain["train"]["optimizer"] == "adam"
    assert decayed["train"]["weight_decay"] == 0.5
    # coupled L2 on every row shrinks the tables (a lost setting would leave them the same size)
    norm = lambda rec: float(rec["model"].user_emb.weight.detach().norm())  # noqa: E731
    assert norm(decayed) < 0.8 * norm(run(lr=1e-2))
    sgd = run(optimizer="sgd")
    assert sgd["train"]["optimizer"] == "sgd"
    with pytest.raises(ValueError, match="optimizer .lion.: use adam"):
        run(optimizer="lion")


def test_lr_schedule_is_recorded_and_resume_needs_out(tmp_path):
    cos = run(lr_schedule="cosine", lr=1e-2)
    assert cos["train"]["lr_schedule"] == "cosine"
    assert [h["lr"] for h in cos["train"]["history"]] == pytest.approx([1e-2, 7.5e-3, 2.5e-3])
    assert run()["train"]["lr_schedule"] == "constant"
    with pytest.raises(ValueError, match="resume=True needs out"):
        run(resume=True)
    with pytest.raises(ValueError, match="at least 1 epoch"):
        run(epochs=0)
    # a finished run resumed from its own checkpoint trains nothing more and ends on the same model
    first = run(out=str(tmp_path / "r"), lr=1e-2)
    again = run(out=str(tmp_path / "r"), lr=1e-2, resume=True)
    assert len(again["train"]["history"]) == 3
    np.testing.assert_array_equal(first["model"].user_emb.weight.detach().numpy(),
                                  again["model"].user_emb.weight.detach().numpy())
