"""Row-sharded embedding over 2 gloo processes equals the full table (lookup and an SGD step)."""

import json
import socket
import os
import subprocess
import sys
from pathlib import Path

import torch

from recgraph.distributed.sharded import RowShardedEmbedding


def _free_port() -> int:
    """A port nobody listens on now (torchrun's rendezvous; other sessions may run torchrun too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_single_process_table_is_a_plain_embedding():
    e = RowShardedEmbedding(300_000, 4, seed=1)  # > one init block
    ids = torch.tensor([0, 299_999, 65_536, 65_535, 7, 7])
    out = e(ids)
    assert torch.equal(out, e.weight.data[ids])
    # the init does not depend on the sharding: rows of a 3-way shard equal the full table's
    part = RowShardedEmbedding(300_000, 4, rank=1, world_size=3, seed=1)
    assert torch.equal(part.weight.data, e.weight.data[part.lo:part.hi]) and (part.lo, part.hi) == (100_000, 200_000)


def test_two_ranks_match_the_full_table(tmp_path):
    here = Path(__file__).resolve()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(here.parents[2] / "src"), RESULT_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                        str(_free_port()), str(here.parent / "_sharded_worker.py")],
                       capture_output=True, text=True, env=env,
                       timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    res = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]
    assert sorted(x["rank"] for x in res) == [0, 1]
    for x in res:
        assert x["init"] and x["forward"] and x["step"] and x["empty_batch"], x
