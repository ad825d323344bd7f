import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from recgraph.eval.metrics import auc, average_ranks, gauc, gauc_with_count, logloss, topk_metrics


# ----------------------------------------------------------------------------- top-K, by hand

def test_topk_metrics_hand_computed():
    hits = np.array([
        [1, 0, 1, 0, 0],   # n_rel 3
        [0, 0, 0, 1, 0],   # n_rel 1
        [0, 0, 0, 0, 0],   # n_rel 0
        [0, 1, 1, 1, 1],   # n_rel 10
    ], dtype=bool)
    n_rel = np.array([3, 1, 0, 10])
    m = topk_metrics(hits, n_rel, ks=[1, 3, 5])
    l2 = math.log2
    # row 0: hits at ranks 1 and 3
    assert m["recall@1"][0] == pytest.approx(1 / 3)            # 1 hit / 3 relevant
    assert m["recall@3"][0] == pytest.approx(2 / 3)            # 2 / 3
    assert m["recall@5"][0] == pytest.approx(2 / 3)
    assert m["precision@1"][0] == pytest.approx(1.0)           # 1 / 1
    assert m["precision@3"][0] == pytest.approx(2 / 3)         # 2 / 3
    assert m["precision@5"][0] == pytest.approx(2 / 5)         # 2 / 5
    assert m["ndcg@1"][0] == pytest.approx(1.0)                # (1/log2 2) / (1/log2 2)
    # DCG@3 = 1 + 1/log2(4) = 1.5 ; IDCG@3 = 1 + 1/log2(3) + 1/log2(4) = 2.130930
    assert m["ndcg@3"][0] == pytest.approx(1.5 / (1 + 1 / l2(3) + 0.5))
    assert m["ndcg@3"][0] == pytest.approx(0.703918, abs=1e-6)
    assert m["ndcg@5"][0] == pytest.approx(0.703918, abs=1e-6)  # IDCG over min(3, 5) = 3 ideal hits
    assert m["mrr@1"][0] == 1.0 and m["hit@1"][0] == 1.0
    # row 1: single hit at rank 4
    assert m["recall@3"][1] == 0 and m["recall@5"][1] == 1.0
    assert m["hit@3"][1] == 0 and m["hit@5"][1] == 1.0
    assert m["ndcg@5"][1] == pytest.approx(1 / l2(5))           # DCG = 1/log2(5) = 0.430677, IDCG = 1
    assert m["ndcg@5"][1] == pytest.approx(0.430677, abs=1e-6)
    assert m["mrr@3"][1] == 0 and m["mrr@5"][1] == pytest.approx(0.25)  # first hit at rank 4
    assert m["precision@5"][1] == pytest.approx(0.2)
    # row 2: no relevant items -> zeros
    for v in m.values():
        assert v[2] == 0.0
    # row 3: hits at ranks 2..5, 10 relevant
    assert m["recall@5"][3] == pytest.approx(0.4)               # 4 / 10
    # DCG = 1/log2 3 + 1/log2 4 + 1/log2 5 + 1/log2 6 = 0.630930 + 0.5 + 0.430677 + 0.386853 = 1.948459
    # IDCG@5 = 1 + 1.948459 = 2.948459  ->  0.660840
    assert m["ndcg@5"][3] == pytest.approx(0.660840, abs=1e-6)
    assert m["ndcg@1"][3] == 0.0
    assert m["mrr@5"][3] == pytest.approx(0.5)
    assert list(m) == [f"{n}@{k}" for n in ("recall", "ndcg", "hit", "precision", "mrr") for k in (1, 3, 5)]


def test_topk_metrics_accepts_torch():
    hits = torch.tensor([[True, False], [False, True]])
    m = topk_metrics(hits, torch.tensor([1, 2]), ks=[2])
    np.testing.assert_allclose(m["recall@2"], [1.0, 0.5])
    # row 1: DCG = 1/log2(3) = 0.6309 ; IDCG over min(2, 2) = 1 + 0.6309 = 1.6309
    np.testing.assert_allclose(m["ndcg@2"], [1.0, (1 / math.log2(3)) / (1 + 1 / math.log2(3))])


def test_topk_metrics_errors():
    hits = np.zeros((2, 3), bool)
    with pytest.raises(ValueError, match="outside"):
        topk_metrics(hits, [1, 1], ks=[4])
    with pytest.raises(ValueError, match="length mismatch"):
        topk_metrics(hits, [1, 1, 1], ks=[1])
    with pytest.raises(ValueError, match="n_relevant"):
        topk_metrics(np.ones((1, 3), bool), [2], ks=[1])
    with pytest.raises(ValueError, match="empty"):
        topk_metrics(hits, [1, 1], ks=[])


# ----------------------------------------------------------------------------- CTR, by hand

def test_auc_hand_computed_with_tie():
    # pos scores 0.8, 0.4 ; neg scores 0.4, 0.1
    # pairs: (0.8>0.4)=1, (0.8>0.1)=1, (0.4=0.4)=0.5, (0.4>0.1)=1 -> 3.5 / 4 = 0.875
    assert auc([1, 0, 1, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(0.875)
    assert auc(np.array([True, False]), torch.tensor([0.1, 0.2])) == pytest.approx(0.0)


def test_gauc_hand_computed():
    users = ["a", "a", "a", "b", "b", "c", "c"]
    labels = [1, 0, 0, 1, 0, 1, 1]
    scores = [0.9, 0.5, 0.95, 0.2, 0.3, 0.1, 0.7]
    # a: pos 0.9 beats 0.5, loses to 0.95 -> AUC 0.5, 3 impressions
    # b: pos 0.2 loses to 0.3 -> AUC 0, 2 impressions
    # c: only positives -> left out
    # GAUC = (0.5 * 3 + 0 * 2) / 5 = 0.3
    g, n = gauc_with_count(users, labels, scores)
    assert g == pytest.approx(0.3) and n == 2
    assert gauc(users, labels, scores) == pytest.approx(0.3)


def test_logloss_hand_computed():
    # -(ln 0.8 + ln(1 - 0.4)) / 2 = (0.223144 + 0.510826) / 2 = 0.366985
    assert logloss([1, 0], [0.8, 0.4]) == pytest.approx(0.366985, abs=1e-6)
    # clipping: p = 0 for a positive costs -ln(1e-7) = 16.118096
    assert logloss([1], [0.0]) == pytest.approx(16.118096, abs=1e-5)


def test_average_ranks_segments():
    v = np.array([1.0, 1.0, 2.0, 0.0, 0.0, 0.0])
    seg = np.array([1, 0, 0, 1, 0, 0], bool)
    # segment 1: ranks 1,2 tie -> 1.5, 1.5, then 3 ; segment 2: three-way tie -> 2, 2, 2
    np.testing.assert_allclose(average_ranks(v, seg), [1.5, 1.5, 3, 2, 2, 2])
    np.testing.assert_allclose(average_ranks(np.array([3.0, 3.0, 3.0, 5.0])), [2, 2, 2, 4])


# ----------------------------------------------------------------------------- CTR vs sklearn

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 2000
    y = rng.integers(0, 2, n)
    s_cont = rng.normal(size=n) + y
    s_ties = rng.integers(0, 5, n).astype(np.float32)  # heavy ties
    assert auc(y, s_cont) == pytest.approx(roc_auc_score(y, s_cont), abs=1e-12)
    assert auc(y, s_ties) == pytest.approx(roc_auc_score(y, s_ties), abs=1e-12)
    assert auc(y.astype(float), torch.from_numpy(s_ties)) == pytest.approx(roc_auc_score(y, s_ties), abs=1e-12)


def _gauc_reference(users, y, s):
    num = den = 0.0
    for u in np.unique(users):
        m = users == u
        if 0 < y[m].sum() < m.sum():
            num += roc_auc_score(y[m], s[m]) * m.sum()
            den += m.sum()
    return num / den


def test_gauc_matches_per_user_loop():
    rng = np.random.default_rng(0)
    n = 1000
    users = rng.integers(0, 100, n) * 7 - 50  # non-contiguous, negative ids are fine
    y = (rng.random(n) < 0.3).astype(int)
    expected_users = sum(0 < y[users == u].sum() < (users == u).sum() for u in np.unique(users))
    assert 0 < expected_users < 100  # some users have a single class and must be left out
    for s in (rng.normal(size=n) + y, rng.integers(0, 3, n).astype(float)):  # continuous, heavy ties
        g, n_users = gauc_with_count(users, y, s)
        assert g == pytest.approx(_gauc_reference(users, y, s), abs=1e-12)
        assert n_users == expected_users


def test_logloss_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    p = rng.uniform(0.01, 0.99, 1000)
    assert logloss(y, p) == pytest.approx(log_loss(y, p), abs=1e-12)


# ----------------------------------------------------------------------------- errors

def test_ctr_errors():
    with pytest.raises(ValueError, match="single class"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        auc([1, 0], [0.1, float("nan")])
    with pytest.raises(ValueError, match="NaN"):
        logloss([1, float("nan")], [0.1, 0.2])
    with pytest.raises(ValueError, match="length mismatch"):
        auc([1, 0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="length mismatch"):
        gauc([1, 2], [1, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="0 or 1"):
        auc([2, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        logloss([1, 0], [1.5, 0.2])
    with pytest.raises(ValueError, match="both a positive and a negative"):
        gauc([1, 2], [1, 0], [0.3, 0.4])
