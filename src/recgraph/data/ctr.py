"""CTR samples with leak-free, time-respecting features, and the two CTR protocols.

A CTR sample is ``(user, item, time, label, snapshot)``. Its features come from the feature
*snapshot* ``s``: the positive interactions with ``timestamp < cutoffs[s]`` (strictly before), and
every sample satisfies ``cutoffs[s] <= time`` — so no feature can use an interaction at or after
the sample's own time, nor at or after its snapshot's cutoff (``tests/ranking/test_ctr_data.py``
checks this from scratch).

Labels (``labels=``):

* ``"rating"`` (explicit ratings, MovieLens by default): every rating is a sample, label =
  rating ≥ 4 (``positive_threshold``). Positive interactions (feature graph) are the ratings ≥ 4.
* ``"implicit"`` (Taobao behaviours, Amazon reviews by default): every logged event is a positive
  interaction; samples are the first occurrence of each (user, item) pair, label 1, plus
  ``neg_ratio`` (default 1) sampled negatives per positive, **drawn at the sample's time from the
  popularity as of that time**: a negative is the item of a uniformly drawn *earlier* positive
  event (so P(item) ∝ its number of interactions strictly before the sample's time). Items the user
  interacted with at or before the sample's time are rejected and redrawn (up to 10 rounds;
  remaining collisions are dropped and counted) — only the past is known when a negative is drawn,
  so an item the user first takes *later* can be a negative (rejecting future pairs would leak
  them). Negatives inherit the time, snapshot and split of their positive.

Protocols (``protocol=``), both stamped into ``CTRData.protocol``:

* ``"macgnn-quantile"`` — the official MacGNN split: global timestamp quantiles q80 / q90.
  Snapshot 0 = positives with t ≤ q80; snapshot 1 = positives with t ≤ q90. Training samples
  and **validation** samples both come from the official training window q80 < t ≤ q90 (snapshot 0):
  by default a seeded random ``valid_fraction = 0.2`` of its positives (with their paired
  negatives) is validation (``valid_carve="random"``; on MovieLens-100K the late part of the window
  has almost no warm users, so a time carve leaves ~20 validation samples), or with
  ``valid_carve="time"`` the samples after ``valid_quantile`` (0.88). Test t > q90 (snapshot 1). Samples whose
  user or item has no positive in its snapshot are dropped, as in the official code; the drops are
  counted per part.
* ``"leave-last-out"`` — per user (samples ordered by time), the last positive and its paired
  negatives are test, the positive before (with its negatives) is validation, the rest training.
  There is no global time cut, so features use ``n_snapshots`` (default 10) global snapshots at time
  quantiles: a sample uses the latest snapshot whose cutoff is ≤ its time (strictly-before
  features); samples older than the first cutoff have no features and are dropped (counted).

Macro ids (item category or k-means, user k-means) are fitted once on the positives of the
*first* snapshot used for training (q80 for macgnn-quantile; the median-time snapshot for
leave-last-out, where training samples before it see a clustering fitted on up-to-median data —
only the id assignment, never counts or lists). Under leave-last-out the fit uses only *training*
events (``CTRSplit.fit_events``): a user's events from her first validation / test sample on are
left out of it.

``protocol="rows:PATH"`` reads an external row listing instead (:mod:`recgraph.data.rows_protocol`).

Per-sample work is vectorised: features are per-(snapshot, node) tables, a batch is a gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .schema import Interactions

__all__ = ["CTRSamples", "CTRSplit", "build_ctr_samples", "PROTOCOLS"]

PROTOCOLS = ("macgnn-quantile", "leave-last-out")


@dataclass(frozen=True, eq=False)
class CTRSamples:
    user: np.ndarray      # [N] int64
    item: np.ndarray      # [N] int64
    label: np.ndarray     # [N] float32 0/1
    time: np.ndarray      # [N] int64
    snapshot: np.ndarray  # [N] int64 index into FeatureTables.cutoffs

    def __len__(self) -> int:
        return len(self.user)

    def select(self, idx) -> "CTRSamples":
        return CTRSamples(self.user[idx], self.item[idx], self.label[idx], self.time[idx], self.snapshot[idx])

    def describe(self) -> dict:
        return {"samples": len(self), "positives": int(self.label.sum()),
                "users": int(np.unique(self.user).size), "items": int(np.unique(self.item).size)}


@dataclass(frozen=True, eq=False)
class CTRSplit:
    """The samples of a CTR protocol before features: every sample with its part (-1 outside the
    protocol's windows, 0 train, 1 valid, 2 test) and feature snapshot, plus the positive
    interactions and snapshot cutoffs the features are built from (``recgraph.graph.features``)."""

    samples: CTRSamples
    part: np.ndarray        # [N] int64
    pos_user: np.ndarray    # [P] positive interactions (the feature graph's edges)
    pos_item: np.ndarray
    pos_time: np.ndarray
    cutoffs: np.ndarray     # [S] exclusive snapshot cutoffs
    fit_snapshot: int       # snapshot whose edges fit the macro assignment
    n_users: int
    n_items: int
    protocol: dict
    dropped: dict
    name: str = ""
    fit_events: np.ndarray | None = None  # [P] bool: positives the macro fit may use (None: all before the cut)
    snapshot_masks: list | None = None    # per snapshot [P] bool: its edges, where not a global time prefix


# ----------------------------------------------------------------------------- construction

def _label_mode(inter: Interactions, labels: str) -> str:
    if labels != "auto":
        if labels not in ("rating", "implicit"):
            raise ValueError(f"labels must be 'auto', 'rating' or 'implicit', got {labels!r}")
        return labels
    explicit = inter.label is not None and inter.behavior is None and not inter.name.startswith("amazon")
    return "rating" if explicit else "implicit"


def _sample_negatives(pos_u, pos_t, ev_item_by_time, ev_time_sorted, pair_keys, pair_first, n_items, ratio, rng):
    """``ratio`` popularity-at-time negatives per positive; a draw is rejected when the user took the
    item at or before the sample's time (``pair_keys`` sorted ``user * n_items + item`` with the
    pair's first time ``pair_first``). Returns (user, item, time, src index) and the number of draws
    given up on."""
    src = np.repeat(np.arange(len(pos_u)), ratio)
    u, t = pos_u[src], pos_t[src]
    n_before = np.searchsorted(ev_time_sorted, t, side="left")
    item = np.full(len(src), -1, np.int64)
    todo = np.flatnonzero(n_before > 0)
    for _ in range(10):
        if len(todo) == 0:
            break
        j = (rng.random(len(todo)) * n_before[todo]).astype(np.int64)
        cand = ev_item_by_time[j]
        key = u[todo] * n_items + cand
        pos = np.minimum(np.searchsorted(pair_keys, key), len(pair_keys) - 1)
        ok = (pair_keys[pos] != key) | (pair_first[pos] > t[todo])
        item[todo[ok]] = cand[ok]
        todo = todo[~ok]
    good = item >= 0
    return u[good], item[good], t[good], src[good], int((~good).sum())


def build_ctr_samples(inter: Interactions, protocol: str = "macgnn-quantile", *, labels: str = "auto",
                      positive_threshold: float = 4.0, neg_ratio: int = 1, q_train: float = 0.8,
                      q_test: float = 0.9, valid_quantile: float = 0.88, valid_carve: str = "random",
                      valid_fraction: float = 0.2, n_snapshots: int = 10, seed: int = 0) -> CTRSplit:
    """The samples, parts and snapshots of ``protocol`` (see the module docstring); features are
    built from the returned positives by :func:`recgraph.graph.features.build_ctr_data`."""
    if protocol.startswith("rows:"):  # an external row listing (recgraph.data.rows_protocol)
        from .rows_protocol import build_rows_split

        return build_rows_split(inter, protocol[len("rows:"):], positive_threshold=positive_threshold)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown CTR protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if inter.timestamp is None:
        raise ValueError(f"{inter.name or 'data'} has no timestamps; CTR protocols need them")
    if not (q_train < valid_quantile < q_test):
        raise ValueError("need q_train < valid_quantile < q_test")
    mode = _label_mode(inter, labels)
    rng = np.random.default_rng([seed, 17])
    nu, ni = inter.n_users, inter.n_items
    t_all = inter.timestamp.astype(np.int64)
    dropped: dict = {}
    if mode == "rating":
        pos_mask = inter.label >= positive_threshold
        s_user, s_item, s_time = inter.user.astype(np.int64), inter.item.astype(np.int64), t_all
        s_label = pos_mask.astype(np.float32)
        s_group = np.full(len(s_user), -1, np.int64)
        p_user, p_item, p_time = s_user[pos_mask], s_item[pos_mask], t_all[pos_mask]
        label_desc = f"rating >= {positive_threshold:g} positive, the rest negative"
    else:
        p_user, p_item, p_time = inter.user.astype(np.int64), inter.item.astype(np.int64), t_all
        order = np.lexsort((np.arange(len(p_user)), p_time, p_item, p_user))
        key = p_user[order] * ni + p_item[order]
        first = np.ones(len(key), bool)
        first[1:] = key[1:] != key[:-1]
        fi = order[first]
        dropped["repeat_pairs_not_resampled"] = int(len(key) - first.sum())
        pos_u, pos_i, pos_t = p_user[fi], p_item[fi], p_time[fi]
        by_time = np.argsort(p_time, kind="stable")
        pair_keys, pair_first = pos_u * ni + pos_i, pos_t  # first occurrence of every pair
        ko = np.argsort(pair_keys, kind="stable")
        pair_keys, pair_first = pair_keys[ko], pair_first[ko]
        nu_, ni_, nt_, nsrc, failed = _sample_negatives(pos_u, pos_t, p_item[by_time], p_time[by_time],
                                                        pair_keys, pair_first, ni, int(neg_ratio), rng)
        dropped["negatives_not_drawn"] = failed
        s_user = np.concatenate([pos_u, nu_])
        s_item = np.concatenate([pos_i, ni_])
        s_time = np.concatenate([pos_t, nt_])
        s_label = np.concatenate([np.ones(len(pos_u), np.float32), np.zeros(len(nu_), np.float32)])
        s_group = np.concatenate([np.arange(len(pos_u)), nsrc])  # negatives follow their positive
        label_desc = (f"implicit: every event positive (first occurrence per user-item pair is a sample); "
                      f"{neg_ratio}:1 negatives drawn at the sample's time with probability proportional to "
                      "item popularity strictly before that time; items the user took at or before that time rejected")

    # split + snapshots
    if protocol == "macgnn-quantile":
        q80, qv, q90 = np.quantile(t_all, [q_train, valid_quantile, q_test]).astype(np.int64)
        cutoffs = np.array([q80 + 1, q90 + 1], np.int64)  # exclusive: features use t <= q80 / t <= q90
        if mode == "implicit":
            # a negative's split follows its time (= its positive's time)
            pass
        part = np.full(len(s_user), -1, np.int64)
        in_train = (s_time > q80) & (s_time <= q90)
        if valid_carve == "time":
            part[in_train & (s_time <= qv)] = 0
            part[in_train & (s_time > qv)] = 1
        elif valid_carve == "random":  # by positive group, so a negative stays with its positive
            grp = np.where(s_group >= 0, s_group, np.arange(len(s_user)) + len(s_user))
            r = np.random.default_rng([seed, 29]).random(int(grp.max()) + 1)[grp]
            part[in_train] = np.where(r[in_train] < valid_fraction, 1, 0)
        else:
            raise ValueError(f"valid_carve must be 'random' or 'time', got {valid_carve!r}")
        part[s_time > q90] = 2
        snap = np.where(part == 2, 1, 0)
        dropped["outside_windows"] = int((part < 0).sum())
        fit_snapshot, fit_events = 0, None
        proto = {"name": protocol, "q_train": q_train, "q_test": q_test, "t_q_train": int(q80),
                 "t_q_test": int(q90), "valid_carve": valid_carve,
                 **({"valid_quantile": valid_quantile, "t_q_valid": int(qv)} if valid_carve == "time"
                    else {"valid_fraction": valid_fraction}),
                 "train_window": "q_train < t <= q_test minus the validation carve",
                 "test_window": "t > q_test",
                 "features": "positives with t <= q_train (train/valid), t <= q_test (test)"}
    else:
        qs = np.quantile(t_all, np.arange(1, n_snapshots + 1) / (n_snapshots + 1)).astype(np.int64)
        cutoffs = np.unique(qs)
        snap = np.searchsorted(cutoffs, s_time, side="right") - 1
        # per user, groups of (positive + paired negatives) counted from the end
        if mode == "rating":
            order = np.lexsort((np.arange(len(s_user)), s_time, s_user))
            us, pos_sorted = s_user[order], s_label[order] > 0
            rev = np.cumsum(pos_sorted[::-1])[::-1]  # positives at or after, global
            # subtract positives of later users: per user reverse cumsum
            cnt_pos = np.bincount(us, weights=pos_sorted, minlength=nu).astype(np.int64)
            after_user = np.cumsum(cnt_pos[::-1])[::-1] - cnt_pos  # positives of users > u
            g = np.empty(len(order), np.int64)
            g[order] = rev - after_user[us]
        else:
            npos = len(pos_u)
            porder = np.lexsort((np.arange(npos), pos_t, pos_u))
            pu = pos_u[porder]
            counts = np.bincount(pu, minlength=nu)
            ends = np.cumsum(counts)
            from_end = np.empty(npos, np.int64)
            from_end[porder] = ends[pu] - np.arange(npos)  # 1 = last positive
            g = from_end[s_group]
        part = np.where(g <= 1, 2, np.where(g == 2, 1, 0))
        users_with_pos = np.bincount(s_user[s_label > 0], minlength=nu)
        dropped["users_with_fewer_than_3_positives_kept_in_train_only"] = int(((users_with_pos > 0) & (users_with_pos < 3)).sum())
        few = users_with_pos[s_user] < 3
        part = np.where(few, 0, part)
        dropped["before_first_snapshot"] = int((snap < 0).sum())
        part = np.where(snap < 0, -1, part)
        snap = np.maximum(snap, 0)
        fit_snapshot = len(cutoffs) // 2
        # the macro fit sees training events only: a user's events from her first valid/test sample on are out
        t_hold = np.full(nu, np.iinfo(np.int64).max, np.int64)
        held = (part == 1) | (part == 2)
        np.minimum.at(t_hold, s_user[held], s_time[held])
        fit_events = p_time < t_hold[p_user]
        proto = {"name": protocol, "n_snapshots": int(len(cutoffs)),
                 "macro_fit": "training events before the median snapshot (no validation / test event)",
                 "test": "per user, last positive + its paired negatives", "valid": "the positive before (+ negatives)",
                 "features": "latest global snapshot with cutoff <= sample time (positives strictly before the cutoff)"}

    proto.update({"labels": label_desc, "neg_ratio": int(neg_ratio) if mode == "implicit" else None,
                  "cold": "samples whose user or item has no positive in its feature snapshot are dropped (counted)",
                  "selection": "validation split (never test)"})
    samples = CTRSamples(s_user, s_item, s_label.astype(np.float32), s_time, snap)
    return CTRSplit(samples, part, p_user, p_item, p_time, np.asarray(cutoffs, np.int64), fit_snapshot, nu, ni,
                    proto, dropped, inter.name, fit_events=fit_events)
