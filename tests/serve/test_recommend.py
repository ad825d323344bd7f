"""recgraph.serve.recommend: run loading, the retrieval paths against independent references, merging,
visitors (history) on real data."""

from __future__ import annotations


import numpy as np
import pytest

from recgraph.io import ArtifactError
from recgraph.serve.recommend import Engine, IdMap, UnknownItems, UnknownUser, load_run


# ------------------------------------------------------------------------------------------- IdMap
def test_idmap_integer_vocabulary_takes_json_ids():
    m = IdMap(np.array([3, 7, 10, 42], dtype=np.int64))
    np.testing.assert_array_equal(m.lookup(["7", 42, "3", "x", "8", 10.0, "1e3", None, 2 ** 70]),
                                  [1, 3, 0, -1, -1, 2, -1, -1, -1])
    assert m.to_raw([3, 0]) == [42, 3]


def test_idmap_unsorted_string_vocabulary():
    m = IdMap(np.array(["b", "a", "zz", "c"]))
    np.testing.assert_array_equal(m.lookup(["a", "zz", "q", 5]), [1, 2, -1, -1])
    with pytest.raises(ValueError, match="repeat"):
        IdMap(np.array(["a", "b", "a"]))


# ------------------------------------------------------------------------------------------- engine
def test_merge_unions_paths_and_keeps_best_first():
    per_path = {"u2i": (np.array([5, 2, 9]), np.array([3.0, 2.0, 1.0], np.float32)),
                "u2i2i": (np.array([2, 7]), np.array([2.0, 2.5], np.float32)),
                "u2u2i": (np.array([], np.int64), np.array([], np.float32))}
    ids, scores, sources = Engine._merge(per_path, ["u2i", "u2i2i", "u2u2i"])
    np.testing.assert_array_equal(ids, [5, 7, 2, 9])
    np.testing.assert_allclose(scores, [3.0, 2.5, 2.0, 1.0])
    assert sources == [("u2i",), ("u2i2i",), ("u2i", "u2i2i"), ("u2i",)]


@pytest.fixture(scope="module")
def bpr_engine(bpr_run):
    return Engine(load_run(bpr_run[0]))


def test_load_run_matches_training(bpr_engine, bpr_run):
    run = bpr_engine.run
    model = bpr_run[1]["model"]
    assert (run.n_users, run.n_items) == (943, 1682) and run.titles is not None
    u, v = model.embeddings()
    np.testing.assert_allclose(bpr_engine.user_vecs.numpy(), u.detach().numpy())
    np.testing.assert_allclose(bpr_engine.item_vecs.numpy(), v.detach().numpy())
    # MovieLens raw ids are 1-based integers: dense index i is raw id i+1 for both sides
    assert run.users.to_raw([0, 942]) == [1, 943] and run.items.lookup(["1682"])[0] == 1681


def test_u2i_exact_equals_brute_force_without_seen(bpr_engine):
    U, V, seen = bpr_engine.user_vecs.numpy(), bpr_engine.item_vecs.numpy(), bpr_engine.run.seen
    for u in (0, 17, 500):
        s = U[u] @ V.T
        s[seen.indices[seen.indptr[u]:seen.indptr[u + 1]]] = -np.inf
        ref = np.argsort(-s, kind="stable")[:20]
        rec = bpr_engine.recommend(user=str(u + 1), k=20)
        np.testing.assert_array_equal(rec.items, ref)
        np.testing.assert_allclose(rec.scores, s[ref], rtol=1e-5)
        assert all(src == ("u2i",) for src in rec.sources)
        full = bpr_engine.recommend(user=u + 1, k=20, exclude_seen=False)
        np.testing.assert_array_equal(full.items, np.argsort(-(U[u] @ V.T), kind="stable")[:20])


def test_history_query_is_the_mean_item_vector(bpr_engine):
    hist = [50, 172, 181]
    rec = bpr_engine.recommend(history=[str(h) for h in hist] + ["no-such-item"], k=10)
    V = bpr_engine.item_vecs.numpy()
    q = V[np.array(hist) - 1].mean(0)
    s = V @ q
    s[np.array(hist) - 1] = -np.inf
    np.testing.assert_array_equal(rec.items, np.argsort(-s, kind="stable")[:10])
    assert rec.skipped_history == ["no-such-item"] and len(rec.history) == 3


def test_request_errors(bpr_engine):
    with pytest.raises(UnknownUser, match="history"):
        bpr_engine.recommend(user="999999")
    with pytest.raises(UnknownItems):
        bpr_engine.recommend(history=["nope", "0"])
    with pytest.raises(ValueError, match="exactly one"):
        bpr_engine.recommend(user="1", history=["1"])
    with pytest.raises(ValueError, match="exactly one"):
        bpr_engine.recommend()
    with pytest.raises(ValueError, match="k must be"):
        bpr_engine.recommend(user="1", k=0)
    with pytest.raises(ValueError, match="u2i2i"):
        bpr_engine.recommend(user="1", sources=["u2i2i"])


def test_k_larger_than_unseen_catalogue(bpr_engine):
    u = 0
    n_unseen = 1682 - len(bpr_engine.seen_items(u))
    rec = bpr_engine.recommend(user="1", k=1000 + n_unseen)
    assert len(rec.items) == n_unseen and len(np.unique(rec.items)) == n_unseen


def test_visitor_history_beats_popularity_on_held_out_items(bpr_engine, ml100k_split):
    """Serving a test user as a *new visitor* (their training items sent as a history, no user
    vector) must still beat popularity on their held-out test items (Recall@20, 300 users)."""
    from recgraph.models.retrieval.base import interaction_matrix

    truth, seen = interaction_matrix(ml100k_split.test), interaction_matrix(ml100k_split.train)
    users = np.flatnonzero(np.diff(truth.indptr) > 0)[:300]
    pop = np.bincount(ml100k_split.train.item, minlength=ml100k_split.n_items).astype(float)
    raw = bpr_engine.run.items.raw
    r_vis, r_pop = [], []
    for u in users:
        t = truth.indices[truth.indptr[u]:truth.indptr[u + 1]]
        h = seen.indices[seen.indptr[u]:seen.indptr[u + 1]]
        rec = bpr_engine.recommend(history=[str(x) for x in raw[h]], k=20)
        s = pop.copy()
        s[h] = -1
        r_vis.append(np.isin(rec.items, t).mean() * 20 / len(t))
        r_pop.append(np.isin(np.argsort(-s, kind="stable")[:20], t).mean() * 20 / len(t))
    assert np.mean(r_vis) > 1.15 * np.mean(r_pop), (np.mean(r_vis), np.mean(r_pop))


def test_similar_excludes_the_item_and_ranks_by_dot(bpr_engine):
    V = bpr_engine.item_vecs.numpy()
    rec = bpr_engine.similar("50", k=5)
    s = V @ V[49]
    s[49] = -np.inf
    np.testing.assert_array_equal(rec.items, np.argsort(-s, kind="stable")[:5])
    with pytest.raises(UnknownItems):
        bpr_engine.similar("0")


@pytest.mark.parametrize("desc", ["IVF16,nprobe16", "RQ1x16,nprobe16"])
def test_ann_index_with_every_cluster_probed_is_exact(bpr_run, desc):
    """IVF / RQ that probe all of their clusters score every item: same top-k as exact search."""
    exact = Engine(load_run(bpr_run[0]))
    ann = Engine(exact.run, index=desc)
    assert ann.describe()["index"] == desc
    for u in ("1", "99", "700"):
        np.testing.assert_array_equal(ann.recommend(user=u, k=30).items, exact.recommend(user=u, k=30).items)


def test_saved_index_is_loaded_by_auto(bpr_run, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(bpr_run[0], run_dir)
    e = Engine(load_run(run_dir), index="IVF8,nprobe2")
    e.save_index()
    again = Engine(load_run(run_dir))  # "auto" picks RUN/index/items
    assert again.describe()["index"] == "IVF8,nprobe2"
    np.testing.assert_array_equal(again.recommend(user="5", k=10).items, e.recommend(user="5", k=10).items)


def test_itemknn_visitor_equals_known_user(itemknn_run):
    """ItemKNN scores a history exactly as it scores the user who has it."""
    e = Engine(load_run(itemknn_run[0]))
    assert e.sources == ("i2i",)
    ptr, items = e.model.history_indptr.numpy(), e.model.history_items.numpy()  # the model's training history
    for u in (0, 10, 300):
        hist = e.run.items.to_raw(items[ptr[u]:ptr[u + 1]])
        a, b = e.recommend(user=u + 1, k=25, exclude_seen=False), e.recommend(history=hist, k=25, exclude_seen=False)
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    nb = e.similar("1", k=5)
    assert len(nb.items) == 5 and 0 not in nb.items


@pytest.mark.slow  # trains a (small) RankGraph-2 on MovieLens-100K: PPR neighbourhoods + one epoch
def test_rankgraph_paths_against_references(rankgraph_run):
    """U2I through the co-learned RQ index, U2I2I and U2U2I against numpy references built from the
    index's codes: probe the best level-1 codes (U2I) / the clusters of the recent items (U2I2I) /
    the 50 nearest other users' items (U2U2I), score the candidates, drop seen items."""
    e = Engine(load_run(rankgraph_run[0]))
    assert e.sources == ("u2i", "u2i2i", "u2u2i") and "co-learned" in e.describe()["index"]
    rq = e.item_rq
    assert rq is e.index and rq.depth == 1
    U, V, seen = e.user_vecs.numpy(), e.item_vecs.numpy(), e.run.seen
    cluster = rq.codes[:, 0].numpy()
    C1 = rq.codebooks[0].numpy()

    def top(u, cand, k=15):
        cand = np.setdiff1d(cand, seen[u].indices)
        s = V[cand] @ U[u]
        return cand[np.argsort(-s, kind="stable")[:k]]

    for u in (0, 5, 77, 400):
        probe = np.argsort(-(C1 @ U[u]), kind="stable")[:rq.nprobe]
        want = top(u, np.flatnonzero(np.isin(cluster, probe)))
        np.testing.assert_array_equal(e.recommend(user=u + 1, k=15, sources=["u2i"]).items, want)
        recent = e.run.recent[u][e.run.recent[u] >= 0]
        want = top(u, np.flatnonzero(np.isin(cluster, cluster[recent])))
        np.testing.assert_array_equal(e.recommend(user=u + 1, k=15, sources=["u2i2i"]).items, want)
        _, nb = e.user_index.search(U[u:u + 1], 51)
        nb = nb[0][(nb[0] >= 0) & (nb[0] != u)][:50]
        want = top(u, np.unique(seen[nb].indices))
        got = e.recommend(user=u + 1, k=15, sources=["u2u2i"]).items
        np.testing.assert_array_equal(np.sort(got), np.sort(want))
    both = e.recommend(user="1", k=40)
    assert {"u2i", "u2i2i", "u2u2i"} <= {s for src in both.sources for s in src}
    assert np.all(np.diff(both.scores) <= 1e-6)


def test_load_run_errors_name_the_file(tmp_path, bpr_run, din_run):
    with pytest.raises(ArtifactError, match="not a run folder"):
        load_run(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="config.json"):
        load_run(tmp_path)
    with pytest.raises(ArtifactError, match="ranker"):
        load_run(din_run[0])  # a ranking run is served as --ranker, not as the retrieval run


def test_recent_items_follow_the_saved_times(bpr_run):
    """``train.npz`` keeps the interactions' times; a user's "recent" items (U2I2I's seeds, the demo's
    history order) are their latest seen items by time, newest first (file order breaks ties)."""
    from recgraph.io import load_npz

    t = load_npz(bpr_run[0] / "train.npz")
    assert "train_time" in t and "valid_time" in t
    user = np.concatenate([t["train_user"], t["valid_user"]])
    item = np.concatenate([t["train_item"], t["valid_item"]])
    time_ = np.concatenate([t["train_time"], t["valid_time"]])
    run = load_run(bpr_run[0], n_recent=7)
    assert "by their times" in run.provenance
    for u in (0, 5, 100, 942):
        rows = np.flatnonzero(user == u)
        order = sorted(rows, key=lambda r: (-time_[r], -r))  # newest first; equal times: later row first
        want = item[order][:7]
        np.testing.assert_array_equal(run.recent[u][:len(want)], want)


def test_cli_recommend_prints_a_table_and_json_equal_to_the_engine(bpr_engine, bpr_run):
    """`recgraph recommend RUN --user U [--json]`: the engine's top-k, as a table and as JSON; an unknown
    user is a one-line error that says what to do."""
    import json

    from typer.testing import CliRunner

    from recgraph.cli import app

    want = bpr_engine.recommend(user="1", k=5)
    r = CliRunner().invoke(app, ["recommend", str(bpr_run[0]), "--user", "1", "-k", "5", "--json"])
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    assert [row["item"] for row in body["items"]] == bpr_engine.run.items.to_raw(want.items)
    assert body["timings_ms"]["total"] > 0
    r = CliRunner().invoke(app, ["recommend", str(bpr_run[0]), "--user", "1", "-k", "5"])
    assert r.exit_code == 0 and str(body["items"][0]["item"]) in r.output
    r = CliRunner().invoke(app, ["recommend", str(bpr_run[0]), "--user", "no-such-user"])
    assert r.exit_code != 0 and "--history" in r.output
