import pytest
import torch

from recgraph.nn.sparse import mean_propagation, spmm_into, symmetric_spmm


def _symmetric(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, n, generator=g) * (torch.rand(n, n, generator=g) > 0.5)
    return (a + a.T) / 2


def test_symmetric_spmm_gradient_matches_dense():
    torch.manual_seed(0)
    a = _symmetric(7)
    x = torch.randn(7, 3, requires_grad=True)
    y = x.detach().clone().requires_grad_()
    (symmetric_spmm(a.to_sparse_csr(), x) ** 2).sum().backward()
    ((a @ y) ** 2).sum().backward()
    torch.testing.assert_close(x.grad, y.grad)


def test_spmm_into_ignores_old_buffer_contents():
    a = _symmetric(9, seed=1)
    x = torch.randn(9, 4)
    out = torch.full((9, 4), float("nan"))
    spmm_into(a.to_sparse_csr(), x, out)
    torch.testing.assert_close(out, a @ x)


@pytest.mark.parametrize("n_layers", [0, 1, 3, 4])
def test_mean_propagation_matches_dense_layer_average_and_its_gradient(n_layers):
    torch.manual_seed(n_layers)
    a = _symmetric(11, seed=n_layers).double()
    x = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    y = x.detach().clone().requires_grad_()
    w = torch.randn(11, 5, dtype=torch.float64)  # a loss that weights every row differently
    out = mean_propagation(a.to_sparse_csr(), x, n_layers)
    (out * w).pow(2).sum().backward()
    h, ref = y, y
    for _ in range(n_layers):
        h = a @ h
        ref = ref + h
    ref = ref / (n_layers + 1)
    (ref * w).pow(2).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(x.grad, y.grad)
    assert out.shape == (11, 5)


def test_mean_propagation_without_grad_is_plain_and_leaves_input_alone():
    a = _symmetric(6, seed=3).to_sparse_csr()
    x = torch.randn(6, 2)
    x0 = x.clone()
    out = mean_propagation(a, x, 2)
    assert not out.requires_grad
    torch.testing.assert_close(x, x0)
    with pytest.raises(ValueError, match="n_layers"):
        mean_propagation(a, x, -1)
