"""``recgraph graph build | info``: the out-of-core graph build from the command line (local or Ray)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

graph_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Build and inspect on-disk (memory-mapped) user–item graphs.")
console = Console()


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
        console.print(f"[bold red]error:[/] --engine must be local or ray, got {engine!r}")
        raise typer.Exit(2)
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
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2)
    console.print(f"{g!r} written to {out} in {time.perf_counter() - t0:.1f} s "
                  f"({g.bytes_per_edge:.1f} bytes/edge on disk)")


@graph_app.command("info")
def info(path: Path = typer.Argument(..., help="graph folder")):
    """Counts and costs of a graph folder (reads it memory-mapped)."""
    from .graph.external import open_graph
    from .io import ArtifactError

    try:
        g = open_graph(path)
    except ArtifactError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2)
    console.print_json(json.dumps(g.describe()))
