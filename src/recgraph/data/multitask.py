"""Multi-task ranking samples: one row per impression, one label per task, leak-free features.

Protocol ``"daily-window"`` (the only one; stamped into ``MultiTaskData.protocol``), for a
multi-behaviour log with timestamps (Taobao UserBehavior: ``pv`` / ``cart`` / ``fav`` / ``buy``):

* **Impressions.** Every ``impression`` event (``pv``) is an exposure; repeated views of the same
  (user, item) on the same day are one impression (the first of that day), so a label is not
  counted several times for one decision.
* **Labels.** For task ``b`` (a behaviour name, e.g. ``cart``) the label is 1 when the same user
  has a ``b`` event on the same item at time ``t_imp <= t <= t_imp + window`` (default 24 h), else
  0. Negatives are therefore *real* non-converted impressions; nothing is sampled. Behaviours that
  happen without a preceding view (about half of Taobao's carts) are not impressions and give no
  sample — they still enter the feature graphs.
* **Periods and snapshots.** Days are ``floor((t + offset) / period)`` (default: calendar days in
  UTC+8, Taobao's time zone). With ``D`` the log's last day: test = impressions of day ``D-1``,
  validation = day ``D-2``, training = the ``train_periods`` days before. Impressions of day ``D``
  (their label window would run past the end of the log) and of earlier days are dropped and
  counted; so is any impression whose window ends after the last event (censored label).
  A sample of day ``d`` uses feature snapshot ``d``: events with ``t < start of day d`` — strictly
  before the sample's snapshot cutoff, hence strictly before the impression and its label window
  (``tests/data/test_multitask.py`` checks this from the raw log).
* **Graphs.** The *shared* graph = every logged event (all behaviours, as the implicit CTR protocol
  of :mod:`recgraph.data.ctr`); the graph of task ``b`` = the ``b`` events only. Each gets the same
  :func:`recgraph.data.ctr.build_feature_tables` (macro counts, slots, recent lists) per snapshot —
  one builder, run once per graph. Macro *nodes* are shared: item macros (category where there
  is one) and user k-means clusters are fitted once on the shared graph at the first snapshot and
  reused for every task graph (``macros=``), so a task graph differs only in its edges and counts
  and macro embeddings can be shared by the tasks. ``MultiTaskData.memory`` has the bytes per graph.
* **Cold samples are kept** (counted in ``dropped``/``cold``): most Taobao impressions are of items
  that nobody touched before (55k items for 84k events); dropping them, as the CTR protocols do,
  would keep a biased minority of the impressions. Cold nodes have empty slots (zero weights).
* **Rare tasks.** Nothing is re-weighted or up-sampled: the positive rate per task and part is
  reported in ``protocol["positives"]``. A task with fewer than ``min_positives`` positives in
  any part is an error naming the task, part and count (its AUC would be noise); GAUC averages
  over the users that have both labels *for that task* (their count is reported per task).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from .batch import CTRBatch, NodeSide
from .ctr import CTRData, CTRSamples, FeatureTables, build_feature_tables
from .schema import Interactions

__all__ = ["MultiTaskSamples", "MultiTaskBatch", "MultiTaskData", "build_multitask_data", "table_bytes",
           "behavior_feature_tables", "PROTOCOL"]

PROTOCOL = "daily-window"


@dataclass(frozen=True, eq=False)
class MultiTaskSamples:
    user: np.ndarray      # [N] int64
    item: np.ndarray      # [N] int64
    time: np.ndarray      # [N] int64 impression time
    snapshot: np.ndarray  # [N] int64 feature snapshot
    labels: np.ndarray    # [N, T] float32 0/1, one column per task

    def __len__(self) -> int:
        return len(self.user)

    def select(self, idx) -> "MultiTaskSamples":
        return MultiTaskSamples(self.user[idx], self.item[idx], self.time[idx], self.snapshot[idx], self.labels[idx])

    def as_ctr(self, task: int | None = None) -> CTRSamples:
        """Single-label view: column ``task``, or "any task positive" when None."""
        y = self.labels.max(axis=1) if task is None else self.labels[:, task]
        return CTRSamples(self.user, self.item, np.ascontiguousarray(y, np.float32), self.time, self.snapshot)

    def describe(self, tasks: tuple[str, ...]) -> dict:
        return {"samples": len(self), "users": int(np.unique(self.user).size),
                "items": int(np.unique(self.item).size),
                "positives": {t: int(self.labels[:, k].sum()) for k, t in enumerate(tasks)}}


@dataclass(frozen=True, eq=False)
class MultiTaskBatch(CTRBatch):
    """A :class:`CTRBatch` (shared-graph features in ``user`` / ``item``, per-task labels in
    ``labels [B, T]``) plus, when the model needs ``"task_macro"``, the macro slots of each task's
    own graph: ``task_user[k]`` / ``task_item[k]`` (``hop1`` / ``hop2`` ids and counts)."""

    task_user: tuple = field(default=(), metadata={"tensor": False})   # T × NodeSide
    task_item: tuple = field(default=(), metadata={"tensor": False})   # T × NodeSide

    def to(self, device=None, float_dtype=None) -> "MultiTaskBatch":
        base = CTRBatch.to(self, device, float_dtype)  # skips the task sides (metadata tensor=False)
        return dataclasses.replace(base, task_user=tuple(s.to(device, float_dtype) for s in self.task_user),
                                   task_item=tuple(s.to(device, float_dtype) for s in self.task_item))


def table_bytes(ft: FeatureTables) -> int:
    """Bytes held by one graph's feature tables (arrays + CSR buffers)."""
    total = 0
    for f in dataclasses.fields(ft):
        v = getattr(ft, f.name)
        if isinstance(v, np.ndarray):
            total += v.nbytes
        elif sp.issparse(v):
            total += v.data.nbytes + v.indices.nbytes + v.indptr.nbytes
    return int(total)


@dataclass(frozen=True, eq=False)
class MultiTaskData:
    tasks: tuple[str, ...]
    train: MultiTaskSamples
    valid: MultiTaskSamples
    test: MultiTaskSamples
    shared: CTRData                 # shared (all-behaviour) graph features
    task_data: tuple[CTRData, ...]  # one per task: that behaviour's graph (same macro nodes)
    protocol: dict
    dropped: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    name: str = ""

    @property
    def n_users(self) -> int:
        return self.shared.n_users

    @property
    def n_items(self) -> int:
        return self.shared.n_items

    @property
    def features(self) -> FeatureTables:
        return self.shared.features

    def part(self, name: str) -> MultiTaskSamples:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def batch(self, samples: MultiTaskSamples, idx: np.ndarray | None = None, needs: frozenset = frozenset(),
              *, salt: int = 0) -> MultiTaskBatch:
        """Batch of ``samples[idx]``: shared-graph features per ``needs`` (see
        :meth:`CTRData.batch`), labels ``[B, T]``, task graphs' macro slots if ``"task_macro"``."""
        s = samples if idx is None else samples.select(idx)
        c = s.as_ctr()
        base = self.shared.batch(c, None, needs - {"task_macro"}, salt=salt)
        tu, ti = (), ()
        if "task_macro" in needs:
            sides = [td.batch(c, None, frozenset({"macro"})) for td in self.task_data]
            tu, ti = tuple(b.user for b in sides), tuple(b.item for b in sides)
        return MultiTaskBatch(user=base.user, item=base.item, label=base.label, time=base.time,
                              labels=torch.from_numpy(np.ascontiguousarray(s.labels, np.float32)),
                              task_user=tu, task_item=ti)

    def request(self, user: int, items: np.ndarray, snapshot: int, needs: frozenset = frozenset(),
                *, time: int | None = None) -> MultiTaskBatch:
        """One user against ``B`` candidates (user side of leading size 1), all tasks' features;
        same values as :meth:`batch` on the ``B`` samples. Argument errors as
        :meth:`CTRData.request`."""
        base = self.shared.request(user, items, snapshot, needs - {"task_macro"}, time=time)
        tu, ti = (), ()
        if "task_macro" in needs:
            sides = [td.request(user, items, snapshot, frozenset({"macro"}), time=time) for td in self.task_data]
            tu, ti = tuple(b.user for b in sides), tuple(b.item for b in sides)
        return MultiTaskBatch(user=base.user, item=base.item, label=base.label, time=base.time,
                              labels=torch.zeros(len(base.label), len(self.tasks)), task_user=tu, task_item=ti)

    def loader(self, part: str, batch_size: int, needs: frozenset, *, shuffle: bool):
        """``batches(epoch, rng)`` for :class:`~recgraph.train.trainer.Trainer`."""
        samples = self.part(part)

        def batches(epoch: int, rng: np.random.Generator):
            order = rng.permutation(len(samples)) if shuffle else np.arange(len(samples))
            for a in range(0, len(order), batch_size):
                yield self.batch(samples, order[a:a + batch_size], needs)

        return batches

    def describe(self) -> dict:
        return {k: self.part(k).describe(self.tasks) for k in ("train", "valid", "test")} | {
            "dropped": self.dropped, "memory_bytes": self.memory, "protocol": self.protocol}


# ----------------------------------------------------------------------------- construction

def _behavior_code(inter: Interactions, name: str) -> int:
    names = tuple(inter.behavior_names)
    if name not in names:
        raise ValueError(f"behaviour {name!r} is not in {inter.name or 'the data'}'s behaviours {names}")
    return names.index(name)


def _label_hits(imp_key, imp_t, ev_key, ev_t, window: int) -> np.ndarray:
    """``[N] bool``: an event of the same key at ``imp_t <= t <= imp_t + window`` exists.
    One sort and two searchsorted on a combined (key, time) code; no loop over samples."""
    t0 = int(min(imp_t.min(initial=0), ev_t.min(initial=0)))
    span = int(max(imp_t.max(initial=0), ev_t.max(initial=0)) - t0 + window + 1)
    if (int(max(imp_key.max(initial=0), ev_key.max(initial=0))) + 1) * span >= 2**62:
        raise ValueError("user x item x time range too large for the combined label code")
    code = np.sort(ev_key * span + (ev_t - t0))
    q = imp_key * span + (imp_t - t0)
    return np.searchsorted(code, q + window, side="right") > np.searchsorted(code, q, side="left")


def build_multitask_data(inter: Interactions, tasks: tuple[str, ...] | list[str] = ("cart", "fav", "buy"), *,
                         impression: str = "pv", window: int = 86400, period: int = 86400, offset: int = 8 * 3600,
                         train_periods: int = 3, min_positives: int = 5, item_macro: str = "auto",
                         item_k: int = 50, user_k: int = 20, recent: int = 20, max_slots: int = 64,
                         seed: int = 0) -> MultiTaskData:
    """Multi-task samples and per-graph feature tables (see the module docstring).

    Args:
        inter: a log with ``behavior`` codes and timestamps.
        tasks: behaviour names, one task each (not the impression behaviour).
        impression: the behaviour that is an exposure (``pv``).
        window: label window after the impression, seconds.
        period, offset: day length and the shift of day boundaries (UTC+8 by default), seconds.
        train_periods: number of days of training impressions before the validation day.
        min_positives: smallest positive count per task and part (else ``ValueError``).
        item_macro, item_k, user_k, recent, max_slots, seed: as :func:`build_feature_tables`.
    """
    tasks = tuple(tasks)
    if inter.timestamp is None or inter.behavior is None:
        raise ValueError(f"{inter.name or 'data'}: multi-task samples need timestamps and behaviour codes")
    if not tasks:
        raise ValueError("tasks: give at least one behaviour name")
    if impression in tasks:
        raise ValueError(f"task {impression!r} is the impression behaviour; it cannot also be a task")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks has duplicates: {tasks}")
    if train_periods < 1 or window < 0 or period <= 0:
        raise ValueError("need train_periods >= 1, window >= 0, period > 0")
    imp_code = _behavior_code(inter, impression)
    task_codes = [_behavior_code(inter, t) for t in tasks]
    nu, ni = inter.n_users, inter.n_items
    u, i = inter.user.astype(np.int64), inter.item.astype(np.int64)
    t, b = inter.timestamp.astype(np.int64), np.asarray(inter.behavior)
    day = (t + offset) // period
    last = int(day.max())
    first_train = last - 2 - train_periods
    dropped: dict = {}

    # impressions: first view of a (user, item) per day
    m = np.flatnonzero(b == imp_code)
    key = u[m] * ni + i[m]
    order = np.lexsort((t[m], day[m], key))
    k_s, d_s = key[order], day[m][order]
    first = np.ones(len(order), bool)
    first[1:] = (k_s[1:] != k_s[:-1]) | (d_s[1:] != d_s[:-1])
    dropped["repeat_views_same_day"] = int(len(order) - first.sum())
    imp = m[order[first]]
    iu, ii, it, iday = u[imp], i[imp], t[imp], day[imp]
    keep = (iday >= first_train) & (iday <= last - 1)
    dropped["outside_periods"] = int((~keep).sum())
    censored = keep & (it + window > t.max())
    dropped["censored_label_window"] = int(censored.sum())
    keep &= ~censored
    iu, ii, it, iday = iu[keep], ii[keep], it[keep], iday[keep]
    o = np.lexsort((ii, iu, it))
    iu, ii, it, iday = iu[o], ii[o], it[o], iday[o]
    labels = np.zeros((len(iu), len(tasks)), np.float32)
    for k, code in enumerate(task_codes):
        e = b == code
        labels[:, k] = _label_hits(iu * ni + ii, it, u[e] * ni + i[e], t[e], window)

    snap = iday - first_train                      # 0 .. train_periods + 1
    cutoffs = (np.arange(first_train, last, dtype=np.int64) * period - offset)  # start of each day
    part = np.where(iday == last - 1, 2, np.where(iday == last - 2, 1, 0))
    everything = MultiTaskSamples(iu, ii, it, snap, labels)
    parts = [everything.select(np.flatnonzero(part == p)) for p in range(3)]

    # feature graphs: shared (every event), then each task's behaviour, over the same macro nodes
    shared_ft = build_feature_tables(u, i, t, nu, ni, cutoffs, fit_snapshot=0,
                                     category=inter.item_features.get("category"), item_macro=item_macro,
                                     item_k=item_k, user_k=user_k, recent=recent, max_slots=max_slots, seed=seed)
    macros = (shared_ft.item_macro, shared_ft.n_item_macros, shared_ft.user_macro, shared_ft.n_user_macros)
    task_ft = []
    for code in task_codes:
        e = b == code
        task_ft.append(build_feature_tables(u[e], i[e], t[e], nu, ni, cutoffs, recent=1, max_slots=max_slots,
                                            macros=macros))
    memory = {"shared": table_bytes(shared_ft), **{f"task:{n}": table_bytes(f) for n, f in zip(tasks, task_ft)}}

    # counts: cold nodes (kept), positives per task and part (rare tasks)
    cold = {}
    for p, name in enumerate(("train", "valid", "test")):
        s = parts[p]
        cold[name] = {"cold_user": int((shared_ft.user_deg[s.snapshot * nu + s.user] == 0).sum()),
                      "cold_item": int((shared_ft.item_deg[s.snapshot * ni + s.item] == 0).sum()),
                      **{f"item_without_{n}_edges": int((f.item_deg[s.snapshot * ni + s.item] == 0).sum())
                         for n, f in zip(tasks, task_ft)}}
    positives = {n: {name: int(parts[p].labels[:, k].sum()) for p, name in enumerate(("train", "valid", "test"))}
                 for k, n in enumerate(tasks)}
    for n, per in positives.items():
        for name, c in per.items():
            if c < min_positives:
                raise ValueError(f"task {n!r} has {c} positive impression(s) in the {name} part "
                                 f"(< min_positives={min_positives}); its AUC would be noise — drop the task, "
                                 f"widen window={window} s or add train_periods")
    proto = {"name": PROTOCOL, "tasks": list(tasks), "impression": impression, "window_s": int(window),
             "period_s": int(period), "offset_s": int(offset), "train_periods": int(train_periods),
             "days": {"train": [int(first_train), int(last - 3)], "valid": int(last - 2), "test": int(last - 1),
                      "dropped_last": int(last)},
             "labels": f"task b = the user has a b event on the item within {window} s after the impression "
                       "(first view of the (user, item) that day); negatives = impressions without it",
             "features": "snapshot = the impression's day: events with t < start of that day",
             "graphs": "shared = every event; task graph = that behaviour's events; macro nodes fitted once on "
                       "the shared graph at the first snapshot and shared by every graph",
             "cold": cold, "positives": positives,
             "positive_rate": {n: {name: round(c / max(len(parts[p]), 1), 5)
                                   for p, (name, c) in enumerate(per.items())} for n, per in positives.items()},
             "rare_tasks": f"no re-weighting; a task with < {min_positives} positives in a part is an error",
             "item_macro": item_macro, "item_k": item_k, "user_k": user_k, "recent": recent, "max_slots": max_slots,
             "selection": "validation day (never test)"}

    def ctr(ft: FeatureTables) -> CTRData:
        return CTRData(parts[0].as_ctr(), parts[1].as_ctr(), parts[2].as_ctr(), ft, nu, ni,
                       {"name": PROTOCOL}, {}, inter.name)

    return MultiTaskData(tasks, parts[0], parts[1], parts[2], ctr(shared_ft), tuple(ctr(f) for f in task_ft),
                         proto, dropped, memory, inter.name)


def behavior_feature_tables(inter: Interactions, behaviors: tuple[str, ...] | None = None, *,
                            item_macro: str = "auto", item_k: int = 50, user_k: int = 20, max_slots: int = 64,
                            seed: int = 0) -> tuple[FeatureTables, dict[str, FeatureTables], dict[str, int]]:
    """Per-behaviour macro graphs of a *static* multi-behaviour log (Tmall, Beibei, Taobao-GHCF: no
    timestamps, so one snapshot holding every given event — pass the training split to stay
    leak-free). Returns ``(shared tables, {behaviour: tables}, bytes per graph)``; all graphs use
    the macro nodes fitted on the shared (all-behaviour) graph."""
    if inter.behavior is None:
        raise ValueError(f"{inter.name or 'data'} has no behaviour codes")
    names = tuple(inter.behavior_names)
    behaviors = names if behaviors is None else tuple(behaviors)
    codes = [_behavior_code(inter, n) for n in behaviors]
    u, i = inter.user.astype(np.int64), inter.item.astype(np.int64)
    t = np.zeros(len(u), np.int64) if inter.timestamp is None else inter.timestamp.astype(np.int64)
    cut = np.array([int(t.max(initial=0)) + 1], np.int64)
    shared = build_feature_tables(u, i, t, inter.n_users, inter.n_items, cut, category=inter.item_features.get(
        "category"), item_macro=item_macro, item_k=item_k, user_k=user_k, recent=1, max_slots=max_slots, seed=seed)
    macros = (shared.item_macro, shared.n_item_macros, shared.user_macro, shared.n_user_macros)
    b = np.asarray(inter.behavior)
    per = {n: build_feature_tables(u[b == c], i[b == c], t[b == c], inter.n_users, inter.n_items, cut, recent=1,
                                   max_slots=max_slots, macros=macros) for n, c in zip(behaviors, codes)}
    return shared, per, {"shared": table_bytes(shared), **{n: table_bytes(f) for n, f in per.items()}}
