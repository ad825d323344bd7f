import numpy as np
import pytest

from recgraph.data.schema import Interactions
from recgraph.data.split import leave_last_out, random_ratio, time_quantile


def make_log(seed=0, n_users=50, n_items=40, n=2000):
    rng = np.random.default_rng(seed)
    return Interactions(user=rng.integers(0, n_users, n), item=rng.integers(0, n_items, n),
                        n_users=n_users, n_items=n_items, timestamp=rng.integers(0, 10_000, n))


def test_leave_last_out_takes_each_users_latest_events():
    log = make_log()
    s = leave_last_out(log)
    assert len(s.train) + len(s.valid) + len(s.test) == len(log)
    for u in range(log.n_users):
        ts = np.sort(log.timestamp[log.user == u])
        test_t = s.test.timestamp[s.test.user == u]
        valid_t = s.valid.timestamp[s.valid.user == u]
        train_t = s.train.timestamp[s.train.user == u]
        if len(ts) < 3:
            assert len(test_t) == 0 and len(train_t) == len(ts)
            continue
        assert len(test_t) == 1 and len(valid_t) == 1
        assert test_t[0] == ts[-1] and valid_t[0] == ts[-2]
        assert train_t.max() <= valid_t[0] <= test_t[0]


def test_leave_last_out_hand_case_with_ties_uses_file_order():
    log = Interactions(user=np.array([0, 0, 0, 0, 1]), item=np.array([0, 1, 2, 3, 0]), n_users=2, n_items=4,
                       timestamp=np.array([5, 9, 9, 1, 3]))
    s = leave_last_out(log)
    # user 0 by (time, file order): item3(1), item0(5), item1(9), item2(9) -> test item2, valid item1
    assert s.test.item.tolist() == [2] and s.valid.item.tolist() == [1]
    assert sorted(s.train.item.tolist()) == [0, 0, 3]  # user 1 (1 event) keeps it in train
    assert s.protocol["users_train_only"] == 1


def test_time_quantile_cutoffs():
    log = make_log(1)
    s = time_quantile(log, valid_q=0.8, test_q=0.9)
    t1, t2 = np.quantile(log.timestamp, [0.8, 0.9])
    assert s.train.timestamp.max() <= t1 < s.valid.timestamp.min()
    assert s.valid.timestamp.max() <= t2 < s.test.timestamp.min()
    assert len(s.train) + len(s.valid) + len(s.test) == len(log)


def test_time_quantile_needs_timestamps():
    log = make_log().replace(timestamp=None)
    with pytest.raises(ValueError, match="timestamps"):
        time_quantile(log)


def test_random_ratio_is_seeded_and_per_user():
    log = make_log(2)
    a, b, c = random_ratio(log, seed=3), random_ratio(log, seed=3), random_ratio(log, seed=4)
    assert np.array_equal(a.test.item, b.test.item) and np.array_equal(a.test.user, b.test.user)
    assert not (np.array_equal(a.test.item, c.test.item) and np.array_equal(a.test.user, c.test.user))
    counts = np.bincount(log.user, minlength=log.n_users)
    tr = np.bincount(a.train.user, minlength=log.n_users)
    assert np.array_equal(tr, np.floor(counts * 0.8).astype(int))
    assert len(a.train) + len(a.valid) + len(a.test) == len(log)
