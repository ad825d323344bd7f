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
  ever interacted with are rejected and redrawn (up to 10 rounds; remaining collisions are dropped
  and counted). Negatives inherit the time, snapshot and split of their positive.

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
only the id assignment, never counts or lists).

Per-sample work is vectorised: features are per-(snapshot, node) tables, a batch is a gather.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from ..graph.macro import (assign_item_macros, assign_user_macros, macro_counts, positive_matrix,
                           recent_lists)
from ..graph.bipartite import BipartiteGraph
from ..graph.dynamic import sample_dynamic, time_graph
from .batch import CTRBatch, DynamicNeighborhood, NodeSide
from .schema import Interactions

__all__ = ["CTRSamples", "FeatureTables", "CTRData", "build_ctr_data", "PROTOCOLS", "sample_neighbors"]

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
class FeatureTables:
    """Per-(snapshot, node) features; row ``s * n_users + u`` (users) or ``s * n_items + i`` (items).

    Slot tables hold macro ids and counts, most frequent first (all macros, zero counts included,
    when ``dense_slots``); recent lists hold ids (pad = n_items / n_users) and event times (-1)."""

    cutoffs: np.ndarray  # [S] exclusive: snapshot s uses positives with t < cutoffs[s]
    n_users: int
    n_items: int
    item_macro: np.ndarray
    n_item_macros: int
    user_macro: np.ndarray
    n_user_macros: int
    dense_slots: bool
    u1_ids: np.ndarray
    u1_cnt: np.ndarray
    u2_ids: np.ndarray
    u2_cnt: np.ndarray
    i1_ids: np.ndarray
    i1_cnt: np.ndarray
    i2_ids: np.ndarray
    i2_cnt: np.ndarray
    u_rec: np.ndarray
    u_rec_time: np.ndarray
    i_rec: np.ndarray
    i_rec_time: np.ndarray
    user_deg: np.ndarray  # [S * n_users] positives before the cutoff
    item_deg: np.ndarray  # [S * n_items]
    u_adj: sp.csr_matrix  # [S * n_users, n_items] positive counts before the cutoff (SAGE)
    i_adj: sp.csr_matrix  # [S * n_items, n_users]


def _slots(m: sp.csr_matrix, n_cols: int, max_slots: int, dense: bool) -> tuple[np.ndarray, np.ndarray]:
    """CSR rows → padded (ids, counts): all columns when ``dense``, else the ``max_slots`` largest
    counts per row (pad id = n_cols, count 0). Vectorised (one lexsort)."""
    m = m.tocsr()
    if dense:
        ids = np.broadcast_to(np.arange(n_cols, dtype=np.int64), (m.shape[0], n_cols)).copy()
        return ids, m.toarray().astype(np.float32)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((-m.data, rows))
    rows, cols, data = rows[order], m.indices[order].astype(np.int64), m.data[order]
    pos = np.arange(len(rows)) - m.indptr[rows]
    width = int(min(max_slots, max(1, np.diff(m.indptr).max(initial=1))))
    keep = pos < width
    ids = np.full((m.shape[0], width), n_cols, np.int64)
    cnt = np.zeros((m.shape[0], width), np.float32)
    ids[rows[keep], pos[keep]] = cols[keep]
    cnt[rows[keep], pos[keep]] = data[keep]
    return ids, cnt


def _pad_to(a: np.ndarray, width: int, fill) -> np.ndarray:
    if a.shape[1] == width:
        return a
    out = np.full((a.shape[0], width), fill, a.dtype)
    out[:, :a.shape[1]] = a
    return out


def _stack_slots(parts: list[tuple[np.ndarray, np.ndarray]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(p[0].shape[1] for p in parts)
    return (np.concatenate([_pad_to(p[0], width, pad_id) for p in parts]),
            np.concatenate([_pad_to(p[1], width, 0.0) for p in parts]))


def build_feature_tables(pos_user, pos_item, pos_time, n_users: int, n_items: int, cutoffs: np.ndarray, *,
                         fit_snapshot: int = 0, category: np.ndarray | None = None, item_macro: str = "auto",
                         item_k: int = 50, user_k: int = 20, recent: int = 20, max_slots: int = 64,
                         seed: int = 0) -> FeatureTables:
    """Macro counts, recent lists and adjacency for every snapshot (positives with t < cutoff)."""
    cutoffs = np.asarray(cutoffs, np.int64)
    fit = pos_time < cutoffs[fit_snapshot]
    R_fit = positive_matrix(pos_user[fit], pos_item[fit], n_users, n_items)
    im, n_im = assign_item_macros(item_macro, n_items=n_items, category=category, R=R_fit, k=item_k, seed=seed)
    um, n_um = assign_user_macros(R_fit, im, n_im, k=user_k, seed=seed)
    dense = max(n_im, n_um) <= max_slots
    parts: dict[str, list] = {k: [] for k in ("u1", "u2", "i1", "i2", "ur", "urt", "ir", "irt", "ud", "id", "ua", "ia")}
    for c in cutoffs:
        m = pos_time < c
        R = positive_matrix(pos_user[m], pos_item[m], n_users, n_items)
        mc = macro_counts(R, im, n_im, um, n_um)
        parts["u1"].append(_slots(mc.user1, n_im, max_slots, dense))
        parts["u2"].append(_slots(mc.user2, n_um, max_slots, dense))
        parts["i1"].append(_slots(mc.item1, n_um, max_slots, dense))
        parts["i2"].append(_slots(mc.item2, n_im, max_slots, dense))
        ur, urt, _ = recent_lists(pos_user[m], pos_item[m], pos_time[m], n_users, recent, pad=n_items)
        ir, irt, _ = recent_lists(pos_item[m], pos_user[m], pos_time[m], n_items, recent, pad=n_users)
        parts["ur"].append(ur), parts["urt"].append(urt), parts["ir"].append(ir), parts["irt"].append(irt)
        parts["ud"].append(np.bincount(pos_user[m], minlength=n_users))
        parts["id"].append(np.bincount(pos_item[m], minlength=n_items))
        parts["ua"].append(R)
        parts["ia"].append(R.T.tocsr())
    u1, u2 = _stack_slots(parts["u1"], n_im), _stack_slots(parts["u2"], n_um)
    i1, i2 = _stack_slots(parts["i1"], n_um), _stack_slots(parts["i2"], n_im)
    return FeatureTables(
        cutoffs=cutoffs, n_users=n_users, n_items=n_items, item_macro=im, n_item_macros=n_im, user_macro=um,
        n_user_macros=n_um, dense_slots=dense, u1_ids=u1[0], u1_cnt=u1[1], u2_ids=u2[0], u2_cnt=u2[1],
        i1_ids=i1[0], i1_cnt=i1[1], i2_ids=i2[0], i2_cnt=i2[1],
        u_rec=np.concatenate(parts["ur"]), u_rec_time=np.concatenate(parts["urt"]),
        i_rec=np.concatenate(parts["ir"]), i_rec_time=np.concatenate(parts["irt"]),
        user_deg=np.concatenate(parts["ud"]), item_deg=np.concatenate(parts["id"]),
        u_adj=sp.vstack(parts["ua"]).tocsr(), i_adj=sp.vstack(parts["ia"]).tocsr())


# ----------------------------------------------------------------------------- neighbour sampling

def _hash_uniform(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic uniform [0, 1) from (a, b, salt) (splitmix64 finaliser), vectorised."""
    with np.errstate(over="ignore"):
        x = (a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (b.astype(np.uint64) + np.uint64(salt & (2**63 - 1))
                                                                       * np.uint64(0xBF58476D1CE4E5B9))
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


def sample_neighbors(adj: sp.csr_matrix, rows: np.ndarray, fanout: int, pad: int, salt: int) -> np.ndarray:
    """``fanout`` neighbours per row, uniformly with replacement; deterministic in (row, slot, salt)
    so a row's sample does not depend on the batch it is in. Rows without neighbours get ``pad``."""
    rows = np.asarray(rows, np.int64)
    start = adj.indptr[rows]
    deg = adj.indptr[rows + 1] - start
    slot = np.arange(fanout, dtype=np.int64)
    u = _hash_uniform(rows[..., None], slot, salt)
    off = np.minimum((u * deg[..., None]).astype(np.int64), np.maximum(deg[..., None] - 1, 0))
    out = adj.indices[np.minimum(start[..., None] + off, max(len(adj.indices) - 1, 0))].astype(np.int64)
    return np.where(deg[..., None] > 0, out, pad)


# ----------------------------------------------------------------------------- the data object

def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


@dataclass(frozen=True, eq=False)
class CTRData:
    train: CTRSamples
    valid: CTRSamples
    test: CTRSamples
    features: FeatureTables
    n_users: int
    n_items: int
    protocol: dict
    dropped: dict = field(default_factory=dict)
    name: str = ""
    events: BipartiteGraph | None = None  # every positive event, rows time-ordered ("dynamic" group)

    def part(self, name: str) -> CTRSamples:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def batch(self, samples: CTRSamples, idx: np.ndarray | None = None, needs: frozenset = frozenset(),
              *, salt: int = 0, fanouts: tuple[int, ...] = (10, 5), deep_bound: str = "sample") -> CTRBatch:
        """:class:`~recgraph.data.batch.CTRBatch` of ``samples[idx]``: ids and macro ids always;
        ``"macro"``: the hop-1/hop-2 macro slots; ``"recent"``: recent lists; ``"sage"``: sampled
        2-hop neighbourhoods; ``"dynamic"``: the k-hop (``len(fanouts)``) neighbourhoods of
        :func:`recgraph.graph.dynamic.sample_dynamic` over ``events``, strictly before each sample's
        own time (``deep_bound`` as there)."""
        s = samples if idx is None else samples.select(idx)
        dyn = {"time": s.time, "deep_bound": deep_bound}
        return CTRBatch(user=self._side("user", s.user, s.snapshot, needs, salt, fanouts, **dyn),
                        item=self._side("item", s.item, s.snapshot, needs, salt + 2, fanouts, **dyn),
                        label=_tensor(s.label.astype(np.float32)), time=_tensor(s.time))

    def request(self, user: int, items: np.ndarray, snapshot: int, needs: frozenset = frozenset(), *,
                salt: int = 0, fanouts: tuple[int, ...] = (10, 5), time: int | None = None,
                deep_bound: str = "sample") -> CTRBatch:
        """One user against ``B`` candidate items, as a batch whose user side has leading size 1
        (gathered or sampled once, not once per candidate); models broadcast it. Same values as
        :meth:`batch` on the ``B`` (user, item) samples."""
        items = np.asarray(items).reshape(-1)
        n_snap = len(self.features.cutoffs)
        if not np.issubdtype(items.dtype, np.integer):
            raise TypeError(f"request: items must be integer item indices, got dtype {items.dtype}")
        if not 0 <= int(user) < self.n_users:
            raise ValueError(f"request: user {user} is not a user index in [0, {self.n_users})")
        if len(items) and (items.min() < 0 or items.max() >= self.n_items):
            bad = items[(items < 0) | (items >= self.n_items)][:5].tolist()
            raise ValueError(f"request: item indices {bad} are outside [0, {self.n_items})")
        if not 0 <= int(snapshot) < n_snap:
            raise ValueError(f"request: snapshot {snapshot} is outside [0, {n_snap}) (feature cutoffs)")
        items = items.astype(np.int64)
        one = np.array([snapshot], np.int64)
        t = int(self.features.cutoffs[snapshot]) if time is None else int(time)
        dyn = {"deep_bound": deep_bound}
        return CTRBatch(user=self._side("user", np.array([user], np.int64), one, needs, salt, fanouts,
                                        time=np.array([t], np.int64), **dyn),
                        item=self._side("item", items, np.full(len(items), snapshot, np.int64), needs, salt + 2,
                                        fanouts, time=np.full(len(items), t, np.int64), **dyn),
                        label=torch.zeros(len(items)), time=torch.full((len(items),), t, dtype=torch.int64))

    def _side(self, kind: str, ids, snapshot, needs, salt, fanouts, time=None, deep_bound="sample") -> NodeSide:
        """The features of one side (``kind`` "user": neighbours are items; "item": neighbours are
        users) for node ``ids`` at ``snapshot``."""
        f = self.features
        p = kind[0]
        n_own, n_other = (f.n_users, f.n_items) if kind == "user" else (f.n_items, f.n_users)
        adj_own, adj_other = (f.u_adj, f.i_adj) if kind == "user" else (f.i_adj, f.u_adj)
        rows = snapshot * n_own + ids
        out = {"ids": ids, "macro": (f.user_macro if kind == "user" else f.item_macro)[ids]}
        if "macro" in needs:
            out.update({f"hop{h}_{c}": getattr(f, f"{p}{h}_{c}")[rows] for h in (1, 2) for c in ("ids", "cnt")})
        if "recent" in needs:
            out["recent"] = getattr(f, f"{p}_rec")[rows]
            out["recent_time"] = getattr(f, f"{p}_rec_time")[rows]
        if "sage" in needs:  # hop 1: the other side; hop 2: back to this side (pad where hop 1 is padding)
            nb = sample_neighbors(adj_own, rows, fanouts[0], n_other, salt)
            nb2 = sample_neighbors(adj_other, snapshot[:, None] * n_other + np.minimum(nb, n_other - 1),
                                   fanouts[1], n_own, salt + 1)
            out.update({"nb": nb, "nb2": np.where((nb == n_other)[..., None], n_own, nb2)})
        dynamic = self._dynamic(kind, ids, time, fanouts, deep_bound) if "dynamic" in needs else None
        return NodeSide(**{k: _tensor(v) for k, v in out.items()}, dynamic=dynamic)

    def _dynamic(self, kind: str, ids, time, fanouts, deep_bound) -> DynamicNeighborhood:
        """DSGL's neighbourhood of nodes ``ids`` at sample times ``time`` (gaps ``t - edge time``)."""
        if self.events is None:
            raise ValueError("this CTRData has no event graph (events=None); build it with build_ctr_data")
        hops = sample_dynamic(self.events, ids, time, fanouts, side=kind, deep_bound=deep_bound)
        t = np.asarray(time, np.int64)
        gaps = []
        for h, (x, ts) in enumerate(zip(hops.ids, hops.times)):
            g = t.reshape((-1,) + (1,) * (h + 1)) - ts
            gaps.append(_tensor(np.where(x == hops.pads[h], 0, g)))
        return DynamicNeighborhood(tuple(_tensor(x) for x in hops.ids), tuple(gaps), hops.pads)

    def loader(self, part: str, batch_size: int, needs: frozenset, *, shuffle: bool,
               fanouts: tuple[int, ...] = (10, 5), deep_bound: str = "sample"):
        """``batches(epoch, rng)`` for :class:`~recgraph.train.trainer.Trainer`."""
        samples = self.part(part)

        def batches(epoch: int, rng: np.random.Generator):
            order = rng.permutation(len(samples)) if shuffle else np.arange(len(samples))
            salt = int(rng.integers(1, 2**62)) if shuffle else 0
            for a in range(0, len(order), batch_size):
                yield self.batch(samples, order[a:a + batch_size], needs, salt=salt + a, fanouts=fanouts,
                                 deep_bound=deep_bound)

        return batches

    def describe(self) -> dict:
        return {"train": self.train.describe(), "valid": self.valid.describe(), "test": self.test.describe(),
                "dropped": self.dropped, "protocol": self.protocol,
                "macros": {"item": self.features.n_item_macros, "user": self.features.n_user_macros}}


# ----------------------------------------------------------------------------- construction

def _label_mode(inter: Interactions, labels: str) -> str:
    if labels != "auto":
        if labels not in ("rating", "implicit"):
            raise ValueError(f"labels must be 'auto', 'rating' or 'implicit', got {labels!r}")
        return labels
    explicit = inter.label is not None and inter.behavior is None and not inter.name.startswith("amazon")
    return "rating" if explicit else "implicit"


def _sample_negatives(pos_u, pos_t, ev_item_by_time, ev_time_sorted, pair_keys, n_items, ratio, rng):
    """``ratio`` popularity-at-time negatives per positive; returns (user, item, time, src index) and
    the number of draws given up on."""
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
        ok = pair_keys[pos] != key
        item[todo[ok]] = cand[ok]
        todo = todo[~ok]
    good = item >= 0
    return u[good], item[good], t[good], src[good], int((~good).sum())


def build_ctr_data(inter: Interactions, protocol: str = "macgnn-quantile", *, labels: str = "auto",
                   positive_threshold: float = 4.0, neg_ratio: int = 1, q_train: float = 0.8,
                   q_test: float = 0.9, valid_quantile: float = 0.88, valid_carve: str = "random",
                   valid_fraction: float = 0.2, n_snapshots: int = 10,
                   item_macro: str = "auto", item_k: int = 50, user_k: int = 20, recent: int = 20,
                   max_slots: int = 64, seed: int = 0) -> CTRData:
    """CTR samples + feature tables for ``protocol`` (see the module docstring)."""
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
        pair_keys = np.unique(p_user * ni + p_item)
        nu_, ni_, nt_, nsrc, failed = _sample_negatives(pos_u, pos_t, p_item[by_time], p_time[by_time],
                                                        pair_keys, ni, int(neg_ratio), rng)
        dropped["negatives_not_drawn"] = failed
        s_user = np.concatenate([pos_u, nu_])
        s_item = np.concatenate([pos_i, ni_])
        s_time = np.concatenate([pos_t, nt_])
        s_label = np.concatenate([np.ones(len(pos_u), np.float32), np.zeros(len(nu_), np.float32)])
        s_group = np.concatenate([np.arange(len(pos_u)), nsrc])  # negatives follow their positive
        label_desc = (f"implicit: every event positive (first occurrence per user-item pair is a sample); "
                      f"{neg_ratio}:1 negatives drawn at the sample's time with probability proportional to "
                      "item popularity strictly before that time; items the user ever interacted with rejected")

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
        fit_snapshot = 0
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
        proto = {"name": protocol, "n_snapshots": int(len(cutoffs)),
                 "test": "per user, last positive + its paired negatives", "valid": "the positive before (+ negatives)",
                 "features": "latest global snapshot with cutoff <= sample time (positives strictly before the cutoff)"}

    feats = build_feature_tables(p_user, p_item, p_time, nu, ni, cutoffs, fit_snapshot=fit_snapshot,
                                 category=inter.item_features.get("category"), item_macro=item_macro,
                                 item_k=item_k, user_k=user_k, recent=recent, max_slots=max_slots, seed=seed)
    warm = (feats.user_deg[snap * nu + s_user] > 0) & (feats.item_deg[snap * ni + s_item] > 0)
    everything = CTRSamples(s_user, s_item, s_label.astype(np.float32), s_time, snap)
    parts = []
    for k, name in enumerate(("train", "valid", "test")):
        inpart = part == k
        dropped[f"{name}_cold_user_or_item"] = int((inpart & ~warm).sum())
        sel = np.flatnonzero(inpart & warm)
        sel = sel[np.lexsort((sel, s_time[sel]))]
        parts.append(everything.select(sel))
    proto.update({"labels": label_desc, "neg_ratio": int(neg_ratio) if mode == "implicit" else None,
                  "cold": "samples whose user or item has no positive in its feature snapshot are dropped (counted)",
                  "selection": "validation split (never test)",
                  "item_macro": item_macro if item_macro != "auto" else
                  ("category" if inter.item_features.get("category") is not None else "kmeans-rows"),
                  "item_k": item_k, "user_k": user_k, "recent": recent, "max_slots": max_slots})
    return CTRData(parts[0], parts[1], parts[2], feats, nu, ni, proto, dropped, inter.name,
                   events=time_graph(p_user, p_item, p_time, nu, ni))
