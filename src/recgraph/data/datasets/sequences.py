"""Sequential-recommendation releases: S3-Rec (Beauty / Yelp / LastFM) and SASRec (Video Games).

**Order as time.** These releases keep each user's items in chronological order but ship no
timestamps, so ``timestamp`` is built from the position in the user's sequence. Within one user
it is exact (step ``k`` is before step ``k + 1``); *across* users it is not a time at all — no one
knows whether user A's 3rd item came before user B's 40th. Any cross-user comparison ("events
strictly before ``t``" on the item side of a graph, a global snapshot cutoff, "popularity before
``t``" for negatives) therefore needs an alignment assumption, and the loaders make it explicit
(``order_time``):

* ``"end"`` (default): **every user's last event is at the same time** ``L - 1`` (``L`` = the
  longest sequence); the event ``k`` steps before a user's last is at ``L - 1 - k``. This is the
  assumption of a single crawl (everyone's latest action is "now"), and it is the one that keeps
  leave-last-out honest across users: every user's test event is at ``L - 1`` and validation event
  at ``L - 2``, so no held-out event of *any* user is ever strictly before a training sample's
  time (nor before another user's validation time). With ``"start"`` the long users' training
  samples and test samples would see the *test* events of the short users as "past" (item
  degrees, item neighbourhoods, negative popularity) — a transductive leak of held-out
  positives.
* ``"start"``: every user starts at 0 (``timestamp`` = 0-based position, the raw order index).
  Only within-user order is meaningful; use it for models that read nothing across users by time.

What "before ``t``" means then, e.g. for the time-respecting DSGL sampler
(:func:`recgraph.graph.dynamic.sample_dynamic`): the **user side is exactly time-respecting**
(the user's own earlier steps, gaps in steps); the **item side is only approximately so**: an
item's neighbours "before ``t``" are the users who took it more steps before *their own* end than
the sample is before its user's end — true real-time order only if the users' histories ended at
the same moment. Gaps on the item side are differences of steps-from-the-end, not durations. The
guarantee that does hold across users is the split one above: under leave-last-out no
validation / test event of anyone is ever a feature of an earlier part's sample. Results on
these datasets must be labelled "order as time".

Malformed input raises :class:`DataError` naming the file and line: a non-integer token, a user
id on two lines (S3-Rec: two histories of one user cannot be ordered against each other), a
user line without items (S3-Rec), a line with other than two fields (SASRec), or a user whose
rows are not contiguous (SASRec: the file is grouped by user; interleaved rows mean a reordered
or concatenated file whose order is no longer the user's chronology)."""


from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError, SkipReport
from ..io import parse_int_lines, read_bytes, read_id_lists
from ..schema import Interactions, Vocab
from ._util import need
from .spec import Dataset

S3REC = {"s3rec-beauty": "Beauty", "s3rec-yelp": "Yelp", "s3rec-lastfm": "LastFM"}
ORDER_TIMES = ("end", "start")


def order_time(user: np.ndarray, pos: np.ndarray, mode: str = "end") -> np.ndarray:
    """Timestamps from 0-based positions in each user's sequence (see the module docstring):
    ``"start"`` → ``pos``; ``"end"`` → ``pos + L - len(user's sequence)`` (every user's last event
    at ``L - 1``, ``L`` the longest sequence)."""
    if mode not in ORDER_TIMES:
        raise ValueError(f"order_time must be one of {ORDER_TIMES}, got {mode!r}")
    pos = np.asarray(pos, np.int64)
    if mode == "start" or len(pos) == 0:
        return pos
    lens = np.zeros(int(user.max()) + 1, np.int64)
    np.maximum.at(lens, user, pos + 1)
    return pos + int(lens.max()) - lens[user]


def _meta_time(mode: str) -> dict:
    what = ("end-aligned order as time: steps, every user's last event at L - 1 (L = longest sequence); "
            "exact within a user, cross-user order assumes all histories end together (no real timestamps)"
            if mode == "end" else
            "start-aligned order as time: 0-based position in the user's sequence; only within-user "
            "order is meaningful (no real timestamps)")
    return {"timestamp": what, "order_time": mode, "real_timestamps": False}


def _read_sequences(path: Path):
    """``user item item ...`` lines → (user [E], item [E], 0-based position [E]); a DataError naming
    the line for a user on two lines or a line without items."""
    values, token_line, line_first = parse_int_lines(path)
    n_lines = len(line_first)
    if n_lines == 0:
        raise DataError("no sequences in the file", file=str(path))
    length = np.diff(np.concatenate([line_first, [len(values)]])) - 1
    line_no = token_line[line_first]
    empty = np.flatnonzero(length < 1)
    if len(empty):
        raise DataError(f"user {int(values[line_first[empty[0]]])} has no items on this line; every line must be "
                        f"'user item item ...' ({len(empty)} such line(s))", file=str(path), line=int(line_no[empty[0]]))
    line_users = values[line_first]
    order = np.argsort(line_users, kind="stable")
    dup = np.flatnonzero(line_users[order][1:] == line_users[order][:-1])
    if len(dup):
        first, again = order[dup[0]], order[dup[0] + 1]
        raise DataError(f"user {int(line_users[again])} already has a sequence on line {int(line_no[first])}; two "
                        "histories of one user cannot be ordered against each other (order is the only time here)",
                        file=str(path), line=int(line_no[again]))
    is_first = np.zeros(len(values), bool)
    is_first[line_first] = True
    owner = np.repeat(line_first, length + 1)
    users = values[owner][~is_first]
    items = values[~is_first]
    pos = (np.arange(len(values)) - owner - 1)[~is_first]
    return users, items, pos.astype(np.int64)


def load_s3rec(folder: Path, *, name: str, on_bad_rows: str = "error", order_time_mode: str = "end") -> Dataset:
    """One S3-Rec release (``name`` in :data:`S3REC`); ``order_time_mode`` see the module docstring."""
    stem = S3REC[name]
    path = need(folder, f"{stem}.txt.gz", name)
    u_raw, i_raw, pos = _read_sequences(path)
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
    inter = Interactions(u, i, len(uv), len(iv), timestamp=order_time(u, pos, order_time_mode), user_vocab=uv,
                         item_vocab=iv, item_features={"attributes": table}, name=name)
    meta = {**_meta_time(order_time_mode),
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


def load_sasrec(folder: Path, *, name: str = "sasrec-amazon-video-games", on_bad_rows: str = "error",
                order_time_mode: str = "end") -> Dataset:
    """SASRec's ``Video.txt`` (``user item`` lines grouped by user, chronological inside)."""
    path = need(folder, "Video.txt.gz", name)
    values, token_line, line_first = parse_int_lines(path)
    counts = np.diff(np.concatenate([line_first, [len(values)]]))
    bad = np.flatnonzero(counts != 2)
    if len(bad):
        raise DataError(f"expected 2 fields per line ('user item'), got {int(counts[bad[0]])} ({len(bad)} such "
                        "line(s))", file=str(path), line=int(token_line[line_first[bad[0]]]))
    if len(values) == 0:
        raise DataError("no rows in the file", file=str(path))
    pairs = values.reshape(-1, 2)
    line_no = token_line[line_first]
    # grouped by user: the user changes only to a user not seen before
    change = np.flatnonzero(pairs[1:, 0] != pairs[:-1, 0]) + 1
    block_users = pairs[np.concatenate([[0], change]), 0]
    o = np.argsort(block_users, kind="stable")
    rep = np.flatnonzero(block_users[o][1:] == block_users[o][:-1])
    if len(rep):
        starts = np.concatenate([[0], change])
        again = starts[o[rep[0] + 1]]
        raise DataError(f"rows of user {int(pairs[again, 0])} are not contiguous (the user's rows resume here after "
                        "other users'); the file must be grouped by user in chronological order, since order is the "
                        "only time", file=str(path), line=int(line_no[again]))
    uv, u = Vocab.build(pairs[:, 0])
    iv, i = Vocab.build(pairs[:, 1])
    # position within the user, in file order (rows are contiguous per user, chronological inside)
    order = np.argsort(u, kind="stable")
    n_per = np.bincount(u, minlength=len(uv))
    starts = np.cumsum(n_per) - n_per
    pos = np.empty(len(u), np.int64)
    pos[order] = np.arange(len(u)) - starts[u[order]]
    inter = Interactions(u, i, len(uv), len(iv), timestamp=order_time(u, pos, order_time_mode), user_vocab=uv,
                         item_vocab=iv, name=name)
    meta = {**_meta_time(order_time_mode),
            "protocol_hint": "leave-last-out (last item test, second to last validation)"}
    return Dataset(name, inter, None, SkipReport(), meta)
