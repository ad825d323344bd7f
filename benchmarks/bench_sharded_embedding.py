"""A table past one process's 2 GiB budget: row-sharded over 2 gloo ranks vs whole in one process.

    python benchmarks/bench_sharded_embedding.py --rows 8400000 --dim 64 --steps 30

One ``[rows, dim]`` float32 table (8.4M × 64 = 2.0 GiB: over a 2 GiB per-process budget before any
optimiser state or activations) holds users and items; each step draws a BPR batch of Zipf ids
(user, positive, negative) per rank, looks them up, takes ``softplus(<u,n> - <u,p>)`` and a sparse SGD
step. Run with 1 process (the table whole) and under ``torchrun --nproc-per-node 2`` (row-sharded,
:class:`recgraph.distributed.sharded.RowShardedEmbedding`). Reported per rank: table bytes, peak RSS
(VmHWM), seconds per step. A systems measurement (memory, step time), not a quality one.
Writes benchmarks/results/sharded_embedding.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]


def _hwm() -> int:
    with open("/proc/self/status") as fh:
        return next(int(x.split()[1]) * 1024 for x in fh if x.startswith("VmHWM:"))


def worker(a) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from recgraph.distributed.sharded import RowShardedEmbedding

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = 0
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo")
        rank = dist.get_rank()
    t0 = time.perf_counter()
    emb = RowShardedEmbedding(a.rows, a.dim, rank=rank, world_size=world, seed=0)
    init_s = time.perf_counter() - t0
    opt = torch.optim.SGD(emb.parameters(), lr=0.05)
    rng = np.random.default_rng(rank)
    times, losses = [], []
    for step in range(a.steps):
        ids = torch.from_numpy((rng.zipf(1.2, 3 * a.batch) - 1) % a.rows)
        t1 = time.perf_counter()
        u, p, n = emb(ids).view(3, a.batch, a.dim)
        loss = F.softplus((u * n).sum(-1) - (u * p).sum(-1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t1)
        losses.append(float(loss))
    print("RESULT" + json.dumps({"rank": rank, "world_size": world, "table_bytes": emb.weight.numel() * 4,
                                 "rows_held": emb.hi - emb.lo, "init_seconds": init_s, "peak_rss": _hwm(),
                                 "seconds_per_step": float(np.median(times[2:])), "first_loss": losses[0],
                                 "last_loss": losses[-1]}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=8_400_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--worker", action="store_true")
    a = ap.parse_args()
    if a.worker:
        worker(a)
        return
    from _common import fmt_bytes, print_table, write_result

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    args = [__file__, "--worker", "--rows", str(a.rows), "--dim", str(a.dim), "--steps", str(a.steps),
            "--batch", str(a.batch)]
    res, rows = [], []
    for n in (1, 2):
        launcher = [sys.executable] + (["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                                        "29655"] if n > 1 else [])
        r = subprocess.run(launcher + args, capture_output=True, text=True, env=env)
        if r.returncode:
            raise RuntimeError(r.stderr[-3000:])
        for line in r.stdout.splitlines():
            if line.startswith("RESULT"):
                x = json.loads(line[6:])
                res.append(x)
                rows.append([n, x["rank"], f"{x['rows_held']:,}", fmt_bytes(x["table_bytes"]), fmt_bytes(x["peak_rss"]),
                             f"{x['seconds_per_step'] * 1e3:.0f} ms"])
    print_table("row-sharded embedding", ["processes", "rank", "rows held", "table", "peak RSS", "step"], rows)
    write_result("sharded_embedding", {"command": "python " + " ".join(sys.argv), "results": res,
                                       "rows": a.rows, "dim": a.dim, "steps": a.steps, "batch_per_rank": a.batch,
                                       "seed": "rank r draws ids with numpy seed r; table init seeded per 65536-row "
                                               "block (identical for any sharding)",
                                       "protocol": "synthetic Zipf(1.2) ids, BPR softplus loss, sparse SGD lr 0.05; "
                                                   "a memory/time measurement",
                                       "hyperparameters": "none selected: lr 0.05, sizes and steps are fixed settings "
                                                          "of the measurement (no tuning)"})


if __name__ == "__main__":
    main()
