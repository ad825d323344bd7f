"""Peak memory of reading a large interaction log: the streamed reader against reading it whole.

Writes a JSON-lines log shaped like the Amazon review files (ids, rating, time, and a ~400-byte
review text the reader does not need) and a CSV with the same columns, at several sizes; then reads
each in a fresh process with ``recgraph.data.io.read_interactions`` (user, item, label, timestamp)
and reports seconds and peak RSS growth. ``--baseline-src`` points at another checkout's ``src``
(e.g. main before the streaming reader) to measure the same files with its reader.

    python benchmarks/bench_reader_memory.py --sizes 50M,200M,400M --baseline-src /work/main/src

The files are real-format synthetic logs (the point is the shape of the file, not its content);
the interactions read back are checked to be identical between the two readers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_bytes, growth_exponent, print_table, write_result  # noqa: E402

CHILD = r"""
import hashlib, json, sys, warnings
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from _common import measure_call, pin_malloc_thresholds
pin_malloc_thresholds()
from recgraph.data.io import read_interactions
path = sys.argv[3]
kw = dict(user="reviewerID", item="asin", label="overall", timestamp="unixReviewTime", id_type="str",
          duplicates="keep")
x, st = measure_call(read_interactions, path, **kw)
h = hashlib.sha256()
for a in (x.user, x.item, x.label, x.timestamp):
    h.update(a.tobytes())
print(json.dumps({"seconds": st["seconds"], "cpu_seconds": st["cpu_seconds"], "peak_rss_delta": st["peak_delta_bytes"],
                  "events": len(x), "sha256": h.hexdigest()}))
"""


def parse_size(s: str) -> int:
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1], 1)
    return int(float(s.rstrip("KMG")) * mult)


def write_logs(folder: Path, target_bytes: int, seed: int = 0) -> tuple[Path, Path, int]:
    """A JSON-lines and a CSV log of about ``target_bytes`` each (same events)."""
    rng = np.random.default_rng(seed)
    text = "lorem ipsum dolor sit amet " * 15  # ~400 bytes of review text per row
    row_bytes = 520
    n = max(1000, target_bytes // row_bytes)
    users = rng.zipf(1.3, n) % 500_000
    items = rng.zipf(1.2, n) % 100_000
    ratings = rng.integers(1, 6, n)
    times = 1_100_000_000 + rng.integers(0, 400_000_000, n)
    jl, cv = folder / f"log_{target_bytes}.jsonl", folder / f"log_{target_bytes}.csv"
    with open(jl, "w") as fj, open(cv, "w") as fc:
        fc.write("reviewerID,asin,overall,unixReviewTime,reviewText\n")
        step = 100_000
        for a in range(0, n, step):
            b = min(n, a + step)
            fj.write("".join(f'{{"reviewerID": "A{u}", "asin": "B{i}", "overall": {r}.0, "unixReviewTime": {t}, '
                             f'"reviewText": "{text}"}}\n'
                             for u, i, r, t in zip(users[a:b], items[a:b], ratings[a:b], times[a:b])))
            fc.write("".join(f"A{u},B{i},{r}.0,{t},{text}\n"
                             for u, i, r, t in zip(users[a:b], items[a:b], ratings[a:b], times[a:b])))
    return jl, cv, n


def read_in_child(src: str, path: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, src, str(Path(__file__).resolve().parent), str(path)],
                         capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="50M,200M,400M")
    ap.add_argument("--baseline-src", default=None, help="src folder of the checkout to compare with")
    ap.add_argument("--tmp", default=None, help="folder for the generated logs (default: a temp dir)")
    ap.add_argument("--out-name", default="reader_memory")
    args = ap.parse_args()
    src = str(Path(__file__).resolve().parent.parent / "src")
    readers = [("streamed (this checkout)", src)] + ([("whole file (baseline)", args.baseline_src)]
                                                    if args.baseline_src else [])
    rows, records = [], []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for size in [parse_size(s) for s in args.sizes.split(",")]:
            jl, cv, n = write_logs(Path(tmp), size)
            for fmt, path in (("jsonl", jl), ("csv", cv)):
                digests = set()
                for label, s in readers:
                    r = read_in_child(s, path)
                    rec = {"format": fmt, "file_bytes": path.stat().st_size, "rows": n, "reader": label, **r}
                    records.append(rec)
                    if "sha256" in r:
                        digests.add(r["sha256"])
                    rows.append([fmt, fmt_bytes(path.stat().st_size), f"{n:,}", label,
                                 r.get("error") or f"{r['seconds']:.2f}",
                                 "–" if "error" in r else f"{r['cpu_seconds']:.2f}",
                                 "–" if "error" in r else fmt_bytes(r["peak_rss_delta"])])
                assert len(digests) <= 1, f"readers disagree on {path.name}"
                path.unlink()
    for fmt in ("jsonl", "csv"):
        for label, _ in readers:
            sel = [r for r in records if r["format"] == fmt and r["reader"] == label and "peak_rss_delta" in r]
            exps = growth_exponent([r["file_bytes"] for r in sel], [r["peak_rss_delta"] for r in sel])
            for r, b in zip(sel, exps):
                r["memory_growth_exponent"] = b
    print_table("peak RSS growth while reading (user, item, label, timestamp; text column unused)",
                ["format", "file", "rows", "reader", "wall s", "CPU s", "peak RSS +"], rows)
    write_result(args.out_name, {
        "command": "python benchmarks/" + Path(__file__).name + " " + " ".join(sys.argv[1:]),
        "protocol": "fresh process per read (streamed, then baseline, per file); wall and CPU seconds (all threads); "
                "peak RSS growth during read_interactions (measure(), glibc mmap "
                    "threshold pinned); synthetic Amazon-review-shaped logs (ids, rating, time, ~400 B text)",
        "chunk_bytes": "default (recgraph.data.io.CHUNK_BYTES)",
        "hyperparameters": "none selected: the reader's default chunk size; no model, no tuning",
        "baseline_src": args.baseline_src,
        "baseline_commit": (subprocess.run(["git", "-C", args.baseline_src, "rev-parse", "HEAD"], capture_output=True,
                                           text=True).stdout.strip() or None) if args.baseline_src else None,
        "records": records,
    })


if __name__ == "__main__":
    main()
