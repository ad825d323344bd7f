"""MovieLens 100K (GroupLens): ratings with timestamps, user demographics, item genres/year."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from ..errors import DataError, SkipReport
from ..io import read_bytes, read_interactions
from ..split import Split
from ._util import need
from .spec import Dataset

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")
FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


def _pipe_table(path: Path, n_cols: int, encoding: str) -> list[np.ndarray]:
    data = read_bytes(path)
    try:
        t = pa_csv.read_csv(pa.BufferReader(data),
                            read_options=pa_csv.ReadOptions(column_names=[str(i) for i in range(n_cols)],
                                                            encoding=encoding),
                            parse_options=pa_csv.ParseOptions(delimiter="|", quote_char=False),
                            convert_options=pa_csv.ConvertOptions(
                                column_types={str(i): pa.string() for i in range(n_cols)},
                                strings_can_be_null=False))
    except pa.ArrowInvalid as exc:
        raise DataError(f"expected {n_cols} '|'-separated fields per line: {exc}", file=str(path)) from exc
    return [np.asarray(t.column(str(i)).to_numpy(zero_copy_only=False)).astype(str) for i in range(n_cols)]


def _read_ratings(path: Path, on_bad_rows: str, report: SkipReport, name: str):
    return read_interactions(path, user=0, item=1, label=2, timestamp=3, sep="\t", header=False,
                             on_bad_rows=on_bad_rows, duplicates="error", skip_report=report, name=name)


def load(folder: Path, *, name: str = "movielens-100k", on_bad_rows: str = "error") -> Dataset:
    report = SkipReport()
    inter = _read_ratings(need(folder, "u.data.gz", name), on_bad_rows, report, name)
    uv, iv = inter.user_vocab, inter.item_vocab

    # users: id|age|gender|occupation|zip
    ucols = _pipe_table(need(folder, "u.user", name), 5, "latin-1")
    occ_path = need(folder, "u.occupation", name)
    occupations = [ln.strip() for ln in read_bytes(occ_path).decode("latin-1").splitlines() if ln.strip()]
    uid = uv.lookup(ucols[0].astype(np.int64), missing=-1)
    has = uid >= 0
    age = np.full(len(uv), -1, np.int64)
    gender = np.full(len(uv), -1, np.int64)
    occ = np.full(len(uv), -1, np.int64)
    age[uid[has]] = ucols[1][has].astype(np.int64)
    gender[uid[has]] = (ucols[2][has] == "M").astype(np.int64)  # F = 0, M = 1
    occ_idx = np.searchsorted(np.asarray(sorted(occupations)), ucols[3])
    occ_map = np.asarray([occupations.index(o) for o in sorted(occupations)])  # 21 names, not per row
    occ[uid[has]] = occ_map[np.clip(occ_idx, 0, len(occ_map) - 1)][has]
    zips = np.full(len(uv), "", dtype=object)
    zips[uid[has]] = ucols[4][has]

    # items: id|title|release|video release|url|19 genre flags   (latin-1)
    icols = _pipe_table(need(folder, "u.item.gz", name), 5 + len(GENRES), "latin-1")
    iid = iv.lookup(icols[0].astype(np.int64), missing=-1)
    ihas = iid >= 0
    flags = np.stack([c.astype(np.int8) for c in icols[5:]], axis=1)
    genre = np.zeros((len(iv), len(GENRES)), np.int8)
    genre[iid[ihas]] = flags[ihas]
    category = np.where(genre.any(axis=1), genre.argmax(axis=1), -1).astype(np.int64)
    years = np.full(len(iv), -1, np.int64)
    rel = icols[2]
    rel_year = np.asarray([r[-4:] if len(r) >= 4 and r[-4:].isdigit() else "" for r in rel])  # 1,682 rows
    title_year = np.asarray([(m.group(1) if (m := re.search(r"\((\d{4})\)\s*$", t)) else "") for t in icols[1]])
    yr = np.where(rel_year != "", rel_year, title_year)
    ok = ihas & (yr != "")
    years[iid[ok]] = yr[ok].astype(np.int64)
    titles = np.full(len(iv), "", dtype=object)
    titles[iid[ihas]] = icols[1][ihas]

    inter = inter.replace(
        user_features={"age": age, "gender": gender, "occupation": occ},
        item_features={"genre": genre, "category": category, "year": years, "title": titles.astype(str)},
    )
    meta = {"genres": GENRES, "occupations": tuple(occupations), "gender_codes": {"F": 0, "M": 1},
            "user_zip": zips, "item_title": titles, "label": "rating 1-5", "folds": FOLDS,
            "notes": "item 'category' = index of the first genre flag; year from release date (else title), "
                     "-1 when unknown. Official 5-fold / ua-ub splits: recgraph.data.datasets.movielens.load_fold."}
    return Dataset(name, inter, None, report, meta)


def load_fold(folder: Path, fold: str = "ua", *, dataset: Dataset | None = None,
              on_bad_rows: str = "error") -> Split:
    """One of the official GroupLens splits (``u1``..``u5`` 5-fold CV, ``ua``/``ub`` 10 ratings per
    user in test) as a :class:`Split` on the id spaces of the full dataset."""
    if fold not in FOLDS:
        raise ValueError(f"unknown fold {fold!r}; choose one of {FOLDS}")
    ds = dataset or load(folder, on_bad_rows=on_bad_rows)
    full = ds.interactions
    parts = []
    for part in ("base", "test"):
        path = need(folder, f"{fold}.{part}.gz", ds.name)
        x = _read_ratings(path, on_bad_rows, ds.skipped, ds.name)
        u = full.user_vocab.lookup(x.user_vocab.raw[x.user])
        i = full.item_vocab.lookup(x.item_vocab.raw[x.item])
        parts.append(full.replace(user=u, item=i, timestamp=x.timestamp, label=x.label))
    return Split(parts[0], parts[1], None, {"split": "predefined", "source": "GroupLens", "fold": fold})
