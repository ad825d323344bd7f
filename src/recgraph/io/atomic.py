"""Atomic writes: a reader (or a crash) sees either the old file or the complete new one.

Every file recgraph writes goes through here: ``atomic_write_bytes`` (temp file in the target
folder, ``fsync``, ``os.replace``), and on top of it JSON, ``.npz`` (no pickle) and safetensors.
``atomic_write_dir`` does the same for a folder built in one go. New files get the mode the
user's umask gives (``mkstemp``'s 0600 is widened), so an artifact can be shared like any file.
"""

from __future__ import annotations

import hashlib
import io as _stdio
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_save_npz",
           "atomic_save_tensors", "atomic_write_dir", "StagedFile", "sha256_file", "sha256_bytes", "json_default",
           "atomic_npy_writer", "AtomicNpyWriter"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _tmp_beside(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def _commit(tmp: str, path: Path) -> None:
    os.chmod(tmp, _FILE_MODE)
    os.replace(tmp, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    fd, tmp = _tmp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _commit(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_default(o):
    """``json.dumps`` fallback for numpy scalars / arrays, tensors and paths."""
    if hasattr(o, "item") and getattr(o, "ndim", 0) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=json_default) + "\n").encode("utf-8"))


def atomic_save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], *, compress: bool = False) -> None:
    """``np.savez`` into memory, then one atomic write; object arrays are refused (no pickle)."""
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise TypeError(f"{path}: array {k!r} has dtype object; npz artifacts never hold pickled objects")
    buf = _stdio.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_tensors(path: str | os.PathLike, tensors: Mapping[str, Any], metadata: dict | None = None) -> None:
    """safetensors file of ``tensors`` (torch tensors; moved to CPU, made contiguous), atomically."""
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                metadata={k: str(v) for k, v in (metadata or {}).items()})
    atomic_write_bytes(path, data)


class StagedFile:
    """A temp file beside ``target`` to fill in steps (``.path``, e.g. a streamed download);
    :meth:`commit` fsyncs it and renames it onto ``target``, :meth:`discard` removes it. Several
    staged files can be checked first and committed together."""

    def __init__(self, target: str | os.PathLike, suffix: str = ".part"):
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.target.parent, prefix=f".{self.target.name}.", suffix=suffix)
        os.close(fd)
        self.path = Path(tmp)

    def commit(self) -> Path:
        with open(self.path, "rb") as f:
            os.fsync(f.fileno())
        _commit(str(self.path), self.target)
        return self.target

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def atomic_write_dir(final: str | os.PathLike, build: Callable[[Path], None]) -> Path:
    """Build a folder with ``build(tmp_dir)`` next to ``final``, then swap it into place.

    A crash leaves either the previous folder or the complete new one under ``final`` (plus, at
    worst, a hidden ``.NAME.*.tmp`` folder that the next call does not reuse)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        build(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.rmdir(old)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fixed_npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A version 1.0 ``.npy`` header of exactly ``_GROWABLE_HEADER`` bytes (spaces pad the dict), so a
    growable file's header can be rewritten in place once its length is known."""
    d = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    body = d.encode("latin1")
    room = _GROWABLE_HEADER - 10 - 1 - len(body)
    if room < 0:
        raise ValueError(f"npy header for shape {shape} does not fit {_GROWABLE_HEADER} bytes")
    return b"\x93NUMPY\x01\x00" + (_GROWABLE_HEADER - 10).to_bytes(2, "little") + body + b" " * room + b"\n"


_GROWABLE_HEADER = 128  # a multiple of 64, as numpy aligns its own headers


class AtomicNpyWriter:
    """Stream a ``.npy`` of known ``dtype`` and ``length`` (1-D) or ``shape`` (C order: chunks of whole
    rows) chunk by chunk, committed atomically.

    For arrays larger than memory (the out-of-core graph build): the header is written first, each
    :meth:`write` appends a chunk, and closing checks that exactly the declared number of items
    arrived, then fsyncs and renames. ``length=None``: a 1-D array whose length is not known in
    advance (ragged tables); the header is rewritten with the final length on close. An exception
    inside the ``with`` block leaves no file behind."""

    def __init__(self, path: str | os.PathLike, dtype, length: int | tuple[int, ...] | None):
        self.growable = length is None
        shape = (0,) if self.growable else (
            tuple(int(d) for d in length) if isinstance(length, (tuple, list)) else (int(length),))
        self.path, self.dtype, self.shape, self.written = Path(path), np.dtype(dtype), shape, 0
        self.length = int(np.prod(shape, dtype=np.int64))  # items, all dimensions together
        fd, self._tmp = _tmp_beside(self.path)
        self._fh = os.fdopen(fd, "wb")
        if self.growable:
            self._fh.write(_fixed_npy_header(self.dtype, (0,)))
        else:
            np.lib.format.write_array_header_1_0(
                self._fh, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                           "shape": self.shape})

    def write(self, chunk: np.ndarray) -> None:
        chunk = np.ascontiguousarray(chunk, dtype=self.dtype).reshape(-1)
        if self.growable:
            self.length += chunk.shape[0]
        elif self.written + chunk.shape[0] > self.length:
            raise ValueError(f"{self.path}: more than the declared {self.length} items written")
        chunk.tofile(self._fh)
        self.written += chunk.shape[0]

    def __enter__(self) -> "AtomicNpyWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self.written != self.length:
                raise ValueError(f"{self.path}: {self.written} items written, {self.length} declared")
            if exc_type is None:
                if self.growable:
                    self._fh.seek(0)
                    self._fh.write(_fixed_npy_header(self.dtype, (self.written,)))
                self._fh.flush()
                os.fsync(self._fh.fileno())
            self._fh.close()
            if exc_type is None:
                _commit(self._tmp, self.path)
        finally:
            Path(self._tmp).unlink(missing_ok=True)


def atomic_npy_writer(path: str | os.PathLike, dtype, length: int | tuple[int, ...] | None) -> AtomicNpyWriter:
    """``with atomic_npy_writer(path, np.int32, n) as w: w.write(chunk) ...`` (``n``, a shape ``(n, d)``, or
    ``None``: 1-D of the length written; see :class:`AtomicNpyWriter`)."""
    return AtomicNpyWriter(path, dtype, length)
