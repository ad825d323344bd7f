import gzip

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recgraph.data.errors import DataError, SkipReport
from recgraph.data.io import parse_int_lines, read_id_lists, read_interactions, read_pairs


def write(path, text, gz=False):
    data = text.encode("utf-8") if isinstance(text, str) else text
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def test_csv_basic_columns_by_name_and_index(tmp_path):
    p = write(tmp_path / "log.csv", "u,i,t,r\n10,5,100,4.0\n3,5,90,2\n10,7,120,5\n")
    x = read_interactions(p, user="u", item=1, timestamp="t", label=3)
    assert x.n_users == 2 and x.n_items == 2
    assert x.user_vocab.raw.tolist() == [3, 10]  # sorted raw ids
    assert x.user.tolist() == [1, 0, 1] and x.item.tolist() == [0, 0, 1]
    assert x.timestamp.tolist() == [100, 90, 120]
    assert x.label.dtype == np.float32 and x.label.tolist() == [4.0, 2.0, 5.0]


def test_tsv_gzip_no_header_and_behaviors(tmp_path):
    p = write(tmp_path / "log.tsv.gz", "1\t2\tpv\t5\n1\t3\tbuy\t6\n\n2\t2\tcart\t7\n", gz=True)
    x = read_interactions(p, user=0, item=1, behavior=2, timestamp=3, header=False,
                          behavior_names=("pv", "cart", "buy"))
    assert len(x) == 3
    assert x.behavior_names == ("pv", "cart", "buy")
    assert x.behavior.tolist() == [0, 2, 1]


def test_string_ids_and_names(tmp_path):
    p = write(tmp_path / "log.txt", "a|x\nb|y\na|y\n")
    x = read_interactions(p, user="user", item="item", header=False, names=["user", "item"], sep="|",
                          id_type="str")
    assert x.user_vocab.raw.tolist() == ["a", "b"] and x.item.tolist() == [0, 1, 1]


def test_parquet(tmp_path):
    p = tmp_path / "log.parquet"
    pq.write_table(pa.table({"u": [1, 2, 2], "i": [5, 5, 6], "r": [1.0, float("nan"), 3.0]}), p)
    x = read_interactions(p, user="u", item="i")
    assert len(x) == 3
    with pytest.raises(DataError) as e:
        read_interactions(p, user="u", item="i", label="r")
    assert e.value.file == str(p) and e.value.line == 2 and e.value.column == "r"


def test_missing_column(tmp_path):
    p = write(tmp_path / "log.csv", "u,i\n1,2\n")
    with pytest.raises(DataError) as e:
        read_interactions(p, user="u", item="item_id")
    assert e.value.file == str(p) and e.value.line == 1 and e.value.column == "item_id"
    assert "columns ['u', 'i']" in str(e.value)
    with pytest.raises(DataError) as e:
        read_interactions(p, user="u", item=5)
    assert "out of range" in str(e.value)


@pytest.mark.parametrize("gz", [False, True])
def test_non_numeric_id_error_and_skip(tmp_path, gz):
    p = write(tmp_path / ("log.csv.gz" if gz else "log.csv"), "u,i\n1,2\n\nabc,3\n4,5\n7,x\n", gz=gz)
    with pytest.raises(DataError) as e:
        read_interactions(p, user="u", item="i")
    assert e.value.file == str(p) and e.value.line == 4 and e.value.column == "u"
    assert "id_type='str'" in str(e.value) and "on_bad_rows='skip'" in str(e.value)
    rep = SkipReport()
    x = read_interactions(p, user="u", item="i", on_bad_rows="skip", skip_report=rep)
    assert len(x) == 2
    assert rep.total == 2
    assert rep.counts["non-integer user id in column 'u'"] == 1
    assert rep.counts["non-integer item id in column 'i'"] == 1
    assert f"{p}:6" in rep.examples["non-integer item id in column 'i'"][0]


def test_skip_without_report_warns(tmp_path):
    p = write(tmp_path / "log.csv", "u,i\n1,2\nz,3\n")
    with pytest.warns(UserWarning, match="skipped 1 rows"):
        read_interactions(p, user="u", item="i", on_bad_rows="skip")


def test_bad_timestamp_and_label(tmp_path):
    p = write(tmp_path / "log.csv", "u,i,t,r\n1,2,100,1\n1,3,yesterday,2\n2,3,5,nan\n2,4,6,good\n")
    with pytest.raises(DataError) as e:
        read_interactions(p, user="u", item="i", timestamp="t")
    assert (e.value.line, e.value.column) == (3, "t")
    with pytest.raises(DataError) as e:
        read_interactions(p, user="u", item="i", label="r")
    assert (e.value.line, e.value.column) == (4, "r") and "NaN" in str(e.value)
    rep = SkipReport()
    x = read_interactions(p, user="u", item="i", timestamp="t", label="r", on_bad_rows="skip", skip_report=rep)
    assert len(x) == 1 and rep.total == 3
    assert rep.counts["non-numeric or empty timestamp in column 't'"] == 1
    assert rep.counts["NaN, empty or non-numeric label in column 'r'"] == 2


def test_float_timestamps_accepted(tmp_path):
    p = write(tmp_path / "log.csv", "u,i,t\n1,2,1.5e9\n1,3,1500000001\n")
    x = read_interactions(p, user="u", item="i", timestamp="t")
    assert x.timestamp.tolist() == [1500000000, 1500000001]


def test_empty_file(tmp_path):
    p = write(tmp_path / "log.csv", "u,i\n")
    with pytest.raises(DataError) as e:
        read_interactions(p, user="u", item="i")
    assert e.value.file == str(p) and "no rows" in str(e.value)
    p2 = write(tmp_path / "empty.tsv", "")
    with pytest.raises(DataError):
        read_interactions(p2, user=0, item=1, header=False)


def test_truncated_gzip(tmp_path):
    full = gzip.compress(("1,2\n" * 5000).encode())
    p = tmp_path / "log.csv.gz"
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError) as e:
        read_interactions(p, user=0, item=1, header=False)
    assert e.value.file == str(p) and "truncated gzip" in str(e.value)


def test_duplicates_policy(tmp_path):
    p = write(tmp_path / "log.csv", "u,i,t\n1,2,10\n1,3,11\n1,2,10\n1,2,12\n1,2,10\n")
    with pytest.raises(DataError) as e:
        read_interactions(p, user="u", item="i", timestamp="t")
    assert e.value.line == 4 and "line 2" in str(e.value) and "duplicates='skip'" in str(e.value)
    rep = SkipReport()
    x = read_interactions(p, user="u", item="i", timestamp="t", duplicates="skip", skip_report=rep)
    assert len(x) == 3 and rep.counts["exact duplicate event"] == 2
    assert x.timestamp.tolist() == [10, 11, 12]
    x = read_interactions(p, user="u", item="i", timestamp="t", duplicates="keep")
    assert len(x) == 5


def test_wrong_field_count(tmp_path):
    p = write(tmp_path / "log.csv", "u,i,t\n1,2,3\n4,5\n\n6,7,8,9\n1,3,4\n")
    with pytest.raises(DataError) as e:
        read_interactions(p, user="u", item="i")
    assert e.value.file == str(p) and e.value.line == 3 and "too few fields" in str(e.value)
    rep = SkipReport()
    x = read_interactions(p, user="u", item="i", timestamp="t", on_bad_rows="skip", skip_report=rep)
    assert len(x) == 2 and x.timestamp.tolist() == [3, 4]
    assert rep.counts["too few fields"] == 1 and rep.counts["too many fields"] == 1
    assert rep.examples["too many fields"] == [f"{p}:5"]


def test_line_numbers_after_skipped_rows(tmp_path):
    # a wrong-width row earlier must not shift the line reported for a later bad value
    p = write(tmp_path / "log.csv", "u,i,t\n1,2\n1,2,3\n1,3,bad\n")
    rep = SkipReport()
    with pytest.raises(DataError) as e:
        read_interactions(p, user="u", item="i", timestamp="t", on_bad_rows="error")
    assert e.value.line == 2
    read_interactions(p, user="u", item="i", timestamp="t", on_bad_rows="skip", skip_report=rep)
    assert rep.examples["non-numeric or empty timestamp in column 't'"] == [f"{p}:4"]


def test_unknown_behavior(tmp_path):
    p = write(tmp_path / "log.csv", "u,i,b\n1,2,pv\n1,3,click\n2,3,buy\n")
    with pytest.raises(DataError) as e:
        read_interactions(p, user="u", item="i", behavior="b", behavior_names=("pv", "buy"))
    assert (e.value.line, e.value.column) == (3, "b") and "'click'" in str(e.value)
    rep = SkipReport()
    x = read_interactions(p, user="u", item="i", behavior="b", behavior_names=("pv", "buy"),
                          on_bad_rows="skip", skip_report=rep)
    assert x.behavior.tolist() == [0, 1] and rep.counts["unknown behaviour name in column 'b'"] == 1
    x = read_interactions(p, user="u", item="i", behavior="b")
    assert x.behavior_names == ("buy", "click", "pv")


def test_jsonl(tmp_path):
    p = write(tmp_path / "r.json.gz", '{"reviewerID": "A", "asin": "X", "overall": 5.0, "unixReviewTime": 10}\n'
                                      '{"reviewerID": "B", "asin": "X", "overall": 3.0, "unixReviewTime": 11}\n', gz=True)
    x = read_interactions(p, user="reviewerID", item="asin", label="overall", timestamp="unixReviewTime",
                          id_type="str")
    assert len(x) == 2 and x.label.tolist() == [5.0, 3.0]


def test_item_feature_column(tmp_path):
    p = write(tmp_path / "log.csv", "1,10,900\n2,11,700\n2,10,900\n", gz=False)
    x = read_interactions(p, user=0, item=1, header=False, item_feature_columns={"category": 2})
    assert x.item_features["category"].tolist() == [1, 0]


def test_int_line_parsers(tmp_path):
    p = write(tmp_path / "train.txt", "0 1 2 3\n1 \n2 7\n")
    u, i, pos, lu = read_id_lists(p)
    assert u.tolist() == [0, 0, 0, 2] and i.tolist() == [1, 2, 3, 7] and pos.tolist() == [0, 1, 2, 0]
    assert lu.tolist() == [0, 1, 2]
    bad = write(tmp_path / "bad.txt", "0 1\n1 2x\n")
    with pytest.raises(DataError) as e:
        parse_int_lines(bad)
    assert e.value.line == 2 and e.value.column == "field 2"
    pairs = write(tmp_path / "pairs.txt", "0 1\n1 2\n3\n")
    with pytest.raises(DataError) as e:
        read_pairs(pairs)
    assert e.value.line == 3 and "expected 2 fields" in str(e.value)
