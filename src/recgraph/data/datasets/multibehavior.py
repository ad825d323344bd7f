"""Multi-behaviour releases with a predefined split of the target behaviour: MBGCN Tmall, GHCF
Beibei / Taobao. ``predefined.train`` = target-behaviour train + every auxiliary behaviour;
``test`` (and MBGCN's ``valid``) = target behaviour only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, SkipReport
from ..io import read_bytes, read_id_lists, read_pairs
from ..schema import Interactions, Vocab
from ..split import Split
from ._util import need
from .spec import Dataset


def _build(name: str, parts: list[tuple[str, str, np.ndarray, np.ndarray]], behaviors: tuple[str, ...],
           n_users: int, n_items: int, target: str, meta: dict) -> Dataset:
    """parts: (split role in {'train','valid','test'}, behaviour, users, items)."""
    uv, iv = Vocab.identity(n_users), Vocab.identity(n_items)
    u = np.concatenate([p[2] for p in parts])
    i = np.concatenate([p[3] for p in parts])
    b = np.concatenate([np.full(len(p[2]), behaviors.index(p[1]), np.int8) for p in parts])
    role = np.concatenate([np.full(len(p[2]), ("train", "valid", "test").index(p[0]), np.int8) for p in parts])
    inter = Interactions(u, i, n_users, n_items, behavior=b, behavior_names=behaviors, user_vocab=uv,
                         item_vocab=iv, name=name)
    valid = inter.select(role == 1) if (role == 1).any() else None
    split = Split(inter.select(role == 0), inter.select(role == 2), valid,
                  {"split": "predefined", "target_behavior": target,
                   "train": f"{target} train + all auxiliary behaviours", "test": f"{target} only"})
    meta = {"target_behavior": target, **meta}
    return Dataset(name, inter, split, SkipReport(), meta)


def _check(path: Path, arr: np.ndarray, n: int, what: str) -> None:
    if len(arr) and (arr.min() < 0 or arr.max() >= n):
        raise DataError(f"{what} id {int(arr.max())} outside 0..{n - 1}", file=str(path))


def load_mbgcn_tmall(folder: Path, *, name: str = "mbgcn-tmall-partial", on_bad_rows: str = "error") -> Dataset:
    size_path = need(folder, "data_size.txt", name)
    sizes = read_bytes(size_path).split()
    if len(sizes) != 2:
        raise DataError("expected 'n_users n_items'", file=str(size_path), line=1)
    n_users, n_items = int(sizes[0]), int(sizes[1])
    parts = []
    for role, beh, fname in (("train", "buy", "train.txt.gz"), ("valid", "buy", "validation.txt.gz"),
                             ("test", "buy", "test.txt.gz"), ("train", "collect", "collect.txt.gz"),
                             ("train", "cart", "cart.txt")):
        path = need(folder, fname, name)
        pr = read_pairs(path)
        _check(path, pr[:, 0], n_users, "user")
        _check(path, pr[:, 1], n_items, "item")
        parts.append((role, beh, pr[:, 0], pr[:, 1]))
    return _build(name, parts, ("buy", "collect", "cart"), n_users, n_items, "buy",
                  {"partial": True, "missing": ["click.txt", "item.rar"],
                   "notes": "PARTIAL: click behaviour missing. buy.txt is identical to train.txt (read once)."})


def load_ghcf(folder: Path, *, name: str, on_bad_rows: str = "error") -> Dataset:
    raw = []
    for role, beh, fname in (("train", "purchase", "train.txt.gz"), ("test", "purchase", "test.txt.gz"),
                             ("train", "cart", "cart.txt.gz")):
        u, i, _, lu = read_id_lists(need(folder, fname, name))
        raw.append((role, beh, u, i, lu))
    n_users = int(max(max(r[4].max(), r[2].max(initial=0)) for r in raw)) + 1
    n_items = int(max(r[3].max() for r in raw)) + 1
    parts = [(r[0], r[1], r[2], r[3]) for r in raw]
    return _build(name, parts, ("purchase", "cart"), n_users, n_items, "purchase",
                  {"partial": True, "missing": ["pv.txt (view behaviour)"],
                   "notes": "PARTIAL: view behaviour missing; id spaces = max id + 1 over the files."})
