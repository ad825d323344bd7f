"""Columnar interaction logs with id vocabularies.

:class:`Interactions` is the one data object every stage after loading consumes: parallel numpy
arrays of length ``E`` (one entry per event) plus the vocabularies that map dense indices back to
raw ids. Splits of one dataset share vocabularies, so ``n_users`` / ``n_items`` never change
between train, validation and test.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Vocab:
    """Raw id ↔ dense index. ``raw[i]`` is the raw id of index ``i``; ``raw`` is sorted and unique."""

    raw: np.ndarray  # [n]

    @classmethod
    def build(cls, values: np.ndarray) -> tuple["Vocab", np.ndarray]:
        """Vocabulary of the distinct values and the dense codes of ``values`` (``[E] int64``)."""
        raw, codes = np.unique(np.asarray(values), return_inverse=True)
        return cls(raw), codes.astype(np.int64).reshape(-1)

    @classmethod
    def identity(cls, n: int) -> "Vocab":
        return cls(np.arange(n, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.raw)

    def lookup(self, values, *, missing: int | None = None) -> np.ndarray:
        """Dense indices of raw ``values``; unknown ids raise ``KeyError`` unless ``missing`` is given."""
        values = np.asarray(values)
        if self.raw.dtype.kind in "iu" and values.dtype.kind not in "iu":
            try:
                values = values.astype(self.raw.dtype)
            except (TypeError, ValueError) as exc:
                raise KeyError(f"ids {values[:5].tolist()} are not integers like this vocabulary") from exc
        pos = np.searchsorted(self.raw, values)
        pos = np.clip(pos, 0, max(len(self.raw) - 1, 0))
        found = (len(self.raw) > 0) & (self.raw[pos] == values) if len(self.raw) else np.zeros(values.shape, bool)
        if not np.all(found):
            if missing is None:
                bad = values[~found]
                raise KeyError(f"{(~found).sum()} unknown id(s), e.g. {bad[:5].tolist()}")
            pos = np.where(found, pos, missing)
        return pos.astype(np.int64)


@dataclass(frozen=True, eq=False)
class Interactions:
    """An interaction log as parallel arrays.

    Args:
        user: ``[E] int64`` dense user index in ``[0, n_users)``.
        item: ``[E] int64`` dense item index in ``[0, n_items)``.
        n_users, n_items: sizes of the id spaces (may exceed the ids present, e.g. in a test split).
        timestamp: ``[E] int64`` seconds (or an order index where the data only has order), or None.
        behavior: ``[E] int8`` code into ``behavior_names``, or None (single behaviour).
        label: ``[E] float32`` rating or 0/1 label, or None (implicit positives).
        user_vocab, item_vocab: raw ids of the dense indices.
        user_features, item_features: ``name -> [n_users] / [n_items]`` arrays; multi-valued
            features are 2-D (``[n_items, F]``), e.g. genre flags.
        name: dataset name, for reports.
    """

    user: np.ndarray
    item: np.ndarray
    n_users: int
    n_items: int
    timestamp: np.ndarray | None = None
    behavior: np.ndarray | None = None
    behavior_names: tuple[str, ...] = ()
    label: np.ndarray | None = None
    user_vocab: Vocab | None = None
    item_vocab: Vocab | None = None
    user_features: dict[str, np.ndarray] = field(default_factory=dict)
    item_features: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        e = len(self.user)
        for col in ("user", "item", "timestamp", "behavior"):  # booleans or floats as ids would pass silently
            arr = getattr(self, col)
            if arr is not None and np.asarray(arr).dtype.kind not in "iu":
                raise ValueError(f"{col} must be an integer array, got dtype {np.asarray(arr).dtype}")
        if self.user.ndim != 1 or self.item.shape != self.user.shape:
            raise ValueError(f"user and item must be 1-D of equal length, got {self.user.shape} and {self.item.shape}")
        for col in ("timestamp", "behavior", "label"):
            arr = getattr(self, col)
            if arr is not None and arr.shape != (e,):
                raise ValueError(f"{col} has shape {arr.shape}, expected ({e},)")
        if e:
            if self.user.min() < 0 or self.user.max() >= self.n_users:
                raise ValueError(f"user index out of range [0, {self.n_users})")
            if self.item.min() < 0 or self.item.max() >= self.n_items:
                raise ValueError(f"item index out of range [0, {self.n_items})")
        if self.behavior is not None and self.behavior_names and e and self.behavior.max() >= len(self.behavior_names):
            raise ValueError("behavior code out of range of behavior_names")
        for kind, feats, n in (("user", self.user_features, self.n_users), ("item", self.item_features, self.n_items)):
            for k, v in feats.items():
                if len(v) != n:
                    raise ValueError(f"{kind} feature {k!r} has {len(v)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.user)

    @property
    def num_events(self) -> int:
        return len(self.user)

    def replace(self, **changes) -> "Interactions":
        return dataclasses.replace(self, **changes)

    def select(self, index: np.ndarray) -> "Interactions":
        """Events at ``index`` (a boolean mask ``[E]`` or integer positions); ids and vocabularies unchanged."""
        index = np.asarray(index)
        take = lambda a: None if a is None else a[index]  # noqa: E731
        return dataclasses.replace(self, user=self.user[index], item=self.item[index],
                                   timestamp=take(self.timestamp), behavior=take(self.behavior),
                                   label=take(self.label))

    def of_behavior(self, name: str) -> "Interactions":
        if self.behavior is None:
            raise ValueError(f"{self.name or 'data'} has no behaviours; asked for {name!r}")
        if name not in self.behavior_names:
            raise ValueError(f"unknown behaviour {name!r}; known: {list(self.behavior_names)}")
        return self.select(self.behavior == self.behavior_names.index(name))

    def sort_by_time(self) -> "Interactions":
        """Events ordered by (user, timestamp), stable; without timestamps, by user in file order."""
        keys = (self.user,) if self.timestamp is None else (self.timestamp, self.user)
        return self.select(np.lexsort(keys))

    def describe(self) -> dict:
        """Counts a table can show: events, users, items present, density, time range."""
        users = int(np.unique(self.user).size) if len(self) else 0
        items = int(np.unique(self.item).size) if len(self) else 0
        out = {"events": len(self), "users": users, "items": items,
               "density": len(self) / max(1, users * items)}
        if self.timestamp is not None and len(self):
            out["time_min"], out["time_max"] = int(self.timestamp.min()), int(self.timestamp.max())
        if self.behavior is not None and self.behavior_names:
            counts = np.bincount(self.behavior.astype(np.int64), minlength=len(self.behavior_names))
            out["behaviors"] = {n: int(c) for n, c in zip(self.behavior_names, counts)}
        return out


def concat(parts: list[Interactions]) -> Interactions:
    """Concatenate logs that share id spaces (e.g. train + valid)."""
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    for p in parts[1:]:
        if (p.n_users, p.n_items) != (first.n_users, first.n_items):
            raise ValueError("cannot concatenate logs with different id spaces")

    def cat(col):
        arrs = [getattr(p, col) for p in parts]
        return None if any(a is None for a in arrs) else np.concatenate(arrs)

    return dataclasses.replace(first, user=cat("user"), item=cat("item"), timestamp=cat("timestamp"),
                               behavior=cat("behavior"), label=cat("label"))
