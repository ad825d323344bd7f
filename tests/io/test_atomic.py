"""Atomic writes: complete file or the previous one, never a half-written file; umask modes."""

import os
import stat

import numpy as np
import pytest
import torch

import recgraph.io.atomic as atomic
from recgraph.io import (atomic_save_npz, atomic_save_tensors, atomic_write_bytes, atomic_write_dir,
                         atomic_write_json, load_npz, load_tensors, read_json)


def test_round_trips(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": np.int64(3), "y": np.arange(3), "p": tmp_path})
    assert read_json(tmp_path / "a.json") == {"x": 3, "y": [0, 1, 2], "p": str(tmp_path)}
    atomic_save_npz(tmp_path / "a.npz", {"ids": np.array(["u1", "u22"]), "v": np.arange(4.0)})
    back = load_npz(tmp_path / "a.npz")
    assert back["ids"].tolist() == ["u1", "u22"] and back["v"].tolist() == [0, 1, 2, 3]
    atomic_save_tensors(tmp_path / "t.safetensors", {"w": torch.arange(6.0).view(2, 3)})
    assert torch.equal(load_tensors(tmp_path / "t.safetensors")["w"], torch.arange(6.0).view(2, 3))


def test_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(TypeError, match="dtype object"):
        atomic_save_npz(tmp_path / "x.npz", {"o": np.array([{"a": 1}], dtype=object)})


def test_crash_mid_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new and longer")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        import importlib

        importlib.reload(atomic)
        atomic.atomic_write_bytes(tmp_path / "m", b"x")
        assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o644  # not mkstemp's 0600
    finally:
        os.umask(old)
        importlib.reload(atomic)


def test_atomic_dir_replaces_whole_folder_or_nothing(tmp_path):
    final = tmp_path / "d"
    atomic_write_dir(final, lambda d: (d / "a").write_text("1"))
    assert (final / "a").read_text() == "1"

    def half(d):
        (d / "b").write_text("2")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write_dir(final, half)
    assert sorted(p.name for p in final.iterdir()) == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.int64])
def test_growable_npy_writer_records_the_written_length(tmp_path, dtype):
    """length=None: the header is rewritten with the number of items written; numpy reads the file
    (plain and memory-mapped) and a mismatch is impossible; an error inside the block leaves no file."""
    from recgraph.io.atomic import atomic_npy_writer

    parts = [np.arange(5), np.arange(0), np.arange(123_457) * 3]
    with atomic_npy_writer(tmp_path / "g.npy", dtype, None) as w:
        for p in parts:
            w.write(p)
    want = np.concatenate(parts).astype(dtype)
    for got in (np.load(tmp_path / "g.npy"), np.load(tmp_path / "g.npy", mmap_mode="r")):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    with atomic_npy_writer(tmp_path / "empty.npy", dtype, None):
        pass
    assert np.load(tmp_path / "empty.npy").shape == (0,)
    with pytest.raises(RuntimeError, match="stop"):
        with atomic_npy_writer(tmp_path / "bad.npy", dtype, None) as w:
            w.write(np.arange(3))
            raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.npy", "g.npy"]
