"""Out-of-core graph build: partitioned Parquet / CSV edges → memory-mapped CSR both ways on disk.

The result is the same :class:`~recgraph.graph.bipartite.BipartiteGraph` that
:meth:`BipartiteGraph.from_edges` returns for the concatenated input — array for array, byte for
byte (tests/graph/test_external.py) — but its arrays are ``np.memmap`` views of ``.npy`` files, so
degrees, PPR, macro counts and everything else that reads a ``BipartiteGraph`` run over a graph
larger than RAM.

Input: a file or a folder of ``*.parquet`` / ``*.csv`` partitions (read in sorted name order; the
concatenation in that order is "the input order" that breaks dedupe ties) with integer columns
``user`` and ``item`` (dense ids ``>= 0``), optional numeric ``timestamp`` and integer ``behavior``
(column names configurable).

Steps (each a function of ``(work folder, index)`` so an engine can run them anywhere, in any
order within a step: :func:`build_graph` runs them in this process, :mod:`recgraph.distributed.ray`
as Ray tasks):

1. **scan** each partition (streamed in chunks): row count, id ranges, its users' event counts
   (sparse, committed under ``.work/scan`` and deleted once planned; the driver sums them one at a
   time — holding dense histograms of every partition cost partitions × 8 bytes × users, 40 GB at
   1B events); nulls, negative ids and non-integer columns fail here naming file, row and column.
2. **plan**: users are cut into contiguous ranges ("buckets") holding at most ``bucket_events``
   events, sized from ``memory_budget``.
3. **spill** each partition: its rows go, in input order, to one raw file per (partition, bucket).
4. **user buckets**: each bucket's events (partition order = input order) get the in-memory user
   side build (:func:`~recgraph.graph.bipartite._build_user_side`: two counting sorts, dedupe,
   optional time order), written as its own ``.npy`` files.
5. **assemble users**: bucket files are streamed into ``u_indptr.npy``, ``u_indices.npy``, ...;
   one streaming pass over ``u_indices`` gives the item degrees and ``i_indptr``.
6. **item spill** / **item buckets** / **assemble items**: the transpose, the same way with item
   ranges as buckets (chunks of users as "partitions", so every item row stays in user order).
7. ``graph.json`` (format, sizes, dtypes, options) is written last: its presence marks a
   complete graph, and :func:`open_graph` reads only complete graphs.

Resume: every finished partition / bucket / final array is committed atomically (temp + rename)
under ``OUT/.work`` and ``OUT``; a killed build started again with the same input and options skips
what is finished. ``.work`` is removed at the end.

Memory: ``memory_budget`` bounds what one step holds: a step reads at most ``chunk_rows`` input
rows or one bucket (``bucket_events`` events) at a time; the fixed part is ``~16·(N+M)`` bytes
(histograms and indptrs). Disk: the final graph (:attr:`BipartiteGraph.nbytes`) plus at most
about ``2·E0·row`` bytes of temporaries (``row`` = 4+4 id bytes + timestamp + behaviour bytes): a
bucket's spilled rows are deleted once the bucket is committed, a bucket file once its final array is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..io import ArtifactError, atomic_npy_writer, atomic_write_dir, atomic_write_json, read_checked_json, read_json
from .bipartite import (_ARRAY_FIELDS, BipartiteGraph, _build_user_side, _counting_order, _index_dtype, _indptr_of,
                        _row_time_order)
from .pread import memmap_region

__all__ = ["BuildOptions", "build_graph", "open_graph", "save_graph", "parse_bytes", "list_partitions",
           "GRAPH_FORMAT", "STEPS", "run_step", "prepare", "pending", "finish", "read_slice"]

GRAPH_FORMAT = "recgraph.graph.csr/1"
_PLAN_FORMAT = "recgraph.graph.build-plan/1"
_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20, "MIB": 2**20,
          "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40, "TIB": 2**40}


def parse_bytes(text: str | int) -> int:
    """``"4GB"`` / ``"512MiB"`` / ``"1.5G"`` / ``4096`` → bytes (binary units: 1 GB = 2**30)."""
    if isinstance(text, (int, np.integer)):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"memory size {text!r} not understood: use e.g. 4GB, 512MB, 1.5G or a number of bytes")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


@dataclass(frozen=True)
class BuildOptions:
    """How to build (everything that changes the output or the plan)."""

    user_col: str = "user"
    item_col: str = "item"
    timestamp_col: str | None = None  # None: no timestamps
    behavior_col: str | None = None  # None: no behaviours
    n_users: int | None = None  # None: max user id + 1
    n_items: int | None = None
    dedupe: bool = True
    order: str = "item"  # "item" | "time"
    keep_counts: bool = False
    behavior_names: tuple[str, ...] = ()
    memory_budget: int = 4 * 2**30  # bytes one step may hold
    bucket_events: int | None = None  # override the budget-derived bucket size (tests)
    chunk_rows: int | None = None  # override the budget-derived read chunk (tests)


# ---------------------------------------------------------------------------------------------- input


def list_partitions(path: str | os.PathLike) -> list[Path]:
    """The partition files of ``path`` (a file, or a folder of ``*.parquet`` / ``*.csv``), sorted by name."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".parquet", ".csv")
                       and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))
    else:
        raise FileNotFoundError(f"{path}: no such file or folder")
    if not files:
        raise FileNotFoundError(f"{path}: no *.parquet or *.csv partitions in this folder")
    for f in files:
        if f.suffix.lower() not in (".parquet", ".csv"):
            raise ValueError(f"{f}: unsupported input format {f.suffix!r}: use .parquet or .csv")
    return files


def _columns(opt: BuildOptions) -> list[str]:
    return [c for c in (opt.user_col, opt.item_col, opt.timestamp_col, opt.behavior_col) if c]


def _iter_chunks(path: Path, opt: BuildOptions, chunk_rows: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(first row, {column: array})`` chunks of one partition, validated (nulls, integer ids, ids >= 0)."""
    import pyarrow as pa

    cols = _columns(opt)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        missing = [c for c in cols if c not in pf.schema_arrow.names]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; it has {pf.schema_arrow.names}")
        batches: Iterable = pf.iter_batches(batch_size=chunk_rows, columns=cols)
    else:
        import pyarrow.csv as pcsv

        try:
            reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=max(1 << 16, chunk_rows * 24)),
                                   convert_options=pcsv.ConvertOptions(include_columns=cols))
        except (pa.ArrowInvalid, KeyError) as exc:
            raise ValueError(f"{path}: cannot read columns {cols}: {exc}") from None
        batches = reader
    row = 0
    it = iter(batches)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise ValueError(f"{path}: unreadable after row {row}: {exc}") from None
        out = {}
        for name in cols:
            col = batch.column(batch.schema.get_field_index(name))
            if col.null_count:
                bad = int(np.flatnonzero(np.asarray(col.is_null()))[0])
                raise ValueError(f"{path}: row {row + bad}, column {name!r}: missing value")
            a = col.to_numpy(zero_copy_only=False)
            numeric = "iu" if name != opt.timestamp_col else "iuf"
            if a.dtype.kind not in numeric:
                raise TypeError(f"{path}: column {name!r} has type {col.type}, expected "
                                f"{'numbers' if name == opt.timestamp_col else 'integers'}")
            if name in (opt.user_col, opt.item_col) and a.size and a.min() < 0:
                bad = int(np.flatnonzero(a < 0)[0])
                raise ValueError(f"{path}: row {row + bad}, column {name!r}: negative id {int(a[bad])}")
            out[name] = a
        yield row, out
        row += batch.num_rows


def read_slice(a: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``a[start:stop]`` as a fresh in-memory array; a file-backed ``np.memmap`` is read with one
    ``pread`` (the mapping is not touched, so the pages do not join this process's RSS)."""
    start, stop = int(start), int(stop)
    region = memmap_region(a)
    if region is not None and stop > start:
        with open(region[0], "rb") as fh:
            return np.fromfile(fh, dtype=a.dtype, count=stop - start, offset=region[1] + start * a.itemsize)
    return np.array(a[start:stop])


# ---------------------------------------------------------------------------------------------- plan


def _greedy_bounds(counts: np.ndarray, cap: int) -> np.ndarray:
    """Cut ``[0, len(counts))`` into contiguous ranges of at most ``cap`` total count (a single
    entry above ``cap`` gets a range of its own). Returns bounds ``[B+1]`` int64."""
    n = counts.shape[0]
    cum = np.cumsum(counts, dtype=np.int64)
    bounds = [0]
    while bounds[-1] < n:
        lo = bounds[-1]
        base = cum[lo - 1] if lo else 0
        hi = int(np.searchsorted(cum, base + cap, side="right"))
        bounds.append(max(hi, lo + 1))
    return np.asarray(bounds, np.int64)


def _row_bytes(plan: dict) -> int:
    return 2 * np.dtype(plan["idx"]).itemsize + np.dtype(plan["ts_dtype"] or "u1").itemsize * bool(
        plan["ts_dtype"]) + np.dtype(plan["beh_dtype"] or "u1").itemsize * bool(plan["beh_dtype"])


def _sizes(opt: BuildOptions, n_users: int, n_items: int, row: int) -> tuple[int, int]:
    """``(chunk_rows, bucket_events)`` from the memory budget (both overridable)."""
    fixed = 16 * (n_users + n_items) + (64 << 20)
    free = opt.memory_budget - fixed
    if free < (16 << 20):
        raise ValueError(f"memory_budget {opt.memory_budget:,} B is below what {n_users:,} users and {n_items:,} "
                         f"items need for histograms and indptrs alone (~{fixed:,} B): raise --memory-budget")
    # a bucket holds its events ~3x (input, permutations, output) and a time order copy
    per_event = 3 * row + 12 + (row if opt.order == "time" else 0)
    bucket = opt.bucket_events or max(1024, free // per_event)
    chunk = opt.chunk_rows or int(min(max(1024, free // (6 * row)), 1 << 23))
    return int(chunk), int(bucket)


# ---------------------------------------------------------------------------------------------- work folder


class _Work:
    """Paths of one build's work folder ``OUT/.work``."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.dir = self.out / ".work"
        self.plan_path = self.dir / "plan.json"

    def spill(self, stage: str, p: int) -> Path:
        return self.dir / f"{stage}-spill" / f"p{p:06d}"

    def bucket(self, stage: str, b: int) -> Path:
        return self.dir / f"{stage}-bucket" / f"b{b:06d}"

    def plan(self) -> dict:
        return read_checked_json(self.plan_path, fmt=_PLAN_FORMAT, what="an out-of-core build work folder")


def _raw(path: Path, dtype) -> np.ndarray:
    return np.fromfile(path, dtype=np.dtype(dtype)) if path.exists() else np.empty(0, np.dtype(dtype))


def _spill(target: Path, chunks: Iterable[dict[str, np.ndarray]], key: str, bounds: np.ndarray,
           dtypes: dict[str, str]) -> None:
    """Append each chunk's rows, in order, to ``b{bucket}.{column}`` raw files (bucket of ``chunk[key]`` by
    ``bounds``), inside an atomically committed folder ``target``."""
    n_b = bounds.shape[0] - 1

    def build(tmp: Path) -> None:
        files: dict[tuple[int, str], object] = {}
        try:
            for ch in chunks:
                bk = (np.searchsorted(bounds, ch[key], side="right") - 1).astype(np.int64)
                ptr = _indptr_of(bk, n_b)
                order = np.empty(bk.shape[0], np.int64)
                _counting_order(bk, ptr, order)
                for name, arr in ch.items():
                    arr = np.ascontiguousarray(arr, dtype=np.dtype(dtypes[name]))[order]
                    for b in np.flatnonzero(np.diff(ptr)):
                        fh = files.get((b, name))
                        if fh is None:
                            fh = files[(b, name)] = open(tmp / f"b{b:06d}.{name}", "ab")
                        arr[ptr[b]:ptr[b + 1]].tofile(fh)
        finally:
            for fh in files.values():
                fh.close()

    atomic_write_dir(target, build)


def _gather_bucket(work: _Work, stage: str, n_parts: int, b: int, dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    """All spilled rows of bucket ``b``, in partition order (= input order)."""
    out = {}
    for name, dt in dtypes.items():
        parts = [_raw(work.spill(stage, p) / f"b{b:06d}.{name}", dt) for p in range(n_parts)]
        out[name] = np.concatenate(parts) if parts else np.empty(0, np.dtype(dt))
    return out


def _save_arrays(target: Path, arrays: dict[str, np.ndarray], step: str = "", i: int = -1) -> None:
    def build(tmp: Path) -> None:
        for k, v in arrays.items():
            np.save(tmp / f"{k}.npy", np.ascontiguousarray(v), allow_pickle=False)
        _fault_point(f"{step}-mid", i)  # files written, not yet committed

    atomic_write_dir(target, build)


def _concat_npy(paths: Sequence[Path], out: Path, dtype, total: int) -> None:
    """Stream 1-D ``.npy`` files, in order, into one ``.npy`` (bounded memory: one file at a time), then
    delete them (the result is committed first, so a kill in between loses nothing: bounded disk)."""
    with atomic_npy_writer(out, dtype, total) as w:
        for p in paths:
            w.write(np.load(p, allow_pickle=False))  # one bucket: bounded by the budget
    for p in paths:
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- steps


def _scan_partition(work: _Work, p: int) -> dict:
    """Scan partition ``p``: its summary (rows, id maxima, dtypes) is returned and, with its user
    histogram, committed under ``.work/scan/p{p}`` — the histogram (8 bytes per user id up to the
    partition's largest) stays on disk so the driver sums the partitions' histograms one at a time."""
    target = work.dir / "scan" / f"p{p:06d}"
    if (target / "summary.json").exists():
        return read_json(target / "summary.json")
    plan = work.plan()
    opt = BuildOptions(**plan["options"])
    path = Path(plan["partitions"][p])
    rows, umax, imax, hist = 0, -1, -1, np.zeros(0, np.int64)
    dts: dict[str, str] = {}
    for _, ch in _iter_chunks(path, opt, plan["scan_chunk_rows"]):
        u, i = ch[opt.user_col], ch[opt.item_col]
        rows += u.shape[0]
        for name, a in ch.items():
            dts[name] = str(np.result_type(np.dtype(dts.get(name, a.dtype)), a.dtype))
        if u.size:
            umax, imax = max(umax, int(u.max())), max(imax, int(i.max()))
            h = np.bincount(u)
            if h.shape[0] > hist.shape[0]:
                h[: hist.shape[0]] += hist
                hist = h
            else:
                hist[: h.shape[0]] += h
    summary = {"rows": rows, "user_max": umax, "item_max": imax, "dtypes": dts}
    users = np.flatnonzero(hist)  # sparse: a partition's users, not every user id (at most 8 bytes per row)

    def build(tmp: Path) -> None:
        np.save(tmp / "users.npy", users.astype(np.int32 if umax < 2**31 else np.int64), allow_pickle=False)
        np.save(tmp / "counts.npy", hist[users].astype(np.int32 if rows < 2**31 else np.int64), allow_pickle=False)
        atomic_write_json(tmp / "summary.json", summary)

    atomic_write_dir(target, build)
    _fault_point("scan", p)
    return summary


def _spill_partition(work: _Work, p: int) -> None:
    plan = work.plan()
    opt = BuildOptions(**plan["options"])
    names = _stream_names(plan)
    ren = {opt.user_col: "user", opt.item_col: "item", opt.timestamp_col: "ts", opt.behavior_col: "beh"}
    chunks = ({ren[k]: v for k, v in ch.items()} for _, ch in
              _iter_chunks(Path(plan["partitions"][p]), opt, plan["chunk_rows"]))
    _spill(work.spill("user", p), chunks, "user", np.asarray(plan["user_bounds"], np.int64), names)
    _fault_point("spill", p)


def _stream_names(plan: dict) -> dict[str, str]:
    names = {"user": plan["idx"], "item": plan["idx"]}
    if plan["ts_dtype"]:
        names["ts"] = plan["ts_dtype"]
    if plan["beh_dtype"]:
        names["beh"] = plan["beh_dtype"]
    return names


def _drop_spilled(work: _Work, stage: str, n_parts: int, b: int) -> None:
    """Delete bucket ``b``'s spilled rows (every partition's) once the bucket is committed: the spill
    shrinks as the buckets grow, so the temporaries peak near one copy of the rows, not two."""
    for p in range(n_parts):
        for f in work.spill(stage, p).glob(f"b{b:06d}.*"):
            f.unlink(missing_ok=True)


def _user_bucket(work: _Work, b: int) -> None:
    if work.bucket("user", b).is_dir():  # committed (its spill may be gone): a retry has nothing to do
        return
    plan = work.plan()
    opt = BuildOptions(**plan["options"])
    lo, hi = plan["user_bounds"][b], plan["user_bounds"][b + 1]
    ev = _gather_bucket(work, "user", len(plan["partitions"]), b, _stream_names(plan))
    idx = np.dtype(plan["idx"])
    user = ev["user"] - idx.type(lo)
    ptr, ind, ts, beh, cnt = _build_user_side(user, ev["item"], hi - lo, plan["n_items"], ev.get("ts"), ev.get("beh"),
                                              dedupe=opt.dedupe, order=opt.order, keep_counts=opt.keep_counts, idx=idx)
    del ev, user
    arrays = {"deg": np.diff(ptr).astype(np.int64), "u_indices": ind}
    for k, v in (("u_timestamp", ts), ("u_behavior", beh), ("u_count", cnt)):
        if v is not None:
            arrays[k] = v
    _save_arrays(work.bucket("user", b), arrays, "user-bucket", b)
    _drop_spilled(work, "user", len(plan["partitions"]), b)
    _fault_point("user-bucket", b)


def _item_spill(work: _Work, c: int) -> None:
    """Spill the user-side edges of user chunk ``c`` by item bucket, as ``(item, user, edge, ts, beh)``."""
    plan = work.plan()
    out = work.out
    idx = np.dtype(plan["idx"])
    ulo, uhi = plan["item_spill_users"][c], plan["item_spill_users"][c + 1]
    uptr = np.load(out / "u_indptr.npy", mmap_mode="r")
    a, b = int(uptr[ulo]), int(uptr[uhi])
    deg = np.diff(np.asarray(uptr[ulo:uhi + 1], np.int64))
    ch = {"item": read_slice(np.load(out / "u_indices.npy", mmap_mode="r"), a, b),
          "user": np.repeat(np.arange(ulo, uhi, dtype=idx), deg),
          "edge": np.arange(a, b, dtype=idx)}
    if plan["ts_dtype"]:
        ch["ts"] = read_slice(np.load(out / "u_timestamp.npy", mmap_mode="r"), a, b)
    if plan["beh_dtype"]:
        ch["beh"] = read_slice(np.load(out / "u_behavior.npy", mmap_mode="r"), a, b)
    _spill(work.spill("item", c), [ch], "item", np.asarray(plan["item_bounds"], np.int64), _item_names(plan))
    _fault_point("item-spill", c)


def _item_names(plan: dict) -> dict[str, str]:
    names = {"item": plan["idx"], "user": plan["idx"], "edge": plan["idx"]}
    if plan["ts_dtype"]:
        names["ts"] = plan["ts_dtype"]
    if plan["beh_dtype"]:
        names["beh"] = plan["beh_dtype"]
    return names


def _item_bucket(work: _Work, b: int) -> None:
    """Item rows ``[lo, hi)``: stable counting sort of the (user-ordered) stream by item, then time order."""
    if work.bucket("item", b).is_dir():
        return
    plan = work.plan()
    idx = np.dtype(plan["idx"])
    lo, hi = plan["item_bounds"][b], plan["item_bounds"][b + 1]
    ev = _gather_bucket(work, "item", len(plan["item_spill_users"]) - 1, b, _item_names(plan))
    key = (ev["item"] - idx.type(lo)).astype(np.int64)
    ptr = _indptr_of(key, hi - lo)
    perm = np.empty(key.shape[0], idx)
    _counting_order(key, ptr, perm)
    del key
    out = {"i_indices": ev["user"][perm], "i_edge": ev["edge"][perm]}
    if "ts" in ev:
        out["i_timestamp"] = ev["ts"][perm]
    if "beh" in ev:
        out["i_behavior"] = ev["beh"][perm]
    del ev, perm
    if plan["options"]["order"] == "time" and out["i_indices"].shape[0]:
        rp = np.empty(out["i_indices"].shape[0], idx)
        _row_time_order(ptr.astype(idx), out["i_timestamp"], rp)
        out = {k: v[rp] for k, v in out.items()}
    _save_arrays(work.bucket("item", b), out, "item-bucket", b)
    _drop_spilled(work, "item", len(plan["item_spill_users"]) - 1, b)
    _fault_point("item-bucket", b)


def _fault_point(step: str, i: int) -> None:
    """Fault injection for the resume / retry tests: ``RECGRAPH_BUILD_FAULT="STEP:I:ACTION"`` makes
    step ``STEP`` index ``I`` raise (``ACTION=raise``) after its output is committed, or, at
    ``STEP-mid`` (outputs written, not committed), write its process id to the file
    ``RECGRAPH_BUILD_FAULT_PIDFILE`` and sleep N seconds (``ACTION=sleepN``; only the first attempt
    sleeps: a retry finds the file). Nothing happens when the variable is unset."""
    spec = os.environ.get("RECGRAPH_BUILD_FAULT")
    if not spec:
        return
    s, n, action = spec.split(":")
    if s == step and int(n) == i:
        if action == "raise":
            raise RuntimeError(f"injected fault after {step} {i}")
        if action.startswith("sleep"):
            import time

            pidfile = Path(os.environ["RECGRAPH_BUILD_FAULT_PIDFILE"])
            if pidfile.exists():
                return
            pidfile.write_text(str(os.getpid()))
            time.sleep(float(action[5:]))


STEPS: dict[str, Callable[[_Work, int], object]] = {
    "scan": _scan_partition, "spill": _spill_partition, "user-bucket": _user_bucket,
    "item-spill": _item_spill, "item-bucket": _item_bucket,
}


def run_step(out: str | os.PathLike, step: str, i: int):
    """Run step ``step`` on partition / bucket ``i`` of the build in ``out`` (what an engine's task calls)."""
    return STEPS[step](_Work(Path(out)), int(i))


# ---------------------------------------------------------------------------------------------- driver

Mapper = Callable[[str, Path, Sequence[int]], list]


def _local_map(step: str, out: Path, items: Sequence[int]) -> list:
    return [run_step(out, step, i) for i in items]


def _fingerprint(files: list[Path]) -> list[list]:
    return [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def prepare(input_path: str | os.PathLike, out: str | os.PathLike, opt: BuildOptions, mapper: Mapper = _local_map,
            log: Callable[[str], None] = lambda s: None) -> _Work:
    """Scan the input and write ``OUT/.work/plan.json`` (or keep the one of an interrupted build of the
    same input and options)."""
    out = Path(out)
    work = _Work(out)
    files = list_partitions(input_path)
    fp = _fingerprint(files)
    opts = asdict(opt)
    opts["behavior_names"] = list(opt.behavior_names)
    if work.plan_path.exists():
        try:
            old = work.plan()
        except ArtifactError:
            old = None
        same = old is not None and old["inputs"] == fp and old["options"] == json.loads(json.dumps(opts))
        if same and "user_bounds" in old:
            log(f"resuming the build in {work.dir}")
            return work
        if not same:
            log(f"{work.dir} holds another build: starting over")
            old = None
    else:
        old = None
    if opt.order not in ("item", "time"):
        raise ValueError(f"order must be 'item' or 'time', got {opt.order!r}")
    if opt.order == "time" and not opt.timestamp_col:
        raise ValueError("order='time' needs a timestamp column")
    if old is None:  # else: killed while scanning this very input: finished scans are kept
        shutil.rmtree(work.dir, ignore_errors=True)
        for f in ("graph.json", *[f"{k}.npy" for k in _ARRAY_FIELDS]):
            (out / f).unlink(missing_ok=True)
    work.dir.mkdir(parents=True, exist_ok=True)
    base = {"format": _PLAN_FORMAT, "inputs": fp, "partitions": [str(f) for f in files], "options": opts,
            "scan_chunk_rows": opt.chunk_rows or (1 << 22)}
    atomic_write_json(work.plan_path, base)  # the scan step reads its options from here
    todo = [p for p in range(len(files)) if not (work.dir / "scan" / f"p{p:06d}" / "summary.json").exists()]
    log(f"scan: {len(todo)} to run")
    mapper("scan", out, todo)
    scans = [read_json(work.dir / "scan" / f"p{p:06d}" / "summary.json") for p in range(len(files))]
    e0 = sum(s["rows"] for s in scans)
    umax = max(s["user_max"] for s in scans)
    imax = max(s["item_max"] for s in scans)
    n_users = umax + 1 if opt.n_users is None else int(opt.n_users)
    n_items = imax + 1 if opt.n_items is None else int(opt.n_items)
    for f, s in zip(files, scans):
        for name, mx, n in ((opt.user_col, s["user_max"], n_users), (opt.item_col, s["item_max"], n_items)):
            if mx >= n:
                raise ValueError(f"{f}: column {name!r} holds id {mx}, outside [0, {n}) (n given as {n})")
    hist = np.zeros(n_users, np.int64)
    for p in range(len(files)):  # one partition's histogram in memory at a time
        d = work.dir / "scan" / f"p{p:06d}"
        np.add.at(hist, np.load(d / "users.npy", allow_pickle=False), np.load(d / "counts.npy", allow_pickle=False))
    dts = {}
    for s in scans:
        for k, v in s["dtypes"].items():
            dts[k] = str(np.result_type(np.dtype(dts.get(k, v)), np.dtype(v)))
    idx = _index_dtype(e0, n_users, n_items)
    plan = dict(base, n_users=n_users, n_items=n_items, n_events=e0, idx=str(idx),
                ts_dtype=dts.get(opt.timestamp_col) if opt.timestamp_col else None,
                beh_dtype=dts.get(opt.behavior_col) if opt.behavior_col else None)
    chunk, bucket = _sizes(opt, n_users, n_items, _row_bytes(plan))
    plan.update(chunk_rows=chunk, bucket_events=bucket, user_bounds=_greedy_bounds(hist, bucket).tolist())
    atomic_write_json(work.plan_path, plan)
    shutil.rmtree(work.dir / "scan", ignore_errors=True)  # planned: the histograms are no longer needed
    log(f"{len(files)} partitions, {e0:,} events, {n_users:,} users, {n_items:,} items, "
        f"{len(plan['user_bounds']) - 1} user buckets of <= {bucket:,} events")
    return work


def pending(work: _Work, step: str) -> list[int]:
    """Indices of ``step`` not yet committed."""
    plan = work.plan()
    if step == "spill":  # once every user bucket is done the spill is no longer needed (and is deleted)
        if not pending(work, "user-bucket"):
            return []
        return [p for p in range(len(plan["partitions"])) if not work.spill("user", p).is_dir()]
    if step == "user-bucket":
        return [b for b in range(len(plan["user_bounds"]) - 1) if not work.bucket("user", b).is_dir()]
    if step == "item-spill":
        if not pending(work, "item-bucket"):
            return []
        return [c for c in range(len(plan["item_spill_users"]) - 1) if not work.spill("item", c).is_dir()]
    if step == "item-bucket":
        return [b for b in range(len(plan["item_bounds"]) - 1) if not work.bucket("item", b).is_dir()]
    raise ValueError(f"unknown step {step!r}")


def _assemble_users(work: _Work) -> None:
    plan = work.plan()
    out, idx = work.out, np.dtype(plan["idx"])
    nb = len(plan["user_bounds"]) - 1
    dirs = [work.bucket("user", b) for b in range(nb)]
    shutil.rmtree(work.dir / "user-spill", ignore_errors=True)  # every user bucket is done
    if not (out / "u_indptr.npy").exists():
        deg = np.concatenate([np.load(d / "deg.npy") for d in dirs]) if nb else np.zeros(0, np.int64)
        indptr = np.zeros(plan["n_users"] + 1, np.int64)
        np.cumsum(deg, out=indptr[1:])
        del deg
        with atomic_npy_writer(out / "u_indptr.npy", idx, indptr.shape[0]) as w:
            w.write(indptr)
        del indptr
    e = int(np.load(out / "u_indptr.npy", mmap_mode="r")[-1])
    for name, dt in (("u_indices", idx), ("u_timestamp", plan["ts_dtype"]), ("u_behavior", plan["beh_dtype"]),
                     ("u_count", np.int32 if plan["options"]["keep_counts"] and plan["options"]["dedupe"] else None)):
        if dt is not None and not (out / f"{name}.npy").exists():
            _concat_npy([d / f"{name}.npy" for d in dirs], out / f"{name}.npy", dt, e)
    if "item_bounds" not in plan:  # item degrees by one streaming pass over u_indices → item buckets
        ind = np.load(out / "u_indices.npy", mmap_mode="r")
        ideg = np.zeros(plan["n_items"], np.int64)
        step = plan["chunk_rows"]
        for a in range(0, e, step):
            ideg += np.bincount(read_slice(ind, a, min(e, a + step)), minlength=plan["n_items"])
        uptr = np.load(out / "u_indptr.npy", mmap_mode="r")
        udeg = np.diff(np.asarray(uptr, np.int64))
        plan.update(item_bounds=_greedy_bounds(ideg, plan["bucket_events"]).tolist(),
                    item_spill_users=_greedy_bounds(udeg, plan["chunk_rows"]).tolist())
        indptr = np.zeros(plan["n_items"] + 1, np.int64)
        np.cumsum(ideg, out=indptr[1:])
        with atomic_npy_writer(out / "i_indptr.npy", idx, indptr.shape[0]) as w:
            w.write(indptr)
        atomic_write_json(work.plan_path, plan)


def _assemble_items(work: _Work) -> None:
    plan = work.plan()
    out, idx = work.out, np.dtype(plan["idx"])
    dirs = [work.bucket("item", b) for b in range(len(plan["item_bounds"]) - 1)]
    shutil.rmtree(work.dir / "item-spill", ignore_errors=True)  # every item bucket is done
    e = int(np.load(out / "u_indptr.npy", mmap_mode="r")[-1])
    for name, dt in (("i_indices", idx), ("i_edge", idx), ("i_timestamp", plan["ts_dtype"]),
                     ("i_behavior", plan["beh_dtype"])):
        if dt is not None and not (out / f"{name}.npy").exists():
            _concat_npy([d / f"{name}.npy" for d in dirs], out / f"{name}.npy", dt, e)


def finish(work: _Work) -> dict:
    """Write ``graph.json`` (the completion marker) and remove the work folder."""
    plan = work.plan()
    opt = plan["options"]
    out = work.out
    arrays = {}
    for f in _ARRAY_FIELDS:
        if (out / f"{f}.npy").exists():
            a = np.load(out / f"{f}.npy", mmap_mode="r")
            arrays[f] = {"dtype": str(a.dtype), "shape": list(a.shape)}
    meta = {"format": GRAPH_FORMAT, "n_users": plan["n_users"], "n_items": plan["n_items"],
            "n_edges": arrays["u_indices"]["shape"][0], "n_events": plan["n_events"], "order": opt["order"],
            "deduped": bool(opt["dedupe"]), "behavior_names": list(opt["behavior_names"]), "arrays": arrays,
            "source": {"partitions": plan["partitions"], "options": {k: v for k, v in opt.items()
                                                                     if k not in ("bucket_events", "chunk_rows")}},
            "build": {"user_buckets": len(plan["user_bounds"]) - 1, "item_buckets": len(plan["item_bounds"]) - 1,
                      "bucket_events": plan["bucket_events"], "chunk_rows": plan["chunk_rows"],
                      "memory_budget": opt["memory_budget"]}}
    atomic_write_json(out / "graph.json", meta)
    shutil.rmtree(work.dir, ignore_errors=True)
    return meta


def build_graph(input_path: str | os.PathLike, out: str | os.PathLike, options: BuildOptions | None = None, *,
                mapper: Mapper | None = None, log: Callable[[str], None] = lambda s: None) -> BipartiteGraph:
    """Build the graph of the partitioned edge files at ``input_path`` into the folder ``out``, out of
    core, and open it (memory-mapped). ``mapper(step, out, indices)`` runs a step's tasks (default:
    one after another in this process; :mod:`recgraph.distributed.ray` passes Ray tasks). A killed
    build called again with the same arguments resumes. See the module docs for steps and costs."""
    opt = options or BuildOptions()
    mapper = mapper or _local_map
    out = Path(out)
    work = prepare(input_path, out, opt, mapper, log)
    log("plan done")
    for step in ("spill", "user-bucket"):
        todo = pending(work, step)
        log(f"{step}: {len(todo)} to run")
        mapper(step, out, todo)
    _assemble_users(work)
    log("assemble users done")
    for step in ("item-spill", "item-bucket"):
        todo = pending(work, step)
        log(f"{step}: {len(todo)} to run")
        mapper(step, out, todo)
    _assemble_items(work)
    log("assemble items done")
    finish(work)
    return open_graph(out)


# ---------------------------------------------------------------------------------------------- on disk


def save_graph(graph: BipartiteGraph, out: str | os.PathLike) -> None:
    """Write an (in-memory) graph in the on-disk layout :func:`open_graph` reads (one ``.npy`` per array
    plus ``graph.json``), each file atomically; ``graph.json`` last."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "graph.json").unlink(missing_ok=True)
    arrays = {}
    for f in _ARRAY_FIELDS:
        a = getattr(graph, f)
        if a is None:
            continue
        a = np.ascontiguousarray(a)
        with atomic_npy_writer(out / f"{f}.npy", a.dtype, a.shape[0]) as w:
            w.write(a)
        arrays[f] = {"dtype": str(a.dtype), "shape": list(a.shape)}
    atomic_write_json(out / "graph.json", {
        "format": GRAPH_FORMAT, "n_users": graph.n_users, "n_items": graph.n_items, "n_edges": graph.n_edges,
        "order": graph.order, "deduped": graph.deduped, "behavior_names": list(graph.behavior_names),
        "arrays": arrays})


def open_graph(path: str | os.PathLike, *, mmap: bool = True) -> BipartiteGraph:
    """The graph in folder ``path`` (written by :func:`build_graph` or :func:`save_graph`) as a
    :class:`BipartiteGraph` whose arrays are read-only ``np.memmap`` (``mmap=False``: read into RAM)."""
    path = Path(path)
    meta = read_checked_json(path / "graph.json", fmt=GRAPH_FORMAT, what="a graph folder (recgraph graph build)",
                             required=("n_users", "n_items", "arrays"))
    kw = {}
    for f, spec in meta["arrays"].items():
        if f not in _ARRAY_FIELDS:
            raise ArtifactError(path / "graph.json", f"unknown array {f!r}")
        p = path / f"{f}.npy"
        if not p.exists():
            raise ArtifactError(p, "not found", "the graph folder is incomplete: build it again")
        a = np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
        if str(a.dtype) != spec["dtype"] or list(a.shape) != spec["shape"]:
            raise ArtifactError(p, f"holds {a.dtype}{list(a.shape)}, graph.json says {spec['dtype']}{spec['shape']}",
                                "the graph folder is inconsistent: build it again")
        kw[f] = a
    return BipartiteGraph(n_users=int(meta["n_users"]), n_items=int(meta["n_items"]), order=meta.get("order", "item"),
                          deduped=bool(meta.get("deduped", True)),
                          behavior_names=tuple(meta.get("behavior_names", ())), **kw)
