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
* **Graphs** (built by :mod:`recgraph.graph.task_graphs` from the :class:`MultiTaskSplit`): the
  *shared* graph = every logged event (all behaviours, as the implicit CTR protocol of
  :mod:`recgraph.data.ctr`); the graph of task ``b`` = the ``b`` events only.
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

from .batch import CTRBatch
from .ctr import CTRSamples
from .schema import Interactions

__all__ = ["MultiTaskSamples", "MultiTaskBatch", "MultiTaskSplit", "build_multitask_samples", "PROTOCOL"]

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


@dataclass(frozen=True, eq=False)
class MultiTaskSplit:
    """Multi-task samples before features: the three parts, every event of the log (the feature
    graphs' edges: ``behavior`` picks a task's graph) and the snapshot cutoffs."""

    tasks: tuple[str, ...]
    train: MultiTaskSamples
    valid: MultiTaskSamples
    test: MultiTaskSamples
    user: np.ndarray        # [E] every event
    item: np.ndarray
    time: np.ndarray
    behavior: np.ndarray
    task_codes: tuple[int, ...]
    cutoffs: np.ndarray     # [S] exclusive: snapshot s uses events with t < cutoffs[s]
    n_users: int
    n_items: int
    protocol: dict
    dropped: dict
    category: np.ndarray | None = None
    name: str = ""

    def part(self, name: str) -> MultiTaskSamples:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]


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


def build_multitask_samples(inter: Interactions, tasks: tuple[str, ...] | list[str] = ("cart", "fav", "buy"), *,
                         impression: str = "pv", window: int = 86400, period: int = 86400, offset: int = 8 * 3600,
                            train_periods: int = 3, min_positives: int = 5) -> MultiTaskSplit:
    """Multi-task samples of the ``daily-window`` protocol (see the module docstring); the feature
    tables come from :func:`recgraph.graph.task_graphs.multitask_features`.

    Args:
        inter: a log with ``behavior`` codes and timestamps.
        tasks: behaviour names, one task each (not the impression behaviour).
        impression: the behaviour that is an exposure (``pv``).
        window: label window after the impression, seconds.
        period, offset: day length and the shift of day boundaries (UTC+8 by default), seconds.
        train_periods: number of days of training impressions before the validation day.
        min_positives: smallest positive count per task and part (else ``ValueError``).
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
             "positives": positives,
             "positive_rate": {n: {name: round(c / max(len(parts[p]), 1), 5)
                                   for p, (name, c) in enumerate(per.items())} for n, per in positives.items()},
             "rare_tasks": f"no re-weighting; a task with < {min_positives} positives in a part is an error",
             "selection": "validation day (never test)"}

    return MultiTaskSplit(tasks, parts[0], parts[1], parts[2], u, i, t, b, tuple(task_codes), cutoffs, nu, ni, proto,
                          dropped, inter.item_features.get("category"), inter.name)
