"""MMoE against a hand computation of the paper's eq. 5-6 (softmax gate mixing of shared experts)."""

import math

import pytest
import torch

from recgraph.models.multitask.mmoe import MMoE, MixtureOfExperts


def _set_experts(moe):
    with torch.no_grad():  # expert 0 = relu(x0), expert 1 = relu(x1)
        for j, f in enumerate(moe.experts):
            f[0].weight.copy_(torch.tensor([[1.0, 0.0]]) if j == 0 else torch.tensor([[0.0, 1.0]]))
            f[0].bias.zero_()


def test_gate_softmax_mixing_by_hand():
    moe = MixtureOfExperts(2, n_experts=2, expert_hidden=(1,), n_gates=2)
    _set_experts(moe)
    with torch.no_grad():
        moe.gates[0].weight.copy_(torch.eye(2))        # gate 0 logits = x
        moe.gates[1].weight.zero_()                    # gate 1 uniform
    x = torch.tensor([[2.0, 1.0], [-1.0, 3.0]])
    out = moe(x)                                       # [B, gates, 1]
    w = math.exp(2) / (math.exp(2) + math.exp(1))      # softmax([2, 1])[0] = 0.7311
    assert out[0, 0, 0].item() == pytest.approx(w * 2 + (1 - w) * 1, abs=1e-6)
    assert out[0, 1, 0].item() == pytest.approx(0.5 * 2 + 0.5 * 1, abs=1e-6)
    w2 = math.exp(-1) / (math.exp(-1) + math.exp(3))   # row 2: experts relu(-1)=0, relu(3)=3
    assert out[1, 0, 0].item() == pytest.approx(w2 * 0 + (1 - w2) * 3, abs=1e-6)
    assert out[1, 1, 0].item() == pytest.approx(1.5, abs=1e-6)


def test_gates_have_no_bias_and_experts_are_shared_by_every_task():
    m = MMoE(5, 6, 2, 3, n_tasks=3, dim=4, n_experts=4)
    assert len(m.moe.experts) == 4 and len(m.moe.gates) == 3 and len(m.towers) == 3
    assert all(g.bias is None and g.weight.shape == (4, 24) for g in m.moe.gates)


def test_tower_k_reads_mixture_k(small_mt_log):
    from recgraph.graph.task_graphs import build_multitask_data

    d = build_multitask_data(small_mt_log, ("cart", "buy"), min_positives=1)
    m = MMoE(d.n_users, d.n_items, d.features.n_user_macros, d.features.n_item_macros, n_tasks=2, dim=4).eval()
    b = d.batch(d.test, None, m.needs)
    z = m.moe(m.encoder(b)[0])
    want = torch.cat([m.towers[k](z[:, k]) for k in range(2)], dim=-1)
    assert torch.allclose(m(b), want)
    with torch.no_grad():                              # gate 1 no longer affects task 0
        m.moe.gates[1].weight.add_(torch.randn_like(m.moe.gates[1].weight))  # (a constant would cancel in the softmax)
    assert torch.allclose(m(b)[:, 0], want[:, 0]) and not torch.allclose(m(b)[:, 1], want[:, 1])
