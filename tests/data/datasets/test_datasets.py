"""Each available bundled dataset loads with the statistics INDEX.md / the folder READMEs state."""

import time

import numpy as np
import pytest

from recgraph.config import resolve_data_dir
from recgraph.data.datasets import DATASETS, list_datasets, load_dataset, missing_files
from recgraph.data.errors import DataError

ROOT = resolve_data_dir()


def need(name):
    if not (ROOT / DATASETS[name].folder).is_dir():
        pytest.skip(f"dataset folder {ROOT / DATASETS[name].folder} is absent (set RECGRAPH_DATA)")
    if missing_files(name):
        pytest.skip(f"{name}: files missing under {ROOT}")
    return load_dataset(name, download=False)


def counts(ds):
    d = ds.interactions.describe()
    return d["events"], d["users"], d["items"]


EXPECTED = {  # events, users present, items present  (INDEX.md)
    "movielens-100k": (100_000, 943, 1_682),
    "lightgcn-gowalla": (1_027_370, 29_858, 40_981),
    "s3rec-beauty": (198_502, 22_363, 12_101),
    "s3rec-yelp": (316_354, 30_431, 20_033),
    "s3rec-lastfm": (52_551, 1_090, 3_646),
    "sasrec-amazon-video-games": (287_107, 31_013, 23_715),
    "taobao-userbehavior-sample": (84_287, 814, 55_233),
    "hetrec2011-lastfm-2k": (92_834, 1_892, 17_632),
    "amazon2018-all-beauty-5core": (5_269 - 1_027, 991, 85),
    "amazon2014-musical-instruments-5core": (10_261, 1_429, 900),
    "ghcf-beibei-partial": (304_576 + 642_622, 21_716, 7_977),
    "ghcf-taobao-partial": (259_771 + 193_747, 48_749, 39_493),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts(name):
    ds = need(name)
    assert counts(ds) == EXPECTED[name]
    assert ds.interactions.n_users >= EXPECTED[name][1]


def test_registry_covers_index():
    index = (ROOT / "INDEX.md").read_text() if (ROOT / "INDEX.md").exists() else ""
    for folder in {s.folder for s in DATASETS.values()}:
        if index:
            assert f"`{folder}`" in index or folder == "s3rec-sequences"
    assert len(DATASETS) == 15
    for spec in DATASETS.values():
        for f in spec.files:
            assert len(f.sha256) == 64 and len(f.content_checksum) == 64


def test_movielens_features():
    ds = need("movielens-100k")
    x = ds.interactions
    assert x.label.dtype == np.float32 and set(np.unique(x.label)) == {1, 2, 3, 4, 5}
    assert np.bincount(x.label.astype(int))[1:].tolist() == [6110, 11370, 27145, 34174, 21201]
    assert x.item_features["genre"].shape == (1682, 19)
    g = x.item_features["genre"].sum(axis=1)
    assert g.min() >= 1 and g.max() <= 6
    toy = x.item_vocab.lookup([1])[0]
    assert x.item_features["year"][toy] == 1995 and x.item_features["category"][toy] == 3  # Animation
    assert (x.user_features["gender"] == 1).sum() == 670
    assert x.user_features["age"].min() == 7 and x.user_features["age"].max() == 73
    assert "Misérables" in " ".join(ds.meta["item_title"])  # latin-1 decoded
    from recgraph.data.datasets.movielens import load_fold

    s = load_fold(ROOT / "movielens-100k", "ua", dataset=ds)
    assert (len(s.train), len(s.test)) == (90_570, 9_430)
    assert np.all(np.bincount(s.test.user, minlength=943) == 10)


def test_gowalla_split_and_speed():
    if missing_files("lightgcn-gowalla"):
        pytest.skip("gowalla files missing")
    t = time.perf_counter()
    ds = load_dataset("lightgcn-gowalla", download=False)
    elapsed = time.perf_counter() - t
    assert elapsed < 10, f"gowalla took {elapsed:.1f}s"
    s = ds.predefined
    assert s is not None and s.protocol["split"] == "predefined" and s.valid is None
    assert (len(s.train), len(s.test)) == (810_128, 217_242)
    assert (s.n_users, s.n_items) == (29_858, 40_981)
    assert len(ds.meta["user_org_id"]) == 29_858


def test_amazon_book_partial():
    ds = need("lightgcn-amazon-book-partial")
    assert ds.predefined is None and ds.meta["partial"] and "train.txt" in ds.meta["missing"]
    assert len(ds.interactions) == 603_378
    assert (ds.interactions.n_users, ds.interactions.n_items) == (52_643, 91_599)
    assert ds.interactions.describe()["users"] == 52_639


def test_sequences_order_and_attributes():
    ds = need("s3rec-lastfm")
    x = ds.interactions
    assert ds.meta["test_negatives"].shape == (1_090, 99)
    assert ds.meta["n_attributes"] == 388
    # order as time, end-aligned: steps of 1 within a user, every user's last event at L - 1
    new_user = np.r_[True, x.user[1:] != x.user[:-1]]
    assert (np.diff(x.timestamp)[~new_user[1:]] == 1).all()
    last = x.timestamp[np.r_[new_user[1:], True]]
    assert (last == 898).all() and ds.meta["order_time"] == "end"  # LastFM's longest sequence: 899
    beauty = need("s3rec-beauty")
    a = beauty.interactions.item_features["attributes"]
    assert a.shape[0] == 12_101 and beauty.meta["n_attributes"] == 637
    assert abs((a > 0).sum() / 12_101 - 3.72) < 0.01


def test_taobao_behaviors_and_outliers():
    ds = need("taobao-userbehavior-sample")
    d = ds.interactions.describe()
    assert d["behaviors"] == {"pv": 75_693, "cart": 4_494, "fav": 2_351, "buy": 1_749}
    assert ds.meta["n_outside_window"] == 35
    assert int(ds.interactions.item_features["category"].max()) + 1 == 2_911
    assert (d["time_min"], d["time_max"]) == (1505117799, 1512316763)


def test_hetrec_friends():
    ds = need("hetrec2011-lastfm-2k")
    f = ds.meta["friends"]
    assert f.shape == (25_434, 2)
    key = set(map(tuple, f.tolist()))
    assert all((b, a) in key for a, b in list(key)[:500])  # symmetric
    assert ds.interactions.label.max() == 352_698


def test_all_beauty_duplicates_counted():
    ds = need("amazon2018-all-beauty-5core")
    assert ds.skipped.counts["exact duplicate row"] == 1_027
    assert ds.meta["rows_in_file"] == 5_269


def test_multibehavior_splits():
    ds = need("mbgcn-tmall-partial")
    s = ds.predefined
    assert (ds.interactions.n_users, ds.interactions.n_items) == (41_738, 11_953)
    assert ds.interactions.describe()["behaviors"] == {"buy": 287_158, "collect": 221_514, "cart": 1_996}
    assert len(s.test) == 74_158 and len(s.valid) == 31_572
    assert s.train.describe()["behaviors"]["buy"] == 181_428
    beibei = need("ghcf-beibei-partial")
    assert len(beibei.predefined.test) == 21_716
    assert np.all(np.bincount(beibei.predefined.test.user) == 1)


def test_multitask_tables():
    ds = need("multitask-samples-aliccp-aliexpress")
    t = ds.meta["tables"]
    assert ds.meta["rows"] == 320
    assert len(t["ali_ccp"]["train"]["click"]) == 100 and int(t["ali_ccp"]["train"]["click"].sum()) == 7
    assert len(t["aliexpress"]["train"]) == 82 and int(t["aliexpress"]["test"]["conversion"].sum()) == 2


def test_list_datasets():
    rows = list_datasets(compute=None)
    by = {r["name"]: r for r in rows}
    assert set(by) == set(DATASETS)
    if by["movielens-100k"]["available"]:
        assert by["movielens-100k"]["stats_source"] == "computed"
        assert by["movielens-100k"]["stats"]["events"] == 100_000
    gw = by["lightgcn-gowalla"]
    assert gw["stats_source"] == "README" and gw["stats"]["events"] == 1_027_370


def test_list_datasets_unavailable(tmp_path):
    rows = list_datasets(tmp_path)
    assert not any(r["available"] for r in rows)
    assert all(r["stats_source"] == "README" for r in rows)


def test_missing_without_download(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("taobao-userbehavior-sample", tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path / "taobao-userbehavior-sample" / "UserBehavior_head814users.csv.gz") in msg
    assert "--data-dir" in msg and "RECGRAPH_DATA" in msg
