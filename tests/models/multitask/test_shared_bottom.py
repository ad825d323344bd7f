"""Shared-Bottom: every task's tower reads the same bottom output (Caruana 1997)."""

import torch

from recgraph.models.multitask.shared_bottom import SharedBottom


def test_towers_share_the_bottom(small_mt_log):
    from recgraph.graph.task_graphs import build_multitask_data

    d = build_multitask_data(small_mt_log, ("cart", "buy"), min_positives=1)
    m = SharedBottom(d.n_users, d.n_items, d.features.n_user_macros, d.features.n_item_macros, n_tasks=2,
                     dim=4, bottom=(8,), tower_hidden=(4,)).eval()
    b = d.batch(d.valid, None, m.needs)
    z = m.bottom(m.encoder(b)[0])
    assert torch.allclose(m(b), torch.cat([m.towers[0](z), m.towers[1](z)], -1))
    with torch.no_grad():   # the bottom moves both tasks; a tower only its own
        m.towers[1][1].bias.add_(1.0)
    out = m(b)
    assert torch.allclose(out[:, 0], torch.cat([m.towers[0](z)], -1)[:, 0]) and torch.allclose(
        out[:, 1], m.towers[1](z)[:, 0])
