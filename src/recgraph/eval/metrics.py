"""Metrics as pure functions over arrays.

Top-K (one row per user, from a hit matrix)
-------------------------------------------
:func:`topk_metrics` takes ``hits[b, r]`` — "the item at rank ``r`` (0-based) of user ``b``'s
ranked list is relevant" — and ``n_relevant[b]``, the number of relevant items of the user (in the
full-sort protocol: the user's test items that are not excluded). For every ``k`` in ``ks``, with
``h_k = sum_{r<k} hits[b, r]``:

- ``recall@k    = h_k / n_relevant`` — the LightGCN / NGCF / RecBole definition (the denominator
  is *all* relevant items, not ``min(n_relevant, k)``; a user with 30 test items can reach at most
  ``20/30`` recall@20).
- ``precision@k = h_k / k``.
- ``hit@k       = 1 if h_k > 0 else 0``.
- ``ndcg@k      = DCG@k / IDCG@k`` with binary relevance, ``DCG@k = sum_{r<k} hits[b, r] / log2(r + 2)``
  (rank ``r + 1`` is 1-based, so the first position has discount ``1/log2(2) = 1``) and
  ``IDCG@k = sum_{r < min(n_relevant, k)} 1 / log2(r + 2)`` (the ideal list puts
  ``min(n_relevant, k)`` hits first) — the LightGCN / RecBole definition.
- ``mrr@k       = 1 / (r + 1)`` for the first hit at 0-based rank ``r < k``, else 0.

A row with ``n_relevant == 0`` gets 0 for every metric (the protocols never evaluate such users).

CTR (one entry per impression)
------------------------------
- :func:`auc` — ROC AUC by the rank-sum (Mann–Whitney) formula; tied scores get their average
  rank, i.e. a positive–negative pair with equal scores counts 1/2. Equals
  ``sklearn.metrics.roc_auc_score``.
- :func:`gauc` — group AUC: the AUC of every user that has both a positive and a negative
  impression, averaged with weight = that user's number of impressions. Users with a single class
  are left out (their count is returned by :func:`gauc_with_count`).
- :func:`logloss` — mean binary cross-entropy of probabilities clipped to ``[eps, 1 - eps]``.

Labels are 0/1 (bool, int or float); anything else, NaN, or arrays of unequal length raise
``ValueError`` with the reason. Inputs may be numpy arrays, torch tensors or lists.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["topk_metrics", "TOPK_METRICS", "auc", "gauc", "gauc_with_count", "logloss",
           "average_ranks"]

TOPK_METRICS = ("recall", "ndcg", "hit", "precision", "mrr")


# ----------------------------------------------------------------------------- input handling

def _to_numpy(x, name: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            if x.dtype == torch.bfloat16:
                x = x.float()
            return x.numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - defensive
        raise ValueError(f"{name}: cannot be read as an array ({exc})") from exc


def _as_1d(x, name: str) -> np.ndarray:
    a = _to_numpy(x, name)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (or [n, 1]), got shape {a.shape}")
    return a


def _check_no_nan(a: np.ndarray, name: str) -> None:
    if a.dtype.kind == "f" or a.dtype.kind == "c":
        bad = np.isnan(a)
        if bad.any():
            first = int(np.flatnonzero(bad.ravel())[0])
            raise ValueError(f"{name} has {int(bad.sum())} NaN value(s), first at position {first}")


def _binary_labels(labels, name: str = "labels") -> np.ndarray:
    y = _as_1d(labels, name)
    if y.dtype == bool:
        return y
    if y.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numeric 0/1 or bool, got dtype {y.dtype}")
    _check_no_nan(y, name)
    ok = (y == 0) | (y == 1)
    if not ok.all():
        first = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"{name} must be 0 or 1; position {first} holds {y[first]!r} "
                         f"({int((~ok).sum())} such value(s))")
    return y == 1


def _scores(x, name: str, n: int) -> np.ndarray:
    s = _as_1d(x, name)
    if s.dtype == bool:
        s = s.astype(np.int8)
    if s.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numeric, got dtype {s.dtype}")
    if len(s) != n:
        raise ValueError(f"length mismatch: labels has {n} entries, {name} has {len(s)}")
    _check_no_nan(s, name)
    return s


# ----------------------------------------------------------------------------- top-K

def topk_metrics(hits, n_relevant, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-row top-K metrics from a hit matrix (definitions in the module docstring).

    Args:
        hits: ``[B, K]`` bool (numpy or torch); ``hits[b, r]`` is True if the item at 0-based rank
            ``r`` of row ``b`` is relevant.
        n_relevant: ``[B]`` int, relevant items per row; must be ``>= hits[b].sum()``.
        ks: cut-offs, each in ``[1, K]``.

    Returns:
        ``{"recall@k": [B], "ndcg@k": [B], "hit@k": [B], "precision@k": [B], "mrr@k": [B]}`` for
        every ``k`` (float64 arrays), keys ordered metric-major.
    """
    h = _to_numpy(hits, "hits")
    if h.ndim != 2:
        raise ValueError(f"hits must be [B, K], got shape {h.shape}")
    h = h.astype(bool, copy=False)
    b, kmax = h.shape
    nrel = _as_1d(n_relevant, "n_relevant")
    if nrel.dtype.kind not in "iu":
        if nrel.dtype.kind == "f" and np.all(np.isfinite(nrel)) and np.all(nrel == np.round(nrel)):
            nrel = nrel.astype(np.int64)
        else:
            raise ValueError(f"n_relevant must hold integers, got dtype {nrel.dtype}")
    nrel = nrel.astype(np.int64, copy=False)
    if len(nrel) != b:
        raise ValueError(f"length mismatch: hits has {b} rows, n_relevant has {len(nrel)}")
    ks = [int(k) for k in ks]
    if not ks:
        raise ValueError("ks is empty")
    for k in ks:
        if not 1 <= k <= kmax:
            raise ValueError(f"k={k} is outside [1, {kmax}] (hits has {kmax} columns)")
    if (nrel < 0).any():
        raise ValueError("n_relevant must be >= 0")
    cum = np.cumsum(h, axis=1, dtype=np.int64)  # [B, K] hits within the first r+1 ranks
    if b and (cum[:, -1] > nrel).any():
        row = int(np.flatnonzero(cum[:, -1] > nrel)[0])
        raise ValueError(f"row {row} has {int(cum[row, -1])} hits but n_relevant={int(nrel[row])}")

    disc = 1.0 / np.log2(np.arange(kmax, dtype=np.float64) + 2.0)  # [K] 1/log2(rank+1), rank 1-based
    dcg_cum = np.cumsum(h * disc, axis=1)                            # [B, K]
    idcg_table = np.concatenate([[0.0], np.cumsum(disc)])            # [K+1] idcg of n ideal hits
    has = cum[:, -1] > 0 if b else np.zeros(0, bool)
    first = np.where(has, np.argmax(h, axis=1), kmax) if b else np.zeros(0, np.int64)  # 0-based
    safe_rel = np.maximum(nrel, 1)
    pos = nrel > 0

    out: dict[str, np.ndarray] = {}
    per_k = {}
    for k in ks:
        hk = cum[:, k - 1].astype(np.float64) if b else np.zeros(0)
        idcg = idcg_table[np.minimum(nrel, k)]
        dcg = dcg_cum[:, k - 1] if b else np.zeros(0)
        per_k[k] = {
            "recall": np.where(pos, hk / safe_rel, 0.0),
            "ndcg": np.where(pos, dcg / np.where(idcg > 0, idcg, 1.0), 0.0),
            "hit": (hk > 0).astype(np.float64),
            "precision": hk / k,
            "mrr": np.where(first < k, 1.0 / (first + 1.0), 0.0),
        }
    for m in TOPK_METRICS:
        for k in ks:
            out[f"{m}@{k}"] = per_k[k][m]
    return out


# ----------------------------------------------------------------------------- CTR

def average_ranks(sorted_values: np.ndarray, segment_start: np.ndarray | None = None) -> np.ndarray:
    """1-based average ranks of an already sorted array, ties sharing the mean of their ranks.

    With ``segment_start`` (bool ``[n]``, True where a new segment begins; position 0 must be True),
    ranks restart at 1 in every segment and ties never cross a segment boundary. Vectorised.
    """
    n = len(sorted_values)
    if n == 0:
        return np.zeros(0, np.float64)
    new_group = np.empty(n, bool)
    new_group[0] = True
    new_group[1:] = sorted_values[1:] != sorted_values[:-1]
    if segment_start is not None:
        new_group |= segment_start
    starts = np.flatnonzero(new_group)                   # first position of each tie group
    ends = np.append(starts[1:], n)                      # exclusive end
    gid = np.cumsum(new_group) - 1
    avg = (starts + 1 + ends) / 2.0                      # mean of 1-based ranks starts+1 .. ends
    ranks = avg[gid]
    if segment_start is not None:
        seg_first = np.flatnonzero(segment_start)
        sid = np.cumsum(segment_start) - 1
        ranks = ranks - seg_first[sid]
    return ranks


def auc(labels, scores) -> float:
    """ROC AUC with average ranks for ties (== ``sklearn.metrics.roc_auc_score``).

    ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` where ``R_pos`` is the sum of the
    positives' 1-based ranks in ascending score order. Raises ``ValueError`` when only one class
    is present.
    """
    y = _binary_labels(labels)
    s = _scores(scores, "scores", len(y))
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC is undefined with a single class: {n_pos} positive(s), {n_neg} negative(s)")
    order = np.argsort(s, kind="stable")
    ranks = average_ranks(s[order])
    r_pos = float(ranks[y[order]].sum())
    return (r_pos - n_pos * (n_pos + 1) / 2.0) / (float(n_pos) * n_neg)


def gauc_with_count(users, labels, scores) -> tuple[float, int]:
    """:func:`gauc` and the number of users it averaged over (users with both classes)."""
    y = _binary_labels(labels)
    s = _scores(scores, "scores", len(y))
    u = _as_1d(users, "users")
    if len(u) != len(y):
        raise ValueError(f"length mismatch: labels has {len(y)} entries, users has {len(u)}")
    _check_no_nan(u, "users")
    if len(y) == 0:
        raise ValueError("GAUC of an empty set")
    order = np.lexsort((s, u))  # by user, then score ascending
    us, ss, ys = u[order], s[order], y[order]
    seg_start = np.empty(len(us), bool)
    seg_start[0] = True
    seg_start[1:] = us[1:] != us[:-1]
    ranks = average_ranks(ss, seg_start)                 # 1-based within user, ties averaged
    sid = np.cumsum(seg_start) - 1
    n_seg = int(sid[-1]) + 1
    cnt = np.bincount(sid, minlength=n_seg).astype(np.float64)
    n_pos = np.bincount(sid, weights=ys.astype(np.float64), minlength=n_seg)
    n_neg = cnt - n_pos
    r_pos = np.bincount(sid, weights=np.where(ys, ranks, 0.0), minlength=n_seg)
    valid = (n_pos > 0) & (n_neg > 0)
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise ValueError(f"GAUC is undefined: none of the {n_seg} user(s) has both a positive and a negative")
    aucs = (r_pos[valid] - n_pos[valid] * (n_pos[valid] + 1) / 2.0) / (n_pos[valid] * n_neg[valid])
    w = cnt[valid]
    return float((aucs * w).sum() / w.sum()), n_valid


def gauc(users, labels, scores) -> float:
    """Group AUC: per-user AUC (average ranks for ties) over users with both a positive and a
    negative, weighted by the user's number of impressions. One lexsort by (user, score) and
    segment sums — no Python loop over users. Raises ``ValueError`` if no user has both classes."""
    return gauc_with_count(users, labels, scores)[0]


def logloss(labels, probs, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy ``-mean(y log p + (1 - y) log(1 - p))`` with ``p`` clipped to
    ``[eps, 1 - eps]`` (== ``sklearn.metrics.log_loss`` for probabilities away from 0 and 1).
    ``probs`` must lie in ``[0, 1]``; pass ``sigmoid(logit)`` for a model that outputs logits."""
    y = _binary_labels(labels)
    p = _scores(probs, "probs", len(y)).astype(np.float64)
    if len(y) == 0:
        raise ValueError("log loss of an empty set")
    bad = (p < 0) | (p > 1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"probs must lie in [0, 1] (got {p[first]!r} at position {first}); "
                         "apply a sigmoid to logits first")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))
