"""Shared helpers for the benchmark scripts (import as ``from _common import ...`` from benchmarks/).

* :func:`measure` -- wall time and peak RSS growth of one call.
* :func:`machine_info`, :func:`git_commit` -- what ran it.
* :func:`write_result` -- JSON into ``benchmarks/results/NAME.json``, atomically.
* :func:`growth_exponent` -- ``b`` in ``cost ∝ size^b`` between successive sizes.
* :func:`print_table` -- a rich table when rich is installed, plain text otherwise.
* :func:`powerlaw_edges` -- synthetic Zipf-like user–item edges, vectorised and chunked.
* :func:`carve_validation` -- a per-user random validation slice of a split's training part.
* :func:`tuning_split` -- the same slice as the *only* evaluated part (the test part left out).
* :func:`valid_curve` -- the (epoch, seconds, Recall@20, NDCG@20) curve of a run's training history.

Peak memory: on Linux the kernel's peak-RSS counter (``VmHWM``) is reset by writing ``5`` to
``/proc/self/clear_refs`` before the call and read after it, so each call's peak is measured
exactly even when an earlier call peaked higher. Where that is not possible a 5 ms sampling thread
tracks the RSS instead (it can miss very short spikes).
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recgraph.io import atomic_write_bytes

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_ROOT = BENCH_DIR.parent

# ---------------------------------------------------------------------------------------- memory


def pin_malloc_thresholds(mmap_threshold: int = 1 << 18) -> bool:
    """Make glibc serve every allocation >= ``mmap_threshold`` with its own mmap, returned to the OS
    on free. By default glibc raises that threshold dynamically (up to 32 MiB) after the first large
    free, so later arrays reuse heap memory the RSS already counts and peaks read too low. Memory
    benchmarks call it before measuring; returns whether it took effect (glibc only)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        global MALLOC_PINNED
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, int(mmap_threshold)) == 1
        MALLOC_PINNED = ok and libc.mallopt(m_trim_threshold, int(2 * mmap_threshold)) == 1
        return MALLOC_PINNED
    except (OSError, AttributeError):
        return False


# Opt-in (memory benchmarks call it first thing): per-allocation mmap makes torch training ~1.7x
# slower, which would distort timing benchmarks.
MALLOC_PINNED = False


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss() -> int:
    """Resident set size of this process now, in bytes."""
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb * 1024
    import resource

    return _ru_maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # best effort elsewhere


def _ru_maxrss_bytes(v: int) -> int:
    return v if sys.platform == "darwin" else v * 1024


def peak_rss() -> int:
    """Peak RSS of this process (since start, or since the last :func:`reset_peak_rss`), bytes."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    import resource

    return _ru_maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0). Returns whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 64 * 1024  # allow for a little drift


class _Sampler(threading.Thread):
    def __init__(self, interval: float = 0.005):
        super().__init__(daemon=True)
        self.interval, self.peak, self._stop_evt = interval, current_rss(), threading.Event()

    def run(self) -> None:
        while not self._stop_evt.is_set():
            self.peak = max(self.peak, current_rss())
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop_evt.set()
        self.join()
        return max(self.peak, current_rss())


def measure_call(fn: Callable, *args, **kwargs) -> tuple[Any, dict]:
    """Run ``fn(*args, **kwargs)``; return ``(result, stats)`` with ``seconds`` (wall),
    ``cpu_seconds`` (all threads of this process), ``rss_before_bytes``, ``peak_rss_bytes`` (the
    highest RSS during the call) and ``peak_delta_bytes`` (peak minus before, after a ``gc.collect()``:
    the extra memory the call needed at its peak, temporaries included)."""
    gc.collect()
    before = current_rss()
    exact = reset_peak_rss()
    sampler = None if exact else _Sampler()
    if sampler is not None:
        sampler.start()
    c0, t0 = time.process_time(), time.perf_counter()
    result = fn(*args, **kwargs)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_rss() if exact else sampler.stop()
    return result, {"seconds": seconds, "cpu_seconds": cpu, "rss_before_bytes": before, "peak_rss_bytes": peak,
                    "peak_delta_bytes": max(0, peak - before)}


def measure(fn: Callable, *args, **kwargs) -> tuple[Any, float, int]:
    """``(result, seconds, peak_rss_delta_bytes)`` of ``fn(*args, **kwargs)`` (see :func:`measure_call`)."""
    result, st = measure_call(fn, *args, **kwargs)
    return result, st["seconds"], st["peak_delta_bytes"]


# ---------------------------------------------------------------------------------------- provenance


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_memory() -> int | None:
    kb = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    kb = int(line.split()[1])
                    break
    except OSError:
        pass
    return None if kb is None else kb * 1024


def machine_info() -> dict:
    """Hardware and library versions, for the results file."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": _total_memory(),
        "load_average_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,  # at write time
    }
    for mod in ("numpy", "scipy", "numba", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional
            info[mod] = None
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        pass
    return info


def git_commit() -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository. ``dirty``: a tracked file
    outside ``benchmarks/results/`` differs from the commit — results are outputs, and a run that rewrites
    its own tracked JSON (partial saves) must not call itself dirty."""
    def run(*cmd):
        return subprocess.run(["git", *cmd], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)

    try:
        sha = run("rev-parse", "HEAD")
        if sha.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
        return {"commit": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip()), "dirty_ignores": "benchmarks/results/"}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


# ---------------------------------------------------------------------------------------- results


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_result(name: str, payload: dict, results_dir: Path | str | None = None) -> Path:
    """Write ``payload`` (plus ``benchmark``, ``created_utc``, ``machine``, ``git`` unless given) to
    ``results_dir/NAME.json`` atomically (temp file in the same folder, then rename). ``payload`` must say
    how every hyper-parameter was chosen (``"hyperparameters"``: default / grid on validation / chosen on
    test) — a results file without it is refused before anything is written."""
    if not payload.get("hyperparameters"):
        raise ValueError(f"results {name!r}: the payload has no 'hyperparameters' record (how each hyper-parameter "
                         "was chosen: default / grid on validation / chosen on test); add one to the script")
    out_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "command": shlex.join(["python", *sys.argv]),
           "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine_info(), "git": git_commit(), **payload}
    path = out_dir / f"{name}.json"
    atomic_write_bytes(path, (json.dumps(doc, indent=2, default=_json_default, allow_nan=False) + "\n").encode("utf-8"))
    return path


def carve_validation(split, frac: float, seed: int = 0):
    """``split`` with a per-user random ``frac`` of its training part moved to ``valid`` (test
    unchanged), for tuning on data without a validation part; the protocol says so."""
    from recgraph.data.split import Split, random_ratio

    carve = random_ratio(split.train, ratios=(1 - frac, frac, 0.0), seed=seed)
    return Split(carve.train, split.test, carve.valid,
                 {**split.protocol, "validation": f"per-user random {frac:g} of the training file (seed {seed})"})


def tuning_split(split, frac: float, seed: int = 0):
    """For hyper-parameter search that never touches the test part: ``split``'s training part with a
    per-user random ``frac`` carved out (as :func:`carve_validation`), returned as a split whose
    *evaluated* part (``test``) is that carve-out and which holds no validation part. Run it with
    ``select_on_test=True``: the Trainer monitors the carve-out each evaluation and the runner's final
    evaluation reads the carve-out again; the original test part is not in the returned split at all."""
    from recgraph.data.split import Split

    carve = carve_validation(split, frac, seed)
    return Split(carve.train, carve.valid, None,
                 {**carve.protocol, "evaluated_part": "the validation carve-out (the test file is not in this split)"})


def valid_curve(history: Sequence[dict], keys: Sequence[str] = ("recall@20", "ndcg@20")) -> list[dict]:
    """``[{"epoch": 1-based, "seconds": cumulative train + eval seconds, key: value, ...}]`` for every
    evaluated epoch of a Trainer history (the ``valid_*`` entries: whatever part the run evaluated)."""
    curve, elapsed = [], 0.0
    for h in history:
        elapsed += h["train_seconds"] + h.get("eval_seconds", 0.0)
        if f"valid_{keys[0]}" in h:
            curve.append({"epoch": h["epoch"] + 1, "seconds": elapsed, **{k: h[f"valid_{k}"] for k in keys}})
    return curve


def mean_std(values: Sequence[float]) -> dict:
    """``{"mean", "std" (sample, ddof 1; 0 for one value), "n"}``."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}


def growth_exponent(sizes: Sequence[float], costs: Sequence[float]) -> list[float | None]:
    """``b_k = log(c_k / c_{k-1}) / log(n_k / n_{k-1})`` for successive pairs (None when undefined);
    ``cost ∝ size^b``: 1.0 is linear."""
    out: list[float | None] = []
    for (n0, c0), (n1, c1) in zip(zip(sizes, costs), zip(sizes[1:], costs[1:])):
        if n0 > 0 and n1 > 0 and n1 != n0 and c0 and c1 and c0 > 0 and c1 > 0:
            out.append(math.log(c1 / c0) / math.log(n1 / n0))
        else:
            out.append(None)
    return out


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print a table (rich when available, else aligned plain text); return the plain-text form."""
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[j]) for r in cells)) if cells else len(str(h)) for j, h in enumerate(columns)]
    lines = [title, "  ".join(str(h).rjust(w) for h, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    plain = "\n".join(lines)
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for h in columns:
            table.add_column(str(h), justify="right", no_wrap=True)
        for r in cells:
            table.add_row(*r)
        Console(width=max(80, sum(widths) + 3 * len(widths) + 4)).print(table)
    except ImportError:
        print(plain)
    return plain


# ---------------------------------------------------------------------------------------- data


def _zipf_sampler(n: int, alpha: float, rng: np.random.Generator):
    """O(1)-per-draw sampler of ids in ``[0, n)`` with ``P(rank r) ≈ ∝ (r+1)^-alpha``.

    Inverse transform of the continuous power law ``p(x) ∝ x^-alpha`` on ``[1, n+1)``, floored:
    ``P(rank r) = ∫_{r+1}^{r+2} x^-alpha dx`` (Zipf-like, no table search). Popular ranks are scattered
    over the id space by a random permutation, so id order carries no popularity."""
    a = float(alpha)
    relabel = rng.permutation(n).astype(np.int32 if n < 2**31 - 1 else np.int64)
    if abs(a - 1.0) < 1e-12:
        log_top = math.log(n + 1.0)

        def inv(u):
            np.multiply(u, log_top, out=u)
            return np.exp(u, out=u)
    else:
        top = (n + 1.0) ** (1.0 - a) - 1.0

        def inv(u):
            np.multiply(u, top, out=u)
            u += 1.0
            return np.power(u, 1.0 / (1.0 - a), out=u)

    def draw(size: int) -> np.ndarray:
        x = inv(rng.random(size))
        ranks = x.astype(np.int64)
        ranks -= 1
        np.clip(ranks, 0, n - 1, out=ranks)
        return relabel[ranks]

    return draw


def powerlaw_edges(n_edges: int, n_users: int, n_items: int, alpha: float = 1.0, seed: int = 0,
                   with_timestamps: bool = True, chunk: int = 1 << 22,
                   t0: int = 1_600_000_000, span: int = 365 * 86400):
    """Synthetic interactions with Zipf-like degrees on both sides.

    User and item of each edge are drawn independently, ``P(rank r) ∝ (r+1)^-alpha`` on each side
    (``alpha`` may be a pair ``(alpha_user, alpha_item)``); timestamps are uniform in
    ``[t0, t0 + span)``. Vectorised, generated in chunks so the float temporaries stay at
    ``chunk`` entries. Returns ``(user, item, timestamp)``: ids int32 (int64 if the id space needs
    it), timestamp int64 or None. Memory: 4+4(+8) bytes per edge.
    """
    a_u, a_i = (alpha, alpha) if np.isscalar(alpha) else tuple(alpha)
    rng = np.random.default_rng(seed)
    draw_u, draw_i = _zipf_sampler(n_users, a_u, rng), _zipf_sampler(n_items, a_i, rng)
    id_u = np.int32 if n_users < 2**31 - 1 else np.int64
    id_i = np.int32 if n_items < 2**31 - 1 else np.int64
    user = np.empty(n_edges, id_u)
    item = np.empty(n_edges, id_i)
    ts = np.empty(n_edges, np.int64) if with_timestamps else None
    for a in range(0, n_edges, chunk):
        b = min(n_edges, a + chunk)
        user[a:b] = draw_u(b - a)
        item[a:b] = draw_i(b - a)
        if ts is not None:
            ts[a:b] = rng.integers(t0, t0 + span, b - a)
    return user, item, ts
