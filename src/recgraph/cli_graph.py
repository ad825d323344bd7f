"""``recgraph graph build | info | slice | subsample | macro``: the out-of-core graph build from the command line (local or Ray)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from .cli_output import console, fail

graph_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Build and inspect on-disk (memory-mapped) user–item graphs.")


@graph_app.command("build")
def build(input_path: Path = typer.Argument(..., metavar="INPUT",
                                            help="a .parquet / .csv file or a folder of partitions"),
          out: Path = typer.Option(..., "--out", help="graph folder to write (graph.json + one .npy per array)"),
          engine: str = typer.Option("local", help="local (this process) | ray (Ray tasks)"),
          memory_budget: str = typer.Option("4GB", help="RAM one build step may hold, e.g. 4GB, 512MB"),
          ray_address: Optional[str] = typer.Option(None, help="Ray cluster address (auto, ray://HOST:10001); "
                                                               "default: start a local Ray"),
          num_cpus: int = typer.Option(2, help="CPUs of the local Ray started for --engine ray"),
          user_col: str = "user", item_col: str = "item",
          timestamp_col: Optional[str] = typer.Option(None, help="timestamp column (none by default)"),
          behavior_col: Optional[str] = typer.Option(None, help="integer behaviour column (none by default)"),
          n_users: Optional[int] = typer.Option(None, help="number of users (default: max id + 1)"),
          n_items: Optional[int] = typer.Option(None, help="number of items (default: max id + 1)"),
          order: str = typer.Option("item", help="edge order within a row: item | time"),
          dedupe: bool = typer.Option(True, help="collapse repeated (user, item) pairs to the latest event"),
          keep_counts: bool = typer.Option(False, help="store each deduplicated edge's event count")):
    """Build the CSR graph (both directions) of partitioned edge files, out of core; a killed build
    run again with the same arguments resumes from its finished partitions."""
    from .graph.external import BuildOptions, build_graph, parse_bytes

    if engine not in ("local", "ray"):
        fail(f"--engine must be local or ray, got {engine!r}")
    try:
        opt = BuildOptions(user_col=user_col, item_col=item_col, timestamp_col=timestamp_col,
                           behavior_col=behavior_col, n_users=n_users, n_items=n_items, dedupe=dedupe, order=order,
                           keep_counts=keep_counts, memory_budget=parse_bytes(memory_budget))
        t0 = time.perf_counter()
        if engine == "ray":
            from .distributed.ray import build_graph_ray

            g = build_graph_ray(input_path, out, opt, address=ray_address, num_cpus=num_cpus, log=console.print)
        else:
            g = build_graph(input_path, out, opt, log=console.print)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        fail(str(exc))
    console.print(f"{g!r} written to {out} in {time.perf_counter() - t0:.1f} s "
                  f"({g.bytes_per_edge:.1f} bytes/edge on disk)")


@graph_app.command("info")
def info(path: Path = typer.Argument(..., help="graph folder")):
    """Counts and costs of a graph folder (reads it memory-mapped)."""
    console.print_json(json.dumps(_open_or_exit(path).describe()))

def _open_or_exit(path: Path):
    from .graph.external import open_graph
    from .io import ArtifactError

    try:
        return open_graph(path)
    except ArtifactError as exc:
        fail(str(exc))


@graph_app.command("slice")
def slice_(path: Path = typer.Argument(..., metavar="GRAPH", help="graph folder (recgraph graph build)"),
           out: Path = typer.Option(..., "--out", help="graph folder to write"),
           start: Optional[int] = typer.Option(None, help="keep edges with timestamp >= START"),
           end: Optional[int] = typer.Option(None, help="keep edges with timestamp < END"),
           memory_budget: str = typer.Option("2GB", help="RAM the rebuild of the slice may hold")):
    """The edges of a time window as a new graph folder, streamed from the memory-mapped graph."""
    from .graph.external import parse_bytes
    from .graph.streaming import time_slice_to_disk

    g = _open_or_exit(path)
    try:
        t0 = time.perf_counter()
        s = time_slice_to_disk(g, out, start, end, memory_budget=parse_bytes(memory_budget))
    except ValueError as exc:
        fail(str(exc))
    console.print(f"{s!r} ({s.n_edges} of {g.n_edges} edges) written to {out} in {time.perf_counter() - t0:.1f} s")


@graph_app.command("subsample")
def subsample(path: Path = typer.Argument(..., metavar="GRAPH", help="graph folder (recgraph graph build)"),
              out: Path = typer.Option(..., "--out", help="graph folder to write (+ inclusion_prob.npy)"),
              keep_rate: float = typer.Option(0.5, help="expected fraction of edges kept, in (0, 1]"),
              beta: float = typer.Option(0.5, help="popularity exponent (0: uniform)"),
              seed: int = 0,
              degree_floor: bool = typer.Option(True, help="keep one anchor edge per user and item"),
              memory_budget: str = typer.Option("2GB", help="RAM the rebuild of the kept edges may hold")):
    """RankGraph-2's popularity-corrected subsampling of a memory-mapped graph, out of core (the same kept
    edges as in memory for the same seed)."""
    from .graph.external import parse_bytes
    from .graph.streaming import subsample_to_disk

    g = _open_or_exit(path)
    try:
        t0 = time.perf_counter()
        s, summary = subsample_to_disk(g, out, keep_rate=keep_rate, beta=beta, seed=seed, degree_floor=degree_floor,
                                       memory_budget=parse_bytes(memory_budget))
    except ValueError as exc:
        fail(str(exc))
    console.print(f"{s!r} written to {out} in {time.perf_counter() - t0:.1f} s")
    console.print_json(json.dumps(summary))


def _read_categories(path: Path, n_items: int) -> np.ndarray:
    """Item → category ids from ``.npy`` (``[n_items]`` integers) or ``.csv`` (columns ``item,category``)."""
    if path.suffix.lower() == ".npy":
        cat = np.load(path, allow_pickle=False)
        if cat.ndim != 1 or cat.shape[0] != n_items or cat.dtype.kind not in "iu":
            raise ValueError(f"{path}: expected {n_items} integer category ids (one per item), "
                             f"got {cat.dtype}{list(cat.shape)}")
    elif path.suffix.lower() == ".csv":
        import pyarrow.csv as pcsv

        t = pcsv.read_csv(path)
        if not {"item", "category"} <= set(t.column_names):
            raise ValueError(f"{path}: needs columns 'item' and 'category', has {t.column_names}")
        item, c = (t.column(k).to_numpy(zero_copy_only=False) for k in ("item", "category"))
        if item.dtype.kind not in "iu" or c.dtype.kind not in "iu":
            raise ValueError(f"{path}: 'item' and 'category' must be integer ids")
        bad = np.flatnonzero((item < 0) | (item >= n_items))
        if bad.size:
            raise ValueError(f"{path}: row {int(bad[0]) + 1}, column 'item': id {int(item[bad[0]])} "
                             f"outside [0, {n_items})")
        cat = np.full(n_items, -1, np.int64)
        cat[item] = c
        if (cat < 0).any():
            raise ValueError(f"{path}: {int((cat < 0).sum())} of {n_items} items have no category "
                             f"(first: item {int(np.flatnonzero(cat < 0)[0])})")
    else:
        raise ValueError(f"{path}: categories must be a .npy or .csv file")
    if (cat < 0).any():
        raise ValueError(f"{path}: negative category id {int(cat.min())}")
    return cat.astype(np.int64)


@graph_app.command("macro")
def macro(path: Path = typer.Argument(..., metavar="GRAPH", help="graph folder (built with --order time unless "
                                                                  "--recent 0)"),
          out: Path = typer.Option(..., "--out", help="folder for the macro tables (.npy + macro.json)"),
          categories: Optional[Path] = typer.Option(None, help="item categories (.npy, or .csv item,category) as item "
                                                               "macros; default: k-means on the item rows (R in RAM)"),
          user_k: int = typer.Option(20, help="user macros (k-means on R·C rows)"),
          recent: int = typer.Option(20, min=0, help="recent-list length; 0: the slot tables only (no timestamps "
                                                     "needed)"),
          max_slots: int = typer.Option(64, min=1, help="macro slots per node (fewer macros than this: dense tables; "
                                                        "else each row's top slots, stored ragged)"),
          id32: bool = typer.Option(True, help="int32 slot / recent ids (int64 with --no-id32)"),
          engine: str = typer.Option("local", help="local (this process) | ray (tables as Ray tasks)"),
          ray_address: Optional[str] = typer.Option(None, help="Ray cluster address; default: a local Ray"),
          num_cpus: int = typer.Option(2, help="CPUs of the local Ray started for --engine ray"),
          memory_budget: Optional[str] = typer.Option(None, help="RAM the build may hold beyond ~25 bytes per node, "
                                                                 "e.g. 2GB (the count products go to disk; Ray: "
                                                                 "split over the tasks); default: products in RAM")):
    """MacGNN's macro-graph feature tables (slot counts u1 u2 i1 i2, recent lists) of a memory-mapped graph,
    streamed to disk in row chunks (slot tables ragged: each row's non-empty slots and row offsets);
    --engine ray computes the tables as Ray tasks (the same files)."""
    from .graph.external import parse_bytes
    from .graph.streaming import build_macro_graph_from_graph

    if engine not in ("local", "ray"):
        fail(f"--engine must be local or ray, got {engine!r}")
    g = _open_or_exit(path)
    try:
        cat = None if categories is None else _read_categories(categories, g.n_items)
        budget = None if memory_budget is None else parse_bytes(memory_budget)
        kw = dict(category=cat, user_k=user_k, recent=recent, max_slots=max_slots,
                  id_dtype=np.int32 if id32 else np.int64, log=console.print)
        t0 = time.perf_counter()
        if engine == "ray":
            from .distributed.ray import build_macro_ray

            m = build_macro_ray(path, out, address=ray_address, num_cpus=num_cpus, memory_budget=budget, **kw)
        else:
            m = build_macro_graph_from_graph(g, out_dir=out, memory_budget=budget, **kw)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    console.print(f"macro tables of {g.n_edges:,} edges ({m.info['n_item_macros']} item / {m.info['n_user_macros']} "
                  f"user macros) written to {out} in {time.perf_counter() - t0:.1f} s ({m.nbytes() / 2**20:.1f} MiB)")
