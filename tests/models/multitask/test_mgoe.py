"""MGOE: task-specific macro graphs reach only where the design says, the dynamic tower fuses
across tasks, the request path equals the batch path, and one training run beats chance."""

import numpy as np
import pytest
import torch

from recgraph.graph.task_graphs import build_multitask_data
from recgraph.models.multitask.mgoe import MGOE


@pytest.fixture(scope="module")
def data(small_mt_log):
    return build_multitask_data(small_mt_log, ("cart", "fav", "buy"), min_positives=1)


def _model(d, **kw):
    torch.manual_seed(0)
    f = d.features
    return MGOE(d.n_users, d.n_items, f.n_user_macros, f.n_item_macros, n_tasks=3, dim=4, **kw).eval()


def _perturb_task_graph(b, k):
    import dataclasses

    side = b.task_user[k]
    new = dataclasses.replace(side, hop1_cnt=side.hop1_cnt * 5 + (side.hop1_ids < 2).float() * 3)
    tu = tuple(new if j == k else s for j, s in enumerate(b.task_user))
    return dataclasses.replace(b, task_user=tu)


def test_task_graph_reaches_other_tasks_only_through_gates_and_fusion(data):
    b = data.batch(data.test, None, _model(data).needs)
    iso = _model(data, macro_bottom=False, dynamic_tower=False)
    out, pert = iso(b), iso(_perturb_task_graph(b, 2))
    assert torch.allclose(out[:, :2], pert[:, :2])                  # no bottom, static tower: own task only
    assert not torch.allclose(out[:, 2], pert[:, 2])
    full = _model(data)
    out, pert = full(b), full(_perturb_task_graph(b, 2))
    assert not torch.allclose(out[:, 0], pert[:, 0])                # gates over all experts + dynamic fusion
    a = full.last_fusion
    assert a.shape == (len(b), 3, 3) and torch.allclose(a.sum(-1), torch.ones(len(b), 3, dtype=a.dtype))


def test_shared_graphs_ablation_reads_the_shared_graph(data):
    m = _model(data, shared_graphs=True)
    assert m.needs == frozenset({"recent", "macro"})
    b = data.batch(data.test, None, m.needs)
    assert b.task_user == () and m(b).shape == (len(b), 3)


def test_request_scores_equal_batch_scores_and_weighted_sum(data):
    m = _model(data).double()
    s = data.test
    user = int(s.user[0])
    rows = np.flatnonzero((s.user == user) & (s.snapshot == s.snapshot[0]))
    req = data.request(user, s.item[rows], int(s.snapshot[0]), m.needs).to(None, torch.float64)
    bat = data.batch(s, rows, m.needs).to(None, torch.float64)
    assert torch.allclose(m(req), m(bat), atol=1e-10)
    w = [0.2, 0.3, 0.5]
    assert torch.allclose(m.score(req, w), torch.sigmoid(m(bat)) @ torch.tensor(w, dtype=torch.float64))
    with pytest.raises(ValueError, match="2 task weight"):
        m.score(req, [1.0, 2.0])


@pytest.mark.parametrize("name", ["mgoe", "mmoe", "ple", "shared-bottom", "macgnn"])
def test_runner_trains_every_model_above_chance(data, name, tmp_path):
    from recgraph.io import read_json
    from recgraph.train.runner import ExperimentConfig, load_run, run

    rec = run(ExperimentConfig(name, "small-log", tasks=("cart", "fav", "buy"), epochs=4, patience=10, device="cpu",
                               progress=False, model_args={"dim": 8}, out=str(tmp_path)), data=data)
    assert load_run(tmp_path).task == "multitask"  # saved like every other run
    m = read_json(tmp_path / "metrics.json")["metrics"]
    assert set(m["per_task"]) == {"cart", "fav", "buy"} and m["auc_mean"] == pytest.approx(
        np.mean([m["per_task"][t]["auc"] for t in ("cart", "fav", "buy")]))
    # users prefer a band of items in the fixture: the training signal is learnable
    assert rec["metrics"]["per_task"]["buy"]["auc"] > 0.55, rec["metrics"]


def test_gathered_slot_path_equals_whole_table_path(data):
    m = _model(data, experts_per_task=1).double()
    b = data.batch(data.test, None, m.needs).to(None, torch.float64)
    whole = m(b)  # fixture: 6 item macros, so every neighbourhood takes the whole-table path
    m._pool = lambda att, q, ids, cnt, table: att(q, table(ids), cnt > 0, torch.log1p(cnt) / m.tau)  # gathered
    assert torch.allclose(m(b), whole, atol=1e-12)
