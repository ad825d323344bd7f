"""kill -9 at several points — mid-epoch, mid-checkpoint-write, mid-artifact-write — for a
retrieval and a ranking model: no file under its real name is ever half-written, and ``--resume``
reaches exactly the metrics of an uninterrupted run."""

import json
import signal
import subprocess
import sys

import pytest

from recgraph.io import load_tensors, read_json

RUNS = {
    "retrieval": ["bpr", "--dataset", "movielens-100k", "--epochs", "3", "--set", "batch_size=8192"],
    "ranking": ["lr", "--dataset", "movielens-100k", "--protocol", "leave-last-out", "--epochs", "3"],
}

# Executed in a child process: arm one kill point, then run the CLI. SIGKILL, as a crash or an
# OOM-killer would: no cleanup, no finally blocks.
CHILD = r"""
import os, signal, sys
import recgraph.io.atomic as atomic
from recgraph.cli import app
point, n = sys.argv[1], int(sys.argv[2])
count = {"n": 0}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "mid-epoch":
    import recgraph.train.trainer as tr
    real = tr.to_device
    def patched(batch, device):
        count["n"] += 1
        if count["n"] == n:
            die()
        return real(batch, device)
    tr.to_device = patched
elif point != "none":
    real = atomic.os.fsync
    target = {"checkpoint": "meta.json", "artifact": "weights.safetensors"}[point]
    def patched(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.basename(name).startswith("." + target):
            count["n"] += 1
            if count["n"] == n:
                die()  # the temp file holds the bytes; the rename never happens
        return real(fd)
    atomic.os.fsync = patched
sys.argv = ["recgraph", *sys.argv[3:]]
app()
"""


def _cli(args, kill=None):
    cmd = [sys.executable, "-c", CHILD, *(kill or ("none", "0")), "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _check_whole(out):
    """Every file under its real name parses completely."""
    for p in out.rglob("*"):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix == ".json":
            read_json(p)
        elif p.suffix == ".safetensors":
            load_tensors(p)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["retrieval", "ranking"])
def test_kill_then_resume_reaches_the_uninterrupted_result(task, tmp_path):
    args = RUNS[task] + ["--device", "cpu", "--seed", "0"]
    ref = _cli(args + ["--out", str(tmp_path / "ref")])
    assert ref.returncode == 0, ref.stderr[-2000:]
    want = read_json(tmp_path / "ref" / "metrics.json")["metrics"]
    for point, n in (("mid-epoch", 7), ("checkpoint", 2), ("artifact", 1)):
        out = tmp_path / point
        killed = _cli(args + ["--out", str(out)], kill=(point, str(n)))
        assert killed.returncode == -signal.SIGKILL, (point, killed.returncode, killed.stderr[-2000:])
        assert not (out / "metrics.json").exists(), point
        _check_whole(out)
        resumed = _cli(args + ["--out", str(out), "--resume"])
        assert resumed.returncode == 0, (point, resumed.stderr[-2000:])
        _check_whole(out)
        assert not list(out.rglob(".*.tmp")), "stale temp files are removed on the next run"
        got = read_json(out / "metrics.json")["metrics"]
        assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True), point
