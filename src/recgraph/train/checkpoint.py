"""Atomic, pickle-free checkpoints.

A checkpoint is a folder of two files written atomically (``recgraph.io``):
``state-EPOCH.safetensors`` (model and optimiser tensors, flattened) and ``meta.json`` (epoch, history,
non-tensor optimiser state, the sha256 of the tensor file — verified on load). A crash mid-write leaves
the previous checkpoint intact: the new files are complete on disk before they take the old names, and
``meta.json`` — written last — names the tensor file it belongs to.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..io import (ArtifactError, atomic_save_tensors, atomic_write_json, file_checksums, load_tensors,
                  read_checked_json, verify_checksums)

CHECKPOINT_FORMAT = 1


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
    atomic_write_json(directory / "meta.json", {**meta, "format": CHECKPOINT_FORMAT, "tensor_file": tensor_file,
                                                "files": file_checksums(directory, [tensor_file]),
                                                "optimizer": opt_meta})
    for old in directory.glob("state-*.safetensors"):  # keep only the file meta.json names
        if old.name != tensor_file:
            old.unlink(missing_ok=True)
    return directory


def load_checkpoint(directory: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, map_location: str = "cpu") -> dict:
    """Restore ``model`` (and ``optimizer``) from ``directory``; returns the saved meta dict."""
    directory = Path(directory)
    meta = read_checked_json(directory / "meta.json", fmt=CHECKPOINT_FORMAT, what="a checkpoint folder",
                             required=("tensor_file", "files", "epoch"))
    verify_checksums(directory, meta["files"], manifest=str(directory / "meta.json"))
    tensors = load_tensors(directory / meta["tensor_file"], device=map_location)
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        if optimizer is not None and meta.get("optimizer") is not None:
            optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ArtifactError(directory / meta["tensor_file"], f"does not fit this model ({str(exc).splitlines()[0]})",
                            "resume with the same model and arguments, or start a new --out") from None
    return meta
