"""Multi-task samples: labels and leak-freedom re-derived from the raw log by plain loops."""

import numpy as np
import pytest

from recgraph.data.multitask import behavior_feature_tables, build_multitask_data

NEEDS = frozenset({"macro", "recent", "task_macro"})


@pytest.fixture(scope="module")
def mt(small_mt_log):
    return small_mt_log, build_multitask_data(small_mt_log, ("cart", "fav", "buy"), train_periods=3, min_positives=1)


def test_labels_and_periods_match_a_loop_over_the_log(mt):
    inter, d = mt
    u, i, t, b = inter.user, inter.item, inter.timestamp, inter.behavior
    day = (t + 8 * 3600) // 86400
    last = day.max()
    n = 0
    for name, part, days in (("train", d.train, range(last - 5, last - 2)), ("valid", d.valid, [last - 2]),
                             ("test", d.test, [last - 1])):
        # impressions: first view of (user, item) per day, in the part's days
        views = {}
        for e in np.flatnonzero(b == 0):
            if day[e] in days:
                k = (u[e], i[e], day[e])
                views[k] = min(views.get(k, t[e]), t[e])
        assert len(part) == len(views), name
        got = {(uu, ii, tt): row for uu, ii, tt, row in zip(part.user, part.item, part.time, part.labels)}
        for (uu, ii, dd), tt in views.items():
            row = got[(uu, ii, tt)]
            for k, code in enumerate((1, 2, 3)):
                hit = np.any((u == uu) & (i == ii) & (b == code) & (t >= tt) & (t <= tt + 86400))
                assert row[k] == float(hit)
        n += len(views)
    assert n > 300 and d.train.labels.sum() > 20


def test_features_use_only_events_before_the_snapshot_cutoff(mt):
    """Recent lists and per-task macro counts of every sample, recomputed from the raw events with
    t < the start of the sample's day; a planted event at the impression time would be caught."""
    inter, d = mt
    u, i, t, b = inter.user, inter.item, inter.timestamp, inter.behavior
    f = d.shared.features
    s = d.test
    batch = d.batch(s, None, NEEDS)
    for r in range(len(s)):
        cut = f.cutoffs[s.snapshot[r]]
        assert cut <= s.time[r] and s.time[r] - cut < 86400
        ev = np.flatnonzero((u == s.user[r]) & (t < cut))
        ev = ev[np.lexsort((ev, t[ev]))][::-1][:20]            # most recent first
        rec = batch.user.recent[r].numpy()
        assert rec[:len(ev)].tolist() == i[ev].tolist() and (rec[len(ev):] == inter.n_items).all()
        for k, code in enumerate((1, 2, 3)):                   # task graph: the user's 1-hop category counts
            m = (u == s.user[r]) & (t < cut) & (b == code)
            want = np.bincount(f.item_macro[i[m]], minlength=f.n_item_macros)
            side = batch.task_user[k]
            got = np.zeros(f.n_item_macros + 1)
            np.add.at(got, side.hop1_ids[r].numpy(), side.hop1_cnt[r].numpy())
            assert np.allclose(got[:-1], want)


def test_request_equals_batch(mt):
    inter, d = mt
    s = d.test
    user = int(s.user[0])
    rows = np.flatnonzero((s.user == user) & (s.snapshot == s.snapshot[0]))
    req = d.request(user, s.item[rows], int(s.snapshot[0]), NEEDS)
    bat = d.batch(s, rows, NEEDS)
    assert req.user.ids.shape == (1,)
    for k in range(3):
        assert (req.task_item[k].hop2_cnt == bat.task_item[k].hop2_cnt).all()
        assert (req.task_user[k].hop1_ids[0] == bat.task_user[k].hop1_ids[0]).all()


def test_rare_task_is_an_error_naming_the_task(small_mt_log):
    with pytest.raises(ValueError, match="task 'fav' has .* positive"):
        build_multitask_data(small_mt_log, ("fav",), min_positives=10_000)
    with pytest.raises(ValueError, match="not in"):
        build_multitask_data(small_mt_log, ("click",))


def test_behavior_tables_count_each_behaviours_edges(small_mt_log):
    shared, per, mem = behavior_feature_tables(small_mt_log)
    b = small_mt_log.behavior
    for code, name in enumerate(small_mt_log.behavior_names):
        assert per[name].u1_cnt.sum() == (b == code).sum()     # 1-hop counts = the behaviour's events
        assert (per[name].item_macro == shared.item_macro).all()
    assert shared.u1_cnt.sum() == len(b) and set(mem) == {"shared", "pv", "cart", "fav", "buy"}
