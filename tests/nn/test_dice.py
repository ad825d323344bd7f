"""Dice: evaluation statistics are unbiased from the first training step and batch-independent."""

from __future__ import annotations

import torch

from recgraph.nn.dice import Dice


def test_eval_statistics_match_training_scale_after_few_steps():
    torch.manual_seed(0)
    d = Dice(4)
    for _ in range(5):  # tiny-variance inputs, as in the CTR towers
        d(1e-3 * torch.randn(256, 4) + 0.05)
    mean, var = d._eval_stats()
    assert torch.allclose(mean, torch.full((4,), 0.05), atol=5e-4)
    assert torch.all((var > 0.5e-6) & (var < 2e-6))  # true variance 1e-6, not the init value


def test_eval_is_batch_size_independent_and_official_is_not():
    torch.manual_seed(0)
    d = Dice(3)
    d.alpha.data.fill_(0.25)
    for _ in range(3):
        d(torch.randn(64, 3))
    x = torch.randn(10, 3)
    d.eval()
    assert torch.allclose(d(x), torch.cat([d(x[i:i + 1]) for i in range(10)]))
    d.batch_stats_at_eval = True
    assert not torch.allclose(d(x), torch.cat([d(x[:5]), d(x[5:])]))


def test_untrained_dice_is_finite():
    d = Dice(2).eval()
    assert torch.isfinite(d(torch.randn(4, 2))).all()
