"""Readers for interaction logs: CSV / TSV / Parquet / JSON lines, gzip transparently.

:func:`read_interactions` maps columns (by name or 0-based index) onto an :class:`Interactions`
and validates every row. The fast path is one pyarrow parse plus vectorised casts and checks; only
when a row is bad does a second, slow per-line pass run, and only to find the line number for the
message. Each bad row is either a :class:`DataError` naming the file, the 1-based line and the
column, or — with ``on_bad_rows="skip"`` — a counted entry in a :class:`SkipReport`.

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

    A truncated or corrupt gzip stream raises :class:`DataError` naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head != _GZIP_MAGIC:
                return fh.read()
            with gzip.GzipFile(fileobj=fh) as gz:
                return gz.read()
    except FileNotFoundError:
        raise DataError("file not found; check the path (or --data-dir / RECGRAPH_DATA for bundled "
                        "datasets)", file=str(path)) from None
    except EOFError as exc:
        raise DataError(f"truncated gzip file ({exc}); the download or copy is incomplete — fetch the "
                        "file again and compare its sha256", file=str(path)) from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"corrupt gzip file ({exc}); fetch the file again and compare its sha256",
                        file=str(path)) from exc


def _line_starts(data: bytes) -> np.ndarray:
    """Byte offset of the start of each physical line (vectorised)."""
    b = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(b == 10)
    starts = np.concatenate([[0], nl + 1])
    if len(starts) and starts[-1] == len(b):  # file ends with a newline: no line after it
        starts = starts[:-1]
    return starts


def _nonempty_lines(data: bytes) -> np.ndarray:
    """1-based physical line numbers of the non-blank lines (what a CSV parser counts as rows)."""
    b = np.frombuffer(data, dtype=np.uint8)
    starts = _line_starts(data)
    ends = np.concatenate([starts[1:] - 1, [len(b)]])  # exclusive end (position of '\n' or EOF)
    length = ends - starts
    # a line holding only '\r' is blank too
    only_cr = (length == 1) & (b[np.minimum(starts, max(len(b) - 1, 0))] == 13) if len(b) else length == 0
    return np.flatnonzero((length > 0) & ~only_cr) + 1


def _find_line(data: bytes, text: str, encoding: str, skip: int = 0) -> int | None:
    """Slow pass: 1-based number of the first line equal to ``text`` (after the first ``skip``
    lines). Used only to locate an error after the fast parse found one."""
    for i, raw in enumerate(data.split(b"\n")):
        if i < skip:
            continue
        if raw.rstrip(b"\r").decode(encoding, errors="replace") == text:
            return i + 1
    return None


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
        raise DataError("integer with more than 18 digits; ids this long are not supported here",
                        file=str(path))
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


def _format_of(path: Path, data: bytes | None) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".json", ".jsonl", ".ndjson")):
        return "jsonl"
    return "csv"


def _read_csv_table(path: Path, data: bytes, *, sep: str, header: bool, names: Sequence[str] | None,
                    encoding: str, want: list[Column], on_bad_rows: str,
                    report: SkipReport) -> tuple[pa.Table, np.ndarray, list[str]]:
    """Parse CSV bytes; every wanted column as string. Returns the table and, per row, its 1-based
    physical line number (vectorised when no row had a wrong field count)."""
    invalid: list[tuple[str, int, int]] = []

    def on_invalid(row) -> str:
        invalid.append((row.text, row.expected_columns, row.actual_columns))
        return "skip"

    # column names
    if names is not None:
        col_names = [str(n) for n in names]
        skip_rows = 1 if header else 0
    elif header:
        first = data.split(b"\n", 1)[0].rstrip(b"\r").decode(encoding, errors="replace")
        col_names = first.split(sep)
        skip_rows = 1
    else:
        first = data.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r").decode(encoding, errors="replace")
        col_names = [str(i) for i in range(len(first.split(sep)))]
        skip_rows = 0
    want_names = []
    for c in want:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not 0 <= c < len(col_names):
                raise DataError(f"column index {c} out of range: the file has {len(col_names)} columns "
                                f"({col_names}); give the column by name or a 0-based index",
                                file=str(path), line=1, column=str(c))
            want_names.append(col_names[c])
        else:
            if c not in col_names:
                raise DataError(f"column not found; the file has columns {col_names}. Pass the right "
                                "name or a 0-based index" + ("" if header else " (header=False: columns "
                                                             "are numbered 0, 1, ...)"),
                                file=str(path), line=1 if header else None, column=str(c))
            want_names.append(str(c))
    if len(set(col_names)) != len(col_names):
        # duplicate header names: make them unique so pyarrow can address them
        seen: dict[str, int] = {}
        fixed = []
        for n in col_names:
            seen[n] = seen.get(n, 0) + 1
            fixed.append(n if seen[n] == 1 else f"{n}.{seen[n] - 1}")
        col_names = fixed
    uniq_want = list(dict.fromkeys(want_names))
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(column_names=col_names, skip_rows=skip_rows, encoding=encoding),
            parse_options=pa_csv.ParseOptions(delimiter=sep, quote_char=False if sep in (" ", "\t", "|") else '"',
                                              invalid_row_handler=on_invalid),
            convert_options=pa_csv.ConvertOptions(include_columns=uniq_want,
                                                  column_types={n: pa.string() for n in uniq_want},
                                                  strings_can_be_null=True, null_values=[""]),
        )
    except pa.ArrowInvalid as exc:
        raise DataError(f"cannot parse as delimited text with separator {sep!r}: {exc}",
                        file=str(path)) from exc
    nonempty = _nonempty_lines(data)[skip_rows:]
    if invalid:
        # locate each wrong-width row (slow pass, only now that we know there are some)
        lines = []
        for text, expected, actual in invalid:
            line = _find_line(data, text, encoding, skip=skip_rows)
            lines.append(line)
            reason = "too few fields" if actual < expected else "too many fields"
            if on_bad_rows == "error":
                raise DataError(f"{reason}: expected {expected} separated by {sep!r}, got {actual} in "
                                f"{text[:80]!r}; fix the line, or pass on_bad_rows='skip' to skip such rows "
                                "(they are counted)", file=str(path), line=line)
            report.add(reason, f"{path}:{line}")
        bad_lines = np.asarray(sorted(x for x in lines if x is not None), dtype=np.int64)
        nonempty = nonempty[~np.isin(nonempty, bad_lines)]
    table = table.select(uniq_want)
    if len(nonempty) != table.num_rows:  # e.g. quoted newlines: fall back to row numbers
        nonempty = np.arange(table.num_rows, dtype=np.int64) + 1 + skip_rows
    return table, nonempty, want_names


def _read_parquet_table(path: Path, want: list[Column]) -> tuple[pa.Table, np.ndarray, list[str]]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"not a readable Parquet file ({exc})", file=str(path)) from exc
    names = schema.names
    want_names = []
    for c in want:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not 0 <= c < len(names):
                raise DataError(f"column index {c} out of range: the file has columns {names}",
                                file=str(path), column=str(c))
            want_names.append(names[c])
        else:
            if c not in names:
                raise DataError(f"column not found; the file has columns {names}", file=str(path), column=str(c))
            want_names.append(str(c))
    table = pq.read_table(path, columns=list(dict.fromkeys(want_names)))
    return table, np.arange(table.num_rows, dtype=np.int64) + 1, want_names


def _read_jsonl_table(path: Path, data: bytes, want: list[Column]) -> tuple[pa.Table, np.ndarray, list[str]]:
    import pyarrow.json as pa_json

    if any(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in want):
        raise DataError("JSON lines columns must be given by key name, not by index", file=str(path))
    want_names = [str(c) for c in want]
    uniq = list(dict.fromkeys(want_names))
    try:
        table = pa_json.read_json(pa.BufferReader(data),
                                  parse_options=pa_json.ParseOptions(newlines_in_values=False))
    except pa.ArrowInvalid as exc:
        raise DataError(f"cannot parse as JSON lines: {exc}", file=str(path)) from exc
    for c in uniq:
        if c not in table.column_names:
            raise DataError(f"key not found in any record; keys seen: {table.column_names}", file=str(path),
                            column=c)
    table = table.select(uniq)
    return table, _nonempty_lines(data)[: table.num_rows], want_names


# ------------------------------------------------------------------------------- column conversion


def _to_numpy_str(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def _cast_int(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(values int64, bad mask). Null / non-integer entries are bad."""
    if pa.types.is_integer(col.type):
        valid = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), bool)
        return np.asarray(pc.fill_null(col, 0).to_numpy(), np.int64), ~valid
    try:
        out = pc.cast(col, pa.int64())
        valid = np.asarray(pc.is_valid(out).to_numpy(zero_copy_only=False), bool)
        return np.asarray(pc.fill_null(out, 0).to_numpy(), np.int64), ~valid
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if pa.types.is_floating(col.type):
        vals = np.asarray(pc.fill_null(col, np.nan).to_numpy(), np.float64)
        bad = ~np.isfinite(vals) | (vals != np.round(vals))
        return np.where(bad, 0, vals).astype(np.int64), bad
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    good = pc.fill_null(pc.match_substring_regex(col, _INT_RE), False)
    vals = pc.cast(pc.if_else(good, pc.utf8_trim_whitespace(col), pa.scalar("0")), pa.int64())
    return np.asarray(vals.to_numpy(), np.int64), ~np.asarray(good.to_numpy(zero_copy_only=False), bool)


def _cast_float(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(values float64, bad mask). Null / non-numeric / NaN entries are bad."""
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
        vals = np.asarray(pc.fill_null(pc.cast(col, pa.float64()), np.nan).to_numpy(), np.float64)
        return vals, ~np.isfinite(vals)
    try:
        out = pc.cast(col, pa.float64())
        vals = np.asarray(pc.fill_null(out, np.nan).to_numpy(), np.float64)
        return vals, ~np.isfinite(vals)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    strs = _to_numpy_str(col)
    vals = np.full(len(strs), np.nan)
    # vectorised via numpy's string→float conversion on the parseable subset
    good = np.asarray(pc.fill_null(pc.match_substring_regex(
        col, r"^\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan)\s*$"), False)
        .to_numpy(zero_copy_only=False), bool)
    if good.any():
        vals[good] = strs[good].astype(np.float64)
    return vals, ~np.isfinite(vals)


def _cast_timestamp(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    if pa.types.is_timestamp(col.type):
        vals = pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64())
        valid = np.asarray(pc.is_valid(vals).to_numpy(zero_copy_only=False), bool)
        return np.asarray(pc.fill_null(vals, 0).to_numpy(), np.int64), ~valid
    vals, bad = _cast_int(col)
    if bad.any():  # maybe float seconds (e.g. 1.5e9)
        fv, fbad = _cast_float(col)
        fix = bad & ~fbad
        vals = np.where(fix, np.round(np.where(fbad, 0, fv)), vals).astype(np.int64)
        bad = bad & fbad
    if bad.any() and (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        iv, ibad = _parse_iso8601(col)  # e.g. 1997-12-04T15:55:49+00:00, 1997-12-04 15:55:49, 1997-12-04
        fix = bad & ~ibad
        vals = np.where(fix, iv, vals)
        bad = bad & ibad
    return vals, bad


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
    return out[inv], bad[inv] | np.asarray([v is None for v in raw], bool)


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


def read_interactions(path: str | os.PathLike, *, user: Column, item: Column,
                      timestamp: Column | None = None, label: Column | None = None,
                      behavior: Column | None = None, sep: str | None = None, header: bool = True,
                      names: Sequence[str] | None = None, encoding: str = "utf-8",
                      on_bad_rows: str = "error", duplicates: Duplicates = "error",
                      skip_report: SkipReport | None = None, id_type: Literal["int", "str"] = "int",
                      behavior_names: Sequence[str] | None = None,
                      item_feature_columns: dict[str, Column] | None = None,
                      name: str = "") -> Interactions:
    """Read an interaction log (CSV / TSV / any delimiter, Parquet, JSON lines; ``.gz`` transparently).

    Args:
        path: the file. Format from the name: ``.parquet``/``.pq`` → Parquet, ``.json``/``.jsonl``
            → JSON lines, anything else → delimited text.
        user, item: id columns (name, or 0-based index). ``id_type="int"`` (default) requires
            integer ids; ``"str"`` keeps them as strings. Dense indices follow sorted raw ids.
        timestamp: optional column of integer (or float) Unix seconds.
        label: optional numeric column (rating, weight, 0/1); NaN is a bad row.
        behavior: optional column of behaviour names; with ``behavior_names`` given, other names are
            bad rows and codes follow that order; otherwise the sorted distinct names.
        sep: delimiter; None → from the extension (``.csv`` ``,``; ``.tsv`` TAB) or sniffed.
        header: whether the first line holds column names. ``names`` overrides them.
        encoding: text encoding (e.g. ``"latin-1"``).
        on_bad_rows: ``"error"`` → :class:`DataError` (file, line, column, what to do);
            ``"skip"`` → drop the row and count it in ``skip_report``.
        duplicates: exact duplicate events (same values in every read column): ``"error"``,
            ``"skip"`` (counted) or ``"keep"``.
        skip_report: filled with the counted skips. When None and rows are skipped, a warning
            carrying the report is issued, so nothing is dropped silently.
        item_feature_columns: ``feature name -> column``: per-item attributes (e.g. category)
            stored as dense codes in ``item_features`` (last value wins for an item).
        name: dataset name stamped on the result.
    """
    check_on_bad_rows(on_bad_rows)
    if duplicates not in ("error", "skip", "keep"):
        raise ValueError(f"duplicates must be 'error', 'skip' or 'keep', got {duplicates!r}")
    if id_type not in ("int", "str"):
        raise ValueError(f"id_type must be 'int' or 'str', got {id_type!r}")
    path = Path(path)
    own_report = skip_report is None
    report = SkipReport() if own_report else skip_report
    fmt = _format_of(path, None)
    item_feature_columns = dict(item_feature_columns or {})
    roles: list[tuple[str, Column]] = [("user", user), ("item", item)]
    for role, col in (("timestamp", timestamp), ("label", label), ("behavior", behavior)):
        if col is not None:
            roles.append((role, col))
    for fname, col in item_feature_columns.items():
        roles.append((f"item_feature:{fname}", col))
    want = [c for _, c in roles]

    if fmt == "parquet":
        table, lines, want_names = _read_parquet_table(path, want)
        data = None
    else:
        data = read_bytes(path)
        if fmt == "jsonl":
            table, lines, want_names = _read_jsonl_table(path, data, want)
        else:
            s = sep if sep is not None else _sniff_sep(path, data)
            table, lines, want_names = _read_csv_table(path, data, sep=s, header=header, names=names,
                                                       encoding=encoding, want=want,
                                                       on_bad_rows=on_bad_rows, report=report)
    col_of = {role: nm for (role, _), nm in zip(roles, want_names)}
    n = table.num_rows
    if n == 0:
        raise DataError("no rows: the file is empty (or holds only a header / rows that were skipped); "
                        "check the path and the header= setting", file=str(path))

    bad = np.zeros(n, bool)
    line_word = "row" if fmt == "parquet" else "line"

    def flag(mask: np.ndarray, role: str, reason: str, hint: str) -> None:
        mask = mask & ~bad
        if not mask.any():
            return
        idx = np.flatnonzero(mask)
        column = col_of[role]
        if on_bad_rows == "error":
            first = int(idx[0])
            raw = table.column(column)[first].as_py()
            raise DataError(f"{reason} ({raw!r}); {hint}, or pass on_bad_rows='skip' to skip such rows "
                            f"(they are counted). {len(idx)} {line_word}(s) affected",
                            file=str(path), line=int(lines[first]), column=column)
        for i in idx[: report.max_examples]:
            report.add(f"{reason} in column {column!r}", f"{path}:{int(lines[i])}", n=0)
        report.counts[f"{reason} in column {column!r}"] += len(idx)
        bad[idx] = True

    def ids(role: str) -> np.ndarray:
        col = table.column(col_of[role])
        if id_type == "int":
            vals, b = _cast_int(col)
            isnull = np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), bool)
            flag(isnull, role, f"empty {role} id", "fill in the id")
            flag(b, role, f"non-integer {role} id", "ids are declared integer: fix the value or pass "
                                                    "id_type='str'")
            return vals
        isnull = np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), bool)
        flag(isnull, role, f"empty {role} id", "fill in the id")
        vals = np.asarray(pc.fill_null(pc.cast(col, pa.string()), "").to_numpy(zero_copy_only=False)).astype(str)
        return vals

    u_raw = ids("user")
    i_raw = ids("item")
    ts = lab = beh_codes = None
    beh_names: tuple[str, ...] = ()
    if timestamp is not None:
        ts, b = _cast_timestamp(table.column(col_of["timestamp"]))
        flag(b, "timestamp", "non-numeric or empty timestamp", "timestamps must be integer Unix seconds")
    if label is not None:
        lab, b = _cast_float(table.column(col_of["label"]))
        flag(b, "label", "NaN, empty or non-numeric label", "labels must be finite numbers")
    if behavior is not None:
        bcol = table.column(col_of["behavior"])
        isnull = np.asarray(pc.is_null(bcol).to_numpy(zero_copy_only=False), bool)
        flag(isnull, "behavior", "empty behaviour", "fill in the behaviour name")
        bvals = np.asarray(pc.fill_null(pc.cast(bcol, pa.string()), "").to_numpy(zero_copy_only=False)).astype(str)
        if behavior_names is not None:
            beh_names = tuple(str(x) for x in behavior_names)
            known = np.isin(bvals, np.asarray(beh_names))
            flag(~known, "behavior", "unknown behaviour name",
                 f"known behaviours are {list(beh_names)}: fix the value or extend behavior_names")
            order = np.argsort(np.asarray(beh_names))
            pos = np.searchsorted(np.asarray(beh_names)[order], bvals)
            beh_codes = np.where(known, order[np.clip(pos, 0, len(order) - 1)], 0)
        else:
            keep_vals = bvals[~bad]
            beh_names = tuple(np.unique(keep_vals).tolist())
            beh_codes = np.searchsorted(np.asarray(beh_names), bvals) if beh_names else np.zeros(n, np.int64)
            beh_codes = np.clip(beh_codes, 0, max(len(beh_names) - 1, 0))
        if len(beh_names) > 127:
            raise DataError(f"{len(beh_names)} distinct behaviours; at most 127 are supported",
                            file=str(path), column=col_of["behavior"])
    feats_raw = {}
    for fname in item_feature_columns:
        role = f"item_feature:{fname}"
        col = table.column(col_of[role])
        vals, b = _cast_int(col)
        if b.any() and not np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), bool)[b].all():
            vals = np.asarray(pc.fill_null(pc.cast(col, pa.string()), "").to_numpy(zero_copy_only=False)).astype(str)
        feats_raw[fname] = vals

    keep = ~bad
    if not keep.all():
        sel = np.flatnonzero(keep)
        u_raw, i_raw, lines = u_raw[sel], i_raw[sel], lines[sel]
        ts = None if ts is None else ts[sel]
        lab = None if lab is None else lab[sel]
        beh_codes = None if beh_codes is None else beh_codes[sel]
        feats_raw = {k: v[sel] for k, v in feats_raw.items()}
    if len(u_raw) == 0:
        raise DataError(f"no rows left after skipping bad rows ({report}); check the column mapping",
                        file=str(path))

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
            used_u, used_i = np.unique(u), np.unique(it)
            if len(used_u) != len(user_vocab) or len(used_i) != len(item_vocab):  # pragma: no cover
                raise AssertionError("dropping duplicates cannot remove an id")
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
