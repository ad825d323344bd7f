"""Training under torch DistributedDataParallel: ``torchrun --nproc-per-node N -m recgraph.cli train ...``.

:class:`DistributedContext` is the one object the :class:`~recgraph.train.trainer.Trainer` consults
(duck-typed: the trainer does not import this module). Under ``torchrun`` (``WORLD_SIZE > 1`` in the
environment) :meth:`DistributedContext.from_env` joins the process group (gloo on CPU, nccl when each
rank has a GPU) and the trainer then

* **shards every batch by rank, deterministically**: all ranks draw the same global batch (the batch
  generator is seeded by ``(seed, epoch)``), and rank ``r`` keeps the ``r``-th of ``world`` contiguous
  slices (``torch.tensor_split`` along the batch dimension);
* **all-reduces gradients** through DDP: each rank's loss is scaled by ``world · n_r / n`` (``n_r`` its
  slice, ``n`` the batch), so DDP's gradient average is exactly the gradient of the full batch's mean
  loss — N processes take the same optimisation steps as one, up to float summation order;
* **validates on rank 0 only** and broadcasts the metrics (every rank then takes the same early-stopping
  and best-epoch decision), and writes checkpoints, metrics and artifacts **on rank 0 only**.

Embedding tables that do not fit one process: this module replicates the model (DDP). The path past
that is a row-partitioned table — rank ``r`` owns rows ``[r·V/W, (r+1)·V/W)``, a step all-to-alls the
ids of its batch to their owners and the looked-up rows back (and the gradients the reverse way), with a
sparse optimiser state per shard — which is what TorchRec's ``EmbeddingBagCollection`` sharded with
``row_wise`` / ``table_wise`` plans provides on top of FBGEMM kernels; see README "Past one machine".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DistributedContext", "shard_batch"]


def shard_batch(batch: Any, rank: int, world: int) -> tuple[Any, int, int]:
    """Rank ``rank``'s contiguous slice of every tensor in ``batch`` (a tensor, tuple/list or dict of
    tensors with a common first dimension). Returns ``(local batch, n_local, n_total)``."""
    if torch.is_tensor(batch):
        n = batch.shape[0]
        part = torch.tensor_split(batch, world)[rank]
        return part, part.shape[0], n
    if isinstance(batch, dict):
        out, sizes = {}, set()
        for k, v in batch.items():
            out[k], nl, n = shard_batch(v, rank, world) if torch.is_tensor(v) else (v, None, None)
            if n is not None:
                sizes.add((nl, n))
        if len(sizes) != 1:
            raise ValueError(f"cannot shard a batch whose tensors have different lengths: {sorted(sizes)}")
        nl, n = sizes.pop()
        return out, nl, n
    if isinstance(batch, (list, tuple)):
        parts = [shard_batch(v, rank, world) for v in batch]
        sizes = {(p[1], p[2]) for p in parts}
        if len(sizes) != 1:
            raise ValueError(f"cannot shard a batch whose tensors have different lengths: {sorted(sizes)}")
        nl, n = sizes.pop()
        return type(batch)(p[0] for p in parts), nl, n
    if hasattr(batch, "__dataclass_fields__"):  # typed batches (CTRBatch / NodeSide): slice every tensor field
        import dataclasses

        fields, sizes = {}, set()
        for f in dataclasses.fields(batch):
            v = getattr(batch, f.name)
            if v is None or not (torch.is_tensor(v) or hasattr(v, "__dataclass_fields__")):
                fields[f.name] = v
                continue
            fields[f.name], nl, n = shard_batch(v, rank, world)
            sizes.add((nl, n))
        nl, n = sizes.pop() if len(sizes) == 1 else (None, None)
        if nl is None:
            raise ValueError(f"cannot shard a batch whose tensors have different lengths: {sorted(sizes)}")
        return dataclasses.replace(batch, **fields), nl, n
    raise TypeError(f"cannot shard a batch of type {type(batch).__name__}")


class _LossModule(torch.nn.Module):
    """``forward(batch) = model.loss(batch)``: DDP syncs gradients of what its forward computes."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


@dataclass
class DistributedContext:
    """Rank, world size and the collective operations the trainer needs (``world_size == 1``: no-ops)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @classmethod
    def from_env(cls, device: str = "auto") -> "DistributedContext":
        """Read torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` and join the process group
        (a single process outside torchrun gets the no-op context)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        backend = "nccl" if use_cuda else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        ctx = cls(rank=dist.get_rank(), world_size=dist.get_world_size(),
                  local_rank=int(os.environ.get("LOCAL_RANK", "0")), backend=backend)
        if use_cuda:
            torch.cuda.set_device(ctx.local_rank)
        return ctx

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """The device of this rank (``cuda:LOCAL_RANK`` under nccl)."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else device

    def wrap(self, model: torch.nn.Module):
        """A callable ``batch -> loss`` whose backward all-reduces gradients (DDP), or ``model.loss``."""
        if not self.enabled:
            return model.loss
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.backend == "nccl" else None
        return DistributedDataParallel(_LossModule(model), device_ids=ids)

    def shard(self, batch) -> tuple[Any, float]:
        """``(this rank's slice, loss scale)``; the scale makes DDP's average the full-batch gradient."""
        if not self.enabled:
            return batch, 1.0
        local, nl, n = shard_batch(batch, self.rank, self.world_size)
        if nl == 0:
            raise ValueError(f"a batch of {n} samples cannot be split over {self.world_size} ranks: "
                             "use a batch size of at least the number of processes")
        return local, self.world_size * nl / n

    def mean(self, value: float) -> float:
        """Average of a scalar over ranks (for logging the loss of the whole batch)."""
        if not self.enabled:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def broadcast(self, obj):
        """Rank 0's ``obj`` (JSON-serialisable: metrics) on every rank; sent as JSON bytes, never pickled."""
        if not self.enabled:
            return obj
        import json

        import torch.distributed as dist

        data = json.dumps(obj).encode() if self.is_main else b""
        size = torch.tensor([len(data)], dtype=torch.int64)
        dist.broadcast(size, src=0)
        buf = torch.zeros(int(size.item()), dtype=torch.uint8)
        if self.is_main:
            buf[:] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        dist.broadcast(buf, src=0)
        return json.loads(bytes(buf.tolist()).decode())

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
