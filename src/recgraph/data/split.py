"""Train / validation / test splits.

Every splitter returns a :class:`Split` whose parts share the id spaces of the input, and a
``protocol`` dict (the split's name and parameters) that is stamped into ``metrics.json``.

- :func:`leave_last_out` — per user, the last event by time is test, the one before validation.
- :func:`time_quantile` — global time cutoffs at quantiles (e.g. q80 / q90).
- :func:`random_ratio` — seeded per-user random ratio split (RecBole's default ``RS 8:1:1``).
- predefined train/test files (the LightGCN splits) come from the dataset loaders as a ``Split``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .schema import Interactions


@dataclass(frozen=True, eq=False)
class Split:
    """Parts of one dataset on shared id spaces. ``valid`` may be None (e.g. the official LightGCN split)."""

    train: Interactions
    test: Interactions
    valid: Interactions | None = None
    protocol: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def describe(self) -> dict:
        out = {"protocol": self.protocol, "train": self.train.describe(), "test": self.test.describe()}
        if self.valid is not None:
            out["valid"] = self.valid.describe()
        return out


def _rank_within_user(inter: Interactions, order_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each event: its position from the end within its user's events ordered by ``order_key``
    (0 = last) and the user's event count. Vectorised: one lexsort."""
    order = np.lexsort((order_key, inter.user))
    users_sorted = inter.user[order]
    counts = np.bincount(inter.user, minlength=inter.n_users)
    ends = np.cumsum(counts)  # exclusive end of each user's run in sorted order
    pos_sorted = np.arange(len(order)) - (ends[users_sorted] - counts[users_sorted])
    from_end = np.empty(len(order), dtype=np.int64)
    from_end[order] = counts[users_sorted] - 1 - pos_sorted
    return from_end, counts[inter.user]


def leave_last_out(inter: Interactions, *, n_valid: int = 1, n_test: int = 1, min_train: int = 1) -> Split:
    """Per user, the last ``n_test`` events (by timestamp, ties by file order) are test and the
    ``n_valid`` before them validation. Users with fewer than ``min_train + n_valid + n_test`` events
    keep everything in train (they are counted in ``protocol['users_train_only']``)."""
    key = inter.timestamp if inter.timestamp is not None else np.arange(len(inter))
    # tie-break equal timestamps by file order so the split is deterministic
    key = np.lexsort((np.arange(len(inter)), key)).argsort(kind="stable")
    from_end, count = _rank_within_user(inter, key)
    enough = count >= (min_train + n_valid + n_test)
    test = enough & (from_end < n_test)
    valid = enough & (from_end >= n_test) & (from_end < n_test + n_valid)
    train = ~(test | valid)
    n_short = int(np.unique(inter.user[~enough]).size)
    return Split(inter.select(train), inter.select(test), inter.select(valid) if n_valid else None,
                 {"split": "leave-last-out", "n_valid": n_valid, "n_test": n_test, "min_train": min_train,
                  "ordered_by": "timestamp" if inter.timestamp is not None else "file order",
                  "users_train_only": n_short})


def time_quantile(inter: Interactions, *, valid_q: float = 0.8, test_q: float = 0.9) -> Split:
    """Global cutoffs: train ``t <= q(valid_q)``, valid ``q(valid_q) < t <= q(test_q)``, test ``t > q(test_q)``."""
    if inter.timestamp is None:
        raise ValueError(f"time_quantile needs timestamps; dataset {inter.name!r} has none")
    if not 0 < valid_q <= test_q < 1:
        raise ValueError("need 0 < valid_q <= test_q < 1")
    t1, t2 = np.quantile(inter.timestamp, [valid_q, test_q])
    t = inter.timestamp
    return Split(inter.select(t <= t1), inter.select(t > t2), inter.select((t > t1) & (t <= t2)),
                 {"split": "time-quantile", "valid_q": valid_q, "test_q": test_q,
                  "valid_cutoff": int(t1), "test_cutoff": int(t2)})


def random_ratio(inter: Interactions, *, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 seed: int = 0) -> Split:
    """Seeded per-user random split by ``ratios`` (train, valid, test). Each user's events are
    shuffled and cut at ``floor(n * cumulative ratio)`` like RecBole's ``RS`` split, so every
    user keeps at least one training event when ``n * ratios[0] >= 1``."""
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (3,) or np.any(r < 0) or not np.isclose(r.sum(), 1.0):
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")
    rng = np.random.default_rng(seed)
    from_end, count = _rank_within_user(inter, rng.random(len(inter)))
    pos = count - 1 - from_end  # random position within the user, 0-based
    c1 = np.floor(count * r[0]).astype(np.int64)
    c2 = np.floor(count * (r[0] + r[1])).astype(np.int64)
    train, valid = pos < c1, (pos >= c1) & (pos < c2)
    test = pos >= c2
    return Split(inter.select(train), inter.select(test), inter.select(valid),
                 {"split": "random-ratio", "ratios": list(map(float, r)), "seed": seed})


SPLITTERS = {"leave-last-out": leave_last_out, "time-quantile": time_quantile, "random-ratio": random_ratio}
