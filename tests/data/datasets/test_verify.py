"""Dataset files are checked against the published sha256 on load; verdicts are cached by size + mtime."""

import os
import shutil

import pytest

from recgraph.config import resolve_data_dir
from recgraph.data.datasets import DATASETS, load_dataset, verify_files
from recgraph.data.datasets import verify as verify_mod
from recgraph.data.errors import DataError

NAME = "movielens-100k"


@pytest.fixture
def ml(tmp_path, monkeypatch):
    src = resolve_data_dir() / NAME
    if not (src / "u.data.gz").is_file():
        pytest.skip("needs the bundled MovieLens-100K (set RECGRAPH_DATA)")
    monkeypatch.setenv("RECGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RECGRAPH_VERIFY_DATA", raising=False)
    dst = tmp_path / "data" / NAME
    shutil.copytree(src, dst)
    for p in dst.iterdir():
        os.chmod(p, 0o644)
    return dst


def count_hashes(monkeypatch):
    calls = []
    real = verify_mod.sha256_file
    monkeypatch.setattr(verify_mod, "sha256_file", lambda p: calls.append(p) or real(p))
    return calls


def test_first_load_hashes_every_file_then_the_cache_answers(ml, monkeypatch):
    spec = DATASETS[NAME]
    calls = count_hashes(monkeypatch)
    checked = verify_files(spec, ml)
    assert len(calls) == len(checked) == len([f for f in spec.files if (ml / f.name).exists()])
    calls.clear()
    verify_files(spec, ml)
    assert calls == []  # size + mtime unchanged: no re-hash


def test_a_touched_file_is_hashed_again_and_an_edit_is_caught(ml, monkeypatch):
    spec = DATASETS[NAME]
    verify_files(spec, ml)
    calls = count_hashes(monkeypatch)
    p = ml / "u.genre"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))  # same bytes, new mtime
    verify_files(spec, ml)
    assert [c.name for c in calls] == ["u.genre"]
    data = bytearray(p.read_bytes())
    data[0] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(DataError) as e:
        verify_files(spec, ml)
    assert e.value.file == str(p) and "does not match the published checksum" in str(e.value)


def test_plain_twin_of_a_gz_file_is_checked_against_the_content_sum(ml):
    import gzip

    (ml / "u.item").write_bytes(gzip.decompress((ml / "u.item.gz").read_bytes()))
    (ml / "u.item.gz").unlink()
    verify_files(DATASETS[NAME], ml)  # the content sha256 matches
    (ml / "u.item").write_bytes((ml / "u.item").read_bytes() + b"\n")
    with pytest.raises(DataError, match="u.item does not match"):
        verify_files(DATASETS[NAME], ml)


def test_opt_out(ml, monkeypatch):
    p = ml / "u.info"
    p.write_bytes(p.read_bytes() + b" ")
    with pytest.raises(DataError):
        load_dataset(NAME, ml.parent, download=False)
    assert len(load_dataset(NAME, ml.parent, download=False, verify=False).interactions) == 100_000
    monkeypatch.setenv("RECGRAPH_VERIFY_DATA", "0")
    assert len(load_dataset(NAME, ml.parent, download=False).interactions) == 100_000
