"""Taobao UserBehavior (Tianchi), real 814-user head sample: pv / cart / fav / buy with timestamps."""

from __future__ import annotations

from pathlib import Path


from ..errors import SkipReport
from ..io import read_interactions
from ._util import need
from .spec import Dataset

BEHAVIORS = ("pv", "cart", "fav", "buy")
# official window 2017-11-25 00:00 – 2017-12-04 00:00 China time (UTC+8)
WINDOW = (1511539200, 1512316800)


def load(folder: Path, *, name: str = "taobao-userbehavior-sample", on_bad_rows: str = "error") -> Dataset:
    report = SkipReport()
    inter = read_interactions(need(folder, "UserBehavior_head814users.csv.gz", name), user=0, item=1,
                              behavior=3, timestamp=4, sep=",", header=False, behavior_names=BEHAVIORS,
                              item_feature_columns={"category": 2}, on_bad_rows=on_bad_rows,
                              duplicates="error", skip_report=report, name=name)
    outside = (inter.timestamp < WINDOW[0]) | (inter.timestamp >= WINDOW[1])
    meta = {"time_window": WINDOW, "n_outside_window": int(outside.sum()),
            "outside_window_mask": outside,
            "notes": "sample = first 814 users of the original file; rows outside the official window are "
                     "kept (they exist in the original too) and flagged in meta['outside_window_mask']; "
                     "item_features['category'] = dense category code (sorted raw category ids)"}
    return Dataset(name, inter, None, report, meta)
