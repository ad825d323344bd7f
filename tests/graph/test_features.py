"""CTR samples: no feature uses an interaction at or after the sample's cutoff; protocols; labels."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from recgraph.data.datasets import load_dataset
from recgraph.graph.features import build_ctr_data


@pytest.fixture(scope="module")
def ml():
    return load_dataset("movielens-100k").interactions


@pytest.fixture(scope="module")
def amazon():
    return load_dataset("amazon2014-musical-instruments-5core").interactions


def _positives(inter, data):
    if data.protocol["labels"].startswith("implicit"):
        return inter.user, inter.item, inter.timestamp
    m = inter.label >= 4
    return inter.user[m], inter.item[m], inter.timestamp[m]


def _assert_no_leak(inter, data, n_check=60):
    f = data.features
    pu, pi, pt = _positives(inter, data)
    rng = np.random.default_rng(0)
    for name in ("train", "valid", "test"):
        s = data.part(name)
        assert len(s) > 0, name
        cut = f.cutoffs[s.snapshot]
        # the snapshot is strictly before the sample's own time
        assert np.all(cut <= s.time), name
        ur, ir = s.snapshot * f.n_users + s.user, s.snapshot * f.n_items + s.item
        # recent lists: every listed event is strictly before the cutoff
        ut, it = f.u_rec_time[ur], f.i_rec_time[ir]
        assert np.all((ut < cut[:, None]) | (f.u_rec[ur] == f.n_items)), name
        assert np.all((it < cut[:, None]) | (f.i_rec[ir] == f.n_users)), name
        # macro counts and recent lists recomputed from scratch from events strictly before the cutoff
        for k in rng.choice(len(s), size=min(n_check, len(s)), replace=False):
            u, i, c = s.user[k], s.item[k], cut[k]
            before = pt < c
            hist_items = pi[before & (pu == u)]
            hist_users = pu[before & (pi == i)]
            want_u1 = Counter(f.item_macro[hist_items].tolist())
            got = {int(a): float(b) for a, b in zip(f.u1_ids[ur[k]], f.u1_cnt[ur[k]]) if b > 0}
            assert got == {a: float(b) for a, b in want_u1.items()}, (name, k)
            want_i1 = Counter(f.user_macro[hist_users].tolist())
            got = {int(a): float(b) for a, b in zip(f.i1_ids[ir[k]], f.i1_cnt[ir[k]]) if b > 0}
            assert got == {a: float(b) for a, b in want_i1.items()}, (name, k)
            rec = f.u_rec[ur[k]]
            rec = rec[rec != f.n_items]
            order = np.lexsort((hist_items, pt[before & (pu == u)]))[::-1]  # latest first, ties by item id
            assert rec.tolist() == hist_items[order][:len(rec)].tolist()
            assert len(rec) == min(20, len(hist_items))
            assert len(hist_items) > 0 and len(hist_users) > 0  # cold samples were dropped


@pytest.mark.parametrize("protocol", ["macgnn-quantile", "leave-last-out"])
def test_no_feature_uses_interactions_at_or_after_cutoff_ml(ml, protocol):
    data = build_ctr_data(ml, protocol, seed=0)
    _assert_no_leak(ml, data)


@pytest.mark.parametrize("protocol", ["macgnn-quantile", "leave-last-out"])
def test_no_feature_uses_interactions_at_or_after_cutoff_implicit(amazon, protocol):
    data = build_ctr_data(amazon, protocol, seed=0)
    _assert_no_leak(amazon, data)


def test_leak_check_catches_a_leak(ml):
    """The check above fails when a feature table is built with a cutoff one step too late."""
    data = build_ctr_data(ml, "macgnn-quantile", seed=0)
    f = data.features
    leaky = data.features.__class__(**{**f.__dict__, "cutoffs": f.cutoffs - 10**6})
    bad = data.__class__(data.train, data.valid, data.test, leaky, data.n_users, data.n_items, data.protocol,
                         data.dropped)
    with pytest.raises(AssertionError):
        _assert_no_leak(ml, bad)


def test_macgnn_quantile_windows_and_drops(ml):
    data = build_ctr_data(ml, "macgnn-quantile", seed=0)
    p = data.protocol
    assert p["name"] == "macgnn-quantile" and p["selection"].startswith("validation")
    assert np.all(data.train.time > p["t_q_train"]) and np.all(data.train.time <= p["t_q_test"])
    assert np.all(data.valid.time > p["t_q_train"]) and np.all(data.valid.time <= p["t_q_test"])
    assert np.all(data.test.time > p["t_q_test"])
    assert np.all(data.train.snapshot == 0) and np.all(data.test.snapshot == 1)
    assert data.dropped["train_cold_user_or_item"] > 0 and data.dropped["test_cold_user_or_item"] > 0
    # explicit labels: rating >= 4
    assert set(np.unique(data.train.label).tolist()) == {0.0, 1.0}


def test_leave_last_out_test_is_last_positive(ml):
    data = build_ctr_data(ml, "leave-last-out", seed=0)
    m = ml.label >= 4
    last = np.zeros(ml.n_users, np.int64)
    np.maximum.at(last, ml.user[m], ml.timestamp[m])
    t = data.test
    pos = t.label > 0
    assert np.all(t.time[pos] == last[t.user[pos]])
    v = data.valid
    assert np.all(v.time[v.label > 0] <= last[v.user[v.label > 0]])


def test_implicit_negatives_at_sample_time(amazon):
    data = build_ctr_data(amazon, "macgnn-quantile", seed=0, neg_ratio=2)
    taken = set(zip(amazon.user.tolist(), amazon.item.tolist(), amazon.timestamp.tolist()))
    for part in (data.train, data.valid, data.test):  # (time-respecting rejection: tests/data/test_ctr_leakage.py)
        neg = part.label == 0
        assert not any((u, i, t) in taken for u, i, t in zip(part.user[neg].tolist(), part.item[neg].tolist(),
                                                             part.time[neg].tolist()))
    s = data.train
    assert 1.5 < (s.label == 0).sum() / max(1, (s.label == 1).sum()) < 2.5
    assert data.protocol["neg_ratio"] == 2 and "popularity" in data.protocol["labels"]
