"""Sparse propagation with a cheap backward pass.

``torch.sparse.mm(A, X)`` with a CSR ``A`` builds ``Aᵀ`` in CSR form on every backward call (a
sort of all non-zeros), which dominated LightGCN's training step (60% of the time on
MovieLens-100K). For a symmetric operator ``Â = D^-1/2 A D^-1/2`` the gradient ``Âᵀ G`` is just
``Â G``, so :func:`symmetric_spmm` reuses the forward matrix.
"""

from __future__ import annotations

import torch


class _SymmetricSpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, torch.sparse.mm(ctx.adj, grad)


def symmetric_spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``adj @ x`` for a *symmetric* sparse ``adj [N, N]`` and dense ``x [N, d]``; differentiable in ``x``."""
    if not x.requires_grad:
        return torch.sparse.mm(adj, x)
    return _SymmetricSpMM.apply(adj, x)


def spmm_into(adj: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out ← adj @ x`` for a sparse CSR ``adj [N, N]`` and dense ``x, out [N, d]`` (no autograd).

    ``addmm`` with ``beta=0`` into a preallocated buffer skips the zero-fill and copy that
    ``torch.sparse.mm`` does around the same kernel (1.7–2.3× faster on Gowalla's 1.6M
    non-zeros × 64, 2 CPU cores); ``beta=0`` ignores ``out``'s old contents, NaN included.
    """
    if adj.layout != torch.sparse_csr:
        return out.copy_(torch.sparse.mm(adj, x))
    return torch.addmm(out, adj, x, beta=0, out=out)


def _mean_of_powers(adj: torch.Tensor, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    out, h = x.clone(), x
    buffers = [torch.empty_like(x) for _ in range(min(n_layers, 2))]  # layer k writes buffers[k % 2]
    for layer in range(n_layers):
        h = spmm_into(adj, h, buffers[layer % 2])
        out.add_(h)
    return out.mul_(1.0 / (n_layers + 1))


class _MeanPropagation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor, n_layers: int) -> torch.Tensor:
        ctx.adj, ctx.n_layers = adj, n_layers
        return _mean_of_powers(adj, x, n_layers)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, _mean_of_powers(ctx.adj, grad.contiguous(), ctx.n_layers), None


def mean_propagation(adj: torch.Tensor, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    """``Σ_{k=0..K} adj^k x / (K+1)`` — LightGCN's layer-averaged propagation — for a *symmetric*
    sparse ``adj [N, N]`` and dense ``x [N, d]``; differentiable in ``x``.

    The operator ``Σ_k Âᵏ / (K+1)`` is itself symmetric, so the backward pass is the same
    propagation applied to the incoming gradient: one fused autograd node instead of ``K`` spmm
    nodes, ``K`` adds and a division, with two reused ``[N, d]`` buffers per pass.
    """
    if n_layers < 0:
        raise ValueError("n_layers must be >= 0")
    if not (x.requires_grad and torch.is_grad_enabled()):
        return _mean_of_powers(adj, x, n_layers)
    return _MeanPropagation.apply(adj, x, n_layers)
