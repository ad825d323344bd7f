"""LightGCN / NGCF benchmark splits: ``user item item ...`` lines, predefined train/test."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, SkipReport
from ..io import read_bytes, read_id_lists
from ..schema import Interactions, Vocab
from ..split import Split
from ._util import need
from .spec import Dataset


def _id_map(path: Path) -> np.ndarray:
    """``org_id remap_id`` file → ``org[remap]`` (strings; original ids stay as written)."""
    lines = read_bytes(path).decode("utf-8").split("\n")
    if not lines or lines[0].split() != ["org_id", "remap_id"]:
        raise DataError("expected header 'org_id remap_id'", file=str(path), line=1)
    pairs = np.asarray([ln.split() for ln in lines[1:] if ln.strip()], dtype=str)  # id maps: ~10^5 rows
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise DataError("expected two fields per line", file=str(path))
    remap = pairs[:, 1].astype(np.int64)
    out = np.empty(len(remap), dtype=object)
    if not np.array_equal(np.sort(remap), np.arange(len(remap))):
        raise DataError("remap_id is not a permutation of 0..n-1", file=str(path))
    out[remap] = pairs[:, 0]
    return out


def _check_range(path: Path, ids: np.ndarray, n: int, what: str) -> None:
    if len(ids) and (ids.min() < 0 or ids.max() >= n):
        raise DataError(f"{what} id {int(ids.max())} outside 0..{n - 1} given by the id map", file=str(path))


def load_gowalla(folder: Path, *, name: str = "lightgcn-gowalla", on_bad_rows: str = "error") -> Dataset:
    return _load(folder, name, has_train=True)


def load_amazon_book(folder: Path, *, name: str = "lightgcn-amazon-book-partial",
                     on_bad_rows: str = "error") -> Dataset:
    return _load(folder, name, has_train=(folder / "train.txt").exists() or (folder / "train.txt.gz").exists())


def _load(folder: Path, name: str, has_train: bool) -> Dataset:
    users_org = _id_map(need(folder, "user_list.txt.gz", name))
    items_org = _id_map(need(folder, "item_list.txt.gz", name))
    n_users, n_items = len(users_org), len(items_org)
    parts = {}
    for part in (("train", "test") if has_train else ("test",)):
        path = need(folder, f"{part}.txt.gz", name)
        u, i, _, line_users = read_id_lists(path)
        _check_range(path, line_users, n_users, "user")
        _check_range(path, i, n_items, "item")
        parts[part] = Interactions(u, i, n_users, n_items, user_vocab=Vocab.identity(n_users),
                                   item_vocab=Vocab.identity(n_items), name=name)
    meta = {"user_org_id": users_org, "item_org_id": items_org,
            "notes": "ids are the official remapped ids (dense index = remap id); original ids in meta"}
    if has_train:
        tr, te = parts["train"], parts["test"]
        all_ = tr.replace(user=np.concatenate([tr.user, te.user]), item=np.concatenate([tr.item, te.item]))
        split = Split(tr, te, None, {"split": "predefined", "source": "LightGCN/NGCF train.txt/test.txt"})
        return Dataset(name, all_, split, SkipReport(), meta)
    meta.update({"partial": True, "missing": ["train.txt"], "train_missing": True,
                 "notes": "PARTIAL: train.txt is missing; interactions = the official test split only. "
                          "Put the official train.txt (md5 c916ecac04ca72300a016228258b41ed) in the folder "
                          "to get the full dataset and the predefined split."})
    return Dataset(name, parts["test"], None, SkipReport(), meta)
