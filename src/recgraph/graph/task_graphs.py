"""Per-task macro graphs for multi-task ranking: one feature-table set per behaviour graph.

From a :class:`~recgraph.data.multitask.MultiTaskSplit`: the *shared* graph (every event) and one
graph per task (that behaviour's events) each go through the one builder,
:func:`recgraph.graph.macro.build_feature_tables` (macro counts, slots, recent lists per snapshot),
once per snapshot. Macro *nodes* are shared: item macros (category where there is one) and user
k-means clusters are fitted once on the shared graph at the first snapshot and reused for every
task graph (``macros=``), so a task graph differs only in its edges and counts, and the tasks can
share macro embeddings. ``MultiTaskData.memory`` has the bytes per graph; task graphs keep a
1-long recent list (the shared graph's lists serve every task).

Cold samples are kept and counted (``protocol["cold"]``): most Taobao impressions are of items
nobody touched before; dropping them, as the CTR protocols do, would keep a biased minority.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from ..data.multitask import MultiTaskBatch, MultiTaskSamples, MultiTaskSplit, build_multitask_samples
from ..data.schema import Interactions
from .bipartite import BipartiteGraph
from .features import CTRData
from .macro import (FeatureTables, assign_item_macros, assign_user_macros, build_feature_tables,
                    positive_matrix)

__all__ = ["MultiTaskData", "multitask_features", "build_multitask_data", "behavior_feature_tables", "table_bytes"]


def table_bytes(ft: FeatureTables) -> int:
    """Bytes held by one graph's feature tables (arrays + CSR buffers)."""
    total = 0
    for f in dataclasses.fields(ft):
        v = getattr(ft, f.name)
        if isinstance(v, np.ndarray):
            total += v.nbytes
        elif sp.issparse(v):
            total += v.data.nbytes + v.indices.nbytes + v.indptr.nbytes
    return int(total)


@dataclass(frozen=True, eq=False)
class MultiTaskData:
    tasks: tuple[str, ...]
    train: MultiTaskSamples
    valid: MultiTaskSamples
    test: MultiTaskSamples
    shared: CTRData                 # shared (all-behaviour) graph features
    task_data: tuple[CTRData, ...]  # one per task: that behaviour's graph (same macro nodes)
    protocol: dict
    dropped: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    name: str = ""

    @property
    def n_users(self) -> int:
        return self.shared.n_users

    @property
    def n_items(self) -> int:
        return self.shared.n_items

    @property
    def features(self) -> FeatureTables:
        return self.shared.features

    def part(self, name: str) -> MultiTaskSamples:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def batch(self, samples: MultiTaskSamples, idx: np.ndarray | None = None, needs: frozenset = frozenset(),
              *, salt: int = 0) -> MultiTaskBatch:
        """Batch of ``samples[idx]``: shared-graph features per ``needs`` (see
        :meth:`CTRData.batch`), labels ``[B, T]``, task graphs' macro slots if ``"task_macro"``."""
        s = samples if idx is None else samples.select(idx)
        c = s.as_ctr()
        base = self.shared.batch(c, None, needs - {"task_macro"}, salt=salt)
        tu, ti = (), ()
        if "task_macro" in needs:
            sides = [td.batch(c, None, frozenset({"macro"})) for td in self.task_data]
            tu, ti = tuple(b.user for b in sides), tuple(b.item for b in sides)
        return MultiTaskBatch(user=base.user, item=base.item, label=base.label, time=base.time,
                              labels=torch.from_numpy(np.ascontiguousarray(s.labels, np.float32)),
                              task_user=tu, task_item=ti)

    def request(self, user: int, items: np.ndarray, snapshot: int, needs: frozenset = frozenset(),
                *, time: int | None = None) -> MultiTaskBatch:
        """One user against ``B`` candidates (user side of leading size 1), all tasks' features;
        same values as :meth:`batch` on the ``B`` samples. Argument errors as
        :meth:`CTRData.request`."""
        base = self.shared.request(user, items, snapshot, needs - {"task_macro"}, time=time)
        tu, ti = (), ()
        if "task_macro" in needs:
            sides = [td.request(user, items, snapshot, frozenset({"macro"}), time=time) for td in self.task_data]
            tu, ti = tuple(b.user for b in sides), tuple(b.item for b in sides)
        return MultiTaskBatch(user=base.user, item=base.item, label=base.label, time=base.time,
                              labels=torch.zeros(len(base.label), len(self.tasks)), task_user=tu, task_item=ti)

    def loader(self, part: str, batch_size: int, needs: frozenset, *, shuffle: bool):
        """``batches(epoch, rng)`` for :class:`~recgraph.train.trainer.Trainer`."""
        samples = self.part(part)

        def batches(epoch: int, rng: np.random.Generator):
            order = rng.permutation(len(samples)) if shuffle else np.arange(len(samples))
            for a in range(0, len(order), batch_size):
                yield self.batch(samples, order[a:a + batch_size], needs)

        return batches

    def describe(self) -> dict:
        return {k: self.part(k).describe(self.tasks) for k in ("train", "valid", "test")} | {
            "dropped": self.dropped, "memory_bytes": self.memory, "protocol": self.protocol}


def _graph(u, i, t, nu: int, ni: int) -> BipartiteGraph:
    return BipartiteGraph.from_edges(u, i, nu, ni, timestamp=t, dedupe=False)


def multitask_features(split: MultiTaskSplit, *, item_macro: str = "auto", item_k: int = 50, user_k: int = 20,
                       recent: int = 20, max_slots: int = 64, seed: int = 0) -> MultiTaskData:
    """Feature tables of the shared graph and of every task graph for ``split`` (module docstring)."""
    nu, ni, u, i, t, b = split.n_users, split.n_items, split.user, split.item, split.time, split.behavior
    shared_ft = build_feature_tables(_graph(u, i, t, nu, ni), split.cutoffs, fit_snapshot=0, category=split.category,
                                     item_macro=item_macro, item_k=item_k, user_k=user_k, recent=recent,
                                     max_slots=max_slots, seed=seed)
    macros = (shared_ft.item_macro, shared_ft.n_item_macros, shared_ft.user_macro, shared_ft.n_user_macros)
    task_ft = []
    for code in split.task_codes:
        e = b == code
        task_ft.append(build_feature_tables(_graph(u[e], i[e], t[e], nu, ni), split.cutoffs, recent=1,
                                            max_slots=max_slots, macros=macros))
    tasks = split.tasks
    memory = {"shared": table_bytes(shared_ft), **{f"task:{n}": table_bytes(f) for n, f in zip(tasks, task_ft)}}
    cold = {}
    for name in ("train", "valid", "test"):
        s = split.part(name)
        cold[name] = {"cold_user": int((shared_ft.user_deg[s.snapshot * nu + s.user] == 0).sum()),
                      "cold_item": int((shared_ft.item_deg[s.snapshot * ni + s.item] == 0).sum()),
                      **{f"item_without_{n}_edges": int((f.item_deg[s.snapshot * ni + s.item] == 0).sum())
                         for n, f in zip(tasks, task_ft)}}
    proto = {**split.protocol, "cold": cold, "cold_policy": "kept (counted)",
             "item_macro": item_macro, "item_k": item_k, "user_k": user_k, "recent": recent, "max_slots": max_slots}

    def ctr(ft: FeatureTables) -> CTRData:
        p = [split.part(k).as_ctr() for k in ("train", "valid", "test")]
        return CTRData(p[0], p[1], p[2], ft, nu, ni, {"name": split.protocol["name"]}, {}, split.name)

    return MultiTaskData(tasks, split.train, split.valid, split.test, ctr(shared_ft), tuple(ctr(f) for f in task_ft),
                         proto, split.dropped, memory, split.name)


def build_multitask_data(inter: Interactions, tasks=("cart", "fav", "buy"), *, item_macro: str = "auto",
                         item_k: int = 50, user_k: int = 20, recent: int = 20, max_slots: int = 64, seed: int = 0,
                         **sample_args) -> MultiTaskData:
    """:func:`recgraph.data.multitask.build_multitask_samples` (which takes ``sample_args``) with
    the feature tables of every graph (:func:`multitask_features`)."""
    split = build_multitask_samples(inter, tuple(tasks), **sample_args)
    return multitask_features(split, item_macro=item_macro, item_k=item_k, user_k=user_k, recent=recent,
                              max_slots=max_slots, seed=seed)


def behavior_feature_tables(inter: Interactions, behaviors: tuple[str, ...] | None = None, *,
                            item_macro: str = "auto", item_k: int = 50, user_k: int = 20, max_slots: int = 64,
                            seed: int = 0) -> tuple[FeatureTables, dict[str, FeatureTables], dict[str, int]]:
    """Per-behaviour macro graphs of a *static* multi-behaviour log (Tmall, Beibei, Taobao-GHCF: no
    timestamps, so one snapshot holding every given event — pass the training split to stay
    leak-free). Returns ``(shared tables, {behaviour: tables}, bytes per graph)``; all graphs use
    the macro nodes fitted on the shared (all-behaviour) graph: item categories when there are
    some, else k-means on 32-d truncated-SVD item factors (memory O(items · 32)); users: k-means on
    their item-macro counts."""
    if inter.behavior is None:
        raise ValueError(f"{inter.name or 'data'} has no behaviour codes")
    names = tuple(inter.behavior_names)
    behaviors = names if behaviors is None else tuple(behaviors)
    for n in behaviors:
        if n not in names:
            raise ValueError(f"behaviour {n!r} is not in {inter.name or 'the data'}'s behaviours {names}")
    u, i = inter.user.astype(np.int64), inter.item.astype(np.int64)
    t = np.zeros(len(u), np.int64) if inter.timestamp is None else inter.timestamp.astype(np.int64)
    cut = np.array([int(t.max(initial=0)) + 1], np.int64)
    nu, ni = inter.n_users, inter.n_items
    R = positive_matrix(u, i, nu, ni)
    category = inter.item_features.get("category")
    if item_macro == "auto" and category is None:
        # k-means on 32-d truncated-SVD item factors, not on raw item rows: ``kmeans-rows`` densifies
        # chunks of 65,536 items x n_users floats (7.7 GB on GHCF-Taobao's 39k x 49k)
        from scipy.sparse.linalg import svds

        _, sv, vt = svds(R.astype(np.float64), k=int(min(32, min(R.shape) - 1)), random_state=seed)
        im, n_im = assign_item_macros("kmeans-embeddings", n_items=ni, embeddings=(vt.T * sv).astype(np.float32),
                                      k=item_k, seed=seed)
    else:
        im, n_im = assign_item_macros(item_macro, n_items=ni, category=category, R=R, k=item_k, seed=seed)
    um, n_um = assign_user_macros(R, im, n_im, k=user_k, seed=seed)
    macros = (im, n_im, um, n_um)
    shared = build_feature_tables(_graph(u, i, t, nu, ni), cut, recent=1, max_slots=max_slots, macros=macros)
    b = np.asarray(inter.behavior)
    per = {n: build_feature_tables(_graph(u[b == c], i[b == c], t[b == c], nu, ni), cut, recent=1,
                                   max_slots=max_slots, macros=macros)
           for n, c in ((n, names.index(n)) for n in behaviors)}
    return shared, per, {"shared": table_bytes(shared), **{n: table_bytes(f) for n, f in per.items()}}
