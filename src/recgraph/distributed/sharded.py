"""A row-partitioned embedding table for tables that do not fit one process.

DDP (:mod:`.ddp`) replicates the whole model on every rank. A ``[V, D]`` table larger than one
process's memory is instead split by rows: rank ``r`` of ``W`` owns rows ``[bounds[r], bounds[r+1])``
(``bounds = linspace(0, V, W+1)``). A lookup of a batch's ids

1. groups the ids by owner and exchanges them (``all_to_all``),
2. each owner gathers its rows (``F.embedding(..., sparse=True)``: the gradient is sparse, so no dense
   ``[V/W, D]`` gradient is ever allocated),
3. the rows travel back (``all_to_all``, autograd-aware: the backward pass sends the row gradients to
   their owners the reverse way) and are put back in the batch's order.

Each rank trains its shard with a sparse optimiser (``torch.optim.SGD`` / ``SparseAdam``); the dense
rest of the model stays under DDP. Memory per rank: ``V·D·4 / W`` bytes for the table plus the batch.
This is the design TorchRec's row-wise sharding implements with fused FBGEMM kernels and pipelined
communication; here it is plain torch so it runs on gloo / CPU
(tests/distributed/test_sharded.py, and the 2 GiB demonstration in BENCHMARKS.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["RowShardedEmbedding", "all_to_all"]


class _AllToAll(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, send_sizes, recv_sizes):
        import torch.distributed as dist

        ctx.send_sizes, ctx.recv_sizes = send_sizes, recv_sizes
        out = x.new_empty((sum(recv_sizes),) + tuple(x.shape[1:]))
        dist.all_to_all_single(out, x.contiguous(), recv_sizes, send_sizes)
        return out

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        out = grad.new_empty((sum(ctx.send_sizes),) + tuple(grad.shape[1:]))
        dist.all_to_all_single(out, grad.contiguous(), ctx.send_sizes, ctx.recv_sizes)
        return out, None, None


def all_to_all(x: torch.Tensor, send_sizes: list[int], recv_sizes: list[int]) -> torch.Tensor:
    """``x [sum(send_sizes), ...]`` split into per-rank blocks and exchanged; differentiable."""
    return _AllToAll.apply(x, send_sizes, recv_sizes)


class RowShardedEmbedding(torch.nn.Module):
    """``[num_embeddings, dim]`` table whose rows are partitioned over the ranks of the process group.

    Every rank calls :meth:`forward` with its own ``ids [B]`` (global row ids, any ``B``, may be 0)
    and gets ``[B, dim]``, exactly what ``table[ids]`` of the full table would give. Row ``v`` is
    initialised from ``N(0, init_std²)`` with a generator seeded by ``(seed, v // 65536)`` blocks,
    so the table is the same whatever the number of ranks.

    Args:
        num_embeddings, dim: table size.
        rank, world_size: this process's place (``DistributedContext``'s); ``world_size=1`` is a
            plain local table (no communication).
    """

    BLOCK = 65536

    def __init__(self, num_embeddings: int, dim: int, *, rank: int = 0, world_size: int = 1,
                 init_std: float = 0.01, seed: int = 0):
        super().__init__()
        self.num_embeddings, self.dim, self.rank, self.world_size = int(num_embeddings), int(dim), rank, world_size
        self.register_buffer("bounds", torch.linspace(0, num_embeddings, world_size + 1).floor().long(),
                             persistent=False)
        self.bounds[-1] = num_embeddings
        lo, hi = int(self.bounds[rank]), int(self.bounds[rank + 1])
        self.lo, self.hi = lo, hi
        w = torch.empty(hi - lo, dim)
        for b0 in range(lo - lo % self.BLOCK, hi, self.BLOCK):  # fill block by block, seeded by block id
            g = torch.Generator().manual_seed(seed * 1_000_003 + b0 // self.BLOCK)
            block = torch.randn(self.BLOCK, dim, generator=g) * init_std
            a, b = max(lo, b0), min(hi, b0 + self.BLOCK)
            w[a - lo:b - lo] = block[a - b0:b - b0]
        self.weight = torch.nn.Parameter(w)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.reshape(-1).long()
        if self.world_size == 1:
            return F.embedding(ids, self.weight, sparse=True)
        import torch.distributed as dist

        owner = torch.bucketize(ids, self.bounds[1:], right=True)
        order = torch.argsort(owner, stable=True)
        send = torch.bincount(owner, minlength=self.world_size)
        recv = torch.empty_like(send)
        dist.all_to_all_single(recv, send)  # how many ids each rank asks of us
        send_sizes, recv_sizes = send.tolist(), recv.tolist()
        asked = ids.new_empty(sum(recv_sizes))
        dist.all_to_all_single(asked, ids[order].contiguous(), recv_sizes, send_sizes)
        rows = F.embedding(asked - self.lo, self.weight, sparse=True)  # [sum(recv), D] from our shard
        got = all_to_all(rows, recv_sizes, send_sizes)  # back to the askers, in `order`
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.shape[0])
        return got[inverse]

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.dim}, rows [{self.lo}, {self.hi}) on rank {self.rank}/{self.world_size}"
