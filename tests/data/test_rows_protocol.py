"""The ``rows:PATH`` CTR protocol (``recgraph.data.rows_protocol``) on the official MacGNN row
listings: the exact rows, the feature windows checked against the listing's own statistics and the
README's popularity floor, and clear errors for bad listings."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from recgraph.data.rows_protocol import build_rows_split, per_user_quantiles, read_rows
from recgraph.eval.protocols import evaluate_ctr
from recgraph.graph.features import build_ctr_data


def build_rows_ctr_data(inter, path):
    return build_ctr_data(inter, f"rows:{path}")

def _root() -> Path:
    import os

    r = Path(os.environ.get("RECGRAPH_DATA", "/work/shared/datasets")) / "macgnn-official-splits"
    if not r.is_dir():
        pytest.skip(f"{r} not available")
    return r


@pytest.fixture(scope="module")
def ml():
    from recgraph.data.datasets import load_dataset

    return load_dataset("movielens-100k").interactions


def test_per_user_quantiles_match_numpy():
    rng = np.random.default_rng(0)
    user = rng.integers(0, 7, 200)
    time = rng.integers(0, 10_000, 200)
    got = per_user_quantiles(user, time, 8, (0.8, 0.9))
    for u in range(7):
        assert np.allclose(got[:, u], np.quantile(time[user == u], [0.8, 0.9]))
    assert np.isnan(got[:, 7]).all()


@pytest.mark.parametrize("name,windows", [("ml-100k", "global"), ("ml-100k-pu", "per-user")])
def test_official_rows_and_windows(ml, name, windows):
    path = _root() / f"{name}_split_rows.csv.gz"
    stats = json.loads((_root() / f"{name}_stats.json").read_text())
    d = build_rows_ctr_data(ml, path)
    assert d.protocol["windows"] == windows
    assert len(d.train) == stats["train_v"]["rows"] and len(d.valid) == stats["valid_v"]["rows"]
    assert len(d.test) == stats["test"]["rows"]
    assert sum(d.dropped.values()) == 0
    # snapshot 0 / 1 hold exactly the positive edges the official preprocessing used
    n_items = d.n_items
    assert int(d.features.item_deg[:n_items].sum()) == stats["n_history_pos_edges_for_train"]
    assert int(d.features.item_deg[n_items:].sum()) == stats["n_pos_edges_for_test"]
    assert abs(float(d.test.label.astype(np.float64).mean()) - stats["test"]["pos_rate"]) < 1e-9
    # the same (user, item, time, label) rows as the listing
    r = read_rows(path)
    assert sorted(zip(ml.user_vocab.raw[d.test.user].tolist(), ml.item_vocab.raw[d.test.item].tolist(),
                      d.test.time.tolist())) == sorted(zip(r["user_id"][r["split"] == 2].tolist(),
                                                            r["item_id"][r["split"] == 2].tolist(),
                                                            r["timestamp"][r["split"] == 2].tolist()))


def test_popularity_floor_matches_the_readme(ml):
    d = build_rows_ctr_data(ml, _root() / "ml-100k_split_rows.csv.gz")
    s = d.test
    pop = d.features.item_deg[s.snapshot * d.n_items + s.item].astype(float)
    m = evaluate_ctr(s.user, s.label, pop, from_logits=True)
    assert abs(m["auc"] - 0.6665) < 1e-3 and abs(m["gauc"] - 0.6852) < 1e-3  # README: 0.6665 / 0.6852


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "rows.csv.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(text)
    return p


def test_bad_listings_name_row_and_column(ml, tmp_path):
    with pytest.raises(ValueError, match="header"):
        read_rows(_write(tmp_path, "u,i,t,label,split\n1,2,3,1,train\n"))
    with pytest.raises(ValueError, match=r"row 3, column 'label'"):
        read_rows(_write(tmp_path, "user_id,item_id,timestamp,label,split\n1,242,881250949,0,train\n1,2,3,2,test\n"))
    with pytest.raises(ValueError, match=r"row 2, column 'split'"):
        read_rows(_write(tmp_path, "user_id,item_id,timestamp,label,split\n1,2,3,1,dev\n"))
    # user 196 rated item 242 at 881250949 (rating 3): an existing event, label must be 0
    with pytest.raises(ValueError, match=r"row 2, column 'label'"):
        build_rows_split(ml, _write(tmp_path, "user_id,item_id,timestamp,label,split\n196,242,881250949,1,train\n"))
    with pytest.raises(ValueError, match=r"row 2: .*not an event"):
        build_rows_split(ml, _write(tmp_path, "user_id,item_id,timestamp,label,split\n196,242,881250950,0,train\n"))
    with pytest.raises(ValueError, match=r"row 2, column 'user_id'"):
        build_rows_split(ml, _write(tmp_path, "user_id,item_id,timestamp,label,split\n99999,242,881250949,0,train\n"))
