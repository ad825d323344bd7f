"""PLE / CGC against a direct reading of the paper: task gates see only their own and the shared
experts; the shared branch (gate over all experts) exists between levels only."""

import pytest
import torch

from recgraph.models.multitask.ple import ExtractionLevel


def _level(shared_out):
    lv = ExtractionLevel(2, n_tasks=2, task_experts=1, shared_experts=1, expert_hidden=(1,), shared_out=shared_out)
    with torch.no_grad():  # task 0 expert relu(x0), task 1 expert relu(x1), shared relu(x0 + x1)
        for f, w in ((lv.task_experts[0][0], [1.0, 0.0]), (lv.task_experts[1][0], [0.0, 1.0]),
                     (lv.shared_experts[0], [1.0, 1.0])):
            f[0].weight.copy_(torch.tensor([w]))
            f[0].bias.zero_()
        for g in lv.task_gates:
            g.weight.zero_()
        if lv.shared_gate is not None:
            lv.shared_gate.weight.zero_()
    return lv


def test_cgc_by_hand():
    lv = _level(shared_out=True)
    x = torch.tensor([[2.0, 1.0]])
    with torch.no_grad():
        lv.task_gates[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))  # logits [x0, 0] = [2, 0]
    t0, t1, s = lv([x, x, x])
    assert t0.item() == pytest.approx(0.5 * 2 + 0.5 * 3)             # uniform over [own, shared]
    w = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    assert t1.item() == pytest.approx(w[0].item() * 1 + w[1].item() * 3, abs=1e-6)
    assert s.item() == pytest.approx((2 + 1 + 3) / 3)                 # shared gate: all three experts


def test_task_gate_never_sees_the_other_tasks_experts_but_levels_connect_them():
    x = torch.tensor([[2.0, 1.0], [0.5, -1.0]])
    one = _level(shared_out=False)
    before = one([x, x, x])[0]
    with torch.no_grad():
        one.task_experts[1][0][0].weight.mul_(7.0)
    assert torch.allclose(one([x, x, x])[0], before)                  # CGC: task 0 ignores task 1's expert
    first, last = _level(shared_out=True), ExtractionLevel(1, 2, 1, 1, (1,), shared_out=False)
    out = last(first([x, x, x]))[0]
    with torch.no_grad():
        first.task_experts[1][0][0].weight.mul_(7.0)
    assert not torch.allclose(last(first([x, x, x]))[0], out)         # 2 levels: via the shared gate
