"""Readers for interaction logs: CSV / TSV / Parquet / JSON lines, gzip transparently.

:func:`read_interactions` maps columns (by name or 0-based index) onto an :class:`Interactions`
and validates every row. Text is streamed in pieces of :data:`CHUNK_BYTES` that end at a row
boundary (Parquet: batch by batch), so peak memory follows the output arrays, not the file. Per
piece the fast path is one pyarrow parse plus vectorised casts and checks; only when pyarrow and
the documented rules could disagree (a row with the wrong field count, a malformed JSON line, mixed
JSON types) does a slow per-line pass with Python's ``csv`` / ``json`` modules run — the reference
semantics that ``tests/data/test_io_properties.py`` checks the fast path against.

Rules (each violation is a :class:`DataError` naming the file, the 1-based line and the column, or
— with ``on_bad_rows="skip"`` — a counted entry in a :class:`SkipReport`; file-level problems are
always errors):

- the whole file must be text in ``encoding`` (default UTF-8; a UTF-8 byte-order mark is dropped;
  a UTF-16/32 one asks for ``encoding=``); an invalid byte names its line and suggests
  ``encoding='latin-1'`` (file level);
- integer ids are ``[+-]digits`` within int64 (JSON: integers or integral floats up to 2**53);
  beyond int64 is its own reason ("pass id_type='str'");
- timestamps are Unix seconds (``timestamp_unit`` for ms / us / ns; ISO-8601 strings accepted) in
  ``timestamp_range`` (default [1970-01-01, 3000-01-01); ``None`` accepts any);
- Parquet columns of a type that cannot hold the role (booleans or lists as ids, ...) are refused
  by type, before reading (file level);
- an empty file, a file of blank lines, a header without rows, a directory or a missing path each
  get their own message.

Lower-level helpers used by the dataset loaders:

- :func:`read_bytes` — whole file, gunzipped when it starts with the gzip magic; a truncated gzip
  becomes a :class:`DataError` naming the file.
- :func:`parse_int_lines` — vectorised parser for whitespace-separated integer files, one record
  per line (``user item item ...`` lists and ``user item`` pairs).
- :func:`read_table` — a CSV file as ``{column: numpy array}`` (tiny feature tables).
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from .errors import DataError, SkipReport, check_on_bad_rows
from .schema import Interactions, Vocab

Column = str | int
Duplicates = Literal["error", "skip", "keep"]

_GZIP_MAGIC = b"\x1f\x8b"
_INT_RE = r"^\s*[+-]?[0-9]+\s*$"


# --------------------------------------------------------------------------------------------- bytes


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, decompressed when it is gzip (detected by magic, not by name).

    A missing path, a directory, or a truncated or corrupt gzip stream raises :class:`DataError`
    naming the file."""
    path = Path(path)
    with _open_binary(path) as fh:
        return _read_block(fh, -1, path)


# ----------------------------------------------------------------------------------- int-line files


def parse_int_lines(path: str | os.PathLike, *, data: bytes | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a file of whitespace-separated non-negative integers, one record per line.

    Fully vectorised (no Python loop over lines or tokens). Returns ``(values [T] int64,
    token_line [T] int64 (1-based physical line of each token), line_first [L] int64)`` where
    ``line_first`` lists, for each non-blank line, the index into ``values`` of its first token.
    Any byte other than a digit, space, tab, ``\\r`` or ``\\n`` raises :class:`DataError` with its
    line and 1-based field."""
    if data is None:
        data = read_bytes(path)
    b = np.frombuffer(data, dtype=np.uint8)
    isdig = (b >= 48) & (b <= 57)
    ok = isdig | (b == 32) | (b == 10) | (b == 13) | (b == 9)
    if not ok.all():
        pos = int(np.flatnonzero(~ok)[0])
        line = int(np.count_nonzero(b[:pos] == 10)) + 1
        line_start = int(data.rfind(b"\n", 0, pos)) + 1
        field = len(data[line_start:pos].split()) + (0 if data[pos - 1:pos].isspace() or pos == line_start else -1) + 1
        text = data[line_start:data.find(b"\n", pos) if data.find(b"\n", pos) >= 0 else len(data)]
        raise DataError(f"non-integer token in {text[:80].decode('latin-1')!r}; this file must hold "
                        "whitespace-separated integer ids only", file=str(path), line=line,
                        column=f"field {field}")
    if len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    prev = np.concatenate([[False], isdig[:-1]])
    nxt = np.concatenate([isdig[1:], [False]])
    start = isdig & ~prev
    end = isdig & ~nxt
    starts, ends = np.flatnonzero(start), np.flatnonzero(end)
    didx = np.flatnonzero(isdig)
    tok = np.cumsum(start)[didx] - 1  # token index of each digit byte
    pos_from_end = ends[tok] - didx
    if len(ends) and (ends - starts).max() >= 18:
        k = int(np.argmax(ends - starts))
        raise DataError(f"integer with more than 18 digits ({data[starts[k]:ends[k] + 1][:40].decode()}...); ids "
                        "this long are not supported in this format", file=str(path),
                        line=int(np.count_nonzero(b[:starts[k]] == 10)) + 1)
    digits = (b[didx] - 48).astype(np.int64) * (10 ** pos_from_end.astype(np.int64))
    first_digit = np.searchsorted(didx, starts)
    values = np.add.reduceat(digits, first_digit) if len(digits) else np.zeros(0, np.int64)
    newlines_before = np.cumsum(b == 10)
    token_line = newlines_before[starts] - (b[starts] == 10) + 1  # starts are digits, never '\n'
    token_line = token_line.astype(np.int64)
    first_of_line = np.concatenate([[True], token_line[1:] != token_line[:-1]]) if len(token_line) else np.zeros(0, bool)
    return values.astype(np.int64), token_line, np.flatnonzero(first_of_line)


def read_id_lists(path: str | os.PathLike, *, data: bytes | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read ``user item item ...`` lines (LightGCN / GHCF / S3-Rec format).

    Returns ``(users [E], items [E], position [E] (0-based order within its line), line_users [L])``;
    ``line_users`` includes users whose list is empty (e.g. Amazon-Book test users)."""
    values, token_line, line_first = parse_int_lines(path, data=data)
    line_users = values[line_first]
    is_first = np.zeros(len(values), bool)
    is_first[line_first] = True
    owner = np.maximum.accumulate(np.where(is_first, np.arange(len(values)), 0)) if len(values) else values
    users = values[owner][~is_first]
    items = values[~is_first]
    pos = (np.arange(len(values)) - owner - 1)[~is_first]
    return users, items, pos.astype(np.int64), line_users


def read_pairs(path: str | os.PathLike, *, data: bytes | None = None, n_fields: int = 2) -> np.ndarray:
    """Read lines of exactly ``n_fields`` integers (e.g. ``user item``) → ``[E, n_fields] int64``.
    A line with another number of fields raises :class:`DataError` naming it."""
    values, token_line, line_first = parse_int_lines(path, data=data)
    counts = np.diff(np.concatenate([line_first, [len(values)]]))
    bad = np.flatnonzero(counts != n_fields)
    if len(bad):
        line = int(token_line[line_first[bad[0]]])
        raise DataError(f"expected {n_fields} fields per line, got {int(counts[bad[0]])}; fix or remove "
                        f"this line ({len(bad)} such line(s) in the file)", file=str(path), line=line)
    return values.reshape(-1, n_fields)


# ------------------------------------------------------------------------------------- text pieces

#: Text files are parsed in pieces of about this many bytes, each ending at a row boundary, so that
#: peak memory grows with the piece and the output arrays, not with the file (gzip streams too).
CHUNK_BYTES = 16 << 20
#: Accepted timestamps by default: Unix seconds in [1970-01-01, 3000-01-01).
TIMESTAMP_RANGE = (0, 32_503_680_000)
_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_BOM_UTF8 = b"\xef\xbb\xbf"
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
         (b"\xfe\xff", "utf-16"))
_INT64_MAX = "9223372036854775807"


def _check_file(path: Path) -> None:
    """A DataError unless ``path`` is an existing regular file we may read."""
    if path.is_dir():
        try:
            inside = sorted(p.name for p in path.iterdir())[:5]
        except OSError:
            inside = []
        raise DataError("is a directory, expected a file" + (f" (it holds e.g. {inside}); pass one of its files"
                                                              if inside else ""), file=str(path))
    if not path.exists():
        raise DataError("file not found; check the path (or --data-dir / RECGRAPH_DATA for bundled datasets)",
                        file=str(path))
    if not os.access(path, os.R_OK):
        raise DataError("permission denied: the file is not readable by this user", file=str(path))


def _open_binary(path: Path):
    """The file as a binary stream, gunzipped when it starts with the gzip magic."""
    _check_file(path)
    fh = open(path, "rb")
    if fh.read(2) == _GZIP_MAGIC:
        fh.seek(0)
        return gzip.GzipFile(fileobj=fh, mode="rb")
    fh.seek(0)
    return fh


def _read_block(fh, n: int, path: Path) -> bytes:
    try:
        return fh.read(n)
    except EOFError as exc:
        raise DataError(f"truncated gzip file ({exc}); the download or copy is incomplete — fetch the "
                        "file again and compare its sha256", file=str(path)) from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"corrupt gzip file ({exc}); fetch the file again and compare its sha256",
                        file=str(path)) from exc


def _check_encoding(encoding: str) -> tuple[str, bool]:
    """(codec name, ASCII-compatible?) of ``encoding``; an unknown name is a ValueError naming it."""
    import codecs

    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"encoding={encoding!r} is not a known text encoding (e.g. 'utf-8', 'latin-1', "
                         "'cp1252', 'utf-16')") from None
    return name, "a\n".encode(name) == b"a\n"


def _to_utf8(piece: bytes, encoding: str, path: Path, line0: int) -> bytes:
    """``piece`` as UTF-8 (validated; transcoded from ``encoding`` when that is another codec). A byte
    sequence that is not valid in ``encoding`` is a DataError naming its line."""
    try:
        if encoding in ("utf-8", "utf-8-sig"):
            piece.decode("utf-8")
            return piece
        return piece.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        line = line0 + piece.count(b"\n", 0, exc.start) + _lone_cr(piece[:exc.start])
        bad = piece[exc.start:exc.start + 1]
        hint = ("the file is in another encoding: pass encoding='latin-1' (or 'cp1252', or the file's real "
                "encoding)" if encoding in ("utf-8", "utf-8-sig") else
                "pass the file's real encoding with encoding=...")
        col = exc.start - piece.rfind(b"\n", 0, exc.start)
        raise DataError(f"byte 0x{bad.hex()} at column {col} is not valid {encoding} text; {hint}",
                        file=str(path), line=line) from None


def _last_row_end(buf: bytes, quote: bool) -> int:
    """Index just after the last ``\\n`` that ends a row (outside double quotes when ``quote``), or -1."""
    if not quote or b'"' not in buf:
        return buf.rfind(b"\n") + 1 if b"\n" in buf else -1
    b = np.frombuffer(buf, np.uint8)
    nl = np.flatnonzero(b == 10)
    if not len(nl):
        return -1
    qpos = np.flatnonzero(b == 34)
    even = nl[np.searchsorted(qpos, nl) % 2 == 0] if len(qpos) else nl
    return int(even[-1]) + 1 if len(even) else -1


def _text_pieces(path: Path, encoding: str, quote: bool, chunk_bytes: int | None = None):
    """Yield ``(utf8_bytes, first_line)`` pieces of a text file (gzip transparently) that end at row
    boundaries; ``first_line`` is the 1-based line number of the piece's first line. A UTF-8 byte
    order mark is dropped; every byte is validated in ``encoding`` (a DataError names the line)."""
    chunk_bytes = max(chunk_bytes or CHUNK_BYTES, 4)  # the first read must see a whole byte-order mark
    codec, ascii_compatible = _check_encoding(encoding)
    with _open_binary(path) as fh:
        if not ascii_compatible:  # UTF-16/32: cannot be cut at b"\n" before decoding; read it whole
            text = _to_utf8(_read_block(fh, -1, path), codec, path, 1)
            yield text.removeprefix(_BOM_UTF8), 1
            return
        line0, carry, first = 1, b"", True
        while True:
            block = _read_block(fh, chunk_bytes, path)
            buf = carry + block
            if first:
                first = False
                if codec in ("utf-8", "utf-8-sig"):
                    buf = buf.removeprefix(_BOM_UTF8)
                    for bom, enc in _BOMS:
                        if buf.startswith(bom):
                            raise DataError(f"the file starts with a {enc.upper()} byte-order mark; pass "
                                            f"encoding={enc!r}", file=str(path), line=1)
            if len(block) < chunk_bytes:  # end of the file
                if buf:
                    yield _to_utf8(buf, codec, path, line0), line0
                return
            cut = _last_row_end(buf, quote)
            if cut <= 0:
                carry = buf
                continue
            piece, carry = buf[:cut], buf[cut:]
            yield _to_utf8(piece, codec, path, line0), line0
            line0 += piece.count(b"\n") + _lone_cr(piece)


def _lone_cr(data: bytes) -> int:
    """Number of ``\\r`` not followed by ``\\n`` (old-Mac line breaks)."""
    n = data.count(b"\r")
    return n - data.count(b"\r\n") if n else 0


def _row_lines(data: bytes, quote: bool) -> np.ndarray:
    """1-based line (within ``data``) on which each non-empty row starts, as a CSV parser sees rows:
    lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r``; with ``quote`` a break inside double quotes does
    not end a row. Vectorised."""
    b = np.frombuffer(data, np.uint8)
    n = len(b)
    if n == 0:
        return np.zeros(0, np.int64)
    if b"\r" in data:
        is_nl = b == 10
        brk = is_nl | (b == 13)
        brk[:-1] &= ~((b[:-1] == 13) & is_nl[1:])  # '\r\n' breaks at the '\n'
        breaks = np.flatnonzero(brk)
    else:
        breaks = np.flatnonzero(b == 10)
    ends = breaks
    if quote and b'"' in data:
        qpos = np.flatnonzero(b == 34)
        if len(qpos):
            ends = breaks[np.searchsorted(qpos, breaks) % 2 == 0]
    starts = np.concatenate([[0], ends + 1])
    stops = np.concatenate([ends, [n]])
    keep = starts < n
    starts, stops = starts[keep], stops[keep]
    length = stops - starts
    first = b[np.minimum(starts, n - 1)]
    nonempty = (length > 0) & ~((length == 1) & (first == 13))
    return (np.searchsorted(breaks, starts[nonempty]) + 1).astype(np.int64)


def _csv_records(text: str, sep: str, quote: bool, strict: bool = False):
    """Slow reference pass with Python's csv module: ``[(start_line, fields)]`` of non-empty records."""
    import csv
    import io

    kw = dict(delimiter=sep, quotechar='"', doublequote=True, strict=strict) if quote else \
        dict(delimiter=sep, quoting=csv.QUOTE_NONE)
    reader = csv.reader(io.StringIO(text, newline=""), **kw)
    out, prev = [], 0
    try:
        for rec in reader:
            if rec:
                out.append((prev + 1, rec))
            prev = reader.line_num
    except csv.Error as exc:
        exc.line_num = reader.line_num
        raise
    return out


# ------------------------------------------------------------------------------------------ tables


def _sniff_sep(path: Path, data: bytes) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return ","
    if name.endswith((".tsv", ".tab")):
        return "\t"
    first = data[:4096].split(b"\n", 1)[0]
    for cand in (b"\t", b",", b"|", b";", b" "):
        if cand in first:
            return cand.decode()
    return ","


def _format_of(path: Path, data: bytes | None = None) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".json", ".jsonl", ".ndjson")):
        return "jsonl"
    return "csv"


def _resolve_columns(path: Path, want: list[Column], names: list[str], *, line: int | None, what: str,
                     hint: str = "") -> list[str]:
    out = []
    for c in want:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not 0 <= c < len(names):
                raise DataError(f"column index {c} out of range: the file has {len(names)} {what} ({names}); "
                                "give the column by name or a 0-based index", file=str(path), line=line,
                                column=str(c))
            out.append(names[c])
        else:
            if c not in names:
                raise DataError(f"column not found; the file has {what} {names}. Pass the right name or a "
                                f"0-based index{hint}", file=str(path), line=line, column=str(c))
            out.append(str(c))
    return out


class _CsvPieces:
    """Delimited text, piece by piece: yields ``(table of the wanted columns as strings, line numbers,
    {})``. pyarrow parses; when it reports a row with the wrong number of fields (or cannot parse),
    Python's csv module re-reads that piece to name the line."""

    def __init__(self, path: Path, *, sep: str | None, header: bool, names, encoding: str, want,
                 on_bad_rows: str, report: SkipReport, chunk_bytes: int | None):
        self.path, self.header, self.names, self.encoding, self.want = path, header, names, encoding, want
        self.on_bad_rows, self.report, self.chunk_bytes = on_bad_rows, report, chunk_bytes
        if sep is None:
            with _open_binary(path) as fh:
                head = _read_block(fh, 4096, path)
            sep = _sniff_sep(path, head.removeprefix(_BOM_UTF8))
        if not isinstance(sep, str) or len(sep) != 1 or sep in "\r\n\"":
            raise ValueError(f"sep={sep!r}: the delimiter must be one character other than a newline or '\"'")
        self.sep = sep
        self.quote = sep not in (" ", "\t", "|")
        self.col_names: list[str] | None = None
        self.want_names: list[str] = []
        self.rows_seen = 0
        self.bytes_seen = 0

    def _columns(self, piece: bytes) -> tuple[bytes, int]:
        """Column names from the first non-blank piece; returns the piece without its header line."""
        path = self.path
        rest, skipped = piece, 0
        if self.header:  # the header ends at the first line break (\n, \r\n or a lone \r)
            ends = [i for i in (piece.find(b"\n"), piece.find(b"\r")) if i >= 0]
            cut = min(ends) if ends else len(piece)
            first = piece[:cut]
            rest = piece[cut + (2 if piece[cut:cut + 2] == b"\r\n" else 1):]
            skipped = 1
            if not first.strip(b" \t\r"):
                raise DataError("line 1 is blank, but header=True expects the column names there; remove the "
                                "blank line or pass header=False", file=str(path), line=1)
        else:
            first = piece.lstrip(b"\r\n").split(b"\n", 1)[0]
        recs = _csv_records(first.decode("utf-8").rstrip("\r"), self.sep, self.quote)
        fields = recs[0][1] if recs else [""]
        if self.names is not None:
            col_names = [str(n) for n in self.names]
        elif self.header:
            col_names = list(fields)
        else:
            col_names = [str(i) for i in range(len(fields))]
        self.want_names = _resolve_columns(path, self.want, col_names, line=1 if self.header else None,
                                           what="columns", hint="" if self.header else
                                           " (header=False: columns are numbered 0, 1, ...)")
        if len(set(col_names)) != len(col_names):  # duplicate header names: make them addressable
            seen: dict[str, int] = {}
            fixed = []
            for nm in col_names:
                seen[nm] = seen.get(nm, 0) + 1
                fixed.append(nm if seen[nm] == 1 else f"{nm}.{seen[nm] - 1}")
            col_names = fixed
        self.col_names = col_names
        return rest, skipped

    def __iter__(self):
        for piece, line0 in _text_pieces(self.path, self.encoding, self.quote, self.chunk_bytes):
            self.bytes_seen += len(piece)
            if self.col_names is None:
                if not self.header and not piece.strip(b" \t\r\n"):
                    continue
                piece, skipped = self._columns(piece)
                line0 += skipped
            if piece:
                table, lines = self._parse(piece, line0)
                if table.num_rows:
                    yield table, lines, {}

    def _parse(self, piece: bytes, line0: int) -> tuple[pa.Table, np.ndarray]:
        import csv

        path, sep, quote = self.path, self.sep, self.quote
        uniq = list(dict.fromkeys(self.want_names))
        invalid: list[int] = []

        def on_invalid(row) -> str:
            invalid.append(row.actual_columns)
            return "skip"

        table, arrow_error = None, None
        try:
            table = pa_csv.read_csv(
                pa.BufferReader(piece),
                read_options=pa_csv.ReadOptions(column_names=self.col_names, block_size=1 << 22),
                parse_options=pa_csv.ParseOptions(delimiter=sep, quote_char='"' if quote else False,
                                                  newlines_in_values=quote, invalid_row_handler=on_invalid),
                convert_options=pa_csv.ConvertOptions(include_columns=uniq,
                                                      column_types={n: pa.string() for n in uniq},
                                                      strings_can_be_null=True, null_values=[""]))
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            arrow_error = exc
        if table is not None and not invalid:
            lines = _row_lines(piece, quote) + (line0 - 1)
            if len(lines) == table.num_rows:
                self.rows_seen += len(lines)
                return table, lines
        # slow pass: Python's csv module names each record's line and counts its fields
        try:
            recs = _csv_records(piece.decode("utf-8"), sep, quote, strict=arrow_error is not None)
        except csv.Error as exc:
            raise DataError(f"cannot parse as delimited text with separator {sep!r}: {exc} (near line "
                            f"{line0 + getattr(exc, 'line_num', 0)}); fix the quoting there", file=str(path)) from None
        self.rows_seen += len(recs)
        ncol = len(self.col_names)
        good = []
        for start, fields in recs:
            line = start + line0 - 1
            if len(fields) == ncol:
                good.append(line)
                continue
            reason = "too few fields" if len(fields) < ncol else "too many fields"
            if self.on_bad_rows == "error":
                raise DataError(f"{reason}: expected {ncol} separated by {sep!r}, got {len(fields)} in "
                                f"{sep.join(fields)[:80]!r}; fix the line, or pass on_bad_rows='skip' to skip such "
                                "rows (they are counted)", file=str(path), line=line)
            self.report.add(reason, f"{path}:{line}")
        if table is None:
            raise DataError(f"cannot parse as delimited text with separator {sep!r}: {arrow_error}", file=str(path))
        if len(good) != table.num_rows:
            raise DataError(f"cannot number the rows reliably (pyarrow read {table.num_rows} rows, Python's csv "
                            f"module {len(good)}); usually a stray double quote inside a field: quote the whole "
                            "field (doubling inner quotes)", file=str(path))
        return table, np.asarray(good, np.int64)


def _json_shape(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per ``\\n``-separated line: (start, stop, is_content, looks_like_object). Blank lines (only
    spaces, tabs, ``\\r``) are not content. Vectorised, except for lines that do not start with
    ``{`` and end with ``}`` (checked one by one)."""
    b = np.frombuffer(data, np.uint8)
    n = len(b)
    nl = np.flatnonzero(b == 10)
    starts = np.concatenate([[0], nl + 1])
    stops = np.concatenate([nl, [n]])
    if len(starts) and starts[-1] == n:
        starts, stops = starts[:-1], stops[:-1]
    stops_cr = stops - ((stops > starts) & (b[np.maximum(stops - 1, 0)] == 13) if n else 0)
    length = stops_cr - starts
    simple = (length > 0)
    if n:
        simple &= (b[np.minimum(starts, n - 1)] == 123) & (b[np.maximum(stops_cr - 1, 0)] == 125)
    content = simple.copy()
    obj = simple.copy()
    for j in np.flatnonzero(~simple):  # blank, indented or not an object: rare
        seg = data[starts[j]:stops[j]].strip(b" \t\r")
        content[j] = bool(seg)
        obj[j] = seg[:1] == b"{" and seg[-1:] == b"}"
    return starts, stops, content, obj


_JSON_FAST_TYPES = {
    "id": (pa.types.is_int64, pa.types.is_string, pa.types.is_null),
    "timestamp": (pa.types.is_int64, pa.types.is_string, pa.types.is_null),
    "label": (pa.types.is_int64, pa.types.is_float64, pa.types.is_boolean, pa.types.is_string, pa.types.is_null),
    "behavior": (pa.types.is_int64, pa.types.is_string, pa.types.is_null),
    "feature": (pa.types.is_int64, pa.types.is_string, pa.types.is_null),
}


def _kind(role: str) -> str:
    if role in ("user", "item"):
        return "id"
    return "feature" if role.startswith("item_feature:") else role


def _json_token(v, kind: str):
    """A JSON value as the string the column casts read, or ``False`` for a value of the wrong type."""
    if v is None:
        return None
    if isinstance(v, bool):
        return ("1" if v else "0") if kind == "label" else False
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if kind == "id" and v.is_integer() and abs(v) <= 2 ** 53:
            return str(int(v))
        return repr(v)
    if isinstance(v, str):
        return v
    return False


class _JsonlPieces:
    """JSON lines, piece by piece. Fast path: pyarrow; when it fails or its reading could differ from
    Python's ``json`` (a malformed line, mixed types, floats where integers belong, control bytes),
    the piece is read line by line with ``json.loads`` instead — the reference semantics."""

    def __init__(self, path: Path, *, encoding: str, roles, on_bad_rows: str, report: SkipReport,
                 chunk_bytes: int | None):
        self.path, self.encoding, self.on_bad_rows, self.report = path, encoding, on_bad_rows, report
        self.chunk_bytes = chunk_bytes
        for _, c in roles:
            if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
                raise DataError("JSON lines columns must be given by key name, not by index", file=str(path),
                                column=str(c))
        self.want_names = [str(c) for _, c in roles]
        self.uniq = list(dict.fromkeys(self.want_names))
        self.kind_of: dict[str, str] = {}
        for r, c in roles:
            self.kind_of.setdefault(str(c), _kind(r))
        self.rows_seen = 0
        self.bytes_seen = 0
        self.keys_seen: set[str] = set()

    def missing_keys(self) -> list[str]:
        return [c for c in self.uniq if c not in self.keys_seen]

    def __iter__(self):
        for piece, line0 in _text_pieces(self.path, self.encoding, quote=False, chunk_bytes=self.chunk_bytes):
            self.bytes_seen += len(piece)
            starts, stops, content, obj = _json_shape(piece)
            n_content = int(content.sum())
            if not n_content:
                continue
            self.rows_seen += n_content
            fast = self._fast(piece, content, obj)
            if fast is not None:
                table, wrong, lines, keys = fast, {}, np.flatnonzero(content).astype(np.int64) + line0, \
                    set(fast.column_names)
            else:
                table, wrong, lines, keys = self._slow(piece, starts, stops, content, line0)
            self.keys_seen |= keys
            if not table.num_rows:
                continue
            missing = [c for c in self.uniq if c not in self.keys_seen]
            if missing and self.on_bad_rows == "error":
                raise DataError(f"key not found in any record up to line {int(lines[-1])}; keys seen: "
                                f"{sorted(self.keys_seen)}", file=str(self.path), line=int(lines[0]),
                                column=missing[0])
            n = table.num_rows
            cols = {c: (table.column(c) if c in table.column_names else pa.chunked_array([pa.nulls(n, pa.string())]))
                    for c in self.uniq}
            yield pa.table(cols), lines, wrong

    def _fast(self, piece: bytes, content: np.ndarray, obj: np.ndarray) -> pa.Table | None:
        import pyarrow.json as pa_json

        if not obj[content].all():
            return None
        b = np.frombuffer(piece, np.uint8)
        if ((b < 32) & (b != 9) & (b != 10) & (b != 13)).any():
            return None
        try:
            table = pa_json.read_json(pa.BufferReader(piece),
                                      read_options=pa_json.ReadOptions(block_size=max(len(piece) + 1, 1 << 20)),
                                      parse_options=pa_json.ParseOptions(newlines_in_values=False))
        except (pa.ArrowInvalid, UnicodeDecodeError, OverflowError):
            return None
        if table.num_rows != int(content.sum()):
            return None
        for c in self.uniq:
            if c in table.column_names:
                t = table.column(c).type
                if not any(ok(t) for ok in _JSON_FAST_TYPES[self.kind_of[c]]):
                    return None
        return table.select([c for c in self.uniq if c in table.column_names])

    def _slow(self, piece: bytes, starts, stops, content, line0: int):
        import json

        rows, good, keys = [], [], set()
        for j in np.flatnonzero(content):
            seg = piece[starts[j]:stops[j]]
            line = line0 + int(j)
            try:
                rec = json.loads(seg.decode("utf-8"))
            except json.JSONDecodeError as exc:
                reason, key = f"malformed JSON ({exc.msg} at column {exc.colno})", "malformed JSON line"
            except (RecursionError, ValueError) as exc:
                reason, key = f"malformed JSON ({type(exc).__name__}: {exc})", "malformed JSON line"
            else:
                if isinstance(rec, dict):
                    rows.append(rec)
                    good.append(line)
                    keys.update(rec)
                    continue
                reason, key = f"not a JSON object (a JSON {type(rec).__name__})", "JSON line is not an object"
            if self.on_bad_rows == "error":
                raise DataError(f"{reason}: {seg[:80].decode('utf-8', 'replace')!r}; fix the line, or pass "
                                "on_bad_rows='skip' to skip such lines (they are counted)", file=str(self.path),
                                line=line)
            self.report.add(key, f"{self.path}:{line}")
        cols, wrong = {}, {}
        for c in self.uniq:
            toks = [_json_token(r.get(c), self.kind_of[c]) for r in rows]
            w = np.fromiter((t is False for t in toks), bool, len(toks))
            if w.any():
                wrong[c] = w
                toks = [None if t is False else t for t in toks]
            cols[c] = pa.array(toks, pa.string())
        return pa.table(cols), wrong, np.asarray(good, np.int64), keys


_PARQUET_TYPES = {
    "id": "integers or strings (pass id_type='str' for string ids)",
    "timestamp": "integer or float Unix seconds, or a timestamp / date type",
    "label": "numbers or booleans",
    "behavior": "strings or integers",
    "feature": "integers or strings",
}


def _plain_column(col: pa.ChunkedArray, kind: str, path: Path, column: str) -> pa.ChunkedArray:
    """A Parquet column with dictionaries decoded and checked against what ``kind`` accepts; any other
    type (e.g. booleans as ids: True/False would silently become 1/0) is a DataError naming it."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = pa.chunked_array([c.dictionary_decode() for c in col.chunks], type=t.value_type)
        t = col.type
    if pa.types.is_large_string(t) or str(t) == "string_view":
        col, t = pc.cast(col, pa.string()), pa.string()
    ok = pa.types.is_null(t) or pa.types.is_string(t) or pa.types.is_integer(t)
    if kind in ("id",):
        ok = ok or pa.types.is_floating(t)
    elif kind == "timestamp":
        ok = ok or pa.types.is_floating(t) or pa.types.is_timestamp(t) or pa.types.is_date(t) or \
            pa.types.is_decimal(t)
    elif kind == "label":
        ok = ok or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)
    if not ok:
        role = {"id": "an id", "timestamp": "a timestamp", "label": "a label", "behavior": "a behaviour",
                "feature": "an item feature"}[kind]
        raise DataError(f"has Parquet type {t}, which cannot be used as {role}: expected {_PARQUET_TYPES[kind]}; "
                        "convert the column or map another one", file=str(path), column=column)
    if pa.types.is_date(t):
        col = pc.cast(col, pa.timestamp("s"))
    elif pa.types.is_decimal(t):
        col = pc.cast(col, pa.float64())
    return col


class _ParquetPieces:
    """Parquet, batch by batch (only the wanted columns are read)."""

    def __init__(self, path: Path, *, roles, batch_rows: int = 1 << 20):
        import pyarrow.parquet as pq

        _check_file(path)
        try:
            self.pf = pq.ParquetFile(path)
            names = self.pf.schema_arrow.names
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"not a readable Parquet file ({exc}); check that it is Parquet (name ends in "
                            ".parquet) and complete", file=str(path)) from None
        self.path, self.batch_rows = path, batch_rows
        self.want_names = _resolve_columns(path, [c for _, c in roles], names, line=None, what="columns")
        self.uniq = list(dict.fromkeys(self.want_names))
        self.kind_of: dict[str, str] = {}
        for (r, _), c in zip(roles, self.want_names):
            self.kind_of.setdefault(c, _kind(r))
        schema = self.pf.schema_arrow
        for c in self.uniq:  # type check before reading any data
            _plain_column(pa.chunked_array([], type=schema.field(c).type), self.kind_of[c], path, c)
        self.rows_seen = self.pf.metadata.num_rows
        self.bytes_seen = self.rows_seen

    def __iter__(self):
        row0 = 0
        try:
            batches = self.pf.iter_batches(batch_size=self.batch_rows, columns=self.uniq)
            for batch in batches:
                n = batch.num_rows
                table = pa.Table.from_batches([batch])
                cols = {c: _plain_column(table.column(c), self.kind_of[c], self.path, c) for c in self.uniq}
                yield pa.table(cols), np.arange(row0 + 1, row0 + n + 1, dtype=np.int64), {}
                row0 += n
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"Parquet data cannot be read after row {row0} ({exc}); the file is damaged or "
                            "truncated", file=str(self.path)) from None


# ------------------------------------------------------------------------------- column conversion


def _to_numpy_str(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def _null_mask(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), bool)


def _cast_int(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values int64, bad mask, beyond-int64 mask). Null, non-integer and out-of-range entries are bad;
    strings are ``[+-]digits`` with optional surrounding whitespace."""
    n = len(col)
    none = np.zeros(n, bool)
    if pa.types.is_null(col.type):
        return np.zeros(n, np.int64), np.ones(n, bool), none
    if pa.types.is_integer(col.type):
        valid = ~_null_mask(col)
        over = none
        if col.type == pa.uint64():
            above = pc.fill_null(pc.greater(col, pa.scalar(2 ** 63 - 1, pa.uint64())), False)
            over = np.asarray(above.to_numpy(zero_copy_only=False), bool)
            col = pc.if_else(above, pa.scalar(0, pa.uint64()), col)
        return np.asarray(pc.fill_null(pc.cast(col, pa.int64()), 0).to_numpy(), np.int64), ~valid | over, over
    if pa.types.is_floating(col.type):
        vals = np.asarray(pc.fill_null(pc.cast(col, pa.float64()), np.nan).to_numpy(), np.float64)
        with np.errstate(invalid="ignore"):
            over = np.isfinite(vals) & (np.abs(vals) >= 2.0 ** 63)
            bad = ~np.isfinite(vals) | (vals != np.round(vals)) | over
        return np.where(bad, 0, vals).astype(np.int64), bad, over
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    # fast path: arrow's integer parse fails on overflow and accepts a subset of _INT_RE, except hex
    # ("0x1F"), which the rules reject: such columns take the checked path below
    if not pc.any(pc.match_substring(col, "x", ignore_case=True)).as_py():
        try:
            out = pc.cast(col, pa.int64())
            return np.asarray(pc.fill_null(out, 0).to_numpy(), np.int64), _null_mask(out), none
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    good = pc.fill_null(pc.match_substring_regex(col, _INT_RE), False)
    digits = pc.utf8_ltrim(pc.utf8_trim_whitespace(col), characters="+-")
    mag = pc.utf8_ltrim(digits, characters="0")
    length = pc.utf8_length(mag)
    neg = pc.starts_with(pc.utf8_trim_whitespace(col), "-")
    limit = pc.if_else(neg, pa.scalar("9223372036854775808"), pa.scalar(_INT64_MAX))
    over = pc.and_(good, pc.or_(pc.greater(length, 19), pc.and_(pc.equal(length, 19), pc.greater(mag, limit))))
    over = pc.fill_null(over, False)
    ok = pc.and_(good, pc.invert(over))
    signed = pc.if_else(neg, pc.binary_join_element_wise("-", mag, ""), mag)
    signed = pc.if_else(pc.equal(pc.utf8_length(mag), 0), pa.scalar("0"), signed)
    vals = pc.cast(pc.if_else(ok, signed, pa.scalar("0")), pa.int64())
    over_np = np.asarray(over.to_numpy(zero_copy_only=False), bool)
    return np.asarray(vals.to_numpy(), np.int64), ~np.asarray(ok.to_numpy(zero_copy_only=False), bool), over_np


_FLOAT_RE = r"^\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan|infinity)\s*$"


def _cast_float(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(values float64, bad mask). Null / non-numeric / NaN / infinite entries are bad."""
    if pa.types.is_null(col.type):
        return np.full(len(col), np.nan), np.ones(len(col), bool)
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_boolean(col.type):
        vals = np.asarray(pc.fill_null(pc.cast(col, pa.float64()), np.nan).to_numpy(), np.float64)
        return vals, ~np.isfinite(vals)
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    try:  # fast path: clean numbers
        vals = np.asarray(pc.fill_null(pc.cast(col, pa.float64()), np.nan).to_numpy(), np.float64)
        return vals, ~np.isfinite(vals)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    good = np.asarray(pc.fill_null(pc.match_substring_regex(col, _FLOAT_RE, ignore_case=True), False)
                      .to_numpy(zero_copy_only=False), bool)
    vals = np.full(len(col), np.nan)
    if good.any():
        strs = _to_numpy_str(col)
        vals[good] = np.char.strip(strs[good].astype(str)).astype(np.float64)
    return vals, ~np.isfinite(vals)


def _cast_timestamp(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seconds int64, bad mask, beyond-int64 mask): integers, or floats rounded to whole seconds."""
    if pa.types.is_timestamp(col.type):
        vals = pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64())
        valid = ~_null_mask(vals)
        return np.asarray(pc.fill_null(vals, 0).to_numpy(), np.int64), ~valid, np.zeros(len(col), bool)
    vals, bad, over = _cast_int(col)
    if bad.any() and not pa.types.is_null(col.type):  # maybe float seconds (e.g. 1.5e9)
        fv, fbad = _cast_float(col)
        with np.errstate(invalid="ignore"):
            fover = ~fbad & (np.abs(np.where(fbad, 0, fv)) >= 2.0 ** 63)
        fix = bad & ~over & ~fbad & ~fover
        vals = np.where(fix, np.round(np.where(fix, fv, 0)), vals).astype(np.int64)
        over = over | (bad & fover)
        bad = bad & ~fix
    if (bad & ~over).any() and (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        iv, ibad = _parse_iso8601(col)  # e.g. 1997-12-04T15:55:49+00:00, 1997-12-04 15:55:49, 1997-12-04
        fix = bad & ~over & ~ibad
        vals = np.where(fix, iv, vals)
        bad = bad & ~fix
    return vals, bad, over


def _parse_iso8601(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """ISO-8601 date-times as Unix seconds (no offset: UTC) and a mask of unparsable values.

    One vectorised pyarrow cast when the column has one form; mixed forms go through
    ``datetime.fromisoformat`` once per distinct value."""
    for typ in (pa.timestamp("s", tz="UTC"), pa.timestamp("s")):
        try:
            ts = pc.cast(col, typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        vals = pc.cast(pc.cast(ts, pa.timestamp("s")), pa.int64())
        return (np.asarray(pc.fill_null(vals, 0).to_numpy(), np.int64),
                ~np.asarray(pc.is_valid(vals).to_numpy(zero_copy_only=False), bool))
    import datetime as _dt

    raw = np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)
    uniq, inv = np.unique(raw.astype(str), return_inverse=True)
    out, bad = np.zeros(len(uniq), np.int64), np.zeros(len(uniq), bool)
    for k, text in enumerate(uniq):
        try:
            d = _dt.datetime.fromisoformat(text)
        except ValueError:
            bad[k] = True
            continue
        out[k] = int((d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)).timestamp())
    return out[inv], bad[inv] | _null_mask(col)


# --------------------------------------------------------------------------------------- duplicates


def duplicate_mask(*cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows defined by parallel columns: (is_duplicate [E] bool — a later copy of an earlier
    identical row, index_of_first [E] — the first row with the same values). Vectorised."""
    n = len(cols[0])
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, np.int64)
    keys = []
    for c in cols:
        c = np.asarray(c)
        if c.dtype.kind == "f":
            c = c.astype(np.float64).view(np.int64)
        keys.append(c.astype(np.int64))
    order = np.lexsort(keys[::-1] + [])  # primary key = first column
    # stable tie-break by position: lexsort is stable, so equal rows keep file order
    sk = np.stack([k[order] for k in keys], axis=1)
    same_as_prev = np.concatenate([[False], np.all(sk[1:] == sk[:-1], axis=1)])
    group_start = np.maximum.accumulate(np.where(~same_as_prev, np.arange(n), 0))
    first = np.empty(n, np.int64)
    first[order] = order[group_start]
    dup = np.zeros(n, bool)
    dup[order] = same_as_prev
    return dup, first


# ------------------------------------------------------------------------------------------ reader


def _day(t: int) -> str:
    import datetime as _dt

    try:
        return (_dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=int(t))).strftime("%Y-%m-%d")
    except OverflowError:
        return "year > 9999" if t > 0 else "year < 1"


def read_interactions(path: str | os.PathLike, *, user: Column, item: Column,
                      timestamp: Column | None = None, label: Column | None = None,
                      behavior: Column | None = None, sep: str | None = None, header: bool = True,
                      names: Sequence[str] | None = None, encoding: str = "utf-8",
                      on_bad_rows: str = "error", duplicates: Duplicates = "error",
                      skip_report: SkipReport | None = None, id_type: Literal["int", "str"] = "int",
                      behavior_names: Sequence[str] | None = None,
                      item_feature_columns: dict[str, Column] | None = None,
                      timestamp_unit: Literal["s", "ms", "us", "ns"] = "s",
                      timestamp_range: tuple[int, int] | None = TIMESTAMP_RANGE,
                      name: str = "", chunk_bytes: int | None = None) -> Interactions:
    """Read an interaction log (CSV / TSV / any delimiter, Parquet, JSON lines; ``.gz`` transparently).

    Text is read in pieces of ``chunk_bytes`` (default :data:`CHUNK_BYTES`) that end at a row
    boundary, and Parquet batch by batch, so peak memory follows the output arrays, not the file.

    Args:
        path: the file. Format from the name: ``.parquet``/``.pq`` → Parquet, ``.json``/``.jsonl``
            → JSON lines (one object per line; blank lines ignored), anything else → delimited text.
        user, item: id columns (name, or 0-based index). ``id_type="int"`` (default) requires
            integer ids within int64; ``"str"`` keeps them as strings. Dense indices follow sorted
            raw ids. A Parquet column of another type (e.g. booleans) is refused with a DataError.
        timestamp: optional column of integer (or float, rounded) times in ``timestamp_unit``,
            stored as Unix seconds.
        label: optional numeric column (rating, weight, 0/1, booleans); NaN is a bad row.
        behavior: optional column of behaviour names; with ``behavior_names`` given, other names are
            bad rows and codes follow that order; otherwise the sorted distinct names.
        sep: delimiter; None → from the extension (``.csv`` ``,``; ``.tsv`` TAB) or sniffed.
        header: whether the first line holds column names. ``names`` overrides them.
        encoding: text encoding (e.g. ``"latin-1"``, ``"utf-16"``). Every byte is checked: text that
            is not valid in it is a DataError naming the line (it is a file-level problem, never a
            skip). A UTF-8 byte-order mark is dropped.
        on_bad_rows: ``"error"`` → :class:`DataError` (file, line, column, what to do);
            ``"skip"`` → drop the row and count it in ``skip_report``.
        duplicates: exact duplicate events (same values in every read column): ``"error"``,
            ``"skip"`` (counted) or ``"keep"``.
        skip_report: filled with the counted skips. When None and rows are skipped, a warning
            carrying the report is issued, so nothing is dropped silently.
        item_feature_columns: ``feature name -> column``: per-item attributes (e.g. category)
            stored as dense codes in ``item_features`` (last value wins for an item).
        timestamp_unit: unit of the timestamp column (``"ms"`` for milliseconds, ...).
        timestamp_range: ``(lo, hi)``: timestamps (after the unit conversion) outside ``[lo, hi)``
            are bad rows — by default before 1970 or from the year 3000 on (usually milliseconds
            read as seconds, or a sentinel like -1). ``None`` accepts any value.
        name: dataset name stamped on the result.
        chunk_bytes: size of the text pieces (tests use small ones).

    Raises:
        DataError: for bad input, naming the file and, where it applies, the line and column.
        ValueError: for a bad argument (naming it).
    """
    check_on_bad_rows(on_bad_rows)
    if duplicates not in ("error", "skip", "keep"):
        raise ValueError(f"duplicates must be 'error', 'skip' or 'keep', got {duplicates!r}")
    if id_type not in ("int", "str"):
        raise ValueError(f"id_type must be 'int' or 'str', got {id_type!r}")
    if timestamp_unit not in _UNITS:
        raise ValueError(f"timestamp_unit must be one of {list(_UNITS)}, got {timestamp_unit!r}")
    if timestamp_range is not None and (len(timestamp_range) != 2 or timestamp_range[0] >= timestamp_range[1]):
        raise ValueError(f"timestamp_range must be (lo, hi) with lo < hi, or None; got {timestamp_range!r}")
    _check_encoding(encoding)
    path = Path(path)
    own_report = skip_report is None
    report = SkipReport() if own_report else skip_report
    fmt = _format_of(path)
    item_feature_columns = dict(item_feature_columns or {})
    roles: list[tuple[str, Column]] = [("user", user), ("item", item)]
    for role, col in (("timestamp", timestamp), ("label", label), ("behavior", behavior)):
        if col is not None:
            roles.append((role, col))
    for fname, col in item_feature_columns.items():
        roles.append((f"item_feature:{fname}", col))

    if fmt == "parquet":
        pieces = _ParquetPieces(path, roles=roles)
    elif fmt == "jsonl":
        pieces = _JsonlPieces(path, encoding=encoding, roles=roles, on_bad_rows=on_bad_rows, report=report,
                              chunk_bytes=chunk_bytes)
    else:
        _check_file(path)
        pieces = _CsvPieces(path, sep=sep, header=header, names=names, encoding=encoding,
                            want=[c for _, c in roles], on_bad_rows=on_bad_rows, report=report,
                            chunk_bytes=chunk_bytes)
    line_word = "row" if fmt == "parquet" else "line"
    unit = _UNITS[timestamp_unit]
    parts: list[dict] = []
    for table, lines, wrong in pieces:
        parts.append(_convert_piece(table, lines, wrong, dict(zip([r for r, _ in roles], pieces.want_names)),
                                    path=path, line_word=line_word, on_bad_rows=on_bad_rows, report=report,
                                    id_type=id_type, behavior_names=behavior_names, unit=unit,
                                    timestamp_range=timestamp_range, timestamp_unit=timestamp_unit))
    if isinstance(pieces, _JsonlPieces) and pieces.rows_seen and pieces.missing_keys():
        raise DataError(f"key not found in any record; keys seen: {sorted(pieces.keys_seen)}", file=str(path),
                        column=pieces.missing_keys()[0])
    n_total = sum(len(p["lines"]) for p in parts)
    if n_total == 0:
        if pieces.rows_seen:
            raise DataError(f"no rows left after skipping bad rows ({report}); check the column mapping",
                            file=str(path))
        if fmt == "parquet":
            raise DataError("the Parquet file has no rows", file=str(path))
        if pieces.bytes_seen == 0:
            raise DataError("the file is empty (0 bytes" + (" after decompression" if _is_gzip(path) else "")
                            + "); check the path, or that the download or export finished", file=str(path))
        if isinstance(pieces, _CsvPieces) and pieces.col_names is not None and header:
            raise DataError("no rows: the file holds only the header line", file=str(path))
        raise DataError("no rows: the file holds only blank lines", file=str(path))
    cat = {k: (None if parts[0][k] is None else np.concatenate([p[k] for p in parts]))
           for k in ("user", "item", "lines", "timestamp", "label", "behavior")}
    u_raw, i_raw, lines = cat["user"], cat["item"], cat["lines"]
    ts, lab, bvals = cat["timestamp"], cat["label"], cat["behavior"]
    feats_raw = {}
    for fname in item_feature_columns:
        chunks = [p["features"][fname] for p in parts]
        if any(c.dtype.kind not in "iu" for c in chunks):
            chunks = [c.astype(str) for c in chunks]
        feats_raw[fname] = np.concatenate(chunks)

    beh_codes = None
    beh_names: tuple[str, ...] = ()
    if behavior is not None:
        if behavior_names is not None:
            beh_names = tuple(str(x) for x in behavior_names)
            order = np.argsort(np.asarray(beh_names))
            pos = np.searchsorted(np.asarray(beh_names)[order], bvals)
            beh_codes = order[np.clip(pos, 0, len(order) - 1)]
        else:
            beh_names = tuple(np.unique(bvals).tolist())
            beh_codes = np.searchsorted(np.asarray(beh_names), bvals)
        if len(beh_names) > 127:
            raise DataError(f"{len(beh_names)} distinct behaviours; at most 127 are supported",
                            file=str(path), column=dict(zip([r for r, _ in roles], pieces.want_names))["behavior"])

    user_vocab, u = Vocab.build(u_raw)
    item_vocab, it = Vocab.build(i_raw)
    if duplicates != "keep":
        cols = [u, it] + [c for c in (ts, lab, beh_codes) if c is not None]
        dup, first = duplicate_mask(*cols)
        if dup.any():
            idx = np.flatnonzero(dup)
            if duplicates == "error":
                j = int(idx[0])
                raise DataError(f"exact duplicate event: same values as {line_word} {int(lines[first[j]])} "
                                f"({len(idx)} duplicate(s) in the file); pass duplicates='skip' to drop "
                                "later copies (counted) or duplicates='keep'",
                                file=str(path), line=int(lines[j]))
            reason = "exact duplicate event"
            for j in idx[: report.max_examples]:
                report.add(reason, f"{path}:{int(lines[j])} (= {line_word} {int(lines[first[j]])})", n=0)
            report.counts[reason] += len(idx)
            sel = np.flatnonzero(~dup)
            u, it, lines = u[sel], it[sel], lines[sel]
            ts = None if ts is None else ts[sel]
            lab = None if lab is None else lab[sel]
            beh_codes = None if beh_codes is None else beh_codes[sel]
            feats_raw = {k: v[sel] for k, v in feats_raw.items()}
    item_features = {}
    for fname, vals in feats_raw.items():
        fv, codes = Vocab.build(vals)
        feat = np.full(len(item_vocab), -1, np.int64)
        feat[it] = codes
        item_features[fname] = feat
    if own_report and report.total:
        warnings.warn(f"{path}: {report}", stacklevel=2)
    return Interactions(
        user=u, item=it, n_users=len(user_vocab), n_items=len(item_vocab),
        timestamp=None if ts is None else ts.astype(np.int64),
        behavior=None if beh_codes is None else beh_codes.astype(np.int8), behavior_names=beh_names,
        label=None if lab is None else lab.astype(np.float32),
        user_vocab=user_vocab, item_vocab=item_vocab, item_features=item_features, name=name,
    )


def _is_gzip(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == _GZIP_MAGIC
    except OSError:
        return False


def _convert_piece(table: pa.Table, lines: np.ndarray, wrong: dict, col_of: dict, *, path: Path, line_word: str,
                   on_bad_rows: str, report: SkipReport, id_type: str, behavior_names, unit: int,
                   timestamp_range, timestamp_unit: str) -> dict:
    """Cast and check one piece's columns; bad rows raise or are counted and dropped. Returns the kept
    rows' raw ids, times, labels, behaviour names, feature values and line numbers."""
    n = table.num_rows
    bad = np.zeros(n, bool)

    def flag(mask: np.ndarray, role: str, reason: str, hint: str, shown=None) -> None:
        mask = mask & ~bad
        if not mask.any():
            return
        idx = np.flatnonzero(mask)
        column = col_of[role]
        if on_bad_rows == "error":
            first = int(idx[0])
            raw = table.column(column)[first].as_py() if shown is None else shown
            raise DataError(f"{reason} ({raw!r}); {hint}, or pass on_bad_rows='skip' to skip such rows "
                            f"(they are counted). {len(idx)} {line_word}(s) affected in this part of the file",
                            file=str(path), line=int(lines[first]), column=column)
        key = f"{reason} in column {column!r}"
        for i in idx[: report.max_examples]:
            report.add(key, f"{path}:{int(lines[i])}", n=0)
        report.counts[key] += len(idx)
        bad[idx] = True

    def wrong_type(role: str) -> None:
        w = wrong.get(col_of[role])
        if w is not None:
            flag(w, role, f"{role} of the wrong JSON type", "expected a number or a string (not true/false, "
                 "a list or an object)", shown="<true/false/list/object>")

    def ids(role: str) -> np.ndarray:
        col = table.column(col_of[role])
        wrong_type(role)
        flag(_null_mask(col), role, f"empty {role} id", "fill in the id")
        if id_type == "int":
            vals, b, over = _cast_int(col)
            flag(over, role, f"{role} id beyond the int64 range", "ids must fit in 64 bits: pass id_type='str' "
                                                                  "to keep them as strings")
            flag(b, role, f"non-integer {role} id", "ids are declared integer: fix the value or pass "
                                                    "id_type='str'")
            return vals
        return np.asarray(pc.fill_null(pc.cast(col, pa.string()), "").to_numpy(zero_copy_only=False)).astype(str)

    out: dict = {"user": ids("user"), "item": ids("item"), "timestamp": None, "label": None, "behavior": None,
                 "features": {}}
    if "timestamp" in col_of:
        wrong_type("timestamp")
        ts, b, over = _cast_timestamp(table.column(col_of["timestamp"]))
        flag(over, "timestamp", "timestamp beyond the int64 range", "timestamps must be Unix seconds")
        flag(b, "timestamp", "non-numeric or empty timestamp", "timestamps must be integer Unix seconds")
        if unit != 1:
            ts = np.floor_divide(ts, unit)
        if timestamp_range is not None:
            lo, hi = timestamp_range
            out_of = (ts < lo) | (ts >= hi)
            if (out_of & ~bad).any():
                j = int(np.flatnonzero(out_of & ~bad)[0])
                hint = (f"timestamps must be Unix {'seconds' if unit == 1 else timestamp_unit} in "
                        f"[{_day(lo)}, {_day(hi)})")
                if unit == 1 and 1000 * lo <= ts[j] < 1000 * hi:
                    hint += "; these look like milliseconds: pass timestamp_unit='ms'"
                hint += "; pass timestamp_range=None to accept any value"
                flag(out_of, "timestamp", f"timestamp out of range ({_day(ts[j])})", hint)
        out["timestamp"] = ts
    if "label" in col_of:
        wrong_type("label")
        lab, b = _cast_float(table.column(col_of["label"]))
        flag(b, "label", "NaN, empty or non-numeric label", "labels must be finite numbers")
        out["label"] = lab
    if "behavior" in col_of:
        wrong_type("behavior")
        bcol = table.column(col_of["behavior"])
        flag(_null_mask(bcol), "behavior", "empty behaviour", "fill in the behaviour name")
        bvals = np.asarray(pc.fill_null(pc.cast(bcol, pa.string()), "").to_numpy(zero_copy_only=False)).astype(str)
        if behavior_names is not None:
            known = np.isin(bvals, np.asarray([str(x) for x in behavior_names]))
            flag(~known, "behavior", "unknown behaviour name",
                 f"known behaviours are {list(behavior_names)}: fix the value or extend behavior_names")
        out["behavior"] = bvals
    for role in [r for r in col_of if r.startswith("item_feature:")]:
        wrong_type(role)
        col = table.column(col_of[role])
        vals, b, _ = _cast_int(col)
        if b.any() and not _null_mask(col)[b].all():
            vals = np.asarray(pc.fill_null(pc.cast(col, pa.string()), "").to_numpy(zero_copy_only=False)).astype(str)
        out["features"][role.split(":", 1)[1]] = vals
    keep = np.flatnonzero(~bad) if bad.any() else slice(None)
    out["lines"] = lines[keep]
    for k in ("user", "item", "timestamp", "label", "behavior"):
        if out[k] is not None:
            out[k] = out[k][keep]
    out["features"] = {k: v[keep] for k, v in out["features"].items()}
    return out


def read_table(path: str | os.PathLike, *, sep: str = ",", encoding: str = "utf-8") -> dict[str, np.ndarray]:
    """A small delimited file with a header as ``{column: numpy array}`` (types inferred by pyarrow).
    Used for the tiny multi-task CTR sample tables."""
    path = Path(path)
    data = read_bytes(path)
    try:
        table = pa_csv.read_csv(pa.BufferReader(data), read_options=pa_csv.ReadOptions(encoding=encoding),
                                parse_options=pa_csv.ParseOptions(delimiter=sep))
    except pa.ArrowInvalid as exc:
        raise DataError(f"cannot parse as CSV: {exc}", file=str(path)) from exc
    if table.num_rows == 0:
        raise DataError("no rows", file=str(path))
    return {c: table.column(c).to_numpy() for c in table.column_names}
