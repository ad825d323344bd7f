"""Sequential-recommendation releases: S3-Rec (Beauty / Yelp / LastFM) and SASRec (Video Games).

No real timestamps are shipped; ``timestamp`` is the position in the user's chronological
sequence (0, 1, 2, ...), so time-ordered splits (leave-last-out) behave as in the papers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError, SkipReport
from ..io import read_bytes, read_id_lists, read_pairs
from ..schema import Interactions, Vocab
from ._util import need
from .spec import Dataset

S3REC = {"s3rec-beauty": "Beauty", "s3rec-yelp": "Yelp", "s3rec-lastfm": "LastFM"}


def load_s3rec(folder: Path, *, name: str, on_bad_rows: str = "error") -> Dataset:
    stem = S3REC[name]
    path = need(folder, f"{stem}.txt.gz", name)
    u_raw, i_raw, pos, _ = read_id_lists(path)
    uv, u = Vocab.build(u_raw)
    attr_path = need(folder, f"{stem}_item2attributes.json.gz", name)
    try:
        attrs = json.loads(read_bytes(attr_path))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", file=str(attr_path), line=exc.lineno,
                        column=f"char {exc.colno}") from exc
    # the item space is the union of items in sequences and in the attribute file
    attr_items = np.fromiter((int(k) for k in attrs), dtype=np.int64, count=len(attrs))
    iv, _ = Vocab.build(np.concatenate([i_raw, attr_items]))
    i = iv.lookup(i_raw)
    lens = np.fromiter((len(v) for v in attrs.values()), dtype=np.int64, count=len(attrs))
    flat = np.fromiter((a for v in attrs.values() for a in v), dtype=np.int64, count=int(lens.sum()))
    table = np.zeros((len(iv), int(lens.max()) if len(lens) else 0), np.int64)  # 0 = padding (attr ids are 1-based)
    rows = np.repeat(iv.lookup(attr_items), lens)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
    table[rows, cols] = flat
    inter = Interactions(u, i, len(uv), len(iv), timestamp=pos, user_vocab=uv, item_vocab=iv,
                         item_features={"attributes": table}, name=name)
    meta = {"timestamp": "position in the user's chronological sequence (no real timestamps)",
            "n_attributes": int(flat.max()) if len(flat) else 0,
            "item_features": "attributes: [n_items, max_attrs] 1-based attribute ids, 0 = padding",
            "protocol_hint": "leave-last-out (last item test, second to last validation)"}
    if name == "s3rec-lastfm":
        spath = need(folder, "LastFM_sample.txt.gz", name)
        su, sneg, spos, _ = read_id_lists(spath)
        counts = np.bincount(uv.lookup(su), minlength=len(uv))
        if not np.all(counts[np.unique(uv.lookup(su))] == 99):
            raise DataError("expected 99 negatives per line", file=str(spath))
        order = np.lexsort((spos, uv.lookup(su)))
        negs = np.full((len(uv), 99), -1, np.int64)
        users_with = np.unique(uv.lookup(su))
        negs[users_with] = iv.lookup(sneg[order]).reshape(-1, 99)
        meta["test_negatives"] = negs
        meta["test_negatives_note"] = "[n_users, 99] dense item indices sampled by S3-Rec for 1+99 ranking"
    return Dataset(name, inter, None, SkipReport(), meta)


def load_sasrec(folder: Path, *, name: str = "sasrec-amazon-video-games", on_bad_rows: str = "error") -> Dataset:
    path = need(folder, "Video.txt.gz", name)
    pairs = read_pairs(path)
    uv, u = Vocab.build(pairs[:, 0])
    iv, i = Vocab.build(pairs[:, 1])
    # position within the user, in file order (the file is grouped by user, chronological inside)
    order = np.argsort(u, kind="stable")
    counts = np.bincount(u, minlength=len(uv))
    starts = np.cumsum(counts) - counts
    pos = np.empty(len(u), np.int64)
    pos[order] = np.arange(len(u)) - starts[u[order]]
    inter = Interactions(u, i, len(uv), len(iv), timestamp=pos, user_vocab=uv, item_vocab=iv, name=name)
    meta = {"timestamp": "position in the user's chronological sequence (no real timestamps)",
            "protocol_hint": "leave-last-out (last item test, second to last validation)"}
    return Dataset(name, inter, None, SkipReport(), meta)
