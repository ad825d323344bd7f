"""Download from a local HTTP server (mirror), checksum failure, offline message."""

import functools
import gzip
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from recgraph.config import resolve_data_dir
from recgraph.data.datasets import DATASETS, load_dataset
from recgraph.data.datasets.download import download_dataset, source_url
from recgraph.data.errors import DataError

ROOT = resolve_data_dir()
ML = ROOT / "movielens-100k"
URL_PATH = "files.grouplens.org/datasets/movielens/ml-100k.zip"


def build_zip(dest: Path, corrupt: bool = False) -> None:
    """ml-100k.zip in the GroupLens layout, from the project's files (decompressing the .gz ones)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in DATASETS["movielens-100k"].files:
            data = (ML / f.name).read_bytes()
            if f.name.endswith(".gz"):
                data = gzip.decompress(data)
            if corrupt and f.plain_name == "u.data":
                data = data.replace(b"\t5\t", b"\t4\t", 1)
            member = "ml-100k/README" if f.name == "README.grouplens.txt" else f"ml-100k/{f.plain_name}"
            zf.writestr(member, data)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=5)


def need_ml():
    if not ML.is_dir():
        pytest.skip(f"{ML} is absent (set RECGRAPH_DATA to the datasets folder)")


def test_source_url_mirror(monkeypatch):
    url = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    monkeypatch.delenv("RECGRAPH_MIRROR", raising=False)
    assert source_url(url) == url
    assert source_url(url, "http://m/x/") == "http://m/x/" + URL_PATH
    monkeypatch.setenv("RECGRAPH_MIRROR", "http://env")
    assert source_url(url) == "http://env/" + URL_PATH


def test_download_movielens_then_load(tmp_path, server, monkeypatch):
    need_ml()
    www, base = server
    build_zip(www / URL_PATH)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("RECGRAPH_MIRROR", base)
    ds = load_dataset("movielens-100k", data_dir)
    d = ds.interactions.describe()
    assert (d["events"], d["users"], d["items"]) == (100_000, 943, 1_682)
    folder = data_dir / "movielens-100k"
    assert (folder / "u.data").is_file() and (folder / "README.grouplens.txt").is_file()
    assert not list(folder.glob("*.part")) and not list(folder.glob(".*"))
    # second call: nothing missing, no network needed
    monkeypatch.setenv("RECGRAPH_MIRROR", "http://127.0.0.1:9")
    assert len(load_dataset("movielens-100k", data_dir).interactions) == 100_000


def test_corrupt_download_fails_checksum_and_leaves_nothing(tmp_path, server):
    need_ml()
    www, base = server
    build_zip(www / URL_PATH, corrupt=True)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as e:
        download_dataset("movielens-100k", data_dir, mirror=base)
    assert "checksum mismatch for u.data" in str(e.value)
    folder = data_dir / "movielens-100k"
    assert list(folder.iterdir()) == []  # no partial file, no half-written member


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_offline_message(tmp_path):
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as e:
        load_dataset("movielens-100k", data_dir, mirror=f"http://127.0.0.1:{closed_port()}")
    msg = str(e.value)
    folder = data_dir / "movielens-100k"
    assert "cannot download" in msg
    assert str(folder / "u.data.gz") in msg and str(folder / "u.user") in msg
    assert "--data-dir" in msg and "RECGRAPH_DATA" in msg and "RECGRAPH_MIRROR" in msg
    assert not [p for p in folder.iterdir()] if folder.exists() else True
