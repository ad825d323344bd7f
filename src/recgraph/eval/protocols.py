"""Evaluation protocols: full-sort top-K, sampled (1 + N negatives), CTR.

Full sort (:func:`evaluate_full_sort`)
--------------------------------------
Every user with at least one *relevant* test item is ranked against **all items**. Relevant items
of a user are the stored non-zero entries of its ``test`` row that are not in its ``exclude`` row
(training items, plus validation items at test time). Excluded items get score ``-inf`` before the
top-K, so they can never be counted as hits; test entries that are also excluded (repeat
consumption) are dropped from the relevant set and **counted** in ``n_test_pairs_excluded``; users
left with no relevant item are not evaluated (``n_users`` counts the evaluated ones).

Ranking ties are broken by the lower item index, guaranteed (not left to ``torch.topk``), so the
metrics are identical for every ``batch_size`` as long as ``score_fn`` returns the same scores for
a user whatever batch it is in. Memory per chunk is ``O(batch_size × n_items)``; no
``n_users × n_items`` array is built. Metric definitions: :mod:`recgraph.eval.metrics`; means are
taken over evaluated users.

Sampled (:func:`evaluate_sampled`)
----------------------------------
Each row ranks one positive among ``1 + N`` candidates (the positive and ``N`` sampled
negatives). Its 0-based rank is the number of negatives scored ``>=`` the positive — ties are
pessimistic (the positive is put after every tied negative), so a constant model gets rank ``N``,
not a lucky rank 0. ``hit@k``, ``ndcg@k`` and ``mrr@k`` follow with one relevant item;
``auc`` is the mean per-row AUC ``(#neg < pos + 0.5 #neg == pos) / N`` (ties count half there,
the usual AUC convention).

CTR (:func:`evaluate_ctr`)
--------------------------
AUC, GAUC (impression-weighted, users with both classes) and Logloss over impressions.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from .metrics import _as_1d, _to_numpy, auc, gauc_with_count, logloss, topk_metrics

__all__ = ["evaluate_full_sort", "evaluate_sampled", "evaluate_ctr", "describe_full_sort",
           "describe_sampled", "describe_ctr", "user_item_matrix", "rank_topk"]


# ----------------------------------------------------------------------------- helpers

def user_item_matrix(*parts, n_users: int | None = None, n_items: int | None = None) -> sp.csr_matrix:
    """Binary ``[n_users, n_items]`` CSR of the (user, item) pairs of one or more
    :class:`~recgraph.data.schema.Interactions` (duplicates collapse to 1), e.g.
    ``user_item_matrix(split.train, split.valid)`` as the ``exclude`` of a test evaluation."""
    parts = [p for p in parts if p is not None]
    if not parts:
        if n_users is None or n_items is None:
            raise ValueError("no interactions given and no shape")
        return sp.csr_matrix((n_users, n_items), dtype=np.float32)
    nu = parts[0].n_users if n_users is None else n_users
    ni = parts[0].n_items if n_items is None else n_items
    for p in parts:
        if (p.n_users, p.n_items) != (nu, ni):
            raise ValueError(f"id spaces differ: ({p.n_users}, {p.n_items}) vs ({nu}, {ni})")
    u = np.concatenate([np.asarray(p.user, np.int64) for p in parts])
    i = np.concatenate([np.asarray(p.item, np.int64) for p in parts])
    m = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(nu, ni))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _binary_csr(m, name: str) -> sp.csr_matrix:
    if not sp.issparse(m):
        raise ValueError(f"{name} must be a scipy.sparse matrix [n_users, n_items], got {type(m).__name__}")
    m = sp.csr_matrix(m, copy=True)
    m.sum_duplicates()
    if m.data.dtype.kind == "f" and np.isnan(m.data).any():
        raise ValueError(f"{name} has NaN entries")
    m.data = (m.data != 0).astype(np.int8)
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _dense_rows(m: sp.csr_matrix, rows: np.ndarray, device) -> torch.Tensor:
    """Bool ``[len(rows), n_cols]`` of the stored entries of ``m[rows]`` (one chunk only)."""
    sub = m[rows]
    out = torch.zeros((len(rows), m.shape[1]), dtype=torch.bool, device=device)
    if sub.nnz:
        r = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
        out[torch.from_numpy(r).to(device), torch.from_numpy(sub.indices.astype(np.int64)).to(device)] = True
    return out


def rank_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``[B, k]`` of the top ``k`` items per row, ordered by score descending and, among
    equal scores, by item index ascending — deterministic, whatever ``torch.topk`` does with ties.

    One ``torch.topk`` of ``k + 1`` gives the ``k``-th value ``v`` and tells which rows have a tie
    across the cut (the ``(k+1)``-th value equals ``v``). In the other rows the top-``k`` set is
    unique. In tie rows, items scored ``> v`` are kept and the remaining slots go to the lowest
    indices scored exactly ``v`` (a second ``topk`` over the negated indices of the tied items,
    run on those rows only). The chosen items are then ordered by (score desc, index asc) with
    two stable sorts. NaN scores must be rejected by the caller (``torch.topk`` ranks NaN first).
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be [B, n_items], got {tuple(scores.shape)}")
    b, n = scores.shape
    k = int(min(k, n))
    if b == 0 or k == 0:
        return torch.zeros((b, k), dtype=torch.long, device=scores.device)
    vals, idx = torch.topk(scores, min(k + 1, n), dim=1, largest=True, sorted=True)
    kth = vals[:, k - 1:k]                                 # [B, 1]
    idx = idx[:, :k]
    if k < n:
        tie_rows = torch.nonzero(vals[:, k] == vals[:, k - 1]).flatten()
        if tie_rows.numel():
            all_rows = tie_rows.numel() == b
            sub = scores if all_rows else scores[tie_rows]
            kt = kth if all_rows else kth[tie_rows]
            fdt = torch.float32 if n <= 2**24 else torch.float64   # exact negated indices
            neg_ar = -torch.arange(n, device=scores.device, dtype=fdt)
            key = torch.where(sub == kt, neg_ar, torch.tensor(float("-inf"), dtype=fdt, device=scores.device))
            lowest = (-torch.topk(key, k, dim=1, largest=True, sorted=True).values).long()  # [T, k] asc
            # topk's sorted output lists the items scored > kth first; keep them, refill the rest
            n_gt = (vals[tie_rows, :k] > kt).sum(1, keepdim=True)
            col = torch.arange(k, device=scores.device)
            from_eq = lowest.gather(1, (col - n_gt).clamp(min=0))
            idx[tie_rows] = torch.where(col < n_gt, idx[tie_rows], from_eq)
    idx, _ = torch.sort(idx, dim=1)                        # index ascending
    v = scores.gather(1, idx)
    order = torch.sort(v, dim=1, descending=True, stable=True).indices
    return idx.gather(1, order)


def _check_nan_rows(s: torch.Tensor, rows: np.ndarray) -> None:
    # torch.max propagates NaN, so one reduction per row finds them without a [B, n_items] mask
    row_max = s.amax(dim=1)
    if torch.isnan(row_max).any():
        r = int(torch.nonzero(torch.isnan(row_max))[0])
        item = int(torch.nonzero(torch.isnan(s[r]))[0])
        raise ValueError(f"score_fn returned NaN scores (first: user {int(rows[r])}, item {item})")


def _progress(done: int, total: int, t0: float, what: str) -> None:
    sys.stderr.write(f"\r{what}: {done}/{total} users, {time.perf_counter() - t0:.1f}s")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    return ks


# ----------------------------------------------------------------------------- full sort

def evaluate_full_sort(score_fn: Callable[[torch.Tensor], torch.Tensor], test, exclude=None,
                       ks: Sequence[int] = (10, 20), batch_size: int = 1024, device="cpu",
                       progress: bool = False, return_per_user: bool = False) -> dict:
    """Full-sort top-K evaluation over all items (protocol in the module docstring).

    Args:
        score_fn: ``score_fn(users: LongTensor [B]) -> Tensor [B, n_items]`` (higher = better);
            the users tensor is on ``device``. The returned tensor is never modified (it is copied
            before excluded items are masked).
        test: sparse ``[n_users, n_items]``; stored non-zero entries are the ground-truth items.
        exclude: sparse ``[n_users, n_items]`` or None; items masked to ``-inf`` before top-K
            (training items; at test time also validation items).
        ks: cut-offs. batch_size: users per chunk. device: where scores are ranked.
        progress: write a progress line to stderr.
        return_per_user: add ``"per_user": {"users": [U] int64, "n_relevant": [U], "recall@k": [U], ...}``
            (numpy arrays, for significance tests and reports; pop it before writing JSON).

    Returns:
        ``{"recall@k", "ndcg@k", "hit@k", "precision@k", "mrr@k"`` (means over evaluated users) ...,
        ``"n_users"`` (evaluated), ``"n_test_pairs_excluded"``}.
    """
    ks = _check_ks(ks)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rel = _binary_csr(test, "test")
    n_users, n_items = rel.shape
    n_overlap = 0
    excl = None
    if exclude is not None:
        excl = _binary_csr(exclude, "exclude")
        if excl.shape != rel.shape:
            raise ValueError(f"exclude has shape {excl.shape}, test has {rel.shape}")
        both = rel.multiply(excl).tocsr()
        both.eliminate_zeros()
        n_overlap = int(both.nnz)
        if n_overlap:
            rel = (rel - both).tocsr()
            rel.eliminate_zeros()
            rel.sort_indices()
    n_rel_all = np.diff(rel.indptr)
    users = np.flatnonzero(n_rel_all > 0).astype(np.int64)
    kmax = ks[-1]
    keff = min(kmax, n_items)
    device = torch.device(device)

    hit_chunks = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            rows = users[start:start + batch_size]
            u = torch.from_numpy(rows).to(device)
            s = score_fn(u)
            if not isinstance(s, torch.Tensor):
                s = torch.as_tensor(np.asarray(s))
            if tuple(s.shape) != (len(rows), n_items):
                raise ValueError(f"score_fn returned shape {tuple(s.shape)} for {len(rows)} users; "
                                 f"expected ({len(rows)}, {n_items})")
            dtype = torch.float64 if s.dtype == torch.float64 else torch.float32
            # the caller's tensor may be a view of a score table: copy before masking in place
            s = s.to(device=device, dtype=dtype, copy=excl is not None)
            _check_nan_rows(s, rows)
            if excl is not None:
                sub = excl[rows]
                if sub.nnz:
                    r = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
                    s[torch.from_numpy(r).to(device),
                      torch.from_numpy(sub.indices.astype(np.int64)).to(device)] = -float("inf")
            top = rank_topk(s, keff)                       # [B, keff]
            hits = _dense_rows(rel, rows, device).gather(1, top)
            hit_chunks.append(hits.cpu().numpy())
            if progress:
                _progress(min(start + batch_size, len(users)), len(users), t0, "full-sort eval")

    hits = np.concatenate(hit_chunks, axis=0) if hit_chunks else np.zeros((0, keff), bool)
    if keff < kmax:  # fewer items than k: the list is all items, the missing ranks never hit
        hits = np.concatenate([hits, np.zeros((len(hits), kmax - keff), bool)], axis=1)
    n_rel = n_rel_all[users]
    per_user = topk_metrics(hits, n_rel, ks)
    out: dict = {name: (float(np.mean(v)) if len(users) else float("nan")) for name, v in per_user.items()}
    out["n_users"] = int(len(users))
    out["n_test_pairs_excluded"] = n_overlap
    if return_per_user:
        out["per_user"] = {"users": users, "n_relevant": n_rel, **per_user}
    return out


# ----------------------------------------------------------------------------- sampled

def evaluate_sampled(score_pairs_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], users, pos_items,
                     neg_items, ks: Sequence[int] = (1, 5, 10), batch_size: int = 4096, device="cpu",
                     progress: bool = False, return_per_user: bool = False) -> dict:
    """Rank each positive among itself and its ``N`` sampled negatives (protocol in the module docstring).

    Args:
        score_pairs_fn: ``(users [B], items [B, 1 + N]) -> scores [B, 1 + N]``; column 0 is the positive.
        users: ``[n]``; pos_items: ``[n]``; neg_items: ``[n, N]`` (must not contain the row's positive).
        ks: cut-offs (``k > 1 + N`` is allowed; every row then hits).

    Returns:
        ``{"hit@k", "ndcg@k", "mrr@k"`` ..., ``"auc", "mean_rank", "n_samples", "n_negatives"}``
        (means over rows; ``mean_rank`` is 1-based); with ``return_per_user`` also
        ``"per_row": {"rank": [n] 0-based, "auc": [n], "hit@k": [n], ...}``.
    """
    ks = _check_ks(ks)
    u = _as_1d(users, "users").astype(np.int64)
    p = _as_1d(pos_items, "pos_items").astype(np.int64)
    neg = _to_numpy(neg_items, "neg_items")
    if neg.ndim != 2:
        raise ValueError(f"neg_items must be [n, N], got shape {neg.shape}")
    neg = neg.astype(np.int64)
    n, n_neg = neg.shape
    if not (len(u) == len(p) == n):
        raise ValueError(f"length mismatch: users {len(u)}, pos_items {len(p)}, neg_items {n}")
    if n_neg < 1:
        raise ValueError("need at least one negative per row")
    clash = neg == p[:, None]
    if clash.any():
        row = int(np.flatnonzero(clash.any(1))[0])
        raise ValueError(f"{int(clash.any(1).sum())} row(s) have their positive among the negatives "
                         f"(first: row {row}, item {int(p[row])}); resample them")
    device = torch.device(device)
    ranks, aucs = [], []
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            cand = torch.from_numpy(np.concatenate([p[sl, None], neg[sl]], axis=1)).to(device)
            s = score_pairs_fn(torch.from_numpy(u[sl]).to(device), cand)
            if not isinstance(s, torch.Tensor):
                s = torch.as_tensor(np.asarray(s))
            if tuple(s.shape) != tuple(cand.shape):
                raise ValueError(f"score_pairs_fn returned shape {tuple(s.shape)}, expected {tuple(cand.shape)}")
            if torch.isnan(s).any():
                raise ValueError("score_pairs_fn returned NaN scores")
            s = s.to(device=device, dtype=torch.float64 if s.dtype == torch.float64 else torch.float32)
            pos_s, neg_s = s[:, :1], s[:, 1:]
            ranks.append((neg_s >= pos_s).sum(1).cpu().numpy())
            aucs.append((((neg_s < pos_s).sum(1).double() + 0.5 * (neg_s == pos_s).sum(1).double()) / n_neg)
                        .cpu().numpy())
            if progress:
                _progress(min(start + batch_size, n), n, t0, "sampled eval")
    rank = np.concatenate(ranks).astype(np.int64) if ranks else np.zeros(0, np.int64)
    row_auc = np.concatenate(aucs) if aucs else np.zeros(0)
    kcol = max(ks[-1], 1)
    hits = np.arange(kcol)[None, :] == rank[:, None]          # [n, kmax]; rank >= kmax never hits
    per = topk_metrics(hits, np.ones(n, np.int64), ks)
    per = {name: v for name, v in per.items() if name.split("@")[0] in ("hit", "ndcg", "mrr")}
    mean = (lambda a: float(np.mean(a)) if len(a) else float("nan"))  # noqa: E731
    out: dict = {name: mean(v) for name, v in per.items()}
    out["auc"] = mean(row_auc)
    out["mean_rank"] = mean(rank + 1.0)
    out["n_samples"] = int(n)
    out["n_negatives"] = int(n_neg)
    if return_per_user:
        out["per_row"] = {"users": u, "rank": rank, "auc": row_auc, **per}
    return out


# ----------------------------------------------------------------------------- CTR

def evaluate_ctr(users, labels, scores_or_probs, *, from_logits: bool = False, eps: float = 1e-7) -> dict:
    """``{"auc", "gauc", "logloss", "n_samples", "n_users_gauc"}`` over impressions.

    AUC and GAUC depend only on the order of the scores; Logloss needs probabilities in ``[0, 1]``
    — pass ``from_logits=True`` if ``scores_or_probs`` are logits (a sigmoid is applied for Logloss).
    """
    s = _as_1d(scores_or_probs, "scores_or_probs")
    y = _as_1d(labels, "labels")
    if len(s) != len(y):
        raise ValueError(f"length mismatch: labels has {len(y)} entries, scores_or_probs has {len(s)}")
    a = auc(y, s)
    g, n_g = gauc_with_count(users, y, s)
    probs = s.astype(np.float64)
    if from_logits:
        probs = 1.0 / (1.0 + np.exp(-probs))
    return {"auc": a, "gauc": g, "logloss": logloss(y, probs, eps=eps), "n_samples": int(len(y)),
            "n_users_gauc": n_g}


# ----------------------------------------------------------------------------- descriptions

def describe_full_sort(ks: Sequence[int], exclude_desc: str = "training items") -> dict:
    """Protocol description for ``metrics.json``."""
    return {"protocol": "full-sort", "candidates": "all items", "ks": _check_ks(ks),
            "excluded": exclude_desc,
            "relevant": "test items not in the excluded set; users without any are skipped",
            "tie_break": "equal scores: lower item index ranks first",
            "recall": "hits@k / n_relevant (LightGCN/RecBole)",
            "ndcg": "binary relevance, 1/log2(rank+1), IDCG over min(n_relevant, k) hits",
            "average": "mean over evaluated users"}


def describe_sampled(ks: Sequence[int], n_negatives: int, sampler_desc: str = "uniform") -> dict:
    """Protocol description for ``metrics.json``."""
    return {"protocol": "sampled", "candidates": f"1 positive + {int(n_negatives)} negatives",
            "negatives": sampler_desc, "ks": _check_ks(ks),
            "tie_break": "pessimistic: negatives scored >= the positive rank above it",
            "auc": "mean per-row AUC, ties count 1/2"}


def describe_ctr() -> dict:
    """Protocol description for ``metrics.json``."""
    return {"protocol": "ctr", "auc": "ROC AUC, average ranks for ties",
            "gauc": "per-user AUC over users with both labels, weighted by impressions",
            "logloss": "binary cross-entropy, probabilities clipped to [1e-7, 1 - 1e-7]"}
