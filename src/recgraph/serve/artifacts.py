"""Model artifacts: ``weights.safetensors`` + ``artifact.json`` (class name, constructor arguments,
provenance). Written atomically, loaded without pickle."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from .. import __version__
from ..config import git_commit
from ..train.checkpoint import atomic_save_tensors, atomic_write_json, read_checked_json

ARTIFACT_FORMAT = 1


def save_model(directory: str | Path, model, meta: dict | None = None) -> Path:
    """Save a registered model's state and constructor arguments under ``directory``."""
    directory = Path(directory)
    atomic_save_tensors(directory / "weights.safetensors", dict(model.state_dict()))
    atomic_write_json(directory / "artifact.json", {
        "format": ARTIFACT_FORMAT, "model": model.registry_name, "config": model.config(),
        "recgraph_version": __version__, "git_commit": git_commit(), **(meta or {})})
    return directory


def read_artifact_meta(directory: str | Path) -> dict:
    return read_checked_json(Path(directory) / "artifact.json", fmt=ARTIFACT_FORMAT,
                             what="a model folder written by `recgraph train --out`")


def load_model(directory: str | Path, train=None):
    """Rebuild the model from ``directory``. Models whose scoring needs the training graph
    (e.g. LightGCN's adjacency) get ``prepare(graph)`` of ``train``'s graph first when ``train``
    is given."""
    from ..graph.bipartite import BipartiteGraph
    from ..models.registry import get_model_class

    meta = read_artifact_meta(directory)
    cfg = dict(meta["config"])
    cls = get_model_class(meta["model"])
    model = cls(**cfg)
    if train is not None:
        model.prepare(BipartiteGraph.from_interactions(train))
    model.load_state_dict(load_file(str(Path(directory) / "weights.safetensors")))
    model.eval()
    return model, meta
