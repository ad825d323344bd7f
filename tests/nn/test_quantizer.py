"""recgraph.nn.quantizer: the co-trainable residual quantiser."""

from __future__ import annotations

import pytest
import torch

from recgraph.nn.quantizer import ResidualQuantizer, residual_kmeans, rq_decode


def data(n=2048, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(40, d, generator=g) * 3
    return centers[torch.randint(40, (n,), generator=g)] + torch.randn(n, d, generator=g)


def test_straight_through_gradient_is_identity_and_codes_reconstruct():
    q = ResidualQuantizer(16, n_levels=2, codebook_size=8)
    x = data(256).requires_grad_(True)
    out = q(x)
    assert out.codes.shape == (256, 2) and out.quantized.shape == (256, 16)
    torch.testing.assert_close(out.quantized.detach(), rq_decode(out.codes, q.codebooks))
    out.quantized.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))


@pytest.mark.parametrize("ema_decay", [0.9, None])
def test_training_lowers_quantisation_error(ema_decay):
    torch.manual_seed(0)
    x = data()
    q = ResidualQuantizer(16, n_levels=2, codebook_size=32, ema_decay=ema_decay)
    q.train()
    with torch.no_grad():
        q.init_from(x[:64], iters=0)  # poor start: 64 points
    start = float(q(x).error)
    opt = torch.optim.Adam([p for p in q.parameters()], lr=0.05) if ema_decay is None else None
    for step in range(60):
        batch = x[torch.randint(len(x), (512,))]
        out = q(batch)
        if opt is not None:
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    q.eval()
    end = float(q(x).error)
    assert end < 0.8 * start, (start, end)
    if ema_decay is None:
        assert q.codebooks.requires_grad


def test_dead_codes_are_restarted():
    q = ResidualQuantizer(16, n_levels=1, codebook_size=16, ema_decay=0.5, dead_below=0.3)
    x = data(512)
    q.train()
    q(x)
    q.ema_sum[0, :4] = 1e6 * q.ema_count[0, :4, None]  # four codes moved where nobody picks them
    for _ in range(5):
        q(x)
    assert q.restarts >= 4
    assert q.codebooks[0].abs().max() < 1e5


def test_residual_kmeans_validates():
    with pytest.raises(ValueError):
        residual_kmeans(torch.zeros(0, 4), 2, 8)
