"""Checked reads: every failure is an ArtifactError naming the file; checksums catch changed bytes."""

import pytest
import torch

from recgraph.io import (ArtifactError, atomic_save_tensors, atomic_write_bytes, atomic_write_json, file_checksums,
                         load_npz, load_tensors, read_checked_json, read_json, verify_checksums)


@pytest.mark.parametrize("content, problem", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00", "not UTF-8"),
])
def test_bad_json_names_the_file(tmp_path, content, problem):
    atomic_write_bytes(tmp_path / "c.json", content)
    with pytest.raises(ArtifactError, match=problem) as e:
        read_json(tmp_path / "c.json")
    assert str(tmp_path / "c.json") in str(e.value)


def test_missing_directory_and_format(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        read_json(tmp_path / "nope.json")
    with pytest.raises(ArtifactError, match="is a directory"):
        read_json(tmp_path)
    atomic_write_json(tmp_path / "m.json", {"format": 2})
    with pytest.raises(ArtifactError, match="format 2"):
        read_checked_json(tmp_path / "m.json", fmt=1, what="x")
    atomic_write_json(tmp_path / "m.json", [1])
    with pytest.raises(ArtifactError, match="expected an object"):
        read_checked_json(tmp_path / "m.json", fmt=1, what="x")


@pytest.mark.parametrize("mangle", ["truncate", "random", "empty"])
def test_bad_safetensors_and_npz(tmp_path, mangle):
    path = tmp_path / "w.safetensors"
    atomic_save_tensors(path, {"w": torch.ones(100, 10)})
    data = path.read_bytes()
    bad = {"truncate": data[: len(data) // 2], "random": bytes(range(256)) * 4, "empty": b""}[mangle]
    path.write_bytes(bad)
    with pytest.raises(ArtifactError, match="not a readable safetensors") as e:
        load_tensors(path)
    assert str(path) in str(e.value)
    (tmp_path / "a.npz").write_bytes(bad)
    with pytest.raises(ArtifactError, match="not a readable .npz"):
        load_npz(tmp_path / "a.npz")


def test_checksums_catch_changed_bytes_with_the_same_size(tmp_path):
    path = tmp_path / "w.safetensors"
    atomic_save_tensors(path, {"w": torch.zeros(8)})
    sums = file_checksums(tmp_path, ["w.safetensors"])
    verify_checksums(tmp_path, sums, manifest="meta.json")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one byte of a weight: shapes intact, still loads
    path.write_bytes(bytes(data))
    load_tensors(path)
    with pytest.raises(ArtifactError, match="does not match the sha256 recorded in meta.json"):
        verify_checksums(tmp_path, sums, manifest="meta.json")
    path.write_bytes(bytes(data[:-4]))
    with pytest.raises(ArtifactError, match="truncated or replaced"):
        verify_checksums(tmp_path, sums, manifest="meta.json")
