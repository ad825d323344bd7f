"""Atomic, pickle-free checkpoints.

A checkpoint is a folder of two files written with temp-file + ``os.replace``:
``state.safetensors`` (model and optimiser tensors, flattened) and ``meta.json`` (epoch, history,
RNG states as lists, non-tensor optimiser state). A crash mid-write leaves the previous checkpoint
intact: the new files are complete on disk before they take the old names, and ``meta.json`` —
written last — names the tensor file it belongs to.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def read_checked_json(path: str | os.PathLike, *, fmt, what: str, key: str = "format") -> dict:
    """Read a metadata JSON written by one of our savers and check its ``format`` tag.

    Errors say which file and what to do: missing (``what`` names the expected folder),
    unreadable JSON (corrupt: restore or rewrite it), or a foreign / unknown format."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {path.parent} {what}?")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); the file is corrupt — rewrite or restore it") from exc
    if not isinstance(meta, dict) or meta.get(key) != fmt:
        found = meta.get(key) if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: {key} {found!r}, this recgraph reads {fmt!r}")
    return meta


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp,
                  metadata={k: str(v) for k, v in (metadata or {}).items()})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, state_meta = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v
            else:
                state_meta[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": state_meta}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, v in tensors.items():
        if name.startswith("opt."):
            _, pid, k = name.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for name, v in meta["scalars"].items():
        pid, k = name.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(directory: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    meta: dict) -> Path:
    """Save model (+ optimiser) tensors and ``meta`` atomically under ``directory``; returns the folder."""
    directory = Path(directory)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_meta = None
    if optimizer is not None:
        opt_tensors, opt_meta = _flatten_optimizer(optimizer)
        tensors.update(opt_tensors)
    step = int(meta.get("epoch", 0))
    tensor_file = f"state-{step:06d}.safetensors"
    atomic_save_tensors(directory / tensor_file, tensors)
    atomic_write_json(directory / "meta.json", {**meta, "tensor_file": tensor_file, "optimizer": opt_meta})
    for old in directory.glob("state-*.safetensors"):  # keep only the file meta.json names
        if old.name != tensor_file:
            old.unlink(missing_ok=True)
    return directory


def load_checkpoint(directory: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, map_location: str = "cpu") -> dict:
    """Restore ``model`` (and ``optimizer``) from ``directory``; returns the saved meta dict."""
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"no checkpoint in {directory} (meta.json missing)")
    meta = json.loads(meta_path.read_text())
    tensors = load_file(str(directory / meta["tensor_file"]), device=map_location)
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None and meta.get("optimizer") is not None:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    return meta
