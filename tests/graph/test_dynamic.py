"""Time-respecting k-depth neighbourhoods: brute-force parity, strictness, recency order, and a leak
check that is shown to catch a leaking sampler."""

from __future__ import annotations

import numpy as np
import pytest

from recgraph.graph.dynamic import sample_dynamic, time_graph


@pytest.fixture(scope="module")
def events():
    rng = np.random.default_rng(3)
    n_users, n_items, n = 25, 18, 400
    user = rng.integers(0, n_users, n)
    item = rng.integers(0, n_items, n)
    time = rng.integers(0, 60, n)  # many ties in time, and repeated (user, item) pairs
    return user, item, time, n_users, n_items


def _reference(src, dst, ts, root, bound, fanout):
    """Brute force: events of ``root`` with time < bound, latest first (ties: larger neighbour id
    first, the graph's within-time order reversed)."""
    m = (src == root) & (ts < bound)
    nb, t = dst[m], ts[m]
    o = np.lexsort((nb, t))[::-1][:fanout]
    return nb[o], t[o]


def leak_count(hops, t) -> int:
    """Non-padding neighbour edges (any hop) whose time is not strictly before the sample's time."""
    bad = 0
    for h, (ids, ts) in enumerate(zip(hops.ids, hops.times)):
        tt = np.asarray(t).reshape((-1,) + (1,) * (h + 1))
        bad += int(((ids != hops.pads[h]) & (ts >= tt)).sum())
    return bad


def _inclusive_sampler(graph, roots, t, fanouts, side="user"):
    """A deliberately leaking sampler: ``time <= t`` (off by one — it sees the sample's own event)."""
    return sample_dynamic(graph, roots, np.asarray(t) + 1, fanouts, side=side)


@pytest.mark.parametrize("side", ["user", "item"])
@pytest.mark.parametrize("deep_bound", ["sample", "parent"])
def test_matches_brute_force_two_hops(events, side, deep_bound):
    user, item, time, nu, ni = events
    g = time_graph(user, item, time, nu, ni)
    rng = np.random.default_rng(0)
    n_root = nu if side == "user" else ni
    roots = rng.integers(0, n_root, 40)
    t = rng.integers(0, 70, 40)
    hops = sample_dynamic(g, roots, t, (6, 4), side=side, deep_bound=deep_bound)
    src, dst = (user, item) if side == "user" else (item, user)
    pad1, pad2 = (ni, nu) if side == "user" else (nu, ni)
    assert hops.ids[0].shape == (40, 6) and hops.ids[1].shape == (40, 6, 4)
    assert hops.pads == (pad1, pad2)
    for b in range(40):
        want, want_t = _reference(src, dst, time, roots[b], t[b], 6)
        k = len(want)
        np.testing.assert_array_equal(hops.ids[0][b, :k], want)
        np.testing.assert_array_equal(hops.times[0][b, :k], want_t)
        assert np.all(hops.ids[0][b, k:] == pad1) and np.all(hops.times[0][b, k:] == -1)
        for j in range(6):
            if j >= k:
                assert np.all(hops.ids[1][b, j] == pad2)
                continue
            bound = t[b] if deep_bound == "sample" else want_t[j]
            w2, w2_t = _reference(dst, src, time, want[j], bound, 4)
            np.testing.assert_array_equal(hops.ids[1][b, j, :len(w2)], w2)
            np.testing.assert_array_equal(hops.times[1][b, j, :len(w2)], w2_t)
            assert np.all(hops.ids[1][b, j, len(w2):] == pad2)


def test_strictly_before_and_recency_order(events):
    user, item, time, nu, ni = events
    g = time_graph(user, item, time, nu, ni)
    # each event as a sample at its own time: its own edge (and same-time events) must not appear
    hops = sample_dynamic(g, user, time, (8, 5, 3))
    assert hops.depth == 3 and hops.ids[2].shape == (len(user), 8, 5, 3)
    assert leak_count(hops, time) == 0
    own = (hops.ids[0] == item[:, None]) & (hops.times[0] == time[:, None])
    assert not own.any()
    for h in range(3):
        valid = hops.ids[h] != hops.pads[h]
        ts = np.where(valid, hops.times[h], -1)
        assert np.all(np.diff(ts, axis=-1) <= 0), "not most recent first"
        assert np.all(valid[..., 1:] <= valid[..., :-1]), "padding is not a suffix"
    # the parent bound is tighter: every hop-2 edge is before its parent's edge
    hp = sample_dynamic(g, user, time, (8, 5), deep_bound="parent")
    v = hp.ids[1] != hp.pads[1]
    assert np.all(hp.times[1][v] < np.broadcast_to(hp.times[0][..., None], v.shape)[v])


def test_leak_check_catches_leaking_samplers(events):
    """Test the test: the leak check must fire on an off-by-one (``<= t``) and an all-time sampler."""
    user, item, time, nu, ni = events
    g = time_graph(user, item, time, nu, ni)
    assert leak_count(sample_dynamic(g, user, time, (8, 5)), time) == 0
    assert leak_count(_inclusive_sampler(g, user, time, (8, 5)), time) > 0
    assert leak_count(sample_dynamic(g, user, time, (8, 5), deep_bound="all-time"), time) > 0
    # the sample's own edge is what the off-by-one sampler leaks first
    inc = _inclusive_sampler(g, user, time, (8,))
    assert ((inc.ids[0] == item[:, None]) & (inc.times[0] == time[:, None])).any(1).all()


def test_empty_history_is_padding_and_errors():
    g = time_graph([0, 0, 1], [1, 2, 0], [5, 7, 9], 3, 3)
    hops = sample_dynamic(g, [0, 2, 1], [5, 100, 10], (2, 2))
    assert hops.ids[0].tolist() == [[3, 3], [3, 3], [0, 3]]  # t=5 excludes the edge at 5; user 2 has none
    assert hops.ids[1][2, 0].tolist() == [1, 3]  # item 0's users before t=10: user 1 (at 9)
    with pytest.raises(ValueError, match="order='time'"):
        from recgraph.graph.bipartite import BipartiteGraph
        sample_dynamic(BipartiteGraph.from_edges([0], [0], 1, 1, timestamp=[1]), [0], [2], (1,))
    with pytest.raises(ValueError, match="user ids must lie"):
        sample_dynamic(g, [3], [1], (1,))
    with pytest.raises(ValueError, match="deep_bound"):
        sample_dynamic(g, [0], [1], (1,), deep_bound="future")
    with pytest.raises(ValueError, match="fanouts"):
        sample_dynamic(g, [0], [1], ())
