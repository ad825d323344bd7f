"""The out-of-core graph build (:mod:`recgraph.graph.external`) as Ray tasks.

Each step of the build — scan a partition, spill a partition into user buckets, sort a user
bucket, spill a user chunk into item buckets, sort an item bucket — is one Ray task running
:func:`recgraph.graph.external.run_step`, the very function the local engine calls; the driver
only plans, concatenates the bucket files and writes ``graph.json``. So the output is the local
engine's, byte for byte, whatever the number of workers or the order tasks finish in
(tests/distributed/test_ray.py).

Fault tolerance is Ray's: a task whose worker dies is retried (``max_retries``); each task
commits its output atomically (temp folder + rename), so a retry after a partial write starts
clean, and the driver itself can be restarted: the build resumes from the committed steps.

Locally (``address=None``) the code starts Ray with ``num_cpus`` CPUs and shuts it down at the
end. On a cluster (``address="ray://head:10001"`` or ``"auto"``) the input partitions and ``out``
must be on a file system every node mounts at the same path (NFS, a FUSE-mounted bucket), and
recgraph must be importable on the workers (installed in the image, or shipped with
``runtime_env={"py_modules": [recgraph]}``). ``memory_budget`` is per task there: every CPU may
run one task at a time.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Sequence

from ..graph.bipartite import BipartiteGraph
from ..graph.external import BuildOptions, build_graph, run_step

__all__ = ["build_graph_ray", "ray_mapper"]


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
    started = False
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address is None:
            ray.init(num_cpus=int(num_cpus), **kw)
            opt = dataclasses.replace(opt, memory_budget=opt.memory_budget // max(1, int(num_cpus)))
        else:
            ray.init(address=address, **kw)
        started = True
    try:
        log(f"ray: {ray.cluster_resources().get('CPU', 0):.0f} CPUs")
        return build_graph(Path(input_path).resolve(), Path(out).resolve(), opt,
                           mapper=ray_mapper(max_retries=max_retries), log=log)
    finally:
        if started:
            ray.shutdown()
