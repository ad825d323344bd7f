"""A sparse matrix that stays on disk: CSR arrays as ``.npy`` files, rows read with ``pread``.

The macro build's two count products (``R·C``: users × item macros, ``Rᵀ·U``: items × user macros)
hold ~8 bytes per stored entry — 2.9 GB and 1.1 GB at a billion events — and the slot tables read
their rows in graph order, i.e. at random. scipy has no out-of-core CSR, and reading a memory-mapped
one at random puts every visited page in the resident set (:mod:`recgraph.graph.pread`). A
:class:`DiskCSR` is read only through :meth:`DiskCSR.gather`: the rows a chunk of work needs, read
with few large ``pread`` calls (neighbouring rows are read as one span) into a compact in-memory CSR
the compiled kernels take as it is. RAM: the gathered rows, a bounded buffer and the row offsets.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp

from ..io import atomic_npy_writer, atomic_write_json
from .external import read_slice
from .pread import memmap_region, pread_into

__all__ = ["DiskCSR", "DiskCSRWriter"]

SPAN_ENTRIES = 1 << 20  # a pread reads at most 1M entries (4 MB of indices, 4 MB of values) at once
GAP_ENTRIES = 1 << 12  # rows closer than 4,096 entries are read as one span (the gap is read and dropped)


@numba.njit(cache=True, nogil=True)
def _gather_spans(fd_i, base_i, fd_v, base_v, starts, lens, out_i, out_v, buf_i, buf_v, gap):  # pragma: no cover
    """Copy entries ``[starts[k], starts[k] + lens[k])`` of two on-disk arrays (element 0 at byte ``base_*`` of
    file ``fd_*``) one after another into ``out_i`` / ``out_v``, reading runs of close rows with one ``pread``
    each into ``buf_*``. ``starts`` ascending, every row ≤ ``buf_*.shape[0]``. Returns False on a short read."""
    cap = buf_i.shape[0]
    n = starts.shape[0]
    pos = 0
    k = 0
    while k < n:
        s, e = starts[k], starts[k] + lens[k]
        j = k + 1
        while j < n and starts[j] - e <= gap and starts[j] + lens[j] - s <= cap:
            e = max(e, starts[j] + lens[j])
            j += 1
        if e > s:
            nb_i = (e - s) * buf_i.itemsize
            nb_v = (e - s) * buf_v.itemsize
            if pread_into(fd_i, buf_i, nb_i, base_i + s * buf_i.itemsize) != nb_i:
                return False
            if pread_into(fd_v, buf_v, nb_v, base_v + s * buf_v.itemsize) != nb_v:
                return False
            for t in range(k, j):
                for q in range(starts[t], starts[t] + lens[t]):
                    out_i[pos] = buf_i[q - s]
                    out_v[pos] = buf_v[q - s]
                    pos += 1
        k = j
    return True


@dataclass(frozen=True, eq=False)
class DiskCSR:
    """``[n_rows, n_cols]`` CSR over on-disk arrays (``indptr`` int64, ``indices`` int32, ``data`` float32,
    each usually an ``np.memmap``; in-memory arrays work too). Rows come out as scipy CSR
    (``m[a:b]``, ``m[rows]``) or as raw arrays (:meth:`gather`)."""

    indptr: np.ndarray  # [n_rows + 1] int64
    indices: np.ndarray  # [nnz] int32
    data: np.ndarray  # [nnz] float32
    shape: tuple[int, int]
    folder: Path | None = None

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @classmethod
    def open(cls, folder: str | os.PathLike) -> "DiskCSR":
        """The matrix a :class:`DiskCSRWriter` committed to ``folder``, memory-mapped (nothing read yet)."""
        folder = Path(folder)
        meta = json.loads((folder / "csr.json").read_text())
        arrs = [np.load(folder / f"{k}.npy", mmap_mode="r", allow_pickle=False) for k in ("indptr", "indices", "data")]
        return cls(*arrs, shape=(int(meta["n_rows"]), int(meta["n_cols"])), folder=folder)

    def remove(self) -> None:
        """Delete the folder the matrix was opened from."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def row_offsets(self) -> np.ndarray:
        """``indptr`` in RAM (8 bytes per row), read with one ``pread``."""
        return read_slice(self.indptr, 0, self.shape[0] + 1).astype(np.int64, copy=False)

    def gather(self, rows: np.ndarray, indptr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``rows`` (sorted, unique) as a compact CSR ``(indptr [len(rows) + 1] int64, indices, data)``:
        row ``k`` of the result is row ``rows[k]`` of the matrix. ``indptr``: :meth:`row_offsets` when the
        caller holds it (else the rows' offsets are read here)."""
        rows = np.asarray(rows, np.int64)
        if indptr is None and rows.shape[0]:
            lo, hi = int(rows[0]), int(rows[-1]) + 2
            if hi - lo <= 8 * rows.shape[0] + (1 << 16):  # close rows: read their offsets as one span
                span = read_slice(self.indptr, lo, hi).astype(np.int64, copy=False)
                starts, ends = span[rows - lo], span[rows + 1 - lo]
            else:  # scattered rows (a sample): two offsets each
                pairs = [read_slice(self.indptr, int(r), int(r) + 2) for r in rows]
                starts = np.array([p[0] for p in pairs], np.int64)
                ends = np.array([p[1] for p in pairs], np.int64)
        elif indptr is None:
            starts = ends = np.zeros(0, np.int64)
        else:
            starts, ends = indptr[rows], indptr[rows + 1]
        return self.read_rows(starts, ends - starts)

    def read_rows(self, starts: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The entries ``[starts[k], starts[k] + lens[k])`` (``starts`` ascending: rows in order) as a compact
        CSR ``(indptr [len(starts) + 1] int64, indices, data)`` — :meth:`gather` once the offsets are known."""
        starts, lens = np.asarray(starts, np.int64), np.asarray(lens, np.int64)
        ptr = np.zeros(starts.shape[0] + 1, np.int64)
        np.cumsum(lens, out=ptr[1:])
        out_i = np.empty(int(ptr[-1]), self.indices.dtype)
        out_v = np.empty(int(ptr[-1]), self.data.dtype)
        reg_i, reg_v = memmap_region(self.indices), memmap_region(self.data)
        if reg_i is None or reg_v is None:  # in-memory arrays: a plain gather
            flat = np.repeat(starts - ptr[:-1], lens) + np.arange(int(ptr[-1]))
            out_i[:], out_v[:] = np.asarray(self.indices)[flat], np.asarray(self.data)[flat]
            return ptr, out_i, out_v
        cap = max(min(SPAN_ENTRIES, int(ptr[-1])), int(lens.max(initial=0)))  # never more than what is gathered
        buf_i, buf_v = np.empty(cap, self.indices.dtype), np.empty(cap, self.data.dtype)
        fd_i, fd_v = os.open(reg_i[0], os.O_RDONLY), os.open(reg_v[0], os.O_RDONLY)
        try:
            ok = _gather_spans(fd_i, reg_i[1], fd_v, reg_v[1], starts, lens, out_i, out_v, buf_i, buf_v,
                               GAP_ENTRIES)
        finally:
            os.close(fd_i)
            os.close(fd_v)
        if not ok:
            raise OSError(f"{reg_i[0]} or {reg_v[0]}: short read (file truncated while in use?)")
        return ptr, out_i, out_v

    def __getitem__(self, rows) -> sp.csr_matrix:
        """``m[a:b]`` (one sequential read) or ``m[rows]`` (sorted or not; read with :meth:`gather`) as scipy CSR."""
        if isinstance(rows, slice):
            a, b, step = rows.indices(self.shape[0])
            if step != 1:
                raise IndexError("DiskCSR row slices must have step 1")
            b = max(a, b)
            ptr = read_slice(self.indptr, a, b + 1).astype(np.int64)
            lo, hi = int(ptr[0]), int(ptr[-1])
            return sp.csr_matrix((read_slice(self.data, lo, hi), read_slice(self.indices, lo, hi), ptr - lo),
                                 shape=(b - a, self.shape[1]))
        rows = np.asarray(rows, np.int64).reshape(-1)
        uniq, inv = np.unique(rows, return_inverse=True)
        ptr, ind, val = self.gather(uniq)
        return sp.csr_matrix((val, ind, ptr), shape=(uniq.shape[0], self.shape[1]))[inv]


class DiskCSRWriter:
    """Write a CSR row block by row block (``write(indptr_local, indices, data)``) into ``folder``:
    ``indptr.npy`` / ``indices.npy`` / ``data.npy`` + ``csr.json``, each file committed atomically on
    close; :meth:`open` the result."""

    def __init__(self, folder: str | os.PathLike, n_rows: int, n_cols: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.n_rows, self.n_cols, self.nnz, self.rows = int(n_rows), int(n_cols), 0, 0
        self._stack = ExitStack()
        self._ptr = self._stack.enter_context(atomic_npy_writer(self.folder / "indptr.npy", np.int64, self.n_rows + 1))
        self._ind = self._stack.enter_context(atomic_npy_writer(self.folder / "indices.npy", np.int32, None))
        self._val = self._stack.enter_context(atomic_npy_writer(self.folder / "data.npy", np.float32, None))
        self._ptr.write(np.zeros(1, np.int64))

    def write(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> None:
        """Rows with local offsets ``indptr`` (``[r + 1]``, from 0) and their entries."""
        self._ptr.write(np.asarray(indptr[1:], np.int64) + self.nnz)
        self._ind.write(indices)
        self._val.write(data)
        self.nnz += int(indptr[-1])
        self.rows += int(indptr.shape[0] - 1)

    def __enter__(self) -> "DiskCSRWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stack.__exit__(exc_type, exc, tb)  # each file committed, or removed on an error
        if exc_type is None:
            atomic_write_json(self.folder / "csr.json", {"n_rows": self.n_rows, "n_cols": self.n_cols, "nnz": self.nnz})
