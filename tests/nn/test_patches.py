"""MetaPatch against an explicit implementation that materialises each sample's generated weights."""

import torch

from recgraph.nn.patches import MetaPatch


def _explicit(p: MetaPatch, h, v):
    k = p.vec_dim + 1
    ve = torch.cat([torch.ones(v.shape[0], 1), v], 1)
    down = p.down.view(p.dim, p.rank, k)                    # [H, r, m+1]
    up = p.up.view(p.rank, k, p.dim)                        # [r, m+1, H]
    out = []
    for b in range(h.shape[0]):
        D = (down * ve[b]).sum(-1)                          # [H, r]
        U = (up * ve[b][None, :, None]).sum(1)              # [r, H]
        z = torch.tanh(h[b] @ D + ve[b] @ p.down_bias)
        out.append(h[b] + z @ U + ve[b] @ p.up_bias)
    return torch.stack(out)


def test_matches_explicit_generated_weights():
    torch.manual_seed(0)
    p = MetaPatch(12, rank=3, vec_dim=4)
    with torch.no_grad():
        for t in (p.down_bias, p.up_bias, p.up):
            t.normal_()
    h, v = torch.randn(5, 12), torch.randn(5, 4)
    assert torch.allclose(p(h, v), _explicit(p, h, v), atol=1e-5)
    # one vector for every row broadcasts
    assert torch.allclose(p(h, v[:1]), _explicit(p, h, v[:1].expand(5, 4)), atol=1e-5)


def test_identity_at_zero_but_trainable():
    torch.manual_seed(1)
    p = MetaPatch(10, rank=4, vec_dim=3)
    h = torch.randn(6, 10)
    v = torch.zeros(6, 3, requires_grad=True)
    out = p(h, v)
    assert torch.equal(out, h)
    out.pow(2).sum().backward()
    assert v.grad.abs().sum() > 0
