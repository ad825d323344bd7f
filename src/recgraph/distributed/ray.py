"""The out-of-core graph build (:mod:`recgraph.graph.external`) and PPR feature jobs as Ray tasks.

Each step of the build — scan a partition, spill a partition into user buckets, sort a user
bucket, spill a user chunk into item buckets, sort an item bucket — is one Ray task running
:func:`recgraph.graph.external.run_step`, the very function the local engine calls; the driver
only plans, concatenates the bucket files and writes ``graph.json``. So the output is the local
engine's, byte for byte, whatever the number of workers or the order tasks finish in
(tests/distributed/test_ray.py).

Fault tolerance is Ray's: a task whose worker dies is retried (``max_retries``); each task
commits its output atomically (temp folder + rename), so a retry after a partial write starts
clean, and the driver itself can be restarted: the build resumes from the committed steps.

Macro features (:func:`build_macro_ray`): the driver computes the two products every table needs
(``R·C``, user k-means, ``Rᵀ·U``; streamed, :func:`recgraph.graph.streaming.macro_products`) and
writes them to the work folder; each task computes one row range of one table (``u1``, ``i1``,
``u2 = R·item1``, ``i2 = Rᵀ·user1``, the recent lists: the edge sweeps) with the local code and
commits it as a part file; the driver concatenates the parts. Equal, file for file, to the local
``build_macro_graph_from_graph(out_dir=...)`` (tested).

PPR for many sources (:func:`graph_ppr_ray`): the driver writes the joint adjacency of the on-disk
graph once (:func:`recgraph.graph.streaming.joint_csr_to_disk`); each task maps it and pushes one batch
of sources (forward push is per source, so batches give exactly the one-call result; tested).

Locally (``address=None``) the code starts Ray with ``num_cpus`` CPUs and shuts it down at the
end. On a cluster (``address="ray://head:10001"`` or ``"auto"``) the input partitions and ``out``
must be on a file system every node mounts at the same path (NFS, a FUSE-mounted bucket), and
recgraph must be importable on the workers (installed in the image, or shipped with
``runtime_env={"py_modules": [recgraph]}``). ``memory_budget`` is per task there: every CPU may
run one task at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ..graph.bipartite import BipartiteGraph
from ..graph.external import BuildOptions, build_graph, open_graph, run_step
from ..graph.ppr import PPRNeighbourhoods, bipartite_ppr
from ..graph.disk_csr import DiskCSR
from ..graph.streaming import (SLOT_TABLES, MacroSlots, check_recent, joint_csr_to_disk, macro_budget_plan,
                               macro_files, macro_products, macro_slots_of, macro_table, macro_table_rows, macro_tables,
                               save_macro_meta)
from ..io import atomic_npy_writer, atomic_save_npz, atomic_write_dir, load_npz

__all__ = ["build_graph_ray", "build_macro_ray", "graph_ppr_ray", "ray_mapper", "ray_session"]


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int = 2) -> Iterator[bool]:
    """Ray for the duration of the block: an initialised Ray is used as is; otherwise ``address`` (a
    cluster) or a local Ray with ``num_cpus`` CPUs is started and shut down at the end. Yields whether
    a local Ray was started here (its CPUs share this machine's memory)."""
    import ray

    if ray.is_initialized():
        yield False
        return
    kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address is None:
        ray.init(num_cpus=int(num_cpus), **kw)
    else:
        ray.init(address=address, **kw)
    try:
        yield address is None
    finally:
        ray.shutdown()


def ray_mapper(*, max_retries: int = 3) -> Callable[[str, Path, Sequence[int]], list]:
    """A ``mapper`` for :func:`~recgraph.graph.external.build_graph` that runs each step's tasks on Ray
    (which must be initialised) and waits for all of them."""
    import ray

    task = ray.remote(max_retries=max_retries, retry_exceptions=False)(run_step)

    def mapper(step: str, out: Path, items: Sequence[int]) -> list:
        return ray.get([task.remote(str(out), step, int(i)) for i in items])

    return mapper


def build_graph_ray(input_path: str | os.PathLike, out: str | os.PathLike, options: BuildOptions | None = None, *,
                    address: str | None = None, num_cpus: int = 2, max_retries: int = 3,
                    log: Callable[[str], None] = lambda s: None) -> BipartiteGraph:
    """:func:`~recgraph.graph.external.build_graph` with its steps as Ray tasks.

    Args:
        address: a running cluster (``"auto"``, ``"ray://host:10001"``); None starts a local Ray with
            ``num_cpus`` CPUs for this call (and stops it after). An already initialised Ray is used as is.
        options: as for the local build; ``memory_budget`` is what ONE task may hold (locally the code
            divides the given budget by ``num_cpus``, since that many tasks run at once).
        max_retries: Ray retries of a task whose worker died.
    """
    import ray

    opt = options or BuildOptions()
    with ray_session(address, num_cpus) as local:
        if local:
            opt = dataclasses.replace(opt, memory_budget=opt.memory_budget // max(1, int(num_cpus)))
        log(f"ray: {ray.cluster_resources().get('CPU', 0):.0f} CPUs")
        return build_graph(Path(input_path).resolve(), Path(out).resolve(), opt,
                           mapper=ray_mapper(max_retries=max_retries), log=log)


def _ppr_batch(graph_dir: str, joint_dir: str, users: np.ndarray, items: np.ndarray, kwargs: dict):
    """One task: PPR of a batch of user and item sources over the mapped joint adjacency."""
    g = open_graph(graph_dir)
    indptr = load_npz(Path(joint_dir) / "joint_indptr.npz")["indptr"]
    indices = np.load(Path(joint_dir) / "joint_indices.npy", mmap_mode="r", allow_pickle=False)
    return bipartite_ppr(g, users, items, joint=(indptr, indices), check_indices=False, **kwargs)


def _concat(parts: list[PPRNeighbourhoods], empty: PPRNeighbourhoods, pushes: int) -> PPRNeighbourhoods:
    """Batches' rows in order; ``pushes``: the whole job's (bipartite_ppr reports the joint call's pushes on
    both halves, so does this)."""
    return PPRNeighbourhoods.concat([p for p in parts if len(p)] or [empty], num_pushes=pushes)


def graph_ppr_ray(graph_dir: str | os.PathLike, user_sources, item_sources, *, workdir: str | os.PathLike,
                  batch_sources: int = 4096, address: str | None = None, num_cpus: int = 2, max_retries: int = 3,
                  **kwargs) -> tuple[PPRNeighbourhoods, PPRNeighbourhoods]:
    """:func:`recgraph.graph.streaming.graph_ppr` of the graph folder ``graph_dir`` with the sources cut into
    batches of ``batch_sources`` run as Ray tasks (``workdir``: where the joint adjacency is written, on a
    file system every node mounts). Equal to the one-process result (same rows in the same order)."""
    import ray

    graph_dir, workdir = Path(graph_dir).resolve(), Path(workdir).resolve()
    g = open_graph(graph_dir)
    users = np.asarray(user_sources, np.int64).reshape(-1)
    items = np.asarray(item_sources, np.int64).reshape(-1)
    workdir.mkdir(parents=True, exist_ok=True)
    indptr, _ = joint_csr_to_disk(g, workdir / "joint_indices.npy")
    atomic_save_npz(workdir / "joint_indptr.npz", {"indptr": indptr})
    n = users.shape[0] + items.shape[0]
    cuts = list(range(0, n, max(1, int(batch_sources)))) + [n]
    batches = [(users[a:b], items[max(0, a - users.shape[0]):max(0, b - users.shape[0])])
               for a, b in zip(cuts[:-1], cuts[1:])]
    with ray_session(address, num_cpus):
        task = ray.remote(max_retries=max_retries, retry_exceptions=False)(_ppr_batch)
        out = ray.get([task.remote(str(graph_dir), str(workdir), u, i, kwargs) for u, i in batches])
    empty_u, empty_i = _ppr_batch(str(graph_dir), str(workdir), users[:0], items[:0], kwargs)
    pushes = sum(o[0].num_pushes for o in out)  # a batch reports its joint call's pushes on both halves
    return _concat([o[0] for o in out], empty_u, pushes), _concat([o[1] for o in out], empty_i, pushes)


# ---------------------------------------------------------------------------------------------- macro features


def _macro_part(graph_dir: str, work_dir: str, table: str, r0: int, r1: int, ragged: bool, kw: dict) -> None:
    """One task: rows ``[r0, r1)`` of one macro table, committed as ``WORK/TABLE/r{r0}`` (its ``.npy`` files)."""
    g, work = open_graph(graph_dir), Path(work_dir)
    target = work / table / f"r{r0:012d}"
    if target.is_dir():  # a retry of a task that had committed
        return
    user1 = DiskCSR.open(work / "user1") if table in ("u1", "i2") else None  # rows gathered per chunk
    item1 = DiskCSR.open(work / "item1") if table in ("i1", "u2") else None
    files = macro_files(table, ragged)
    atomic_write_dir(target, lambda tmp: macro_table(g, table, user1, item1, rows=(r0, r1),
                                                     out=tuple(tmp / f"{f}.npy" for f in files), **kw))


def _join_parts(parts: list[Path], out_dir: Path, table: str, ragged: bool, n_rows: int, width: int,
                id_dtype) -> list[np.ndarray]:
    """The row-range parts of one table written as the local build writes it; returns it memory-mapped."""
    files = macro_files(table, ragged)
    if ragged:  # flat ids / counts (growable, as spmm_slots writes them), offsets shifted part by part
        for f, dt in zip(files[:2], (id_dtype, np.float32)):
            with atomic_npy_writer(out_dir / f"{f}.npy", dt, None) as wr:
                for part in parts:
                    wr.write(np.load(part / f"{f}.npy", allow_pickle=False))
        with atomic_npy_writer(out_dir / f"{files[2]}.npy", np.int64, n_rows + 1) as wr:
            start = 0
            wr.write(np.zeros(1, np.int64))
            for part in parts:
                ptr = np.load(part / f"{files[2]}.npy", allow_pickle=False)
                wr.write(ptr[1:] + start)
                start += int(ptr[-1])
    else:
        for f, dt in zip(files, (id_dtype, np.int64 if table.endswith("rec") else np.float32)):
            with atomic_npy_writer(out_dir / f"{f}.npy", dt, (n_rows, width)) as wr:
                for part in parts:
                    wr.write(np.load(part / f"{f}.npy", allow_pickle=False))
    return [np.load(out_dir / f"{f}.npy", mmap_mode="r") for f in files]


def build_macro_ray(graph_dir: str | os.PathLike, out_dir: str | os.PathLike, *, category: np.ndarray | None = None,
                    item_method: str = "auto", item_k: int = 50, user_k: int = 20, recent: int = 20,
                    max_slots: int = 64, seed: int = 0, id_dtype=np.int32, rows_per_task: int = 1 << 18,
                    address: str | None = None, num_cpus: int = 2, max_retries: int = 3,
                    memory_budget: int | None = None, log: Callable[[str], None] = lambda s: None) -> MacroSlots:
    """:func:`recgraph.graph.streaming.build_macro_graph_from_graph` with ``out_dir``, its tables computed
    as Ray tasks of ``rows_per_task`` rows (``graph_dir``: an on-disk graph, time-ordered unless
    ``recent=0``; ``out_dir`` on a file system every node mounts). Returns the tables memory-mapped from
    ``out_dir``, the same files as the local build. The driver streams ``R·C`` and ``Rᵀ·U`` to
    ``out_dir/.work`` (:class:`~recgraph.graph.disk_csr.DiskCSR`); a task gathers the product rows each of
    its chunks reads. ``memory_budget``: the driver's (as the local build's) and, divided by ``num_cpus``,
    each task's — chunk sizes and gathers as :func:`~recgraph.graph.streaming.macro_budget_plan`."""
    import ray

    graph_dir, out_dir = Path(graph_dir).resolve(), Path(out_dir).resolve()
    g = open_graph(graph_dir)
    check_recent(g, recent)
    work = out_dir / ".work"
    shutil.rmtree(work, ignore_errors=True)
    plan = macro_budget_plan(memory_budget)
    im, n_im, um, n_um, _, _ = macro_products(g, category=category, item_method=item_method, item_k=item_k,
                                              user_k=user_k, seed=seed, max_edges=plan["max_edges"], spill=work,
                                              kmeans_bytes=plan["kmeans_bytes"], log=log)  # work/user1, work/item1
    dense = max(n_im, n_um) <= max_slots
    ragged = not dense
    task_plan = macro_budget_plan(None if memory_budget is None else max(2**20, memory_budget // max(1, num_cpus)))
    kw = dict(max_slots=max_slots, dense=dense, recent=recent, id_dtype=id_dtype, max_edges=task_plan["max_edges"],
              max_gather=task_plan["max_gather"])
    jobs = [(t, r0, min(macro_table_rows(g, t), r0 + int(rows_per_task))) for t in macro_tables(recent)
            for r0 in range(0, macro_table_rows(g, t), max(1, int(rows_per_task)))]
    log(f"macro tables: {len(jobs)} tasks")
    with ray_session(address, num_cpus):
        task = ray.remote(max_retries=max_retries, retry_exceptions=False)(_macro_part)
        ray.get([task.remote(str(graph_dir), str(work), t, r0, r1, ragged, kw) for t, r0, r1 in jobs])
    width = {"u1": n_im, "u2": n_um, "i1": n_um, "i2": n_im, "u_rec": recent, "i_rec": recent}
    tables = {t: _join_parts([work / t / f"r{r0:012d}" for tt, r0, _ in jobs if tt == t], out_dir, t,
                             ragged and t in SLOT_TABLES, macro_table_rows(g, t), width[t], id_dtype)
              for t in macro_tables(recent)}
    shutil.rmtree(work, ignore_errors=True)
    info = {"n_item_macros": n_im, "n_user_macros": n_um, "edges": g.n_edges, "dense_slots": dense,
            "slot_layout": "ragged" if ragged else "dense", "max_slots": int(max_slots)}
    save_macro_meta(out_dir, im, um, info, max_slots=max_slots, recent=recent, id_dtype=id_dtype)
    return macro_slots_of(tables, im, n_im, um, n_um, dense, g, dict(info, tasks=len(jobs)), ragged)
