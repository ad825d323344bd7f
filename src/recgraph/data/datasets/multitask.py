"""Tiny Ali-CCP / AliExpress multi-task CTR samples (torch-rechub fixtures).

These rows have no user/item ids, so ``interactions`` is empty (0 events) and the tables are in
``meta["tables"]``: ``{"ali_ccp": {"train"|"val"|"test": {column: array}}, "aliexpress":
{"train"|"test": {...}}}`` with label columns listed in ``meta["labels"]``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SkipReport
from ..io import read_table
from ..schema import Interactions
from ._util import need
from .spec import Dataset

FILES = {("ali_ccp", "train"): "ali_ccp_train_sample.csv", ("ali_ccp", "val"): "ali_ccp_val_sample.csv",
         ("ali_ccp", "test"): "ali_ccp_test_sample.csv", ("aliexpress", "train"): "aliexpress_train_sample.csv",
         ("aliexpress", "test"): "aliexpress_test_sample.csv"}
LABELS = {"ali_ccp": ("click", "purchase"), "aliexpress": ("click", "conversion")}


def load(folder: Path, *, name: str = "multitask-samples-aliccp-aliexpress", on_bad_rows: str = "error") -> Dataset:
    tables: dict = {}
    for (ds, part), fname in FILES.items():
        tables.setdefault(ds, {})[part] = read_table(need(folder, fname, name))
    rows = sum(len(next(iter(t.values()))) for parts in tables.values() for t in parts.values())
    empty = np.zeros(0, np.int64)
    inter = Interactions(empty, empty.copy(), 0, 0, name=name)
    meta = {"tables": tables, "labels": LABELS, "rows": rows,
            "notes": "feature-level CTR rows without user/item ids: tables in meta, interactions empty"}
    return Dataset(name, inter, None, SkipReport(), meta)
