"""Property-based tests of the readers (hypothesis): any byte string either parses to exactly what an
independent reference reader built on Python's ``csv`` / ``json`` modules gives, or raises
:class:`DataError` (at a line the reference also finds bad) — never another exception.

The reference encodes the documented rules of :func:`recgraph.data.io.read_interactions`: the whole
file must be UTF-8 (a UTF-8 BOM is dropped); delimited text has a header line; ids are
``[+-]digits`` within int64 after ASCII whitespace is stripped (JSON: integers, integral floats up
to 2**53, or such strings); blank lines are ignored; a row with the wrong field count, an empty or
non-integer id, or (JSON) a line that is not an object is a bad row: an error, or a counted skip.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recgraph.data.errors import DataError, SkipReport
from recgraph.data.io import read_interactions

_ID = re.compile(r"[ \t\n\r\f]*[+-]?[0-9]+[ \t\n\r\f]*")
_WS = " \t\r"
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


class RefError(Exception):
    """The reference rejects the whole file (any mode) at ``line``; in error mode a bad row before
    that line (``bad_before``) may be reported first, as the reader streams the file in order."""

    def __init__(self, line=None, bad_before=()):
        self.line, self.bad_before = line, set(bad_before)


def _decode(data: bytes, ref) -> str:
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[:exc.start]
        line = 1 + head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n")
        prefix = head[:head.rfind(b"\n") + 1]
        try:
            before = ref(prefix)[1] if prefix else []
        except RefError as inner:
            before = [inner.line] if inner.line is not None else []
        raise RefError(line, before) from None


def _id(v):
    """Reference id rule → int, or None for a bad value."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, float):
        return int(v) if v == v and v not in (float("inf"), float("-inf")) and v.is_integer() \
            and abs(v) <= 2 ** 53 else None
    if isinstance(v, int):
        x = v
    elif isinstance(v, str) and _ID.fullmatch(v):
        x = int(v.strip(" \t\n\r\f"))
    else:
        return None
    return x if -2 ** 63 <= x < 2 ** 63 else None


def ref_csv(data: bytes):
    """(rows [(line, u, i)] of good rows, bad lines) for ``u,i`` CSV with a header; RefError for a
    file-level rejection."""
    text = _decode(data, ref_csv)
    if not text.strip(" \t\r\n"):
        raise RefError()
    m = re.search(r"\r\n|\r|\n", text)
    first, rest = (text[:m.start()], text[m.end():]) if m else (text, "")
    if not first.strip(_WS):
        raise RefError(1)
    recs = list(csv.reader(io.StringIO(first, newline="")))
    names = recs[0] if recs else [""]
    if "u" not in names or "i" not in names:
        raise RefError(1)
    iu, ii = names.index("u"), names.index("i")
    reader = csv.reader(io.StringIO(rest, newline=""), delimiter=",", quotechar='"', doublequote=True)
    good, bad, prev = [], [], 0
    for rec in reader:
        line = prev + 2  # +1: 1-based, +1: the header line
        prev = reader.line_num
        if not rec:
            continue
        if len(rec) != len(names):
            bad.append(line)
            continue
        u, i = _id(rec[iu]), _id(rec[ii])
        (bad.append(line) if u is None or i is None else good.append((line, u, i)))
    return good, bad


def ref_jsonl(data: bytes):
    text = _decode(data, ref_jsonl)
    good, bad, keys = [], [], set()
    for j, raw in enumerate(text.split("\n")):
        seg = raw.strip(_WS)
        if not seg:
            continue
        try:
            rec = json.loads(seg)
        except (ValueError, RecursionError):
            bad.append(j + 1)
            continue
        if not isinstance(rec, dict):
            bad.append(j + 1)
            continue
        keys.update(rec)
        good.append((j + 1, rec))
    if not good and not bad:
        raise RefError()
    if good and not {"u", "i"} <= keys:
        raise RefError()
    rows = []
    for line, rec in good:
        u, i = _id(rec.get("u")), _id(rec.get("i"))
        (bad.append(line) if u is None or i is None else rows.append((line, u, i)))
    return rows, sorted(bad)


def check(data: bytes, suffix: str, ref, mode: str):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"log{suffix}"
        p.write_bytes(data)
        try:
            expect = ref(data)
        except RefError as exc:
            with pytest.raises(DataError) as e:
                read_interactions(p, user="u", item="i", on_bad_rows=mode, duplicates="keep")
            if exc.line is not None:
                allowed = {exc.line} | (exc.bad_before if mode == "error" else set())
                assert e.value.line in allowed, (str(e.value), allowed)
            return
        rows, bad = expect
        rep = SkipReport()
        if (mode == "error" and bad) or not rows:
            with pytest.raises(DataError) as e:
                read_interactions(p, user="u", item="i", on_bad_rows=mode, duplicates="keep", skip_report=rep)
            if bad and e.value.line is not None:
                assert e.value.line in bad, (str(e.value), bad)
            assert e.value.file == str(p)
            return
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            x = read_interactions(p, user="u", item="i", on_bad_rows=mode, duplicates="keep", skip_report=rep)
        assert x.user_vocab.raw[x.user].tolist() == [u for _, u, _ in rows]
        assert x.item_vocab.raw[x.item].tolist() == [i for _, _, i in rows]
        assert rep.total == len(bad)


# ---------------------------------------------------------------------------------------- strategies

_CSV_TOKENS = ["1", "23", "-4", "+5", " 6 ", "007", "x", "", '"8"', '"', '""', "9223372036854775807",
               "9223372036854775808", "-9223372036854775808", "99999999999999999999", "1.5", "1e3", "\t", "0x1F",
               "é", "u", "i"]
_BREAKS = ["\n", "\r\n", "\r", "\n\n"]


@st.composite
def csv_bytes(draw):
    header = draw(st.sampled_from(["u,i", "i,u", "u,x,i", "u", '"u","i"', "", "\ufeffu,i", " u,i"]))
    rows = draw(st.lists(st.lists(st.sampled_from(_CSV_TOKENS), min_size=0, max_size=4), max_size=8))
    brk = draw(st.lists(st.sampled_from(_BREAKS), min_size=len(rows) + 1, max_size=len(rows) + 1))
    text = header + brk[0] + "".join(",".join(r) + b for r, b in zip(rows, brk[1:]))
    data = text.encode("utf-8")
    if draw(st.booleans()):
        data = data.rstrip(b"\r\n")
    if draw(st.integers(0, 4)) == 0:  # a byte-level mutation: latin-1 bytes, NUL, cut
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + draw(st.sampled_from([b"\xe9", b"\x00", b"\xff\xfe", b"\"", b""])) + data[pos:]
    return data


_JSON_VALUES = [1, -2, 3.0, 2.5, 2 ** 63, -2 ** 63, 2 ** 53 + 1.0, "4", " 5 ", "x", "", "0x1F", None, True, [1],
                {"a": 1}, float("nan")]


@st.composite
def jsonl_bytes(draw):
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        if kind <= 6:
            rec = {}
            for key in draw(st.lists(st.sampled_from(["u", "i", "t", "u"]), max_size=4)):
                rec[key] = draw(st.sampled_from(_JSON_VALUES))
            line = json.dumps(rec)
            if draw(st.integers(0, 5)) == 0:
                line = "  " + line + "\t"
        else:
            line = draw(st.sampled_from(["", "   ", "[1, 2]", "5", "null", '{"u": 1, "i":', '{"u":1}{"i":2}',
                                         '{"u": 1, "i": 2, "u": 3}', '"s"', "{", '{"u": 1, "i": 2}\r']))
        lines.append(line)
    data = "\n".join(lines).encode("utf-8")
    if draw(st.integers(0, 4)) == 0:
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + draw(st.sampled_from([b"\xe9", b"\x01", b"\n", b"\xef\xbb\xbf"])) + data[pos:]
    return data


# ------------------------------------------------------------------------------------------- tests


@SETTINGS
@given(data=csv_bytes(), mode=st.sampled_from(["error", "skip"]))
def test_csv_matches_reference(data, mode):
    check(data, ".csv", ref_csv, mode)


@SETTINGS
@given(data=st.binary(max_size=64), mode=st.sampled_from(["error", "skip"]))
def test_csv_random_bytes(data, mode):
    check(b"u,i\n" + data, ".csv", ref_csv, mode)


@SETTINGS
@given(data=jsonl_bytes(), mode=st.sampled_from(["error", "skip"]))
def test_jsonl_matches_reference(data, mode):
    check(data, ".jsonl", ref_jsonl, mode)


@SETTINGS
@given(data=st.binary(max_size=64), mode=st.sampled_from(["error", "skip"]))
def test_jsonl_random_bytes(data, mode):
    check(b'{"u": 1, "i": 2}\n' + data, ".jsonl", ref_jsonl, mode)


@pytest.mark.parametrize("suffix, gen", [(".csv", csv_bytes()), (".jsonl", jsonl_bytes())])
def test_pieces_do_not_change_the_result(suffix, gen):
    """Reading in tiny pieces (row boundaries found per piece, quotes respected) gives the same rows,
    skip counts and examples (with their line numbers) as reading the file whole — or both fail."""

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(data=gen, chunk=st.integers(1, 40))
    def run(data, chunk):
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / f"log{suffix}"
            p.write_bytes(data)
            outs = []
            for cb in (None, chunk):
                rep = SkipReport()
                try:
                    x = read_interactions(p, user="u", item="i", on_bad_rows="skip", duplicates="keep",
                                          skip_report=rep, chunk_bytes=cb)
                    outs.append((x.user_vocab.raw[x.user].tolist(), x.item_vocab.raw[x.item].tolist(),
                                 dict(rep.counts), rep.examples))
                except DataError:  # streamed, the first problem in file order is reported: may differ
                    outs.append("DataError")
            assert outs[0] == outs[1]

    run()


_PQ_COLUMNS = st.one_of(
    st.lists(st.one_of(st.none(), st.integers(-2 ** 63, 2 ** 63 - 1)), min_size=1, max_size=6)
    .map(lambda v: ("int64", v)),
    st.lists(st.one_of(st.none(), st.integers(0, 2 ** 64 - 1)), min_size=1, max_size=6).map(lambda v: ("uint64", v)),
    st.lists(st.one_of(st.none(), st.floats(allow_nan=True)), min_size=1, max_size=6).map(lambda v: ("float64", v)),
    st.lists(st.one_of(st.none(), st.sampled_from(["1", " 2", "x", "", "99999999999999999999", "-3"])),
             min_size=1, max_size=6).map(lambda v: ("string", v)),
    st.lists(st.one_of(st.none(), st.booleans()), min_size=1, max_size=6).map(lambda v: ("bool", v)),
    st.lists(st.lists(st.integers(0, 9), max_size=2), min_size=1, max_size=6).map(lambda v: ("list", v)),
)


@SETTINGS
@given(u=_PQ_COLUMNS, i=_PQ_COLUMNS, mode=st.sampled_from(["error", "skip"]))
def test_parquet_matches_reference(u, i, mode):
    """Parquet columns of any type: ids of a type that cannot hold ids (bool, list) are refused as a
    whole; otherwise each value reads as the reference id rule says, or the row is bad."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = min(len(u[1]), len(i[1]))
    types = {"int64": pa.int64(), "uint64": pa.uint64(), "float64": pa.float64(), "string": pa.string(),
             "bool": pa.bool_(), "list": pa.list_(pa.int64())}
    cols = {name: pa.array(vals[:n], types[t]) for name, (t, vals) in (("u", u), ("i", i))}
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "log.parquet"
        pq.write_table(pa.table(cols), p)
        rep = SkipReport()
        if u[0] in ("bool", "list") or i[0] in ("bool", "list"):
            with pytest.raises(DataError) as e:
                read_interactions(p, user="u", item="i", on_bad_rows=mode, duplicates="keep", skip_report=rep)
            assert e.value.column in ("u", "i") and "Parquet type" in str(e.value)
            return
        rows, bad = [], []
        for k in range(n):
            a, b = _id(u[1][k]), _id(i[1][k])
            if u[0] == "float64" and isinstance(u[1][k], float) and u[1][k].is_integer() and abs(u[1][k]) < 2 ** 63:
                a = int(u[1][k])  # Parquet floats: any integral value within int64 (no JSON 2**53 rule)
            if i[0] == "float64" and isinstance(i[1][k], float) and i[1][k].is_integer() and abs(i[1][k]) < 2 ** 63:
                b = int(i[1][k])
            (bad.append(k + 1) if a is None or b is None else rows.append((a, b)))
        if (mode == "error" and bad) or not rows:
            with pytest.raises(DataError) as e:
                read_interactions(p, user="u", item="i", on_bad_rows=mode, duplicates="keep", skip_report=rep)
            if bad and e.value.line is not None:
                assert e.value.line in bad
            return
        x = read_interactions(p, user="u", item="i", on_bad_rows=mode, duplicates="keep", skip_report=rep)
        assert x.user_vocab.raw[x.user].tolist() == [a for a, _ in rows]
        assert x.item_vocab.raw[x.item].tolist() == [b for _, b in rows]
        assert rep.total == len(bad)
