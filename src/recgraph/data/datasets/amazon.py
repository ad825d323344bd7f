"""Amazon review data, JSON lines: 2018 All Beauty 5-core and 2014 Musical Instruments 5-core.
label = star rating (1–5), timestamp = unixReviewTime (day resolution)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...io import atomic_write_bytes
from ..errors import SkipReport
from ..io import read_bytes, read_interactions
from ._util import need
from .spec import Dataset


def _dedupe_lines(path: Path, data: bytes, report: SkipReport) -> tuple[bytes, int]:
    """Drop later copies of byte-identical lines (counted in ``report``). Vectorised via pyarrow."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    codes = pc.dictionary_encode(pa.array(lines, pa.binary())).indices.to_numpy()
    _, first = np.unique(codes, return_index=True)
    keep = np.zeros(len(lines), bool)
    keep[first] = True
    dup = np.flatnonzero(~keep)
    if len(dup):
        for j in dup[: report.max_examples]:
            report.add("exact duplicate row", f"{path}:{j + 1}", n=0)
        report.counts["exact duplicate row"] += len(dup)
    kept = np.empty(len(lines), dtype=object)
    kept[:] = lines
    return b"\n".join(kept[keep].tolist()) + b"\n", int(len(lines))


def _load_json(folder: Path, fname: str, name: str, on_bad_rows: str, dedupe_rows: bool) -> Dataset:
    report = SkipReport()
    path = need(folder, fname, name)
    meta = {"label": "star rating 1-5", "timestamp": "unixReviewTime (day resolution)"}
    if dedupe_rows:
        data, n_rows = _dedupe_lines(path, read_bytes(path), report)
        meta["rows_in_file"] = n_rows
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp) / Path(fname).name.removesuffix(".gz")
            atomic_write_bytes(tmp_path, data)
            inter = read_interactions(tmp_path, user="reviewerID", item="asin", label="overall",
                                      timestamp="unixReviewTime", id_type="str", on_bad_rows=on_bad_rows,
                                      duplicates="keep", skip_report=report, name=name)
    else:
        inter = read_interactions(path, user="reviewerID", item="asin", label="overall",
                                  timestamp="unixReviewTime", id_type="str", on_bad_rows=on_bad_rows,
                                  duplicates="error", skip_report=report, name=name)
    return Dataset(name, inter, None, report, meta)


def load_all_beauty(folder: Path, *, name: str = "amazon2018-all-beauty-5core", on_bad_rows: str = "error") -> Dataset:
    ds = _load_json(folder, "All_Beauty_5.json.gz", name, on_bad_rows, dedupe_rows=True)
    x = ds.interactions
    from ..io import duplicate_mask

    same_event, _ = duplicate_mask(x.user, x.item, x.timestamp, x.label)
    ds.meta.update({"duplicates": "1,027 byte-identical rows are skipped (counted in `skipped`); events that "
                                  "repeat (user, item, time, rating) but differ in other fields (text, votes) "
                                  "are kept", "repeated_events_kept": int(same_event.sum())})
    return ds


def load_musical_instruments(folder: Path, *, name: str = "amazon2014-musical-instruments-5core",
                             on_bad_rows: str = "error") -> Dataset:
    return _load_json(folder, "reviews_Musical_Instruments_5.json.gz", name, on_bad_rows, dedupe_rows=False)
