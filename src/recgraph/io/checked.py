"""Checked reads: every failure names the file and says what to do.

``ArtifactError`` is raised for a file recgraph wrote that cannot be used as it is: missing,
truncated, not the format it should be, or whose bytes no longer match the sha256 recorded when it
was written (``verify_checksums``). Readers never unpickle.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import sha256_file

__all__ = ["ArtifactError", "MissingArtifactError", "read_json", "read_checked_json", "load_npz", "load_npy",
           "read_bytes", "load_tensors", "file_checksums", "verify_checksums"]


class ArtifactError(ValueError):
    """A file recgraph wrote (run folder, model artifact, checkpoint, index) that cannot be read.

    ``path`` is the file; the message says what is wrong and what to do."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str | None = None):
        self.path, self.problem, self.fix = Path(path), problem, fix
        super().__init__(f"{path}: {problem}" + (f" — {fix}" if fix else ""))


class MissingArtifactError(ArtifactError, FileNotFoundError):
    """The file is not there (also a ``FileNotFoundError``)."""


_REWRITE = "re-run the command that wrote it, or restore the file from a backup"


def _exists(path: Path, what: str | None) -> None:
    if path.is_dir():
        raise ArtifactError(path, "is a directory, expected a file")
    if not path.exists():
        where = f"is {path.parent} {what}?" if what else _REWRITE
        raise MissingArtifactError(path, "not found", where)


def read_json(path: str | os.PathLike, *, what: str | None = None) -> Any:
    """Parse a JSON file; missing, unreadable or malformed files raise :class:`ArtifactError`."""
    path = Path(path)
    _exists(path, what)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ArtifactError(path, f"is not UTF-8 text ({exc.reason} at byte {exc.start})", _REWRITE) from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(path, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                            _REWRITE) from None


def read_checked_json(path: str | os.PathLike, *, fmt, what: str, key: str = "format",
                      required: tuple[str, ...] = ()) -> dict:
    """A metadata JSON written by one of our savers: an object whose ``key`` equals ``fmt`` and
    that has every ``required`` field."""
    path = Path(path)
    meta = read_json(path, what=what)
    if not isinstance(meta, dict):
        raise ArtifactError(path, f"holds a JSON {type(meta).__name__}, expected an object", _REWRITE)
    if meta.get(key) != fmt:
        raise ArtifactError(path, f"{key} {meta.get(key)!r}, this recgraph reads {fmt!r}",
                            "write it again with this version of recgraph")
    missing = [k for k in required if k not in meta]
    if missing:
        raise ArtifactError(path, f"missing field(s) {', '.join(missing)}", _REWRITE)
    return meta


def load_npz(path: str | os.PathLike, *, what: str | None = None) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (``allow_pickle=False``), read eagerly."""
    path = Path(path)
    _exists(path, what)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ArtifactError(path, f"is not a readable .npz ({type(exc).__name__}: {exc})", _REWRITE) from None


def load_npy(path: str | os.PathLike, *, mmap: bool = False, what: str | None = None) -> np.ndarray:
    """One ``.npy`` array (``allow_pickle=False``); ``mmap=True`` opens it read-only, memory-mapped."""
    path = Path(path)
    _exists(path, what)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (EOFError, OSError, ValueError) as exc:
        raise ArtifactError(path, f"is not a readable .npy ({type(exc).__name__}: {exc})", _REWRITE) from None


def read_bytes(path: str | os.PathLike, *, what: str | None = None) -> bytes:
    """The bytes of a file recgraph wrote; a missing file raises :class:`ArtifactError`."""
    path = Path(path)
    _exists(path, what)
    return path.read_bytes()


def load_tensors(path: str | os.PathLike, *, device: str = "cpu", what: str | None = None) -> dict:
    """All tensors of a safetensors file; truncated or random bytes raise :class:`ArtifactError`."""
    from safetensors.torch import load

    path = Path(path)
    _exists(path, what)
    data = path.read_bytes()
    try:
        tensors = load(data)
    except Exception as exc:  # safetensors raises SafetensorError / ValueError / OverflowError on bad headers
        raise ArtifactError(path, f"is not a readable safetensors file ({type(exc).__name__}: {exc})",
                            _REWRITE) from None
    return {k: v.to(device) for k, v in tensors.items()} if device != "cpu" else tensors


def file_checksums(directory: str | os.PathLike, names) -> dict[str, dict]:
    """``{name: {"sha256": ..., "bytes": ...}}`` for files in ``directory`` (stored in a manifest)."""
    directory = Path(directory)
    return {n: {"sha256": sha256_file(directory / n), "bytes": (directory / n).stat().st_size} for n in names}


def verify_checksums(directory: str | os.PathLike, checksums: dict, *, manifest: str) -> None:
    """Check each file against the sha256 its manifest recorded; a mismatch is an :class:`ArtifactError`
    (the bytes changed after writing: a tampered or damaged file)."""
    directory = Path(directory)
    for name, want in (checksums or {}).items():
        path = directory / name
        _exists(path, None)
        if path.stat().st_size != want.get("bytes", path.stat().st_size):
            raise ArtifactError(path, f"has {path.stat().st_size} bytes, {manifest} recorded {want['bytes']} "
                                      "(truncated or replaced)", _REWRITE)
        if sha256_file(path) != want["sha256"]:
            raise ArtifactError(path, f"does not match the sha256 recorded in {manifest} (changed after it was "
                                      "written)", _REWRITE)
