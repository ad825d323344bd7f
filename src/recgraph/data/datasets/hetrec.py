"""HetRec 2011 Last.fm: user–artist listening counts (label = weight) + friendship graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from ..errors import DataError, SkipReport
from ..io import read_bytes, read_interactions
from ._util import need
from .spec import Dataset


def load(folder: Path, *, name: str = "hetrec2011-lastfm-2k", on_bad_rows: str = "error") -> Dataset:
    report = SkipReport()
    inter = read_interactions(need(folder, "user_artists.dat.gz", name), user="userID", item="artistID",
                              label="weight", sep="\t", on_bad_rows=on_bad_rows, duplicates="error",
                              skip_report=report, name=name)
    fpath = need(folder, "user_friends.dat.gz", name)
    fr = read_interactions(fpath, user="userID", item="friendID", sep="\t", on_bad_rows=on_bad_rows,
                           duplicates="error", skip_report=report)
    a = inter.user_vocab.lookup(fr.user_vocab.raw[fr.user], missing=-1)
    b = inter.user_vocab.lookup(fr.item_vocab.raw[fr.item], missing=-1)
    known = (a >= 0) & (b >= 0)
    if not known.all():
        report.add("friendship with a user without listening data", f"{fpath}", int((~known).sum()))
    friends = np.stack([a[known], b[known]], axis=1)
    meta = {"label": "listening count (weight)", "friends": friends,
            "friends_note": "[F, 2] dense user indices; each undirected friendship listed both ways",
            "partial": True, "missing": ["user_taggedartists.dat", "user_taggedartists-timestamps.dat"]}
    apath = need(folder, "artists.dat.gz", name)
    try:
        t = pa_csv.read_csv(pa.BufferReader(read_bytes(apath)),
                            parse_options=pa_csv.ParseOptions(delimiter="\t", quote_char=False),
                            convert_options=pa_csv.ConvertOptions(include_columns=["id", "name"]))
    except pa.ArrowInvalid as exc:
        raise DataError(f"cannot parse: {exc}", file=str(apath)) from exc
    ids = t.column("id").to_numpy()
    pos = inter.item_vocab.lookup(ids, missing=-1)
    names = np.full(inter.n_items, "", dtype=object)
    names[pos[pos >= 0]] = np.asarray(t.column("name").to_numpy(zero_copy_only=False), dtype=object)[pos >= 0]
    meta["artist_name"] = names
    return Dataset(name, inter, None, report, meta)
