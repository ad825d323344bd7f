"""Time-respecting k-depth neighbourhoods (DSGL's dynamic ego graphs) over a :class:`BipartiteGraph`.

For a batch of roots with sample times ``t [B]``, hop 1 is the ``F1`` most recent neighbours of
each root through edges with timestamp **strictly before** ``t`` (most recent first), hop 2 the
``F2`` most recent neighbours of each hop-1 node, and so on (``fanouts = (F1, F2, ...)``, its
length is the depth ``k``). Hop ``h`` has shape ``[B, F1, ..., Fh]``; every neighbour comes with
the timestamp of the edge that reached it.

Time bound of the deeper hops (``deep_bound``):

* ``"sample"`` (default): every hop uses edges strictly before the *sample's* time ``t``. DSGL
  builds the ego graph of ``u`` and ``i`` in the interaction graph as it stands just before ``t``
  (REFERENCES.md, "a k-depth ego graph ... built only from interactions before t"): everything in
  it was known when the prediction is made, so nothing leaks, and a hop-1 item's hop-2 users
  include those who interacted with it *after* the root did (still before ``t``), which is the
  freshest picture of that item.
* ``"parent"``: hop ``h+1`` uses edges strictly before the edge time of its hop-``h`` parent
  (temporal paths, as in temporal random walks). Stricter and also leak-free; offered for
  comparison. Since parent edge times are ``< t``, it is a subset of ``"sample"``.
* ``"all-time"``: **leaks** — no time bound at all (the all-time most recent neighbours, which can
  include the sample's own interaction and later ones). It exists only to measure how much a
  non-time-respecting implementation overstates AUC (``benchmarks/bench_dsgl.py``).

Padding: id ``pad`` (the size of that hop's id space) and time ``-1``; a pad node's children are
pads. Edges are taken from a graph with ``order="time"`` (rows sorted by time, so "strictly
before ``t``" is one binary search per row); ``dedupe=False`` keeps every event, so repeated
interactions appear once per event.

Cost per sample: O(Σ_h Π_{j≤h} F_j · log d) time (one binary search per expanded node, then a
copy of at most ``F`` entries), memory of the outputs; a compiled numba loop over the expanded
nodes (the loop is the algorithm; no Python loop per sample). Measured in
``benchmarks/bench_dsgl.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numba
import numpy as np

from .bipartite import BipartiteGraph

__all__ = ["DynamicHops", "sample_dynamic", "time_graph", "DEEP_BOUNDS"]

DEEP_BOUNDS = ("sample", "parent", "all-time")
_NO_BOUND = np.iinfo(np.int64).max


@numba.njit(cache=True, nogil=True)
def _recent_before(indptr, indices, ts, nodes, bounds, fanout, pad, out_ids, out_ts):  # pragma: no cover
    """For each row ``r``: the ``fanout`` latest neighbours of ``nodes[r]`` through edges with time
    ``< bounds[r]``, latest first, into ``out_ids[r]`` / ``out_ts[r]`` (pre-filled with pad / -1).
    ``nodes[r] < 0`` marks a padded parent (output stays padding). Rows of the CSR are time-sorted."""
    for r in range(nodes.shape[0]):
        v = nodes[r]
        if v < 0:
            continue
        a = indptr[v]
        lo, hi = a, indptr[v + 1]
        b = bounds[r]
        while lo < hi:  # first position with ts >= b
            mid = (lo + hi) >> 1
            if ts[mid] < b:
                lo = mid + 1
            else:
                hi = mid
        k = 0
        p = lo - 1
        while p >= a and k < fanout:
            out_ids[r, k] = indices[p]
            out_ts[r, k] = ts[p]
            k += 1
            p -= 1


@dataclass(frozen=True, eq=False)
class DynamicHops:
    """Neighbourhoods of ``B`` roots: ``ids[h]`` / ``times[h]`` have shape ``[B, F1, ..., F(h+1)]``
    (int64; pad id / time -1), hop ``h`` (0-based) holds nodes of the other side when ``h`` is
    even and of the root's side when odd; ``pads[h]`` is that hop's pad id."""

    ids: tuple[np.ndarray, ...]
    times: tuple[np.ndarray, ...]
    pads: tuple[int, ...]

    @property
    def depth(self) -> int:
        return len(self.ids)


def time_graph(user, item, timestamp, n_users: int, n_items: int) -> BipartiteGraph:
    """Every event kept (``dedupe=False``), rows sorted by time: the graph :func:`sample_dynamic`
    reads. O(E) (:meth:`BipartiteGraph.from_edges`)."""
    return BipartiteGraph.from_edges(user, item, n_users, n_items, timestamp=np.asarray(timestamp, np.int64),
                                     dedupe=False, order="time")


def sample_dynamic(graph: BipartiteGraph, roots, t, fanouts: Sequence[int], *,
                   side: Literal["user", "item"] = "user",
                   deep_bound: Literal["sample", "parent", "all-time"] = "sample") -> DynamicHops:
    """The k-depth time-respecting neighbourhood of each root (see the module docstring).

    Args:
        graph: a timestamped graph with ``order="time"`` (:func:`time_graph`).
        roots: ``[B]`` user ids (``side="user"``) or item ids (``side="item"``).
        t: ``[B]`` sample times (int64); hop-1 edges have time ``< t``.
        fanouts: ``(F1, ..., Fk)`` neighbours kept per node at each hop (most recent first).
        deep_bound: time bound of hops ≥ 2: ``"sample"`` (``< t``), ``"parent"`` (``<`` the parent
            edge's time) or ``"all-time"`` (no bound at all — leaks; for measurement only).
    Returns:
        :class:`DynamicHops` with ``ids[h]`` of shape ``[B, F1, ..., F(h+1)]``.
    Raises:
        ValueError: a graph without timestamps or not time-ordered, bad ``side`` / ``deep_bound`` /
            fan-outs, roots out of range or ``roots`` / ``t`` of different lengths.
    """
    if graph.u_timestamp is None or graph.order != "time":
        raise ValueError("sample_dynamic needs a timestamped graph with order='time' (see time_graph)")
    if side not in ("user", "item"):
        raise ValueError(f"side must be 'user' or 'item', got {side!r}")
    if deep_bound not in DEEP_BOUNDS:
        raise ValueError(f"deep_bound must be one of {DEEP_BOUNDS}, got {deep_bound!r}")
    fanouts = tuple(int(f) for f in fanouts)
    if not fanouts or min(fanouts) < 1:
        raise ValueError(f"fanouts must be a non-empty sequence of positive ints, got {fanouts}")
    roots = np.asarray(roots, np.int64).reshape(-1)
    t = np.asarray(t, np.int64).reshape(-1)
    if roots.shape != t.shape:
        raise ValueError(f"roots and t must have equal length, got {roots.shape[0]} and {t.shape[0]}")
    n_root = graph.n_users if side == "user" else graph.n_items
    if roots.size and (roots.min() < 0 or roots.max() >= n_root):
        raise ValueError(f"{side} ids must lie in [0, {n_root}), got min {roots.min()} max {roots.max()}")
    csr = {"user": (graph.u_indptr, graph.u_indices, graph.u_timestamp, graph.n_items),
           "item": (graph.i_indptr, graph.i_indices, graph.i_timestamp, graph.n_users)}
    other = {"user": "item", "item": "user"}
    leak = deep_bound == "all-time"
    nodes = roots
    bounds = np.full(t.shape, _NO_BOUND, np.int64) if leak else t
    cur, shape = side, (roots.shape[0],)
    ids_out, ts_out, pads = [], [], []
    for h, f in enumerate(fanouts):
        indptr, indices, ts, pad = csr[cur]
        out_ids = np.full((nodes.shape[0], f), pad, np.int64)
        out_ts = np.full((nodes.shape[0], f), -1, np.int64)
        _recent_before(indptr, indices, ts, nodes, bounds, f, pad, out_ids, out_ts)
        shape = shape + (f,)
        ids_out.append(out_ids.reshape(shape))
        ts_out.append(out_ts.reshape(shape))
        pads.append(int(pad))
        # children of the next hop: this hop's nodes (pads → -1), bounds per deep_bound
        nodes = np.where(out_ids == pad, -1, out_ids).reshape(-1)
        if leak:
            bounds = np.full(nodes.shape, _NO_BOUND, np.int64)
        elif deep_bound == "parent":
            bounds = out_ts.reshape(-1)
        else:
            bounds = np.repeat(bounds, f)
        cur = other[cur]
    return DynamicHops(tuple(ids_out), tuple(ts_out), tuple(pads))
