"""Model artifacts: ``weights.safetensors`` + ``artifact.json`` (class name, constructor arguments,
provenance, the sha256 of the weights). Written atomically, verified and loaded without pickle."""

from __future__ import annotations

from pathlib import Path

from .. import __version__
from ..config import git_commit
from ..io import (ArtifactError, atomic_save_tensors, atomic_write_json, file_checksums, load_tensors,
                  read_checked_json, verify_checksums)

ARTIFACT_FORMAT = 1
WEIGHTS = "weights.safetensors"


def save_model(directory: str | Path, model, meta: dict | None = None) -> Path:
    """Save a registered model's state and constructor arguments under ``directory``; the weights
    file is written first and ``artifact.json`` (which records its sha256) last."""
    directory = Path(directory)
    atomic_save_tensors(directory / WEIGHTS, dict(model.state_dict()))
    atomic_write_json(directory / "artifact.json", {
        "format": ARTIFACT_FORMAT, "model": model.registry_name, "config": model.config(),
        "files": file_checksums(directory, [WEIGHTS]),
        "recgraph_version": __version__, "git_commit": git_commit(), **(meta or {})})
    return directory


def read_artifact_meta(directory: str | Path) -> dict:
    return read_checked_json(Path(directory) / "artifact.json", fmt=ARTIFACT_FORMAT,
                             what="a model folder written by `recgraph train --out`",
                             required=("model", "config", "files"))


def load_model(directory: str | Path, graph=None):
    """Rebuild the model from ``directory`` (checksums verified). Models whose scoring needs the
    training graph (e.g. LightGCN's adjacency) get ``prepare(graph)`` first when ``graph`` is given.

    Raises:
        ArtifactError: a missing, malformed or changed file, or weights that do not fit the model."""
    from ..models.registry import get_model_class

    directory = Path(directory)
    meta = read_artifact_meta(directory)
    verify_checksums(directory, meta["files"], manifest=str(directory / "artifact.json"))
    try:
        cls = get_model_class(meta["model"])
        model = cls(**dict(meta["config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(directory / "artifact.json", f"cannot rebuild model {meta['model']!r} from its config "
                            f"({exc})", "was it written by another recgraph version?") from None
    if graph is not None:
        model.prepare(graph)
    state = load_tensors(directory / WEIGHTS)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(directory / WEIGHTS, f"weights do not fit {meta['model']} ({str(exc).splitlines()[0]})",
                            "re-run the command that wrote it") from None
    model.eval()
    return model, meta
