"""Popularity-corrected edge subsampling (RankGraph-2 construction stage).

RankGraph-2 shrinks its interaction graph by orders of magnitude before anything else runs, and
corrects the popularity bias while doing so. The paper publishes no formula; ours is:

Keep probability
----------------
Every user-item edge ``e = (u, i)`` is kept independently with the *base probability*

    q_e = min(1, c * deg(i) ** -beta)

where ``deg(i)`` is the item's degree in the input graph, ``beta >= 0`` sets how strongly
popular items are thinned (``beta = 0``: uniform sampling at rate ``c``; ``beta = 0.5`` is the
word2vec frequent-word rule ``sqrt(t / f)``; ``beta = 1``: every item keeps about ``c`` edges),
and ``c`` is solved by bisection so that the *expected* number of kept edges equals
``keep_rate * n_edges``. An item of degree ``d`` keeps about ``min(d, c * d ** (1 - beta))``
edges: the long tail keeps its edges, the head is flattened.

Degree floor
------------
Subsampling must not disconnect anyone: every user and every item with at least one edge keeps
at least one. Instead of repairing after the draw (which would make inclusion probabilities
depend on the whole draw), one *anchor* edge per node is fixed before sampling by a
deterministic rule and kept with probability 1:

* a user's anchor is its edge to its least popular item (ties: lower item id), which keeps the
  most informative, long-tail evidence about the user;
* an item's anchor is its edge to its least active user (ties: lower user id).

Anchors are at most ``n_users + n_items`` edges. Because the rule does not depend on the seed,
the inclusion probability of each edge is exact: ``pi_e = 1`` for an anchor, ``pi_e = q_e``
otherwise; ``c`` is solved with the anchors counted, so the expected keep rate still hits the
target (unless the anchors alone exceed it, which raises a clear error).

Using the probabilities
-----------------------
:class:`SubsampleResult` returns the kept edge ids *and* their ``pi_e``, so a loss can
importance-weight kept edges by ``1 / pi_e`` (Horvitz-Thompson: unbiased for sums over the full
graph) or apply a log-Q correction with ``log pi_e``. Everything is vectorised numpy, O(edges).

Input: the training :class:`~recgraph.graph.bipartite.BipartiteGraph`; its edges are the distinct
user–item pairs in row-major order (the entries of ``graph.to_scipy()``). The kept edges come back
as a graph too (:meth:`SubsampleResult.to_graph`), ready for the next stage (e.g. PPR).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bipartite import BipartiteGraph, as_graph

__all__ = ["SubsampleResult", "popularity_subsample", "solve_scale", "solve_scale_hist", "check_subsample_args"]


@dataclass(frozen=True)
class SubsampleResult:
    """Outcome of :func:`popularity_subsample`.

    ``kept`` indexes the input edges: positions in ``graph.to_scipy().indices`` (distinct pairs,
    row-major order; for a deduplicated, item-ordered graph the same as ``graph.u_indices``).
    ``inclusion_prob[j]`` is the exact probability that edge ``kept[j]`` is kept (1 for anchors).
    ``base_prob`` and ``is_anchor`` are given for *all* input edges.
    """

    kept: np.ndarray  # [K] int64 edge ids into the input edge list, ascending
    inclusion_prob: np.ndarray  # [K] float64, pi_e of the kept edges
    users: np.ndarray  # [K] int64 user of each kept edge
    items: np.ndarray  # [K] int64 item of each kept edge
    base_prob: np.ndarray  # [E] float64, q_e of every input edge
    is_anchor: np.ndarray  # [E] bool, degree-floor anchors (kept with probability 1)
    n_users: int
    n_items: int
    n_edges: int  # input edges
    keep_rate: float  # target (expected) keep rate
    beta: float
    scale: float  # solved c
    seed: int
    item_degree: np.ndarray = field(repr=False, default=None)  # [n_items] input item degrees
    user_degree: np.ndarray = field(repr=False, default=None)  # [n_users] input user degrees

    @property
    def n_kept(self) -> int:
        return int(self.kept.shape[0])

    @property
    def weights(self) -> np.ndarray:
        """Horvitz-Thompson weights ``1 / pi_e`` of the kept edges."""
        return 1.0 / self.inclusion_prob

    def expected_kept(self) -> float:
        pi = np.where(self.is_anchor, 1.0, self.base_prob)
        return float(pi.sum())

    def to_graph(self) -> BipartiteGraph:
        """The kept edges as a :class:`BipartiteGraph` (use its ``to_scipy()`` for a matrix)."""
        return BipartiteGraph.from_edges(self.users, self.items, self.n_users, self.n_items)

    def describe(self, n_buckets: int | None = None) -> dict:
        """Sizes before/after and keep rates per item-popularity bucket (powers of two of the
        item degree: bucket ``b`` holds items with ``2**b <= deg < 2**(b+1)``)."""
        ideg = self.item_degree
        udeg = self.user_degree
        kept_i = np.bincount(self.items, minlength=self.n_items)
        kept_u = np.bincount(self.users, minlength=self.n_users)
        item_bucket = np.floor(np.log2(np.maximum(ideg, 1))).astype(np.int64)
        nb = int(item_bucket.max()) + 1 if item_bucket.size else 0
        if n_buckets is not None:
            nb = max(nb, n_buckets)
        edges_b = np.bincount(item_bucket, weights=ideg, minlength=nb)
        kept_b = np.bincount(item_bucket, weights=kept_i, minlength=nb)
        items_b = np.bincount(item_bucket[ideg > 0], minlength=nb)
        buckets = []
        for b in range(nb):
            if edges_b[b] == 0:
                continue
            buckets.append({
                "item_degree": [int(2 ** b), int(2 ** (b + 1) - 1)],
                "items": int(items_b[b]),
                "edges_before": int(edges_b[b]),
                "edges_after": int(kept_b[b]),
                "keep_rate": float(kept_b[b] / edges_b[b]),
                "base_prob_at_min_degree": float(min(1.0, self.scale * (2.0 ** b) ** -self.beta)),
            })
        return {
            "users": self.n_users,
            "items": self.n_items,
            "edges_before": self.n_edges,
            "edges_after": self.n_kept,
            "keep_rate_target": self.keep_rate,
            "keep_rate_expected": self.expected_kept() / max(self.n_edges, 1),
            "keep_rate_realised": self.n_kept / max(self.n_edges, 1),
            "beta": self.beta,
            "scale": self.scale,
            "seed": self.seed,
            "anchors": int(self.is_anchor.sum()),
            "users_with_edges_before": int((udeg > 0).sum()),
            "users_with_edges_after": int((kept_u > 0).sum()),
            "items_with_edges_before": int((ideg > 0).sum()),
            "items_with_edges_after": int((kept_i > 0).sum()),
            "max_item_degree_before": int(ideg.max()) if ideg.size else 0,
            "max_item_degree_after": int(kept_i.max()) if kept_i.size else 0,
            "by_item_popularity": buckets,
        }


def _edges(graph) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(users [E], items [E])`` int64 of the distinct pairs of ``graph`` in row-major order."""
    R = as_graph(graph).to_scipy()
    u = np.repeat(np.arange(R.shape[0], dtype=np.int64), np.diff(R.indptr))
    return u, R.indices.astype(np.int64), int(R.shape[0]), int(R.shape[1])


def _anchors(u, i, udeg, ideg) -> np.ndarray:
    """One edge per user (to its least popular item) and per item (to its least active user)."""
    E = u.shape[0]
    is_anchor = np.zeros(E, dtype=bool)
    if E == 0:
        return is_anchor
    # user anchors: sort by (user, item degree, item id), first of each user group
    order = np.lexsort((i, ideg[i], u))
    first = np.ones(E, dtype=bool)
    first[1:] = u[order][1:] != u[order][:-1]
    is_anchor[order[first]] = True
    order = np.lexsort((u, udeg[u], i))
    first[:] = True
    first[1:] = i[order][1:] != i[order][:-1]
    is_anchor[order[first]] = True
    return is_anchor


def solve_scale(edge_item_degree: np.ndarray, is_anchor: np.ndarray, target: float,
                beta: float, iters: int = 200) -> float:
    """Bisection (on log c) for ``c`` with ``#anchors + sum_{non-anchors} min(1, c d^-beta)
    = target``. Vectorised over the distinct degrees of the non-anchor edges."""
    d_free = edge_item_degree[~is_anchor]
    return solve_scale_hist(d_free, np.ones(d_free.shape[0], np.int64), float(is_anchor.sum()), target, beta, iters)


def solve_scale_hist(degree: np.ndarray, count: np.ndarray, n_anchor: float, target: float, beta: float,
                     iters: int = 200) -> float:
    """:func:`solve_scale` from a histogram: ``count[k]`` non-anchor edges whose item has degree
    ``degree[k]`` (repeated degrees are summed), so an out-of-core caller needs ``O(items)`` memory."""
    need = target - n_anchor
    if need <= 0:
        return 0.0
    if need >= count.sum():
        return float(np.max(degree) ** beta) if degree.size else 1.0
    degs, inv = np.unique(degree, return_inverse=True)
    cnt = np.bincount(inv.ravel(), weights=count, minlength=degs.shape[0]).astype(np.float64)
    w = degs.astype(np.float64) ** -beta

    def expected(c):
        return float((cnt * np.minimum(1.0, c * w)).sum())

    lo, hi = 0.0, float(1.0 / w.min())  # at hi every q = 1
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if expected(mid) < need:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return 0.5 * (lo + hi)


def check_subsample_args(keep_rate: float, beta: float) -> None:
    if not 0.0 < keep_rate <= 1.0:
        raise ValueError(f"keep_rate must be in (0, 1], got {keep_rate}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")


def popularity_subsample(
    graph: BipartiteGraph,
    *,
    keep_rate: float = 0.5,
    beta: float = 0.5,
    seed: int = 0,
    degree_floor: bool = True,
) -> SubsampleResult:
    """Subsample user-item edges, thinning popular items' edges (see the module doc).

    Args:
        graph: the user–item graph (a scipy user×item matrix is converted with
            :meth:`BipartiteGraph.from_scipy`: stored non-zeros are edges).
        keep_rate: target expected fraction of edges kept, in (0, 1].
        beta: popularity exponent (0 = uniform).
        seed: seed of the Bernoulli draw.
        degree_floor: keep one anchor edge per user and per item with probability 1.
    """
    check_subsample_args(keep_rate, beta)
    u, i, nu, ni = _edges(graph)
    E = u.shape[0]
    udeg = np.bincount(u, minlength=nu)
    ideg = np.bincount(i, minlength=ni)
    is_anchor = _anchors(u, i, udeg, ideg) if degree_floor else np.zeros(E, dtype=bool)
    target = keep_rate * E
    if degree_floor and is_anchor.sum() > target + 1e-9:
        raise ValueError(
            f"keep_rate={keep_rate} asks for {target:.0f} edges but the degree floor alone keeps "
            f"{int(is_anchor.sum())} (one per user and item); raise keep_rate or pass "
            f"degree_floor=False"
        )
    edeg = ideg[i]
    c = solve_scale(edeg, is_anchor, target, beta) if E else 0.0
    q = np.minimum(1.0, c * edeg.astype(np.float64) ** -beta) if E else np.zeros(0)
    pi = np.where(is_anchor, 1.0, q)
    draw = np.random.default_rng(seed).random(E)
    keep = is_anchor | (draw < q)
    kept = np.flatnonzero(keep).astype(np.int64)
    return SubsampleResult(
        kept=kept,
        inclusion_prob=pi[kept],
        users=u[kept],
        items=i[kept],
        base_prob=q,
        is_anchor=is_anchor,
        n_users=nu,
        n_items=ni,
        n_edges=int(E),
        keep_rate=float(keep_rate),
        beta=float(beta),
        scale=float(c),
        seed=int(seed),
        item_degree=ideg,
        user_degree=udeg,
    )
