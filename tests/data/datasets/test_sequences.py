"""S3-Rec / SASRec loaders: order as time (end- or start-aligned) and malformed files named by line."""

import gzip

import numpy as np
import pytest

from recgraph.data.ctr import build_ctr_samples
from recgraph.data.datasets.sequences import load_s3rec, load_sasrec, order_time
from recgraph.data.errors import DataError


def _s3rec(tmp_path, text, stem="Beauty"):
    (tmp_path / f"{stem}.txt").write_text(text)
    items = {int(t) for line in text.split("\n") for t in line.split()[1:] if t.isdigit()}
    (tmp_path / f"{stem}_item2attributes.json").write_text(
        "{" + ", ".join(f'"{i}": [1, 2]' for i in sorted(items)) + "}")
    return tmp_path


def _video(tmp_path, text):
    with gzip.open(tmp_path / "Video.txt.gz", "wt") as fh:
        fh.write(text)
    return tmp_path


def test_order_time_end_and_start():
    u = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pos = np.array([0, 1, 2, 0, 1, 0, 1, 2, 3])
    assert order_time(u, pos, "start").tolist() == pos.tolist()
    assert order_time(u, pos, "end").tolist() == [1, 2, 3, 2, 3, 0, 1, 2, 3]
    with pytest.raises(ValueError, match="order_time"):
        order_time(u, pos, "middle")


def test_s3rec_end_aligned(tmp_path):
    folder = _s3rec(tmp_path, "1 10 11 12 13 14\n2 11 12 13\n3 10 11 12 13 14 15 16\n")
    ds = load_s3rec(folder, name="s3rec-beauty")
    x = ds.interactions
    t = {(int(ds.interactions.user_vocab.raw[a]), int(ds.interactions.item_vocab.raw[b])): int(c)
         for a, b, c in zip(x.user, x.item, x.timestamp)}
    assert t[(3, 16)] == t[(1, 14)] == t[(2, 13)] == 6          # last events together, L - 1
    assert (t[(1, 10)], t[(2, 11)], t[(3, 10)]) == (2, 4, 0)
    assert ds.meta["order_time"] == "end" and ds.meta["real_timestamps"] is False
    start = load_s3rec(folder, name="s3rec-beauty", order_time_mode="start").interactions
    assert sorted(start.timestamp[start.user == start.user_vocab.lookup(np.array([2]))[0]]) == [0, 1, 2]


def test_leave_last_out_never_shows_held_out_events_before_a_sample(tmp_path):
    """End-aligned: every held-out (validation / test) positive is at or after every training sample's time."""
    rng = np.random.default_rng(0)
    lines = [" ".join(map(str, [u, *rng.choice(np.arange(1, 60), rng.integers(5, 30), replace=False)]))
             for u in range(1, 80)]
    ds = load_s3rec(_s3rec(tmp_path, "\n".join(lines) + "\n"), name="s3rec-beauty")
    sp = build_ctr_samples(ds.interactions, "leave-last-out")
    s, part = sp.samples, sp.part
    pos = s.label > 0
    assert s.time[pos & (part == 2)].min() > s.time[part == 1].max() > s.time[part == 0].max()
    start = build_ctr_samples(load_s3rec(tmp_path, name="s3rec-beauty", order_time_mode="start").interactions,
                              "leave-last-out")
    # start-aligned would put short users' test events before long users' training samples
    assert start.samples.time[start.part == 2].min() < start.samples.time[start.part == 0].max()


@pytest.mark.parametrize("text, line, words", [
    ("1 10 11 12\n2 11 x 13\n", 2, ("non-integer", "field 3")),
    ("1 10 11 12\n2\n3 10 11\n", 2, ("user 2 has no items",)),
    ("1 10 11 12\n2 11 12\n\n1 13 14\n", 4, ("user 1 already has a sequence on line 1",)),
])
def test_s3rec_malformed_rows_named(tmp_path, text, line, words):
    folder = _s3rec(tmp_path, text)
    with pytest.raises(DataError) as exc:
        load_s3rec(folder, name="s3rec-beauty")
    msg = str(exc.value)
    assert f"Beauty.txt:{line}" in msg and all(w in msg for w in words), msg


def test_sasrec_end_aligned(tmp_path):
    ds = load_sasrec(_video(tmp_path, "1 5\n1 6\n1 7\n2 5\n2 8\n"))
    x = ds.interactions
    assert x.timestamp.tolist() == [0, 1, 2, 1, 2]
    assert load_sasrec(tmp_path, order_time_mode="start").interactions.timestamp.tolist() == [0, 1, 2, 0, 1]


@pytest.mark.parametrize("text, line, words", [
    ("1 5\n1 6\n2 5 7\n", 3, ("expected 2 fields", "got 3")),
    ("1 5\n1 6\n2 5\n1 7\n", 4, ("user 1 are not contiguous",)),
    ("1 5\n1 -6\n", 2, ("non-integer",)),
    ("", None, ("no rows",)),
])
def test_sasrec_malformed_rows_named(tmp_path, text, line, words):
    folder = _video(tmp_path, text)
    with pytest.raises(DataError) as exc:
        load_sasrec(folder)
    msg = str(exc.value)
    assert ("Video.txt.gz" + (f":{line}" if line else "")) in msg and all(w in msg for w in words), msg
