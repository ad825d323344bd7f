"""Run under torchrun by tests/distributed/test_sharded.py: a row-sharded table must look up and
train exactly like the full table."""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from recgraph.distributed.sharded import RowShardedEmbedding
from recgraph.io import atomic_write_json

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
V, D = 1000, 8
full = RowShardedEmbedding(V, D, seed=3)  # world_size 1: the whole table, same init
emb = RowShardedEmbedding(V, D, rank=rank, world_size=world, seed=3)
ok = {"init": torch.equal(emb.weight.data, full.weight.data[emb.lo:emb.hi])}
g = torch.Generator().manual_seed(7)
all_ids = [torch.randint(0, V, (50 + 13 * r,), generator=g) for r in range(world)]  # duplicates, uneven
targets = [torch.randn(len(i), D, generator=g) for i in all_ids]
out = emb(all_ids[rank])
ok["forward"] = torch.equal(out, full.weight.data[all_ids[rank]])
opt = torch.optim.SGD(emb.parameters(), lr=0.5)
(out * targets[rank]).sum().backward()
opt.step()
ref_opt = torch.optim.SGD(full.parameters(), lr=0.5)
sum((full(i) * t).sum() for i, t in zip(all_ids, targets)).backward()  # every rank's loss on the full table
ref_opt.step()
ok["step"] = torch.allclose(emb.weight.data, full.weight.data[emb.lo:emb.hi], atol=1e-6)
ok["empty_batch"] = emb(torch.zeros(0, dtype=torch.long)).shape == (0, D)
# one file per rank: two ranks printing to one stdout can interleave their lines
atomic_write_json(Path(os.environ["RESULT_DIR"]) / f"rank{rank}.json", {"rank": rank, **ok})
dist.destroy_process_group()
sys.exit(0)
