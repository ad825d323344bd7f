import torch

from recgraph.nn.sparse import symmetric_spmm


def test_symmetric_spmm_gradient_matches_dense():
    torch.manual_seed(0)
    a = torch.rand(7, 7)
    a = (a + a.T) * (torch.rand(7, 7) > 0.5)
    a = (a + a.T) / 2
    x = torch.randn(7, 3, requires_grad=True)
    y = x.detach().clone().requires_grad_()
    (symmetric_spmm(a.to_sparse_csr(), x) ** 2).sum().backward()
    ((a @ y) ** 2).sum().backward()
    torch.testing.assert_close(x.grad, y.grad)
