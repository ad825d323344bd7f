"""Where data and runs live, and small run-level settings."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

DATA_ENV = "RECGRAPH_DATA"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The dataset root: ``data_dir``, else ``$RECGRAPH_DATA``, else ``../shared/datasets`` next to a
    checkout (walking up from this file and from the working directory), else a user cache dir."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for parent in [start, *start.parents]:
            cand = parent.parent / "shared" / "datasets"
            if (parent / "pyproject.toml").exists() and cand.is_dir():
                return cand
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("recgraph")) / "datasets"


CACHE_ENV = "RECGRAPH_CACHE_DIR"


def cache_dir() -> Path:
    """recgraph's user cache folder: ``$RECGRAPH_CACHE_DIR``, else the platform's user cache dir
    (``~/.cache/recgraph`` on Linux). Holds numba's compiled kernels and dataset checksum verdicts;
    never the installed package folder (which may be read-only)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("recgraph"))


def parse_model_args(pairs) -> dict:
    """``["reg=1e-3", "sampling=user"]`` → ``{"reg": 0.001, "sampling": "user"}``: each value read as
    JSON when it parses, else kept as a string (``--set KEY=VALUE`` of the CLI and benchmarks).

    Raises:
        ValueError: for an item without ``=``.
    """
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, or None when not in a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
