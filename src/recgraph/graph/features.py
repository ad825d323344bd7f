"""Per-sample features for ranking: CTR samples (``recgraph.data.ctr``) + the feature tables of
their snapshots' graphs (``recgraph.graph.macro``) → typed batches (``recgraph.data.batch``).

:func:`build_ctr_data` is the one place a CTR protocol becomes model input: it builds the
protocol's samples, ONE ``BipartiteGraph`` of the positive interactions (with times and repeats),
the per-snapshot macro feature tables from it, and drops samples whose user or item has no
positive in their snapshot (counted). :class:`CTRData` then gathers a batch's features from the
tables (vectorised) and samples neighbours deterministically per (node, slot, salt).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from ..data.batch import CTRBatch, DynamicNeighborhood, NodeSide
from ..data.ctr import CTRSamples, CTRSplit, build_ctr_samples
from ..data.schema import Interactions
from .bipartite import BipartiteGraph
from .dynamic import sample_dynamic, time_graph
from .macro import FeatureTables, build_feature_tables

__all__ = ["CTRData", "build_ctr_data", "features_for", "sample_neighbors"]


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# ----------------------------------------------------------------------------- neighbour sampling

def _hash_uniform(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic uniform [0, 1) from (a, b, salt) (splitmix64 finaliser), vectorised."""
    with np.errstate(over="ignore"):
        x = (a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (b.astype(np.uint64) + np.uint64(salt & (2**63 - 1))
                                                                       * np.uint64(0xBF58476D1CE4E5B9))
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


def sample_neighbors(adj: sp.csr_matrix, rows: np.ndarray, fanout: int, pad: int, salt: int) -> np.ndarray:
    """``fanout`` neighbours per row, uniformly with replacement; deterministic in (row, slot, salt)
    so a row's sample does not depend on the batch it is in. Rows without neighbours get ``pad``."""
    rows = np.asarray(rows, np.int64)
    start = adj.indptr[rows]
    deg = adj.indptr[rows + 1] - start
    slot = np.arange(fanout, dtype=np.int64)
    u = _hash_uniform(rows[..., None], slot, salt)
    off = np.minimum((u * deg[..., None]).astype(np.int64), np.maximum(deg[..., None] - 1, 0))
    out = adj.indices[np.minimum(start[..., None] + off, max(len(adj.indices) - 1, 0))].astype(np.int64)
    return np.where(deg[..., None] > 0, out, pad)


# ----------------------------------------------------------------------------- the data object


@dataclass(frozen=True, eq=False)
class CTRData:
    train: CTRSamples
    valid: CTRSamples
    test: CTRSamples
    features: FeatureTables
    n_users: int
    n_items: int
    protocol: dict
    dropped: dict = field(default_factory=dict)
    name: str = ""
    events: BipartiteGraph | None = None  # every positive event, rows time-ordered ("dynamic" group)

    def part(self, name: str) -> CTRSamples:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def batch(self, samples: CTRSamples, idx: np.ndarray | None = None, needs: frozenset = frozenset(),
              *, salt: int = 0, fanouts: tuple[int, ...] = (10, 5), deep_bound: str = "sample",
              horizon: str = "sample") -> CTRBatch:
        """:class:`~recgraph.data.batch.CTRBatch` of ``samples[idx]``: ids and macro ids always;
        ``"macro"``: the hop-1/hop-2 macro slots; ``"recent"``: recent lists; ``"sage"``: sampled
        2-hop neighbourhoods; ``"dynamic"``: the k-hop (``len(fanouts)``) neighbourhoods of
        :func:`recgraph.graph.dynamic.sample_dynamic` over ``events``, strictly before each sample's
        own time (``deep_bound`` as there; ``horizon="snapshot"``: before its feature snapshot's
        cutoff instead — the information the snapshot-feature models get)."""
        s = samples if idx is None else samples.select(idx)
        dyn = {"time": self._horizon(s.time, s.snapshot, horizon), "deep_bound": deep_bound}
        return CTRBatch(user=self._side("user", s.user, s.snapshot, needs, salt, fanouts, **dyn),
                        item=self._side("item", s.item, s.snapshot, needs, salt + 2, fanouts, **dyn),
                        label=_tensor(s.label.astype(np.float32)), time=_tensor(s.time))

    def request(self, user: int, items: np.ndarray, snapshot: int, needs: frozenset = frozenset(), *,
                salt: int = 0, fanouts: tuple[int, ...] = (10, 5), time: int | None = None,
                deep_bound: str = "sample", horizon: str = "sample") -> CTRBatch:
        """One user against ``B`` candidate items, as a batch whose user side has leading size 1
        (gathered or sampled once, not once per candidate); models broadcast it. Same values as
        :meth:`batch` on the ``B`` (user, item) samples."""
        items = np.asarray(items).reshape(-1)
        n_snap = len(self.features.cutoffs)
        if not np.issubdtype(items.dtype, np.integer):
            raise TypeError(f"request: items must be integer item indices, got dtype {items.dtype}")
        if not 0 <= int(user) < self.n_users:
            raise ValueError(f"request: user {user} is not a user index in [0, {self.n_users})")
        if len(items) and (items.min() < 0 or items.max() >= self.n_items):
            bad = items[(items < 0) | (items >= self.n_items)][:5].tolist()
            raise ValueError(f"request: item indices {bad} are outside [0, {self.n_items})")
        if not 0 <= int(snapshot) < n_snap:
            raise ValueError(f"request: snapshot {snapshot} is outside [0, {n_snap}) (feature cutoffs)")
        items = items.astype(np.int64)
        one = np.array([snapshot], np.int64)
        t = int(self.features.cutoffs[snapshot]) if time is None else int(time)
        dyn = {"deep_bound": deep_bound}
        t_dyn = int(self._horizon(np.array([t]), one, horizon)[0])
        return CTRBatch(user=self._side("user", np.array([user], np.int64), one, needs, salt, fanouts,
                                        time=np.array([t_dyn], np.int64), **dyn),
                        item=self._side("item", items, np.full(len(items), snapshot, np.int64), needs, salt + 2,
                                        fanouts, time=np.full(len(items), t_dyn, np.int64), **dyn),
                        label=torch.zeros(len(items)), time=torch.full((len(items),), t, dtype=torch.int64))

    def _side(self, kind: str, ids, snapshot, needs, salt, fanouts, time=None, deep_bound="sample") -> NodeSide:
        """The features of one side (``kind`` "user": neighbours are items; "item": neighbours are
        users) for node ``ids`` at ``snapshot``."""
        f = self.features
        p = kind[0]
        n_own, n_other = (f.n_users, f.n_items) if kind == "user" else (f.n_items, f.n_users)
        adj_own, adj_other = (f.u_adj, f.i_adj) if kind == "user" else (f.i_adj, f.u_adj)
        rows = snapshot * n_own + ids
        out = {"ids": ids, "macro": (f.user_macro if kind == "user" else f.item_macro)[ids]}
        if "macro" in needs:
            out.update({f"hop{h}_{c}": getattr(f, f"{p}{h}_{c}")[rows] for h in (1, 2) for c in ("ids", "cnt")})
        if "recent" in needs:
            out["recent"] = getattr(f, f"{p}_rec")[rows]
            out["recent_time"] = getattr(f, f"{p}_rec_time")[rows]
        if "sage" in needs:  # hop 1: the other side; hop 2: back to this side (pad where hop 1 is padding)
            nb = sample_neighbors(adj_own, rows, fanouts[0], n_other, salt)
            nb2 = sample_neighbors(adj_other, snapshot[:, None] * n_other + np.minimum(nb, n_other - 1),
                                   fanouts[1], n_own, salt + 1)
            out.update({"nb": nb, "nb2": np.where((nb == n_other)[..., None], n_own, nb2)})
        dynamic = self._dynamic(kind, ids, time, fanouts, deep_bound) if "dynamic" in needs else None
        return NodeSide(**{k: _tensor(v) for k, v in out.items()}, dynamic=dynamic)

    def _horizon(self, time: np.ndarray, snapshot: np.ndarray, horizon: str) -> np.ndarray:
        if horizon == "sample":
            return np.asarray(time, np.int64)
        if horizon == "snapshot":
            return self.features.cutoffs[snapshot].astype(np.int64)
        raise ValueError(f"horizon must be 'sample' or 'snapshot', got {horizon!r}")

    def _dynamic(self, kind: str, ids, time, fanouts, deep_bound) -> DynamicNeighborhood:
        """DSGL's neighbourhood of nodes ``ids`` at sample times ``time`` (gaps ``t - edge time``)."""
        if self.events is None:
            raise ValueError("this CTRData has no event graph (events=None); build it with build_ctr_data")
        hops = sample_dynamic(self.events, ids, time, fanouts, side=kind, deep_bound=deep_bound)
        t = np.asarray(time, np.int64)
        gaps = []
        for h, (x, ts) in enumerate(zip(hops.ids, hops.times)):
            g = t.reshape((-1,) + (1,) * (h + 1)) - ts
            gaps.append(_tensor(np.where(x == hops.pads[h], 0, g)))
        return DynamicNeighborhood(tuple(_tensor(x) for x in hops.ids), tuple(gaps), hops.pads)

    def loader(self, part: str, batch_size: int, needs: frozenset, *, shuffle: bool,
               fanouts: tuple[int, ...] = (10, 5), deep_bound: str = "sample", horizon: str = "sample"):
        """``batches(epoch, rng)`` for :class:`~recgraph.train.trainer.Trainer`."""
        samples = self.part(part)

        def batches(epoch: int, rng: np.random.Generator):
            order = rng.permutation(len(samples)) if shuffle else np.arange(len(samples))
            salt = int(rng.integers(1, 2**62)) if shuffle else 0
            for a in range(0, len(order), batch_size):
                yield self.batch(samples, order[a:a + batch_size], needs, salt=salt + a, fanouts=fanouts,
                                 deep_bound=deep_bound, horizon=horizon)

        return batches

    def describe(self) -> dict:
        return {"train": self.train.describe(), "valid": self.valid.describe(), "test": self.test.describe(),
                "dropped": self.dropped, "protocol": self.protocol,
                "macros": {"item": self.features.n_item_macros, "user": self.features.n_user_macros}}


# ----------------------------------------------------------------------------- construction

def features_for(split: CTRSplit, *, category: np.ndarray | None = None, item_macro: str = "auto", item_k: int = 50,
                 user_k: int = 20, recent: int = 20, max_slots: int = 64, seed: int = 0) -> CTRData:
    """Feature tables for a protocol's samples, cold samples dropped (counted), parts time-ordered."""
    def edges(mask=None):
        sel = slice(None) if mask is None else mask
        return BipartiteGraph.from_edges(split.pos_user[sel], split.pos_item[sel], split.n_users, split.n_items,
                                         timestamp=split.pos_time[sel], dedupe=False)

    graph = edges()
    fit_graph = None if split.fit_events is None else edges(split.fit_events)  # training events only
    snaps = None if split.snapshot_masks is None else [edges(m) for m in split.snapshot_masks]
    feats = build_feature_tables(graph, split.cutoffs, fit_snapshot=split.fit_snapshot, category=category,
                                 item_macro=item_macro, item_k=item_k, user_k=user_k, recent=recent,
                                 max_slots=max_slots, seed=seed, fit_graph=fit_graph, snapshot_graphs=snaps)
    s, nu, ni = split.samples, split.n_users, split.n_items
    warm = (feats.user_deg[s.snapshot * nu + s.user] > 0) & (feats.item_deg[s.snapshot * ni + s.item] > 0)
    dropped, parts = dict(split.dropped), []
    for k, name in enumerate(("train", "valid", "test")):
        inpart = split.part == k
        dropped[f"{name}_cold_user_or_item"] = int((inpart & ~warm).sum())
        sel = np.flatnonzero(inpart & warm)
        sel = sel[np.lexsort((sel, s.time[sel]))]
        parts.append(s.select(sel))
    proto = {**split.protocol,
             "item_macro": (item_macro if item_macro != "auto"
                            else "category" if category is not None else "kmeans-rows"),
             "item_k": item_k, "user_k": user_k, "recent": recent, "max_slots": max_slots}
    return CTRData(parts[0], parts[1], parts[2], feats, nu, ni, proto, dropped, split.name,
                   events=time_graph(split.pos_user, split.pos_item, split.pos_time, nu, ni))


def build_ctr_data(inter: Interactions, protocol: str = "macgnn-quantile", *, item_macro: str = "auto",
                   item_k: int = 50, user_k: int = 20, recent: int = 20, max_slots: int = 64, seed: int = 0,
                   **sample_args) -> CTRData:
    """CTR samples of ``protocol`` (:func:`recgraph.data.ctr.build_ctr_samples`, which takes
    ``sample_args``) with their feature tables (:func:`features_for`)."""
    split = build_ctr_samples(inter, protocol, seed=seed, **sample_args)
    return features_for(split, category=inter.item_features.get("category"), item_macro=item_macro, item_k=item_k,
                        user_k=user_k, recent=recent, max_slots=max_slots, seed=seed)
