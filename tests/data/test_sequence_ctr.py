"""Leave-last-out sequence CTR data: histories strictly before the sample, splits, negatives, profiles
— checked against plain Python references on real MovieLens-100K."""

import numpy as np
import pytest

from recgraph.data.sequence_ctr import AGE_BINS, _histories, build_sequence_ctr


@pytest.fixture(scope="module")
def ml():
    from tests.conftest import _require_ml100k

    _require_ml100k()
    from recgraph.data.datasets import load_dataset

    inter = load_dataset("movielens-100k").interactions
    return inter, build_sequence_ctr(inter, neg_ratio=2, recent=8, seed=3)


def test_histories_hand_case():
    # user 0: items 5,6 at t=1, item 7 at t=2, item 8 at t=3; user 1: item 9 at t=1
    u = np.array([0, 0, 0, 0, 1])
    i = np.array([5, 6, 7, 8, 9])
    t = np.array([1, 1, 2, 3, 1])
    ids, times = _histories(u, i, t, np.arange(5), recent=2, n_items=100)
    assert ids.tolist() == [[100, 100], [100, 100], [6, 5], [7, 6], [100, 100]]  # same-second events excluded
    assert times.tolist() == [[-1, -1], [-1, -1], [1, 1], [2, 1], [-1, -1]]


def test_splits_and_histories_against_reference(ml):
    inter, d = ml
    u, i, t = inter.user, inter.item, inter.timestamp
    rng = np.random.default_rng(0)
    for user in rng.choice(d.test.user, 25, replace=False):
        m = np.flatnonzero(u == user)
        order = m[np.lexsort((m, t[m]))]
        seq_i, seq_t = i[order], t[order]
        r = int(np.flatnonzero(d.test.user == user)[0])
        assert d.test.pos[r] == seq_i[-1] and d.valid.pos[np.flatnonzero(d.valid.user == user)[0]] == seq_i[-2]
        before = seq_i[seq_t < seq_t[-1]][::-1][:8]  # most recent first, strictly before
        got = d.test.recent[r][d.test.recent[r] != d.n_items]
        assert sorted(got.tolist()) == sorted(before.tolist()) or got.tolist() == before.tolist()
        assert (d.test.recent_time[r][d.test.recent[r] != d.n_items] < seq_t[-1]).all()
        # training positives of the user = all but the last two interactions
        tr = (d.train.user == user) & (d.train.label == 1)
        assert sorted(d.train.item[tr].tolist()) == sorted(seq_i[:-2].tolist())
    # every training history is strictly before its sample
    rt = d.train.recent_time
    assert ((rt < d.train.time[:, None]) | (rt == -1)).all()


def test_negatives(ml):
    inter, d = ml
    seen = set(zip(inter.user.tolist(), inter.item.tolist()))
    for rows in (d.valid, d.test):
        assert rows.neg.shape[1] == 100
        s = np.sort(rows.neg, axis=1)
        assert (s[:, 1:] != s[:, :-1]).all(), "negatives must be distinct within a row"
        assert not any((int(a), int(b)) in seen for a, b in zip(np.repeat(rows.user, 100), rows.neg.ravel()))
    neg = d.train.label == 0
    pos_pairs = set(zip(d.train.user[~neg].tolist(), d.train.item[~neg].tolist()))
    assert not any(p in pos_pairs for p in zip(d.train.user[neg].tolist(), d.train.item[neg].tolist()))
    assert neg.sum() == 2 * (~neg).sum()


def test_profile(ml):
    inter, d = ml
    assert d.profile_fields == ("age", "gender", "occupation")
    age = inter.user_features["age"]
    assert (d.profile[:, 0] == np.searchsorted(np.asarray(AGE_BINS), age, side="right")).all()
    assert d.profile.max() < d.profile_size and (np.diff(d.profile, axis=1) > 0).all()  # field offsets
