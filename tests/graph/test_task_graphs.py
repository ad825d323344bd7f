"""Per-task macro graphs: features re-derived from the raw log (strictly before the snapshot
cutoff), request = batch, per-behaviour tables of a static log."""

import numpy as np
import pytest

from recgraph.graph.task_graphs import behavior_feature_tables, build_multitask_data

NEEDS = frozenset({"macro", "recent", "task_macro"})


@pytest.fixture(scope="module")
def mt(small_mt_log):
    return small_mt_log, build_multitask_data(small_mt_log, ("cart", "fav", "buy"), train_periods=3, min_positives=1)


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
        ev = ev[np.argsort(-t[ev], kind="stable")]            # most recent first (ties: any order)
        rec, rec_t = batch.user.recent[r].numpy(), batch.user.recent_time[r].numpy()
        n = min(len(ev), 20)
        assert rec_t[:n].tolist() == t[ev[:n]].tolist() and (rec[n:] == inter.n_items).all()
        if len(ev) <= 20 or t[ev[19]] != t[ev[20]]:          # no tie across the list's end
            assert sorted(zip(rec_t[:n], rec[:n])) == sorted(zip(t[ev[:n]], i[ev[:n]]))
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


def test_behavior_tables_count_each_behaviours_edges(small_mt_log):
    shared, per, mem = behavior_feature_tables(small_mt_log)
    b = small_mt_log.behavior
    for code, name in enumerate(small_mt_log.behavior_names):
        assert per[name].u1_cnt.sum() == (b == code).sum()     # 1-hop counts = the behaviour's events
        assert (per[name].item_macro == shared.item_macro).all()
    assert shared.u1_cnt.sum() == len(b) and set(mem) == {"shared", "pv", "cart", "fav", "buy"}


def test_behavior_tables_without_categories_cluster_svd_factors(small_mt_log):
    import dataclasses

    inter = dataclasses.replace(small_mt_log, item_features={})
    shared, per, _ = behavior_feature_tables(inter, ("cart", "buy"), item_k=4, user_k=3)
    assert shared.n_item_macros <= 5 and shared.n_user_macros == 4      # k (+ "unknown")
    assert per["cart"].u1_cnt.sum() == (inter.behavior == 1).sum()
    assert (per["buy"].user_macro == shared.user_macro).all()
