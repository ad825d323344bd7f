"""DiskCSR: a CSR written block by block and read back by rows with pread equals scipy's."""

import os
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from recgraph.graph import disk_csr
from recgraph.graph.disk_csr import DiskCSR, DiskCSRWriter


def _random_csr(n_rows, n_cols, density, seed=0):
    m = sp.random(n_rows, n_cols, density=density, format="csr", dtype=np.float32, random_state=seed)
    m.data[:] = np.random.default_rng(seed).integers(1, 9, m.nnz)
    m.sort_indices()
    return m


def _write(m: sp.csr_matrix, folder, block=37) -> DiskCSR:
    with DiskCSRWriter(folder, m.shape[0], m.shape[1]) as w:
        for a in range(0, m.shape[0], block):
            part = m[a:a + block]
            w.write(part.indptr.astype(np.int64), part.indices, part.data)
    return DiskCSR.open(folder)


def test_written_blocks_read_back_as_the_matrix(tmp_path):
    m = _random_csr(500, 40, 0.1)
    d = _write(m, tmp_path / "m")
    assert d.shape == m.shape and d.nnz == m.nnz and isinstance(d.indices, np.memmap)
    for got, want in ((d[0:500], m), (d[120:121], m[120:121]), (d[300:300], m[300:300])):
        np.testing.assert_array_equal(got.toarray(), want.toarray())
    rows = np.array([7, 3, 499, 3, 0])  # unsorted, repeated
    np.testing.assert_array_equal(d[rows].toarray(), m[rows].toarray())


@pytest.mark.parametrize("span,gap", [(1 << 20, 1 << 12), (8, 2), (8, 0)])  # one span / many small reads
def test_gather_equals_scipy_rows(tmp_path, monkeypatch, span, gap):
    monkeypatch.setattr(disk_csr, "SPAN_ENTRIES", span)
    monkeypatch.setattr(disk_csr, "GAP_ENTRIES", gap)
    m = _random_csr(800, 30, 0.15, seed=1)
    m = sp.csr_matrix(m.multiply((np.arange(800) // 10 != 1)[:, None]))  # rows 10..19 empty
    d = _write(m, tmp_path / "m")
    ip = d.row_offsets()
    rng = np.random.default_rng(2)
    for rows in (np.arange(800), np.arange(5, 25), np.unique(rng.integers(0, 800, 40)), np.array([799]),
                 np.zeros(0, np.int64)):
        for given in (ip, None):
            ptr, ind, val = d.gather(rows, given)
            want = m[rows]
            np.testing.assert_array_equal(ptr, want.indptr)
            np.testing.assert_array_equal(ind, want.indices)
            np.testing.assert_array_equal(val, want.data)


def test_in_memory_arrays_gather_the_same():
    m = _random_csr(100, 12, 0.2)
    d = DiskCSR(m.indptr.astype(np.int64), m.indices, m.data, m.shape)
    rows = np.array([1, 2, 50, 99])
    ptr, ind, val = d.gather(rows)
    np.testing.assert_array_equal(sp.csr_matrix((val, ind, ptr), shape=(4, 12)).toarray(), m[rows].toarray())


def test_a_truncated_file_is_an_error_not_garbage(tmp_path):
    d = _write(_random_csr(300, 20, 0.3), tmp_path / "m")
    path = tmp_path / "m" / "indices.npy"
    os.truncate(path, os.path.getsize(path) - 400)
    with pytest.raises(OSError, match="short read"):
        d.gather(np.arange(300), d.row_offsets())


def test_a_failed_write_leaves_no_files(tmp_path):
    with pytest.raises(RuntimeError):
        with DiskCSRWriter(tmp_path / "m", 10, 5) as w:
            w.write(np.array([0, 1]), np.array([3], np.int32), np.array([1.0], np.float32))
            raise RuntimeError("killed")
    assert not any(p.suffix == ".npy" for p in (tmp_path / "m").iterdir())
    assert not (tmp_path / "m" / "csr.json").exists()


def test_remove_deletes_the_folder(tmp_path):
    d = _write(_random_csr(20, 5, 0.3), tmp_path / "m")
    d.remove()
    assert not (tmp_path / "m").exists()


def test_slot_product_over_a_disk_matrix_gathers_in_bounded_memory(tmp_path):
    """spmm_slots over a DiskCSR ``B`` (28 MB on disk) with ``max_gather``: the same ragged tables as
    over the in-memory ``B``, with chunks halved until their rows fit, and traced memory a fraction of ``B``."""
    from recgraph.graph.streaming import spmm_slots

    rng = np.random.default_rng(3)
    n_b, n_cols = 200_000, 64
    B = sp.csr_matrix((rng.integers(1, 5, n_b * 20).astype(np.float32),
                       np.sort(rng.integers(0, n_cols, (n_b, 20)), axis=1).reshape(-1),
                       np.arange(0, n_b * 20 + 1, 20)), shape=(n_b, n_cols))
    B.sum_duplicates()
    d = _write(B, tmp_path / "B", block=50_000)
    n_a, e = 30_000, 600_000
    a_ptr = np.concatenate([[0], np.cumsum(np.bincount(rng.integers(0, n_a, e), minlength=n_a))]).astype(np.int64)
    a_ind = rng.integers(0, n_b, e).astype(np.int32)
    kw = dict(max_slots=8, dense=False, id_dtype=np.int32, max_edges=1 << 16)
    ref = spmm_slots(a_ptr, a_ind, B, out=tuple(tmp_path / f"ref_{k}.npy" for k in ("ids", "cnt", "ptr")), **kw)
    tracemalloc.start()
    got = spmm_slots(a_ptr, a_ind, d, max_gather=50_000,
                     out=tuple(tmp_path / f"got_{k}.npy" for k in ("ids", "cnt", "ptr")), **kw)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    disk_bytes = d.nnz * 8
    assert disk_bytes > 25e6 and peak < 6e6, (disk_bytes, peak)
