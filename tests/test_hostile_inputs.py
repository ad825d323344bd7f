"""Hostile inputs, table-driven: every bad input gets a named error or a counted skip.

Each :class:`Case` builds its input in a temporary folder, runs one call (a reader, a dataset load,
or the CLI through typer's ``CliRunner``) and states the outcome: the exact error class and the
strings its message must contain (the file, ``file:line``, the column or the argument), or — for a
skip — the exact count; or that the input is fine. ``python tests/test_hostile_inputs.py`` prints
the table in README's RELIABILITY section from :data:`CASES`.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from recgraph.config import resolve_data_dir
from recgraph.data.errors import DataError, SkipReport
from recgraph.data.io import read_interactions


@dataclass(frozen=True)
class Case:
    """One hostile input. ``run(tmp)`` does the call and returns ``(result, skip report or None)``;
    ``error`` is the exact exception class expected (None: no exception), ``names`` the strings its
    message (or, for the CLI, the output) must contain — ``{tmp}`` is replaced by the folder —
    ``skipped`` the expected count of skipped rows, ``check`` an extra assertion on the result."""

    id: str
    area: str
    what: str
    run: Callable
    error: type | None = None
    names: tuple[str, ...] = ()
    skipped: int | None = None
    check: Callable | None = None
    needs_data: bool = False

    @property
    def verdict(self) -> str:
        if self.error is CliFailed:
            return "CLI refuses (exit 2, no traceback)"
        if self.error is not None:
            return f"error: {self.error.__name__}"
        if self.skipped:
            return f"counted skip ({self.skipped})"
        return "fine"


class CliFailed(Exception):
    """The CLI exited with a non-zero code (message = its output)."""


# ------------------------------------------------------------------------------------------ helpers


def put(tmp: Path, name: str, data) -> Path:
    p = tmp / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


def reader(name: str, data, **kw) -> Callable:
    """A case body: write ``data`` to ``tmp/name`` and read it (columns u, i by default)."""

    def run(tmp: Path):
        p = put(tmp, name, data) if data is not None else tmp / name
        kw.setdefault("user", "u")
        kw.setdefault("item", "i")
        rep = SkipReport()
        return read_interactions(p, skip_report=rep, **kw), rep

    return run


def parquet(name: str, columns: dict, **kw) -> Callable:
    def run(tmp: Path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = tmp / name
        pq.write_table(pa.table(columns), p)
        kw.setdefault("user", "u")
        kw.setdefault("item", "i")
        rep = SkipReport()
        return read_interactions(p, skip_report=rep, **kw), rep

    return run


def raw_parquet(name: str, mangle: Callable[[bytes], bytes]) -> Callable:
    def run(tmp: Path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = tmp / name
        pq.write_table(pa.table({"u": np.arange(1000), "i": np.arange(1000)}), p)
        p.write_bytes(mangle(p.read_bytes()))
        return read_interactions(p, user="u", item="i"), None

    return run


ML = "movielens-100k"


def ml_copy(tmp: Path, tamper: str | None = None, how: str = "flip") -> Path:
    """A copy of the bundled MovieLens-100K folder under ``tmp/data`` (``tamper``: a file to change)."""
    src = resolve_data_dir() / ML
    root = tmp / "data"
    shutil.copytree(src, root / ML)
    for p in (root / ML).iterdir():
        os.chmod(p, 0o644)
    if tamper:
        p = root / ML / tamper
        b = bytearray(p.read_bytes())
        if how == "flip":  # same size, one byte changed
            b[len(b) // 2] ^= 0x01
        elif how == "truncate":
            b = b[: len(b) // 2]
        p.write_bytes(bytes(b))
    return root


def dataset(tamper: str | None = None, how: str = "flip", **kw) -> Callable:
    def run(tmp: Path):
        from recgraph.data.datasets import load_dataset

        root = ml_copy(tmp, tamper, how)
        ds = load_dataset(ML, root, download=False, **kw)
        return ds, ds.skipped

    return run


def cli(*args: str, data: Callable[[Path], Path] | None = None, env: dict | None = None) -> Callable:
    """Run ``recgraph ARGS`` in-process (``{data}`` / ``{tmp}`` are replaced by folders); a non-zero
    exit raises :class:`CliFailed` carrying the output, a Python traceback fails the case."""

    def run(tmp: Path):
        from typer.testing import CliRunner

        from recgraph.cli import app

        root = data(tmp) if data else tmp
        argv = [a.replace("{data}", str(root)).replace("{tmp}", str(tmp)) for a in args]
        res = CliRunner().invoke(app, argv, env=env, catch_exceptions=True)
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise AssertionError(f"traceback instead of a message: {res.exception!r}\n{res.output}")
        text = res.output.replace("\n", "")  # rich wraps at 80 columns, even inside a path
        if res.exit_code != 0:
            raise CliFailed(text)
        return text, None

    return run


def mutate_gz(data: bytes, cut: bool) -> bytes:
    z = gzip.compress(data)
    return z[: len(z) - 12] if cut else z[:12] + bytes(b ^ 0x5A for b in z[12:40]) + z[40:]


# ------------------------------------------------------------------------------- run-folder helpers

_RUN_CACHE: dict[str, Path] = {}


def trained_run() -> Path:
    """A real MF-BPR run folder on MovieLens-100K (2 epochs, checkpoints every epoch), trained once
    per test session with the CLI and copied by each case that damages it."""
    if "run" not in _RUN_CACHE:
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="recgraph-hostile-run-"))
        cli("train", "bpr", "--dataset", ML, "--epochs", "2", "--out", str(root / "run"), "--device", "cpu")(root)
        _RUN_CACHE["run"] = root / "run"
    return _RUN_CACHE["run"]


def _copy_run(tmp: Path) -> Path:
    dst = tmp / "run"
    shutil.copytree(trained_run(), dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def flip(p: Path) -> None:
    b = bytearray(p.read_bytes())
    b[-9] ^= 0x01  # inside the tensor data: shapes and header intact
    p.write_bytes(bytes(b))


def cut(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def eval_cli(damage: Callable[[Path], object]) -> Callable:
    def run(tmp: Path):
        run_dir = _copy_run(tmp)
        damage(run_dir)
        return cli("eval", str(run_dir))(tmp)

    return run


def resume_cli(damage: Callable[[Path], object], *extra: str) -> Callable:
    def run(tmp: Path):
        run_dir = _copy_run(tmp)
        damage(run_dir)
        return cli("train", "bpr", "--dataset", ML, "--epochs", "3", "--out", str(run_dir), "--resume",
                   "--device", "cpu", *extra)(tmp)

    return run


def _concurrent(tmp: Path):
    """Start a long run on tmp/run in a subprocess; once it holds the folder's lock, start a second."""
    import fcntl
    import subprocess
    import time

    out = tmp / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                           os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "recgraph.cli", "train", "bpr", "--dataset", ML, "--epochs",
                             "500", "--out", str(out), "--device", "cpu"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the first run exited early ({proc.returncode})")
            if (out / ".lock").exists():
                fd = os.open(out / ".lock", os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(fd, fcntl.LOCK_UN)
                except BlockingIOError:
                    break  # held by the first run
                finally:
                    os.close(fd)
            time.sleep(0.2)
        else:
            raise AssertionError("the first run never took the --out lock")
        return cli("train", "bpr", "--dataset", ML, "--epochs", "1", "--out", str(out), "--device", "cpu")(tmp)
    finally:
        proc.kill()
        proc.wait()


LATIN1 = "u,i\n1,caf\u00e9\n2,na\u00efve\n".encode("latin-1")
_USERS = [f"user{k % 40}" for k in range(400)]
_ITEMS = [f"caf\u00e9-{(k * 7) % 60}" for k in range(400)]
LATIN1_LOG = ("u,i\n" + "".join(f"{u},{i}\n" for u, i in zip(_USERS, _ITEMS))).encode("latin-1")
MS_LOG = "u,i,t\n" + "".join(f"{u},item{(k * 7) % 60},{1500000000000 + 1000 * k}\n" for k, u in enumerate(_USERS))
SKIP = dict(on_bad_rows="skip")

# ------------------------------------------------------------------------------------------- cases

CASES: list[Case] = [
    # ---- JSON lines
    Case("jsonl-broken-line", "reader", "JSON lines: a broken line (line 2 cut short)",
         reader("log.jsonl", '{"u":1,"i":2}\n{"u":1,"i":\n{"u":3,"i":4}\n'), DataError,
         ("log.jsonl:2", "malformed JSON", "on_bad_rows='skip'")),
    Case("jsonl-broken-line-skip", "reader", "JSON lines: a broken line with on_bad_rows='skip'",
         reader("log.jsonl", '{"u":1,"i":2}\n{"u":1,"i":\n{"u":3,"i":4}\n', **SKIP), None, (), 1,
         check=lambda x: x.user_vocab.raw[x.user].tolist() == [1, 3]),
    Case("jsonl-not-object", "reader", "JSON lines: a line holding a JSON list",
         reader("log.jsonl", '{"u":1,"i":2}\n[1, 2]\n'), DataError, ("log.jsonl:2", "not a JSON object")),
    Case("jsonl-two-objects", "reader", "JSON lines: two objects on one line",
         reader("log.jsonl", '{"u":1,"i":2}{"u":3,"i":4}\n'), DataError, ("log.jsonl:1", "malformed JSON")),
    Case("jsonl-bool-id", "reader", "JSON lines: a boolean user id",
         reader("log.jsonl", '{"u":1,"i":2}\n{"u":true,"i":3}\n'), DataError,
         ("log.jsonl:2", "column 'u'", "wrong JSON type")),
    Case("jsonl-key-missing", "reader", "JSON lines: the item key is in no record",
         reader("log.jsonl", '{"u":1,"item":2}\n'), DataError, ("log.jsonl", "column 'i'", "key not found")),
    Case("jsonl-mixed-types-str", "reader", "JSON lines: ids mixing numbers and strings, id_type='str'",
         reader("log.jsonl", '{"u":1,"i":"a"}\n{"u":"x","i":2}\n', id_type="str"), None,
         check=lambda x: sorted(x.user_vocab.raw.tolist()) == ["1", "x"]),
    Case("jsonl-int64-overflow", "reader", "JSON lines: an id beyond int64",
         reader("log.jsonl", '{"u":1,"i":2}\n{"u":99999999999999999999,"i":2}\n'), DataError,
         ("log.jsonl:2", "beyond the int64 range")),
    Case("jsonl-float-id", "reader", "JSON lines: a fractional id 3.5",
         reader("log.jsonl", '{"u":3.5,"i":2}\n'), DataError, ("log.jsonl:1", "non-integer user id")),
    Case("jsonl-blank-lines", "reader", "JSON lines: blank and whitespace-only lines, CRLF endings",
         reader("log.jsonl", '{"u":1,"i":2}\r\n   \r\n\r\n{"u":3,"i":4}\r\n'), None,
         check=lambda x: len(x) == 2),
    Case("jsonl-by-index", "reader", "JSON lines: a column given by index",
         reader("log.jsonl", '{"u":1,"i":2}\n', user=0), DataError, ("log.jsonl", "by key name")),
    # ---- numbers
    Case("csv-id-int64-overflow", "reader", "CSV: user id 99999999999999999999",
         reader("log.csv", "u,i\n99999999999999999999,2\n1,2\n"), DataError,
         ("log.csv:2", "column 'u'", "beyond the int64 range", "id_type='str'")),
    Case("csv-id-int64-edge", "reader", "CSV: ids at the int64 limits (fine) and +5 / 007",
         reader("log.csv", "u,i\n9223372036854775807,-9223372036854775808\n+5,007\n"), None,
         check=lambda x: x.user_vocab.raw.tolist() == [5, 2 ** 63 - 1] and 7 in x.item_vocab.raw),
    Case("csv-ts-int64-overflow", "reader", "CSV: timestamp 99999999999999999999",
         reader("log.csv", "u,i,t\n1,2,99999999999999999999\n", timestamp="t"), DataError,
         ("log.csv:2", "column 't'", "beyond the int64 range")),
    Case("csv-id-overflow-skip", "reader", "CSV: an id beyond int64, skipped",
         reader("log.csv", "u,i\n1,2\n-9223372036854775809,2\n", **SKIP), None, (), 1),
    Case("csv-nan-label", "reader", "CSV: a NaN label",
         reader("log.csv", "u,i,r\n1,2,4\n1,3,nan\n", label="r"), DataError, ("log.csv:3", "column 'r'", "NaN")),
    # ---- encodings
    Case("latin1-as-utf8", "reader", "a latin-1 file read as UTF-8",
         reader("log.csv", LATIN1, id_type="str"), DataError,
         ("log.csv:2", "not valid utf-8", "encoding='latin-1'")),
    Case("latin1-declared", "reader", "the same file with encoding='latin-1'",
         reader("log.csv", LATIN1, id_type="str", encoding="latin-1"), None,
         check=lambda x: "caf\u00e9" in x.item_vocab.raw.tolist()),
    Case("utf8-bom-header", "reader", "a UTF-8 byte-order mark before the header",
         reader("log.csv", "\ufeffu,i\n1,2\n".encode("utf-8")), None, check=lambda x: len(x) == 1),
    Case("utf8-bom-jsonl", "reader", "a UTF-8 byte-order mark before JSON lines",
         reader("log.jsonl", "\ufeff{\"u\":1,\"i\":2}\n".encode("utf-8")), None, check=lambda x: len(x) == 1),
    Case("utf16-as-utf8", "reader", "a UTF-16 file read as UTF-8",
         reader("log.csv", "u,i\n1,2\n".encode("utf-16")), DataError, ("log.csv:1", "encoding='utf-16'")),
    Case("utf16-declared", "reader", "a UTF-16 file with encoding='utf-16'",
         reader("log.csv", "u,i\n1,2\n3,4\n".encode("utf-16"), encoding="utf-16"), None,
         check=lambda x: len(x) == 2),
    Case("encoding-unknown", "reader", "encoding='klingon'",
         reader("log.csv", "u,i\n1,2\n", encoding="klingon"), ValueError, ("encoding='klingon'",)),
    Case("latin1-in-jsonl", "reader", "latin-1 bytes inside JSON lines",
         reader("log.jsonl", b'{"u":1,"i":2}\n{"u":1,"i":"caf\xe9"}\n', id_type="str"), DataError,
         ("log.jsonl:2", "encoding=")),
    # ---- empty / not a file
    Case("empty-file", "reader", "an empty file (0 bytes)", reader("log.csv", b""), DataError,
         ("log.csv", "empty (0 bytes)")),
    Case("empty-gzip", "reader", "an empty gzip file", reader("log.csv.gz", gzip.compress(b"")), DataError,
         ("log.csv.gz", "empty (0 bytes after decompression)")),
    Case("blank-file", "reader", "a file of blank lines", reader("log.csv", "\n\n  \n", header=False,
                                                                  user=0, item=1), DataError,
         ("log.csv", "only blank lines")),
    Case("header-only", "reader", "a header and no rows", reader("log.csv", "u,i\n"), DataError,
         ("log.csv", "only the header")),
    Case("empty-jsonl", "reader", "an empty JSON-lines file", reader("log.jsonl", b""), DataError,
         ("log.jsonl", "empty")),
    Case("directory", "reader", "a directory passed as the file",
         lambda tmp: (read_interactions((tmp / "logs.csv").mkdir() or tmp / "logs.csv", user="u", item="i"), None),
         DataError, ("logs.csv", "is a directory")),
    Case("missing-file", "reader", "a path that does not exist", reader("nope.csv", None), DataError,
         ("nope.csv", "not found")),
    Case("truncated-gzip", "reader", "a truncated .gz", reader("log.csv.gz", mutate_gz(b"u,i\n1,2\n" * 50, True)),
         DataError, ("log.csv.gz", "truncated gzip")),
    Case("corrupt-gzip", "reader", "a .gz with garbage inside",
         reader("log.csv.gz", mutate_gz(b"u,i\n1,2\n" * 50, False)), DataError, ("log.csv.gz", "gzip")),
    # ---- Parquet types
    Case("parquet-bool-ids", "reader", "Parquet: a boolean column as user ids",
         parquet("log.parquet", {"u": [True, False], "i": [1, 2]}), DataError,
         ("log.parquet", "column 'u'", "type bool")),
    Case("parquet-list-ids", "reader", "Parquet: a list column as item ids",
         parquet("log.parquet", {"u": [1, 2], "i": [[1], [2]]}), DataError, ("log.parquet", "column 'i'", "list")),
    Case("parquet-struct-label", "reader", "Parquet: a struct column as label",
         parquet("log.parquet", {"u": [1], "i": [2], "r": [{"a": 1}]}, label="r"), DataError,
         ("column 'r'", "struct")),
    Case("parquet-bool-timestamp", "reader", "Parquet: a boolean column as timestamp",
         parquet("log.parquet", {"u": [1], "i": [2], "t": [True]}, timestamp="t"), DataError,
         ("column 't'", "type bool")),
    Case("parquet-fraction-id", "reader", "Parquet: float ids with a fraction",
         parquet("log.parquet", {"u": [1.0, 2.5], "i": [1, 2]}), DataError, ("log.parquet:2", "non-integer")),
    Case("parquet-uint64-overflow", "reader", "Parquet: uint64 ids above int64",
         lambda tmp: parquet("log.parquet", {"u": __import__("pyarrow").array([1, 2 ** 64 - 1],
                                                                               __import__("pyarrow").uint64()),
                                             "i": [1, 2]})(tmp), DataError, ("log.parquet:2", "beyond the int64")),
    Case("parquet-bool-label", "reader", "Parquet: boolean click labels (fine: 0/1)",
         parquet("log.parquet", {"u": [1, 2], "i": [1, 2], "y": [True, False]}, label="y"), None,
         check=lambda x: x.label.tolist() == [1.0, 0.0]),
    Case("parquet-dictionary-ids", "reader", "Parquet: dictionary-encoded string ids, id_type='str'",
         lambda tmp: parquet("log.parquet", {"u": __import__("pyarrow").array(["a", "b"]).dictionary_encode(),
                                             "i": ["x", "y"]}, id_type="str")(tmp), None,
         check=lambda x: x.user_vocab.raw.tolist() == ["a", "b"]),
    Case("parquet-garbage", "reader", "random bytes named .parquet", reader("log.parquet", os.urandom(300)),
         DataError, ("log.parquet", "not a readable Parquet")),
    Case("parquet-truncated", "reader", "a Parquet file cut in half",
         raw_parquet("log.parquet", lambda b: b[: len(b) // 2]), DataError, ("log.parquet", "Parquet")),
    # ---- timestamps
    Case("ts-negative", "reader", "a negative timestamp",
         reader("log.csv", "u,i,t\n1,2,1500000000\n1,3,-1\n", timestamp="t"), DataError,
         ("log.csv:3", "column 't'", "out of range", "timestamp_range=None")),
    Case("ts-year-3000", "reader", "a timestamp after the year 3000",
         reader("log.csv", "u,i,t\n1,2,40000000000\n", timestamp="t"), DataError,
         ("log.csv:2", "column 't'", "out of range")),
    Case("ts-milliseconds", "reader", "millisecond timestamps read as seconds",
         reader("log.csv", "u,i,t\n1,2,1500000000000\n", timestamp="t"), DataError,
         ("log.csv:2", "timestamp_unit='ms'")),
    Case("ts-milliseconds-declared", "reader", "millisecond timestamps with timestamp_unit='ms'",
         reader("log.csv", "u,i,t\n1,2,1500000000123\n", timestamp="t", timestamp_unit="ms"), None,
         check=lambda x: x.timestamp.tolist() == [1500000000]),
    Case("ts-absurd-skip", "reader", "absurd timestamps skipped with on_bad_rows='skip'",
         reader("log.csv", "u,i,t\n1,2,-5\n1,3,1500000000\n1,4,99999999999\n", timestamp="t", **SKIP), None, (), 2),
    Case("ts-range-off", "reader", "absurd timestamps accepted with timestamp_range=None",
         reader("log.csv", "u,i,t\n1,2,-5\n", timestamp="t", timestamp_range=None), None,
         check=lambda x: x.timestamp.tolist() == [-5]),
    # ---- rows and columns
    Case("csv-too-few-fields", "reader", "CSV: a row with too few fields",
         reader("log.csv", "u,i\n1,2\n3\n"), DataError, ("log.csv:3", "too few fields")),
    Case("csv-too-many-skip", "reader", "CSV: rows with too many fields, skipped",
         reader("log.csv", "u,i\n1,2\n3,4,5\n6,7,8\n", **SKIP), None, (), 2),
    Case("csv-unterminated-quote", "reader", "CSV: an unterminated quote",
         reader("log.csv", 'u,i\n1,2\n"3,4\n'), DataError, ("log.csv",)),
    Case("csv-old-mac-newlines", "reader", "CSV with \\r line breaks: the bad line is named",
         reader("log.csv", "u,i\r1,2\r3,x\r"), DataError, ("log.csv:3", "column 'i'")),
    Case("csv-column-missing", "reader", "a column name that is not in the header",
         reader("log.csv", "user,item\n1,2\n"), DataError, ("log.csv:1", "column 'u'", "['user', 'item']")),
    Case("csv-column-index", "reader", "a column index out of range",
         reader("log.csv", "1,2\n", header=False, user=0, item=5), DataError, ("log.csv", "index 5 out of range")),
    Case("duplicate-events", "reader", "an exact duplicate event",
         reader("log.csv", "u,i\n1,2\n1,2\n"), DataError, ("log.csv:3", "duplicate", "line 2")),
    Case("duplicate-events-skip", "reader", "exact duplicate events, duplicates='skip'",
         reader("log.csv", "u,i\n1,2\n1,2\n1,2\n", duplicates="skip"), None, (), 2),
    Case("unknown-behaviour", "reader", "a behaviour name not in behavior_names",
         reader("log.csv", "u,i,b\n1,2,pv\n1,3,like\n", behavior="b", behavior_names=("pv", "buy")), DataError,
         ("log.csv:3", "column 'b'", "unknown behaviour")),
    Case("bad-line-late-piece", "reader", "a bad line deep in a streamed file names its absolute line",
         reader("log.csv", "u,i\n" + "1,2\n" * 500 + "1,x\n", duplicates="keep", chunk_bytes=64), DataError,
         ("log.csv:502", "column 'i'")),
    Case("int-lines-long-id", "reader", "id-list file (LightGCN format): a 25-digit id on line 2",
         lambda tmp: (__import__("recgraph.data.io", fromlist=["x"]).read_id_lists(
             put(tmp, "train.txt", "1 2 3\n4 1234567890123456789012345\n")), None), DataError,
         ("train.txt:2", "18 digits")),
    Case("int-lines-text", "reader", "id-list file: a word among the ids",
         lambda tmp: (__import__("recgraph.data.io", fromlist=["x"]).read_id_lists(
             put(tmp, "train.txt", "1 2 3\n4 five 6\n")), None), DataError, ("train.txt:2", "field 2")),
    Case("schema-bool-ids", "reader", "Interactions built from boolean user ids (API)",
         lambda tmp: (__import__("recgraph.data.schema", fromlist=["x"]).Interactions(
             np.array([True, False]), np.array([0, 1]), 2, 2), None), ValueError, ("user", "integer", "bool")),
    Case("arg-on-bad-rows", "reader", "on_bad_rows='ignore'", reader("log.csv", "u,i\n1,2\n", on_bad_rows="ignore"),
         ValueError, ("on_bad_rows",)),
    Case("arg-timestamp-unit", "reader", "timestamp_unit='minutes'",
         reader("log.csv", "u,i,t\n1,2,3\n", timestamp="t", timestamp_unit="minutes"), ValueError,
         ("timestamp_unit",)),
    Case("arg-sep", "reader", "sep='\\n'", reader("log.csv", "u,i\n1,2\n", sep="\n"), ValueError, ("sep=",)),
    # ---- bundled datasets
    Case("dataset-tampered", "dataset", "a dataset file edited after download (same size)",
         dataset("u.user"), DataError, ("u.user", "does not match the published checksum", "--no-verify-data"),
         needs_data=True),
    Case("dataset-truncated-gz", "dataset", "a dataset .gz truncated after download",
         dataset("u.data.gz", "truncate"), DataError, ("u.data.gz", "does not match the published checksum"),
         needs_data=True),
    Case("dataset-tampered-opt-out", "dataset", "the edited file with verify=False (explicit opt-out)",
         dataset("u.user", verify=False), None, needs_data=True),
    Case("dataset-tampered-env-opt-out", "dataset", "the edited file with RECGRAPH_VERIFY_DATA=0",
         lambda tmp: _with_env({"RECGRAPH_VERIFY_DATA": "0"}, dataset("u.user"), tmp), None, needs_data=True),
    Case("dataset-cache-not-fooled", "dataset", "verified once (cached), then edited: caught again",
         lambda tmp: _verify_then_tamper(tmp), DataError, ("u.occupation", "does not match the published checksum"),
         needs_data=True),
    Case("dataset-leftover-part", "dataset", "a leftover .part file from an interrupted download",
         lambda tmp: _leftover_part(tmp), None, needs_data=True),
    Case("dataset-missing-files", "dataset", "a dataset folder missing its files, download=False",
         lambda tmp: (__import__("recgraph.data.datasets", fromlist=["x"]).load_dataset(ML, tmp, download=False),
                      None), DataError, ("movielens-100k", "u.data.gz")),
    Case("dataset-unknown", "dataset", "an unknown dataset name",
         lambda tmp: (__import__("recgraph.data.datasets", fromlist=["x"]).load_dataset("movielens-1b", tmp), None),
         KeyError, ("movielens-1b", "movielens-100k")),
    # ---- CLI, data side
    Case("cli-train-tampered", "cli", "`recgraph train` on an edited dataset file",
         cli("train", "pop", "--dataset", ML, "--data-dir", "{data}", "--out", "{tmp}/run",
             data=lambda tmp: ml_copy(tmp, "u.item.gz")), CliFailed,
         ("u.item.gz", "does not match the published checksum"), needs_data=True),
    Case("cli-train-no-verify", "cli", "`recgraph train --no-verify-data` on an edited (unused) file",
         cli("train", "pop", "--dataset", ML, "--data-dir", "{data}", "--out", "{tmp}/run", "--no-verify-data",
             data=lambda tmp: ml_copy(tmp, "u.info")), None, ("metrics",), needs_data=True),
    Case("cli-datasets-tampered", "cli", "`recgraph datasets` lists the checksum failure",
         cli("datasets", "--data-dir", "{data}", data=lambda tmp: ml_copy(tmp, "u.user")), None,
         ("does not match",), needs_data=True),
    Case("cli-unknown-dataset", "cli", "`recgraph train pop --dataset movielens-1b`",
         cli("train", "pop", "--dataset", "movielens-1b", "--out", "{tmp}/run"), CliFailed,
         ("unknown dataset", "movielens-1b")),
    Case("cli-data-latin1", "cli", "`train --data` on a latin-1 file",
         lambda tmp: cli("train", "pop", "--data", str(put(tmp, "log.csv", LATIN1_LOG)), "--user", "u", "--item", "i",
                         "--out", "{tmp}/run")(tmp), CliFailed, ("log.csv:2", "encoding")),
    Case("cli-data-latin1-declared", "cli", "`train --data --encoding latin-1` on that file",
         lambda tmp: cli("train", "pop", "--data", str(put(tmp, "log.csv", LATIN1_LOG)), "--user", "u", "--item", "i",
                         "--encoding", "latin-1", "--out", "{tmp}/run")(tmp), None, ("metrics",)),
    Case("cli-data-ms-times", "cli", "`train --data --time t` with millisecond times",
         lambda tmp: cli("train", "pop", "--data", str(put(tmp, "log.csv", MS_LOG)), "--user", "u", "--item", "i",
                         "--time", "t", "--out", "{tmp}/run")(tmp), CliFailed, ("log.csv:2", "column 't'", "ms")),
    Case("cli-data-ms-times-declared", "cli", "`train --data --time t --time-unit ms`",
         lambda tmp: cli("train", "pop", "--data", str(put(tmp, "log.csv", MS_LOG)), "--user", "u", "--item", "i",
                         "--time", "t", "--time-unit", "ms", "--out", "{tmp}/run")(tmp), None, ("metrics",)),
    Case("cli-data-empty", "cli", "`train --data` on an empty file",
         lambda tmp: cli("train", "pop", "--data", str(put(tmp, "log.csv", b"")), "--user", "u", "--item", "i",
                         "--out", "{tmp}/run")(tmp), CliFailed, ("log.csv", "empty")),
    Case("cli-data-directory", "cli", "`train --data` naming a directory",
         cli("train", "pop", "--data", "{tmp}", "--user", "u", "--item", "i", "--out", "{tmp}/run"), CliFailed,
         ("--data", "directory")),
    # ---- run folders, checkpoints, training arguments (the CLI on a trained MF-BPR run folder)
    Case("run-tampered-checkpoint", "run folder", "a checkpoint with bytes changed (shapes intact), --resume",
         resume_cli(lambda run: flip(next((run / "checkpoint" / "last").glob("state-*.safetensors")))), CliFailed,
         ("state-", ".safetensors", "sha256"), needs_data=True),
    Case("run-tampered-weights", "run folder", "model weights with bytes changed, `recgraph eval`",
         eval_cli(lambda run: flip(run / "model" / "weights.safetensors")), CliFailed,
         ("weights.safetensors", "sha256"), needs_data=True),
    Case("run-truncated-weights", "run folder", "truncated model weights, `recgraph eval`",
         eval_cli(lambda run: cut(run / "model" / "weights.safetensors")), CliFailed,
         ("weights.safetensors",), needs_data=True),
    Case("run-garbage-weights", "run folder", "random bytes as weights.safetensors, `recgraph eval`",
         eval_cli(lambda run: (run / "model" / "weights.safetensors").write_bytes(os.urandom(4096))), CliFailed,
         ("weights.safetensors",), needs_data=True),
    Case("run-truncated-checkpoint", "run folder", "a truncated checkpoint tensor file, --resume",
         resume_cli(lambda run: cut(next((run / "checkpoint" / "last").glob("state-*.safetensors")))), CliFailed,
         ("state-", ".safetensors"), needs_data=True),
    Case("run-malformed-config", "run folder", "config.json cut in half, `recgraph eval`",
         eval_cli(lambda run: cut(run / "config.json")), CliFailed, ("config.json", "JSON"), needs_data=True),
    Case("run-malformed-artifact", "run folder", "model/artifact.json not JSON, `recgraph eval`",
         eval_cli(lambda run: (run / "model" / "artifact.json").write_text("{not json")), CliFailed,
         ("artifact.json",), needs_data=True),
    Case("run-malformed-meta", "run folder", "checkpoint meta.json not JSON, --resume",
         resume_cli(lambda run: (run / "checkpoint" / "last" / "meta.json").write_text("[1, 2")), CliFailed,
         ("meta.json",), needs_data=True),
    Case("run-model-missing", "run folder", "a run folder whose model/ is gone, `recgraph eval`",
         eval_cli(lambda run: shutil.rmtree(run / "model")), CliFailed, ("model",), needs_data=True),
    Case("run-config-missing", "run folder", "a run folder without config.json, `recgraph eval`",
         eval_cli(lambda run: (run / "config.json").unlink()), CliFailed, ("config.json",), needs_data=True),
    Case("run-interrupted-write", "run folder", "a temp file left by a write killed mid-way, `recgraph eval`",
         eval_cli(lambda run: (run / "model" / ".weights.safetensors.x1y2.tmp").write_bytes(b"\0" * 100)), None,
         ("recall@20",), needs_data=True),
    Case("run-resume-other-seed", "run folder", "--resume with a different --seed than the checkpoint",
         resume_cli(lambda run: None, "--seed", "1"), CliFailed, ("seed",), needs_data=True),
    Case("run-resume-other-split", "run folder", "--resume with a different --split than the checkpoint",
         resume_cli(lambda run: None, "--split", "leave-last-out"), CliFailed, ("split",), needs_data=True),
    Case("cli-epochs-zero", "cli", "`recgraph train bpr --epochs 0`",
         cli("train", "bpr", "--dataset", ML, "--epochs", "0", "--out", "{tmp}/run"), CliFailed, ("--epochs",),
         check=None, needs_data=False),
    Case("cli-epochs-negative", "cli", "`recgraph train bpr --epochs -1`",
         cli("train", "bpr", "--dataset", ML, "--epochs", "-1", "--out", "{tmp}/run"), CliFailed, ("--epochs",)),
    Case("cli-out-is-file", "cli", "`--out` naming an existing file (refused before training)",
         lambda tmp: (tmp / "taken").write_text("x") and cli("train", "bpr", "--dataset", ML, "--out",
                                                              "{tmp}/taken")(tmp), CliFailed, ("--out", "taken")),
    Case("cli-set-unknown", "cli", "`--set nosuch=1`: the model's arguments are listed",
         cli("train", "bpr", "--dataset", ML, "--set", "nosuch=1", "--out", "{tmp}/run"), CliFailed,
         ("nosuch", "dim")),
    Case("cli-set-unparsable", "cli", "`--set dim=abc` (an int argument)",
         cli("train", "bpr", "--dataset", ML, "--set", "dim=abc", "--out", "{tmp}/run"), CliFailed, ("dim",)),
    Case("cli-set-no-equals", "cli", "`--set dim` without a value",
         cli("train", "bpr", "--dataset", ML, "--set", "dim", "--out", "{tmp}/run"), CliFailed, ("--set", "dim")),
    Case("cli-concurrent-out", "cli", "a second run writing the --out folder of a running one",
         lambda tmp: _concurrent(tmp), CliFailed, ("--out", "another recgraph run"), needs_data=True),
]


def _with_env(env: dict, body: Callable, tmp: Path):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return body(tmp)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _leftover_part(tmp: Path):
    from recgraph.data.datasets import load_dataset

    root = ml_copy(tmp)
    (root / ML / ".u.data.gz.k3j4.part").write_bytes(b"\x1f\x8b half a download")
    ds = load_dataset(ML, root, download=False)
    return ds, ds.skipped


def _verify_then_tamper(tmp: Path):
    from recgraph.data.datasets import load_dataset

    root = ml_copy(tmp)
    load_dataset(ML, root, download=False)  # verified and cached
    p = root / ML / "u.occupation"
    b = bytearray(p.read_bytes())
    b[5] ^= 1
    p.write_bytes(bytes(b))
    load_dataset(ML, root, download=False)
    return None, None


# -------------------------------------------------------------------------------------------- tests


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RECGRAPH_VERIFY_DATA", raising=False)


def _has_data() -> bool:
    return (resolve_data_dir() / ML / "u.data.gz").is_file()


_TRAINS = {"cli-train-no-verify", "cli-data-latin1-declared", "cli-data-ms-times-declared", "cli-concurrent-out"}


def _params():
    """Cases that train a model (run folders, a few CLI runs) are marked ``slow`` (still default)."""
    return [pytest.param(c, id=c.id, marks=(pytest.mark.slow,) if c.area == "run folder" or c.id in _TRAINS else ())
            for c in CASES]


@pytest.mark.parametrize("case", _params())
def test_hostile_input(case: Case, tmp_path):
    if case.needs_data and not _has_data():
        pytest.skip("needs the bundled MovieLens-100K (set RECGRAPH_DATA)")
    work = tmp_path / "in"
    work.mkdir()
    names = [n.replace("{tmp}", str(work)) for n in case.names]
    if case.error is not None:
        with pytest.raises(case.error) as e:
            case.run(work)
        assert type(e.value) is case.error, f"expected exactly {case.error.__name__}, got {type(e.value).__name__}"
        msg = str(e.value)
        if case.error is KeyError:
            msg = str(e.value.args[0])
        for n in names:
            assert n in msg, f"message does not name {n!r}: {msg}"
        assert "Traceback" not in msg
        return
    result, report = case.run(work)
    if isinstance(result, str):  # CLI output
        for n in names:
            assert n in result, f"output does not contain {n!r}: {result}"
    if case.skipped is not None:
        assert report is not None and report.total == case.skipped, f"skipped {report}"
    elif report is not None:
        assert report.total == 0, str(report)
    if case.check is not None:
        assert case.check(result), f"unexpected result for {case.id}"


def test_enough_cases():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


def markdown_table() -> str:
    rows = ["| # | area | hostile input | verdict | the message names |", "|---:|---|---|---|---|"]
    for k, c in enumerate(CASES, 1):
        named = ", ".join(f"`{n}`" for n in c.names) if c.error is not None else (
            f"{c.skipped} rows counted in the SkipReport" if c.skipped else "–")
        rows.append(f"| {k} | {c.area} | {c.what} | {c.verdict} | {named} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
