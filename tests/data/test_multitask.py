"""Multi-task samples: labels, periods and snapshots re-derived from the raw log by plain loops."""

import numpy as np
import pytest

from recgraph.data.multitask import build_multitask_samples


@pytest.fixture(scope="module")
def mt(small_mt_log):
    return small_mt_log, build_multitask_samples(small_mt_log, ("cart", "fav", "buy"), train_periods=3, min_positives=1)


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


def test_snapshot_cutoff_is_the_start_of_the_impressions_day(mt):
    _, d = mt
    for s in (d.train, d.valid, d.test):
        cut = d.cutoffs[s.snapshot]
        assert (cut <= s.time).all() and (s.time - cut < 86400).all()
        assert ((s.time + 8 * 3600) % 86400 == s.time - cut).all()


def test_rare_task_is_an_error_naming_the_task(small_mt_log):
    with pytest.raises(ValueError, match="task 'fav' has .* positive"):
        build_multitask_samples(small_mt_log, ("fav",), min_positives=10_000)
    with pytest.raises(ValueError, match="not in"):
        build_multitask_samples(small_mt_log, ("click",))
