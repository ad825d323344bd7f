"""Per-user leave-last-out CTR samples with exact strictly-before histories (the DCCL / DIN protocol).

:func:`build_sequence_ctr` turns an :class:`~recgraph.data.schema.Interactions` log into

* **training samples** — every interaction of a user except its last two (ordered by time, ties by
  log order), label 1, plus ``neg_ratio`` negatives per positive drawn uniformly from the items the
  user has no *training* interaction with (so a later, held-out item can be a training negative:
  nothing about the held-out items leaks into training);
* **validation rows** — the second-to-last interaction, and **test rows** — the last one, each with
  ``n_eval_neg`` (default 100) distinct uniform negatives among the items the user *never*
  interacted with (the sampled protocol of :func:`recgraph.eval.protocols.evaluate_sampled`).

Every sample's features are the user's ``recent`` latest interactions with a timestamp **strictly
before** the sample's own (events at the same second are not history), most recent first, padded
with ``n_items``. The global-snapshot features of :mod:`recgraph.data.ctr` suit time-quantile splits
but drop most users under per-user leave-last-out (MovieLens users rate in bursts: with 10 global
snapshots only 245 of 943 users keep a test sample), so this protocol computes each sample's own
history instead — vectorised, one gather of ``[N, recent]`` positions.

Users with fewer than 3 interactions keep them all in training (counted in ``dropped``). The user
*profile* (categorical fields of ``Interactions.user_features``: MovieLens age bucket, gender,
occupation) comes along as ``profile [n_users, P]`` codes into one shared table (field offsets
applied; code ``offset + card`` = unknown).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from .batch import CTRBatch, NodeSide
from .sampling import positive_keys, sample_negatives
from .schema import Interactions

__all__ = ["SeqTrain", "EvalRows", "SequenceCTRData", "build_sequence_ctr", "AGE_BINS"]

AGE_BINS = (18, 25, 35, 45, 50, 56)  # MovieLens-1M's age groups: <18, 18-24, ..., 56+


@dataclass(frozen=True, eq=False)
class SeqTrain:
    user: np.ndarray         # [N] int64
    item: np.ndarray         # [N] int64
    label: np.ndarray        # [N] float32
    time: np.ndarray         # [N] int64
    recent: np.ndarray       # [N, R] int64 (pad n_items)
    recent_time: np.ndarray  # [N, R] int64 (pad -1)

    def __len__(self) -> int:
        return len(self.user)


@dataclass(frozen=True, eq=False)
class EvalRows:
    """One row per evaluated user: its held-out positive, ``N`` negatives and its history."""

    user: np.ndarray         # [U] int64
    pos: np.ndarray          # [U] int64
    neg: np.ndarray          # [U, N] int64, distinct per row, never interacted by the user
    time: np.ndarray         # [U] int64
    recent: np.ndarray       # [U, R] int64
    recent_time: np.ndarray  # [U, R] int64

    def __len__(self) -> int:
        return len(self.user)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


@dataclass(frozen=True, eq=False)
class SequenceCTRData:
    train: SeqTrain
    valid: EvalRows
    test: EvalRows
    n_users: int
    n_items: int
    item_macro: np.ndarray        # [n_items] int64
    n_item_macros: int
    profile: np.ndarray           # [n_users, P] int64 codes into one table of size profile_size
    profile_fields: tuple
    profile_size: int
    train_positives: np.ndarray   # [n_users] int64 training interactions per user
    protocol: dict
    dropped: dict = field(default_factory=dict)
    name: str = ""

    def batch(self, idx: np.ndarray) -> CTRBatch:
        """Training samples ``idx`` as a :class:`CTRBatch` (user side: ids, recent, recent_time)."""
        t = self.train
        user = NodeSide(ids=_tensor(t.user[idx]), macro=torch.zeros(len(idx), dtype=torch.int64),
                        recent=_tensor(t.recent[idx]), recent_time=_tensor(t.recent_time[idx]))
        item = NodeSide(ids=_tensor(t.item[idx]), macro=_tensor(self.item_macro[t.item[idx]]))
        return CTRBatch(user=user, item=item, label=_tensor(t.label[idx]), time=_tensor(t.time[idx]))

    def loader(self, batch_size: int):
        """``batches(epoch, rng)`` over the shuffled training samples, for :class:`~recgraph.train.trainer.Trainer`."""
        def batches(epoch: int, rng: np.random.Generator):
            order = rng.permutation(len(self.train))
            for a in range(0, len(order), batch_size):
                yield self.batch(order[a:a + batch_size])

        return batches

    def part(self, name: str) -> EvalRows:
        if name not in ("valid", "test"):
            raise ValueError(f"evaluation part must be 'valid' or 'test', got {name!r}")
        return self.valid if name == "valid" else self.test

    def candidate_batch(self, rows: EvalRows, sel: np.ndarray, items: np.ndarray) -> CTRBatch:
        """Rows ``sel`` against their candidates ``items [len(sel), C]`` as one flat batch of
        ``len(sel) * C`` samples (each row's history repeated per candidate); labels: column 0 = 1."""
        c = items.shape[1]
        rep = np.repeat(sel, c)
        flat = items.reshape(-1).astype(np.int64)
        user = NodeSide(ids=_tensor(rows.user[rep]), macro=torch.zeros(len(rep), dtype=torch.int64),
                        recent=_tensor(rows.recent[rep]), recent_time=_tensor(rows.recent_time[rep]))
        item = NodeSide(ids=_tensor(flat), macro=_tensor(self.item_macro[flat]))
        label = np.zeros((len(sel), c), np.float32)
        label[:, 0] = 1.0
        return CTRBatch(user=user, item=item, label=_tensor(label.reshape(-1)), time=_tensor(rows.time[rep]))

    def describe(self) -> dict:
        return {"train_samples": len(self.train), "train_positives": int(self.train.label.sum()),
                "valid_rows": len(self.valid), "test_rows": len(self.test), "n_users": self.n_users,
                "n_items": self.n_items, "item_macros": self.n_item_macros,
                "profile_fields": list(self.profile_fields), "dropped": self.dropped}


def _histories(user: np.ndarray, item: np.ndarray, time: np.ndarray, at: np.ndarray, recent: int,
               n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """For events sorted by (user, time), the ``recent`` latest items strictly before each event
    ``at`` (indices into the sorted arrays): ``[len(at), recent]`` ids (pad ``n_items``) and times (-1)."""
    n = len(user)
    new_user = np.ones(n, bool)
    new_user[1:] = user[1:] != user[:-1]
    user_start = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))
    new_tie = new_user.copy()
    new_tie[1:] |= time[1:] != time[:-1]
    tie_start = np.maximum.accumulate(np.where(new_tie, np.arange(n), 0))
    s = tie_start[at]
    pos = s[:, None] - 1 - np.arange(recent)[None, :]
    ok = pos >= user_start[at][:, None]
    posc = np.maximum(pos, 0)
    return np.where(ok, item[posc], n_items), np.where(ok, time[posc], -1)


def _distinct_negatives(users: np.ndarray, n_items: int, positives: sp.csr_matrix, n_neg: int,
                        rng: np.random.Generator) -> np.ndarray:
    """``[B, n_neg]`` uniform negatives, distinct within a row, none a positive of its user
    (duplicate slots redrawn in vectorised rounds)."""
    keys = positive_keys(positives)
    n_pos = np.diff(positives.tocsr().indptr)[users]
    if (n_items - n_pos < n_neg).any():
        u = int(users[np.flatnonzero(n_items - n_pos < n_neg)[0]])
        raise ValueError(f"user {u} has fewer than {n_neg} items it never interacted with; lower n_eval_neg")
    neg = sample_negatives(users, n_items, positives, n_neg, rng=rng, keys=keys)
    for _ in range(100):
        srt = np.sort(neg, axis=1)
        dup_sorted = np.zeros_like(neg, dtype=bool)
        dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
        if not dup_sorted.any():
            return neg
        # mark the second+ occurrence in the original order
        order = np.argsort(neg, axis=1, kind="stable")
        dup = np.zeros_like(dup_sorted)
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        r, c = np.nonzero(dup)
        neg[r, c] = sample_negatives(users[r], n_items, positives, 1, rng=rng, keys=keys)[:, 0]
    raise RuntimeError("could not draw distinct negatives in 100 rounds")


def _profile(inter: Interactions) -> tuple[np.ndarray, tuple, int]:
    feats = inter.user_features or {}
    cols, names, offset = [], [], 0
    for name in sorted(feats):
        v = np.asarray(feats[name])
        if v.ndim != 1 or len(v) != inter.n_users or not np.issubdtype(v.dtype, np.integer):
            continue  # only per-user categorical / integer fields
        if name == "age":
            code = np.where(v < 0, -1, np.searchsorted(np.asarray(AGE_BINS), v, side="right"))
            card = len(AGE_BINS) + 1
        else:
            code = v.astype(np.int64)
            card = int(code.max(initial=-1)) + 1
        code = np.where(code < 0, card, code)  # unknown
        cols.append(code + offset)
        names.append(name)
        offset += card + 1
    prof = np.stack(cols, axis=1).astype(np.int64) if cols else np.zeros((inter.n_users, 0), np.int64)
    return prof, tuple(names), offset


def build_sequence_ctr(inter: Interactions, *, neg_ratio: int = 1, n_eval_neg: int = 100, recent: int = 20,
                       seed: int = 0) -> SequenceCTRData:
    """Leave-last-out samples with strictly-before histories (module docstring)."""
    if inter.timestamp is None:
        raise ValueError(f"{inter.name or 'data'} has no timestamps; leave-last-out needs an order")
    if neg_ratio < 0 or n_eval_neg < 1 or recent < 1:
        raise ValueError(f"need neg_ratio >= 0, n_eval_neg >= 1, recent >= 1; got {neg_ratio}, {n_eval_neg}, {recent}")
    rng = np.random.default_rng([seed, 19])
    nu, ni = inter.n_users, inter.n_items
    u0, i0, t0 = (np.asarray(a, np.int64) for a in (inter.user, inter.item, inter.timestamp))
    order = np.lexsort((np.arange(len(u0)), t0, u0))
    u, i, t = u0[order], i0[order], t0[order]
    key = u * ni + i
    first = np.zeros(len(key), bool)  # first occurrence of each (user, item) pair
    first[np.unique(key, return_index=True)[1]] = True
    dropped = {"repeat_pairs": int((~first).sum())}
    u, i, t = u[first], i[first], t[first]
    n = len(u)
    counts = np.bincount(u, minlength=nu)
    ends = np.cumsum(counts)
    from_end = ends[u] - np.arange(n)  # 1 = the user's last interaction
    few = counts[u] < 3
    dropped["users_with_fewer_than_3_interactions_train_only"] = int(((counts > 0) & (counts < 3)).sum())
    part = np.where(few, 0, np.where(from_end == 1, 2, np.where(from_end == 2, 1, 0)))

    tr = np.flatnonzero(part == 0)
    rec, rec_t = _histories(u, i, t, tr, recent, ni)
    train_csr = sp.csr_matrix((np.ones(len(tr), np.float32), (u[tr], i[tr])), shape=(nu, ni))
    all_csr = sp.csr_matrix((np.ones(n, np.float32), (u, i)), shape=(nu, ni))
    parts_u, parts_i, parts_y, parts_t, parts_r, parts_rt = [u[tr]], [i[tr]], [np.ones(len(tr), np.float32)], \
        [t[tr]], [rec], [rec_t]
    if neg_ratio:
        src = np.repeat(np.arange(len(tr)), neg_ratio)
        neg = sample_negatives(u[tr][src], ni, train_csr, 1, rng=rng)[:, 0]
        parts_u.append(u[tr][src]), parts_i.append(neg), parts_y.append(np.zeros(len(src), np.float32))
        parts_t.append(t[tr][src]), parts_r.append(rec[src]), parts_rt.append(rec_t[src])
    train = SeqTrain(np.concatenate(parts_u), np.concatenate(parts_i), np.concatenate(parts_y),
                     np.concatenate(parts_t), np.concatenate(parts_r), np.concatenate(parts_rt))

    evals = []
    for k in (1, 2):
        at = np.flatnonzero(part == k)
        r, rt = _histories(u, i, t, at, recent, ni)
        negs = _distinct_negatives(u[at], ni, all_csr, n_eval_neg, rng)
        evals.append(EvalRows(u[at], i[at], negs, t[at], r, rt))

    cat = (inter.item_features or {}).get("category")
    if cat is not None:
        cat = np.asarray(cat, np.int64)
        n_im = int(cat.max(initial=-1)) + 2
        item_macro = np.where(cat < 0, n_im - 1, cat)
    else:
        n_im, item_macro = 1, np.zeros(ni, np.int64)
    prof, fields, psize = _profile(inter)
    proto = {"name": "leave-last-out-sampled",
             "split": "per user (ordered by time, ties by log order): last interaction = test, the one "
                      "before = validation, the rest training; users with < 3 interactions train only",
             "features": f"the {recent} latest interactions strictly before the sample's timestamp",
             "train_negatives": f"{neg_ratio} per positive, uniform over items without a training "
                                "interaction of the user",
             "eval_candidates": f"1 positive + {n_eval_neg} distinct uniform negatives the user never "
                                "interacted with",
             "labels": "implicit: every (first) user-item interaction is a positive",
             "item_macro": "category" if cat is not None else "none (one macro)",
             "profile_fields": list(fields), "seed": seed}
    return SequenceCTRData(train, evals[0], evals[1], nu, ni, item_macro, n_im, prof, fields, psize,
                           np.bincount(u[tr], minlength=nu).astype(np.int64), proto, dropped, inter.name)
