import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import log_loss, ndcg_score, roc_auc_score

from recgraph.data.schema import Interactions
from recgraph.eval import (describe_ctr, describe_full_sort, describe_sampled, evaluate_ctr,
                           evaluate_full_sort, evaluate_sampled, rank_topk, user_item_matrix)


def _random_case(seed, n_users=60, n_items=40, p_test=0.06, p_train=0.2, ties=False):
    rng = np.random.default_rng(seed)
    train = sp.csr_matrix(rng.random((n_users, n_items)) < p_train)
    dense_test = (rng.random((n_users, n_items)) < p_test) & ~train.toarray()
    dense_test[3] = False  # user 3 has no test item
    test = sp.csr_matrix(dense_test)
    if ties:
        scores = rng.integers(0, 3, (n_users, n_items)).astype(np.float32)
    else:
        scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    return scores, train, test


def _score_fn(scores):
    table = torch.from_numpy(scores)
    return lambda users: table[users]  # a view into the table: the evaluator must not modify it


def _naive_full_sort(scores, test, exclude, ks):
    """Dense reference: per user, rank all non-excluded items by (score desc, index asc)."""
    test, excl = test.toarray() > 0, exclude.toarray() > 0 if exclude is not None else None
    out = {f"{m}@{k}": [] for m in ("recall", "ndcg", "hit", "precision", "mrr") for k in ks}
    users = []
    for u in range(scores.shape[0]):
        rel = test[u] & ~excl[u] if excl is not None else test[u]
        n_rel = rel.sum()
        if n_rel == 0:
            continue
        users.append(u)
        s = scores[u].astype(np.float64).copy()
        if excl is not None:
            s[excl[u]] = -np.inf
        order = np.lexsort((np.arange(len(s)), -s))
        for k in ks:
            top = order[:k]
            h = rel[top]
            dcg = sum(1 / math.log2(r + 2) for r in range(len(h)) if h[r])
            idcg = sum(1 / math.log2(r + 2) for r in range(min(n_rel, k)))
            first = np.flatnonzero(h)
            out[f"recall@{k}"].append(h.sum() / n_rel)
            out[f"ndcg@{k}"].append(dcg / idcg)
            out[f"hit@{k}"].append(float(h.any()))
            out[f"precision@{k}"].append(h.sum() / k)
            out[f"mrr@{k}"].append(1 / (first[0] + 1) if len(first) else 0.0)
    return np.array(users), {k: np.array(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- full sort

@pytest.mark.parametrize("ties", [False, True])
def test_full_sort_matches_naive_reference(ties):
    scores, train, test = _random_case(0, ties=ties)
    ks = (1, 5, 10)
    res = evaluate_full_sort(_score_fn(scores), test, train, ks=ks, batch_size=16, return_per_user=True)
    users, ref = _naive_full_sort(scores, test, train, ks)
    np.testing.assert_array_equal(res["per_user"]["users"], users)
    assert res["n_users"] == len(users) and 3 not in users
    for name, v in ref.items():
        np.testing.assert_allclose(res["per_user"][name], v, atol=1e-12, err_msg=name)
        assert res[name] == pytest.approx(v.mean(), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_full_sort_batch_size_invariant(ties):
    scores, train, test = _random_case(1, n_users=50, n_items=30, ties=ties)
    ks = (3, 10, 20)
    results = [evaluate_full_sort(_score_fn(scores), test, train, ks=ks, batch_size=bs, return_per_user=True)
               for bs in (1, 7, 1024)]
    for r in results[1:]:
        for key in results[0]:
            if key == "per_user":
                for name in results[0]["per_user"]:
                    np.testing.assert_array_equal(r["per_user"][name], results[0]["per_user"][name])
            else:
                assert r[key] == results[0][key], key


def test_full_sort_all_tied_scores_breaks_by_lower_index():
    # every score equal: the top-3 of each user must be its 3 lowest non-excluded item indices
    n_users, n_items = 5, 8
    test = sp.csr_matrix(np.eye(n_users, n_items))          # user u's test item is u
    exclude = sp.csr_matrix(([1.0], ([0], [1])), shape=(n_users, n_items))  # user 0 excludes item 1
    fn = lambda users: torch.zeros((len(users), n_items))   # noqa: E731
    res = {bs: evaluate_full_sort(fn, test, exclude, ks=[3], batch_size=bs, return_per_user=True)
           for bs in (1, 2, 1024)}
    # top-3 lists: user 0 -> [0, 2, 3]; others -> [0, 1, 2]; hits: users 0, 1, 2 at ranks 1, 2, 3
    for r in res.values():
        np.testing.assert_allclose(r["per_user"]["hit@3"], [1, 1, 1, 0, 0])
        np.testing.assert_allclose(r["per_user"]["mrr@3"], [1, 1 / 2, 1 / 3, 0, 0])


def test_rank_topk_tie_order_matches_lexsort():
    rng = np.random.default_rng(3)
    s = rng.integers(0, 4, (40, 100)).astype(np.float32)
    s[5] = 1.0  # a fully tied row
    s[6, :] = -np.inf
    s[6, 50] = 2.0
    s[7] = 0.0
    s[7, [90, 3, 61, 42]] = [1.0, 1.0, 2.0, 1.0]  # 4 items above the cut, 6 slots for the tied zeros
    top = rank_topk(torch.from_numpy(s), 10).numpy()
    for r in range(len(s)):
        np.testing.assert_array_equal(top[r], np.lexsort((np.arange(100), -s[r]))[:10])
    np.testing.assert_array_equal(top[7], [61, 3, 42, 90, 0, 1, 2, 4, 5, 6])


def test_full_sort_float64_and_numpy_scores():
    scores, train, test = _random_case(6, ties=True)
    ref = evaluate_full_sort(_score_fn(scores), test, train, ks=[5])
    f64 = evaluate_full_sort(lambda u: torch.from_numpy(scores.astype(np.float64))[u], test, train, ks=[5])
    npy = evaluate_full_sort(lambda u: scores[u.numpy()], test, train, ks=[5])
    assert ref == f64 == npy


def test_full_sort_matches_sklearn_ndcg():
    scores, train, test = _random_case(2, n_users=80, n_items=50)
    k = 10
    res = evaluate_full_sort(_score_fn(scores), test, train, ks=[k], return_per_user=True)
    pu = res["per_user"]
    rel = test.toarray().astype(float) * (train.toarray() == 0)
    checked = 0
    for u, n_rel, v in zip(pu["users"], pu["n_relevant"], pu[f"ndcg@{k}"]):
        if n_rel > k:  # sklearn's IDCG counts every relevant item; ours counts min(n_rel, k)
            continue
        s = scores[u].astype(np.float64).copy()
        s[train[u].toarray()[0] > 0] = -1e9  # excluded items last (finite for sklearn)
        assert v == pytest.approx(ndcg_score(rel[u][None], s[None], k=k), abs=1e-9)
        checked += 1
    assert checked > 40


def test_full_sort_excluded_items_never_hit():
    n_users, n_items = 4, 6
    # user 0: test items {0, 1}, both also in exclude -> skipped, counted
    # user 1: test {2 (excluded), 5}; model ranks excluded item 2 first
    # user 2: test {4}; user 3: nothing
    test = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0],
                                   [0, 0, 1, 0, 0, 1],
                                   [0, 0, 0, 0, 1, 0],
                                   [0, 0, 0, 0, 0, 0]]))
    exclude = sp.csr_matrix(np.array([[1, 1, 1, 1, 1, 0],
                                      [0, 0, 1, 0, 0, 0],
                                      [1, 1, 1, 1, 0, 1],
                                      [0, 0, 0, 0, 0, 0]]))
    assert test.shape == exclude.shape == (n_users, n_items)
    scores = np.tile(np.array([0, 1, 9, 2, 3, 4], np.float32), (n_users, 1))
    res = evaluate_full_sort(_score_fn(scores), test, exclude, ks=[1, 20], return_per_user=True)
    assert res["n_users"] == 2 and res["n_test_pairs_excluded"] == 3
    np.testing.assert_array_equal(res["per_user"]["users"], [1, 2])
    np.testing.assert_array_equal(res["per_user"]["n_relevant"], [1, 1])
    # user 1: item 2 masked; ranking 5(4), 4(3), 3(2), 1, 0 -> item 5 first -> hit@1
    # user 2: only item 4 not excluded -> first -> hit@1 ; k=20 > n_items works
    np.testing.assert_allclose(res["per_user"]["hit@1"], [1, 1])
    np.testing.assert_allclose(res["per_user"]["recall@20"], [1, 1])
    np.testing.assert_allclose(res["per_user"]["precision@20"], [1 / 20, 1 / 20])
    assert scores[1, 2] == 9  # user 1's excluded item: the score table was not modified in place


def test_full_sort_skips_users_without_test_items():
    scores, train, test = _random_case(4)
    res = evaluate_full_sort(_score_fn(scores), test, None, ks=[5])
    assert res["n_users"] == int((np.diff(test.indptr) > 0).sum())
    assert res["n_users"] < scores.shape[0]


def test_full_sort_bad_inputs():
    scores, train, test = _random_case(5)
    with pytest.raises(ValueError, match="shape"):
        evaluate_full_sort(lambda u: torch.zeros(len(u), 3), test, train)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_full_sort(lambda u: torch.full((len(u), test.shape[1]), float("nan")), test, train)
    one_nan = scores.copy()
    one_nan[7, 4] = np.nan
    with pytest.raises(ValueError, match="user 7, item 4"):
        evaluate_full_sort(_score_fn(one_nan), test, None, batch_size=5)
    with pytest.raises(ValueError, match="exclude has shape"):
        evaluate_full_sort(_score_fn(scores), test, train[:, :5])
    with pytest.raises(ValueError, match="sparse"):
        evaluate_full_sort(_score_fn(scores), test.toarray(), train)


def test_user_item_matrix_from_interactions():
    a = Interactions(user=np.array([0, 0, 2]), item=np.array([1, 1, 3]), n_users=3, n_items=4)
    b = Interactions(user=np.array([1]), item=np.array([0]), n_users=3, n_items=4)
    m = user_item_matrix(a, b)
    np.testing.assert_array_equal(m.toarray(), [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]])


# ----------------------------------------------------------------------------- sampled

def test_sampled_hand_computed():
    # row 0: pos 0.5, negs 0.7, 0.5, 0.1 -> 2 negatives >= pos (tie pessimistic) -> 0-based rank 2
    #   hit@1 = 0, hit@3 = 1, ndcg@3 = 1/log2(4) = 0.5, mrr@3 = 1/3, auc = (1 + 0.5 * 1) / 3 = 0.5
    # row 1: pos 0.9 beats all -> rank 0: hit@1 = 1, ndcg = 1, mrr = 1, auc = 1
    table = {(0, 10): 0.5, (0, 11): 0.7, (0, 12): 0.5, (0, 13): 0.1,
             (1, 20): 0.9, (1, 21): 0.2, (1, 22): 0.3, (1, 23): 0.4}

    def fn(users, items):
        return torch.tensor([[table[(int(u), int(i))] for i in row] for u, row in zip(users, items)])

    res = evaluate_sampled(fn, [0, 1], [10, 20], [[11, 12, 13], [21, 22, 23]], ks=[1, 3], return_per_user=True)
    np.testing.assert_array_equal(res["per_row"]["rank"], [2, 0])
    assert res["hit@1"] == pytest.approx(0.5)                 # (0 + 1) / 2
    assert res["hit@3"] == pytest.approx(1.0)
    assert res["ndcg@3"] == pytest.approx((0.5 + 1) / 2)
    assert res["mrr@3"] == pytest.approx((1 / 3 + 1) / 2)
    assert res["auc"] == pytest.approx((0.5 + 1) / 2)
    assert res["mean_rank"] == pytest.approx((3 + 1) / 2)
    assert res["n_samples"] == 2 and res["n_negatives"] == 3


def test_sampled_matches_full_sort_on_random_and_batch_invariant():
    rng = np.random.default_rng(0)
    n, n_items, n_neg = 200, 500, 49
    scores = rng.normal(size=(n, n_items)).astype(np.float32)
    pos = rng.integers(0, n_items, n)
    neg = np.stack([rng.choice(np.setdiff1d(np.arange(n_items), [p]), n_neg, replace=False) for p in pos])
    fn = lambda u, items: torch.from_numpy(scores)[u[:, None], items]  # noqa: E731
    a = evaluate_sampled(fn, np.arange(n), pos, neg, ks=[1, 10], batch_size=7, return_per_user=True)
    b = evaluate_sampled(fn, np.arange(n), pos, neg, ks=[1, 10], batch_size=1000)
    for key in b:
        assert a[key] == b[key], key
    # per-row AUC equals sklearn on [pos, negs]
    r = 17
    s = np.concatenate([[scores[r, pos[r]]], scores[r, neg[r]]])
    assert a["per_row"]["auc"][r] == pytest.approx(roc_auc_score(np.r_[1, np.zeros(n_neg)], s))
    # rank = number of negatives scored above the positive
    np.testing.assert_array_equal(a["per_row"]["rank"], (scores[np.arange(n)[:, None], neg] >= scores[np.arange(n), pos][:, None]).sum(1))


def test_sampled_rejects_positive_among_negatives():
    with pytest.raises(ValueError, match="positive among the negatives"):
        evaluate_sampled(lambda u, i: torch.zeros(i.shape), [0], [5], [[1, 5]], ks=[1])


# ----------------------------------------------------------------------------- CTR

def test_evaluate_ctr_matches_sklearn():
    rng = np.random.default_rng(0)
    n = 1000
    users = rng.integers(0, 50, n)
    y = rng.integers(0, 2, n)
    logits = rng.normal(size=n) + y
    p = 1 / (1 + np.exp(-logits))
    res = evaluate_ctr(users, y, p)
    assert res["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert res["logloss"] == pytest.approx(log_loss(y, p), abs=1e-9)
    assert res["n_samples"] == n and 0 < res["n_users_gauc"] <= 50
    res2 = evaluate_ctr(users, y, torch.from_numpy(logits), from_logits=True)
    assert res2["auc"] == pytest.approx(res["auc"]) and res2["gauc"] == pytest.approx(res["gauc"])
    assert res2["logloss"] == pytest.approx(res["logloss"], abs=1e-9)
    with pytest.raises(ValueError, match="sigmoid"):
        evaluate_ctr(users, y, logits)  # logits given as probabilities


def test_describe():
    d = describe_full_sort([20, 10], "train + valid items")
    assert d["candidates"] == "all items" and d["ks"] == [10, 20] and d["excluded"] == "train + valid items"
    assert describe_sampled([1, 10], 99)["candidates"] == "1 positive + 99 negatives"
    assert describe_ctr()["protocol"] == "ctr"
