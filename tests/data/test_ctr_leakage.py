"""Leak checks of the CTR sample builder (``recgraph.data.ctr``): negatives and the macro fit may
only use what is known at the time / in the training part. Each test fails on the pre-fix code."""

from __future__ import annotations

import numpy as np
import pytest

from recgraph.data.ctr import _sample_negatives
from recgraph.data.schema import Interactions
from recgraph.graph.features import build_ctr_data


def test_negative_may_be_an_item_the_user_takes_later():
    # users 1..50 take item 0 at times 1..50; user 0 takes item 1 at t=100 and item 0 only at t=200.
    # For user 0's sample at t=100 the only earlier item is item 0, which she has not taken yet:
    # it must be drawable (rejecting it uses her future). Her sample at t=200 has no valid negative.
    ev_user = np.r_[np.arange(1, 51), 0, 0]
    ev_item = np.r_[np.zeros(50, np.int64), 1, 0]
    ev_time = np.r_[np.arange(1, 51), 100, 200]
    first_keys = ev_user * 2 + ev_item
    o = np.argsort(first_keys, kind="stable")
    by_time = np.argsort(ev_time, kind="stable")
    pos_u, pos_t = np.array([0, 0]), np.array([100, 200])
    u, i, t, src, failed = _sample_negatives(pos_u, pos_t, ev_item[by_time], ev_time[by_time], first_keys[o],
                                             ev_time[o], 2, 1, np.random.default_rng(0))
    assert u.tolist() == [0] and i.tolist() == [0] and t.tolist() == [100] and src.tolist() == [0]
    assert failed == 1  # t=200: item 0 taken at 200, item 1 at 100 — both known, rejected


@pytest.fixture(scope="module")
def amazon():
    from recgraph.data.datasets import load_dataset

    return load_dataset("amazon2014-musical-instruments-5core").interactions


def test_implicit_negatives_reject_the_past_only(amazon):
    data = build_ctr_data(amazon, "macgnn-quantile", seed=0, neg_ratio=2)
    first = {}
    for u, i, t in zip(amazon.user.tolist(), amazon.item.tolist(), amazon.timestamp.tolist()):
        first[(u, i)] = min(t, first.get((u, i), t))
    later = 0
    for part in (data.train, data.valid, data.test):
        neg = part.label == 0
        for u, i, t in zip(part.user[neg].tolist(), part.item[neg].tolist(), part.time[neg].tolist()):
            f = first.get((u, i))
            assert f is None or f > t, (u, i, t, f)  # never an item she took at or before the sample
            later += f is not None
    # the pre-fix code rejected every pair ever seen, so no negative was ever a later positive
    assert later > 0


def _staggered_ratings(seed=0, n_users=120, n_items=80, per_user=30):
    """Users active in staggered time windows, so many users' last (test) events precede the
    median time; unique times per user."""
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(n_users), per_user)
    start = rng.integers(0, 100_000, n_users)
    time = start[user] + np.tile(np.arange(per_user) * 97, n_users) + rng.integers(0, 50, len(user))
    item = rng.zipf(1.3, len(user)) % n_items
    label = rng.integers(1, 6, len(user)).astype(np.float32)
    return Interactions(user.astype(np.int64), item.astype(np.int64), n_users, n_items,
                        timestamp=time.astype(np.int64), label=label, name="staggered")


def test_leave_last_out_macro_fit_ignores_valid_and_test_events():
    inter = _staggered_ratings()
    kw = dict(item_macro="kmeans-rows", item_k=6, user_k=4, seed=0)
    a = build_ctr_data(inter, "leave-last-out", **kw)
    # earliest validation / test sample time per user; move every event from then on to another item
    hold = np.full(inter.n_users, np.iinfo(np.int64).max)
    for part in (a.valid, a.test):
        np.minimum.at(hold, part.user, part.time)
    late = inter.timestamp >= hold[inter.user]
    cut = a.features.cutoffs[len(a.features.cutoffs) // 2]
    assert (late & (inter.timestamp < cut) & (inter.label >= 4)).sum() > 20  # held-out events before the fit cut
    item = np.where(late, (inter.item + 37) % inter.n_items, inter.item)
    b = build_ctr_data(Interactions(inter.user, item, inter.n_users, inter.n_items, timestamp=inter.timestamp,
                                    label=inter.label, name="staggered"), "leave-last-out", **kw)
    assert np.array_equal(a.features.item_macro, b.features.item_macro)
    assert np.array_equal(a.features.user_macro, b.features.user_macro)
