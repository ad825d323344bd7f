"""CTR protocol from an external row listing: train / validate / test on exactly the rows another
implementation kept (``recgraph train MODEL --protocol rows:PATH``).

The listing is a CSV (gzip or not) with header ``user_id,item_id,timestamp,label,split``: raw ids of
the dataset, the sample's time, its 0/1 label and ``split`` in {``train``, ``valid_in_v_variant``,
``test``} (``valid`` is accepted for the second). ``../shared/datasets/macgnn-official-splits/`` holds
the rows the official MacGNN preprocessing keeps; features are rebuilt the way its README says:

* positives = ratings ≥ ``positive_threshold`` (explicit data), else every behaviour but the first
  (Taobao: cart / fav / buy; ``pv`` is not a positive), else every event;
* ``windows="global"``: quantiles q80 / q90 of all timestamps; train and validation rows use the
  positives with t ≤ q80 (snapshot 0), test rows those with t ≤ q90 (snapshot 1);
* ``windows="per-user"``: the same with each user's own q80 / q90 (linear interpolation over her
  timestamps, ``np.quantile``): snapshot 0 = every positive whose own user's time is ≤ that user's
  q80. A snapshot is then an edge set, not a global time prefix — the item side of a feature may
  include another user's events later than the row (that is how the variant is defined);
* ``windows="auto"``: what ``<prefix>_stats.json`` next to the listing says (``"split":
  "peruser"`` → per-user), else global. Its ``q80`` / ``q90`` are used when present.

This module builds the :class:`~recgraph.data.ctr.CTRSplit` (samples, parts, snapshots);
:func:`recgraph.graph.features.build_ctr_data` (``protocol="rows:PATH"``) adds the features. Macro ids
are fitted on snapshot 0. Each row must
be an event of the dataset (same user, item and timestamp) whose label agrees with the positive
rule, else a ``ValueError`` names the file, the row and the column; rows whose user or item has no
positive in its snapshot are dropped and counted (the official listing has none).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..io import read_json, sha256_file
from .ctr import CTRSamples, CTRSplit
from .schema import Interactions

__all__ = ["read_rows", "build_rows_split", "per_user_quantiles"]

SPLITS = {"train": 0, "valid_in_v_variant": 1, "valid": 1, "test": 2}
COLUMNS = ("user_id", "item_id", "timestamp", "label", "split")


def read_rows(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a row listing: ``user_id``/``item_id``/``timestamp`` int64, ``label`` float32,
    ``split`` int64 (0 train, 1 valid, 2 test)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"row listing {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        lines = fh.read().splitlines()
    if not lines or tuple(c.strip() for c in lines[0].split(",")) != COLUMNS:
        raise ValueError(f"{path}: header must be {','.join(COLUMNS)}, got {lines[0] if lines else '(empty file)'!r}")
    cells = np.array([ln.split(",") for ln in lines[1:]], dtype=object) if len(lines) > 1 else np.empty((0, 5), object)
    if cells.ndim != 2 or cells.shape[1] != 5:
        bad = next(k for k, ln in enumerate(lines[1:]) if len(ln.split(",")) != 5)
        raise ValueError(f"{path}: row {bad + 2} has {len(lines[bad + 1].split(','))} fields, expected 5")
    out: dict[str, np.ndarray] = {}
    for j, col in enumerate(COLUMNS[:4]):
        try:
            out[col] = cells[:, j].astype(np.float64)
        except ValueError:
            bad = next(k for k, v in enumerate(cells[:, j]) if not _is_number(v))
            raise ValueError(f"{path}: row {bad + 2}, column {col!r}: {cells[bad, j]!r} is not a number") from None
    for col in ("user_id", "item_id", "timestamp"):
        out[col] = out[col].astype(np.int64)
    lab = out["label"]
    if not np.all((lab == 0) | (lab == 1)):
        bad = int(np.flatnonzero((lab != 0) & (lab != 1))[0])
        raise ValueError(f"{path}: row {bad + 2}, column 'label': {lab[bad]} is not 0 or 1")
    out["label"] = lab.astype(np.float32)
    names, inv = np.unique(cells[:, 4].astype(str), return_inverse=True)
    split = np.array([SPLITS.get(n.strip(), -1) for n in names], np.int64)[inv.reshape(-1)]
    if np.any(split < 0):
        bad = int(np.flatnonzero(split < 0)[0])
        raise ValueError(f"{path}: row {bad + 2}, column 'split': {cells[bad, 4]!r} is not one of {sorted(SPLITS)}")
    out["split"] = split
    return out


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def per_user_quantiles(user: np.ndarray, time: np.ndarray, n_users: int, qs) -> np.ndarray:
    """``[len(qs), n_users]`` quantiles of each user's timestamps (linear interpolation, as
    ``np.quantile``; NaN for users without events). Vectorised: one sort."""
    order = np.lexsort((time, user))
    u, t = user[order], time[order].astype(np.float64)
    cnt = np.bincount(u, minlength=n_users)
    start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    out = np.full((len(qs), n_users), np.nan)
    has = cnt > 0
    for k, q in enumerate(qs):
        pos = q * (cnt[has] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, cnt[has] - 1)
        a, b = t[start[has] + lo], t[start[has] + hi]
        out[k, has] = a + (b - a) * (pos - lo)
    return out


def _positive_mask(inter: Interactions, positive_threshold: float) -> tuple[np.ndarray, str]:
    if inter.label is not None:
        return inter.label >= positive_threshold, f"rating >= {positive_threshold:g}"
    if inter.behavior is not None:
        names = inter.behavior_names or ()
        first = names[0] if names else "code 0"
        return inter.behavior != 0, f"every behaviour except {first!r}"
    return np.ones(len(inter), bool), "every event"


def build_rows_split(inter: Interactions, path: str | Path, *, windows: str = "auto",
                     positive_threshold: float = 4.0) -> CTRSplit:
    """The :class:`~recgraph.data.ctr.CTRSplit` of exactly the rows of the listing at ``path``
    (module docstring); features: :func:`recgraph.graph.features.features_for`."""
    path = Path(path)
    if inter.timestamp is None:
        raise ValueError(f"{inter.name or 'data'} has no timestamps; a row listing needs them")
    rows = read_rows(path)
    stats_path = path.with_name(path.name.replace("_split_rows.csv.gz", "_stats.json").replace(
        "_split_rows.csv", "_stats.json"))
    stats = read_json(stats_path, what="row-listing stats") if stats_path != path and stats_path.is_file() else {}
    if windows == "auto":
        windows = "per-user" if stats.get("split") == "peruser" else "global"
    if windows not in ("global", "per-user"):
        raise ValueError(f"windows must be 'auto', 'global' or 'per-user', got {windows!r}")

    # map raw ids; every row must be an event of the dataset
    def lookup(vocab, raw, col):
        if vocab is None:
            return raw
        idx = vocab.lookup(raw, missing=-1)
        if np.any(idx < 0):
            bad = int(np.flatnonzero(idx < 0)[0])
            raise ValueError(f"{path}: row {bad + 2}, column {col!r}: id {raw[bad]} is not in dataset {inter.name!r}")
        return idx

    u = lookup(inter.user_vocab, rows["user_id"], "user_id")
    i = lookup(inter.item_vocab, rows["item_id"], "item_id")
    t = rows["timestamp"]
    nu, ni = inter.n_users, inter.n_items
    ev_t = inter.timestamp.astype(np.int64)
    ev_key = inter.user.astype(np.int64) * ni + inter.item.astype(np.int64)
    pos_mask, pos_desc = _positive_mask(inter, positive_threshold)
    # each row must be an event (user, item, time); explicit data: its label must follow the positive rule
    order = np.lexsort((ev_t, ev_key))
    sk, st = ev_key[order], ev_t[order]
    rk = u * ni + i
    lo, hi = np.searchsorted(sk, rk, side="left"), np.searchsorted(sk, rk, side="right")
    pos_in = _search_runs(st, lo, hi, t)  # the pair's first event at the row's time
    found = (pos_in < hi) & (st[np.minimum(pos_in, max(len(st) - 1, 0))] == t) if len(st) else np.zeros(len(t), bool)
    if not np.all(found):
        bad = int(np.flatnonzero(~found)[0])
        raise ValueError(f"{path}: row {bad + 2}: (user {rows['user_id'][bad]}, item {rows['item_id'][bad]}, "
                         f"timestamp {t[bad]}) is not an event of dataset {inter.name!r}")
    at = order[pos_in]
    if inter.label is not None:
        agree = pos_mask[at].astype(np.float32) == rows["label"]
        if not np.all(agree):
            bad = int(np.flatnonzero(~agree)[0])
            raise ValueError(f"{path}: row {bad + 2}, column 'label': {rows['label'][bad]:g} disagrees with the "
                             f"dataset's rating {inter.label[at[bad]]:g} under the rule {pos_desc}")

    p_user, p_item, p_time = inter.user[pos_mask].astype(np.int64), inter.item[pos_mask].astype(np.int64), \
        ev_t[pos_mask]
    qs = (0.8, 0.9)
    if windows == "global":
        q80 = float(stats["q80"]) if "q80" in stats else float(np.quantile(ev_t, qs[0]))
        q90 = float(stats["q90"]) if "q90" in stats else float(np.quantile(ev_t, qs[1]))
        cutoffs = np.array([np.floor(q80) + 1, np.floor(q90) + 1], np.int64)  # t <= q  <=>  t < floor(q) + 1
        masks = None
        wdesc = {"q80": q80, "q90": q90, "features": "positives with t <= q80 (train/valid), t <= q90 (test)"}
    else:
        qu = per_user_quantiles(inter.user.astype(np.int64), ev_t, nu, qs)
        masks = [p_time <= qu[0][p_user], p_time <= qu[1][p_user]]
        cutoffs = np.array([p_time[m].max(initial=0) + 1 for m in masks], np.int64)  # bookkeeping only
        wdesc = {"features": "per user u: positives of every user v with t <= q80_v (train/valid), t <= q90_v "
                             "(test); q = linear quantiles of each user's own timestamps"}
    snap = np.where(rows["split"] == 2, 1, 0).astype(np.int64)
    samples = CTRSamples(u, i, rows["label"], t, snap)
    proto = {"name": f"rows:{path}", "rows_file": str(path), "rows_sha256": sha256_file(path), "windows": windows,
             **wdesc, "labels": f"from the listing; feature positives: {pos_desc}",
             "train": "rows marked train", "valid": "rows marked valid_in_v_variant (epoch / config selection)",
             "test": "rows marked test", "selection": "validation rows (never test)",
             "cold": "rows whose user or item has no positive in its feature snapshot are dropped (counted)",
             "stats_file": str(stats_path) if stats else None}
    return CTRSplit(samples, rows["split"].copy(), p_user, p_item, p_time, cutoffs, 0, nu, ni, proto, {},
                    inter.name, snapshot_masks=masks)


def _search_runs(sorted_time: np.ndarray, lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per query ``k``: the first index in ``sorted_time[lo[k]:hi[k]]`` (a sorted run) whose value is
    ≥ ``t[k]`` (``hi[k]`` if none). Vectorised bisection over all runs at once."""
    a, b = lo.copy(), hi.copy()
    while True:
        live = a < b
        if not live.any():
            return a
        mid = (a + b) // 2
        go_right = live & (sorted_time[np.minimum(mid, len(sorted_time) - 1)] < t)
        a = np.where(go_right, mid + 1, a)
        b = np.where(live & ~go_right, mid, b)
