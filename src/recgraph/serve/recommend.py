"""Retrieve → merge → (rank): one user's top-k from a run folder.

:func:`load_run` reads a run folder written by ``recgraph train --out RUN`` (the model artifact, the
raw id vocabularies, the training interactions); :class:`Engine` answers requests against it:

1. **query**: a known user's vector (``U[u]``), or, for a visitor the model never saw, the mean of
   the vectors of the items they sent (``history``); models without vectors score directly
   (popularity counts, ItemKNN's ``history @ sim``).
2. **retrieve**, per candidate path (``sources``):

   * ``u2i`` — the item index (:mod:`recgraph.index`: exact "Flat", Faiss "IVF…" or residual
     quantisation "RQ…"; RankGraph-2's co-learned RQ index by default) searched with the query;
   * ``u2i2i`` (RankGraph-2) — every item sharing an item-RQ cluster with one of the user's
     ``n_recent`` most recent training items, scored with the query;
   * ``u2u2i`` (RankGraph-2) — the ``n_neighbours`` users nearest to the query in the user-RQ index,
     their training items scored with the query.

   Seen items (the user's training items or the sent history) are dropped when ``exclude_seen``.
3. **merge**: the union of the paths' candidates, each tagged with every path that found it.
   Every path scores with the same query vector, so their scores are comparable.
4. **rank** (optional): a :class:`Ranker` re-scores the merged candidates (a saved CTR model
   through its one-user request path) and the top-``k`` by its score are returned.

Each :class:`Recommendation` carries per-stage wall times (seconds), which the HTTP app exports to
Prometheus.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from ..index import Index, build_index, load_index
from ..index.base import topk_over_candidates
from ..io import ArtifactError

__all__ = ["SOURCES", "Engine", "IdMap", "NotSupported", "Ranker", "Recommendation", "RunFolder",
           "TaskWeightError", "UnknownItems", "UnknownUser", "UnservedSource", "load_run"]

SOURCES = ("u2i", "u2i2i", "u2u2i")
#: requests whose warm-up median (CPU ms) is under this run on the server's event loop (no thread hop)
INLINE_MS = 5.0
#: name of the single path of the models that score every item directly (no vectors, no index)
DIRECT_SOURCE = {"pop": "pop", "itemknn": "i2i"}


class UnknownUser(KeyError):
    """The user id is not in the run's training data (the app answers 404)."""

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownItems(KeyError):
    """None of the sent item ids is in the run's catalogue (the app answers 422 / 404)."""

    def __str__(self) -> str:
        return str(self.args[0])


class NotSupported(ValueError):
    """The run's model cannot answer this kind of request (e.g. I2I for popularity)."""


class TaskWeightError(ValueError):
    """Task weights a request cannot use (unknown task, negative / non-finite, all zero, or no
    multi-task ranker loaded); the app answers 422."""


class UnservedSource(ValueError):
    """A candidate path the loaded run does not serve (e.g. ``u2i2i`` from an MF-BPR run)."""


# ---------------------------------------------------------------------------------------------- ids
class IdMap:
    """Raw id ↔ dense index of one side (users or items).

    ``raw [n]`` holds the raw id of each dense index (integers or strings). Lookups take what a JSON
    request carries (strings or integers) and return ``-1`` for ids that are not there; a string
    that is not an integer is simply unknown to an integer vocabulary.
    """

    def __init__(self, raw: np.ndarray):
        raw = np.asarray(raw)
        if raw.ndim != 1:
            raise ValueError(f"an id vocabulary must be 1-D, got shape {raw.shape}")
        self.raw = raw
        self._is_int = raw.dtype.kind in "iu"
        if not self._is_int:
            self.raw = raw.astype(str)
        self._order = None if np.all(self.raw[1:] > self.raw[:-1]) else np.argsort(self.raw, kind="stable")
        self._sorted = self.raw if self._order is None else self.raw[self._order]
        if len(self._sorted) > 1 and np.any(self._sorted[1:] == self._sorted[:-1]):
            raise ValueError("an id vocabulary must not repeat a raw id")

    def __len__(self) -> int:
        return len(self.raw)

    def lookup(self, values: Sequence) -> np.ndarray:
        """Dense indices ``[n] int64`` of raw ``values`` (-1 where unknown)."""
        if self._is_int:
            vals = np.full(len(values), -1, np.int64)
            ok = np.zeros(len(values), bool)
            for j, v in enumerate(values):  # a request's handful of ids
                try:
                    iv = int(v) if not isinstance(v, float) or float(v).is_integer() else None
                except (TypeError, ValueError, OverflowError):
                    iv = None
                if iv is not None and -(2 ** 63) <= iv < 2 ** 63:
                    vals[j], ok[j] = iv, True
            vals = vals.astype(self.raw.dtype, copy=False) if self.raw.dtype.kind == "i" else vals
        else:
            vals = np.asarray([str(v) for v in values], dtype=self._sorted.dtype if len(values) else str)
            ok = np.ones(len(values), bool)
        if not len(self._sorted) or not len(values):
            return np.full(len(values), -1, np.int64)
        pos = np.searchsorted(self._sorted, vals).clip(0, len(self._sorted) - 1)
        found = ok & (self._sorted[pos] == vals)
        dense = pos if self._order is None else self._order[pos]
        return np.where(found, dense, -1).astype(np.int64)

    def to_raw(self, idx: np.ndarray) -> list:
        """Raw ids of dense ``idx`` as JSON-ready Python values."""
        return self.raw[np.asarray(idx, dtype=np.int64)].tolist()


# ------------------------------------------------------------------------------------- run folders
@dataclass(frozen=True, eq=False)
class RunFolder:
    """Everything serving needs from a run folder.

    ``seen [n_users, n_items]`` CSR of the training interactions (binary); ``recent [n_users, R]``
    each user's most recent training items, newest first (-1 padded); ``titles [n_items]`` or None.
    """

    path: Path
    config: dict
    artifact: dict
    model: torch.nn.Module
    users: IdMap
    items: IdMap
    titles: np.ndarray | None
    seen: sp.csr_matrix
    recent: np.ndarray
    provenance: str  # where vocabularies / training data came from

    @property
    def name(self) -> str:
        return str(self.artifact.get("model", "?"))

    @property
    def n_users(self) -> int:
        return self.seen.shape[0]

    @property
    def n_items(self) -> int:
        return self.seen.shape[1]


def _recent_items(user: np.ndarray, item: np.ndarray, time_: np.ndarray | None, n_users: int, r: int) -> np.ndarray:
    """``[n_users, r]`` most recent items per user, newest first (file order when no times), -1 pad."""
    order = np.lexsort((np.arange(len(user)), user) if time_ is None else (np.arange(len(user)), time_, user))
    u, i = user[order], item[order]
    ends = np.cumsum(np.bincount(u, minlength=n_users))
    from_end = ends[u] - 1 - np.arange(len(u))
    keep = from_end < r
    out = np.full((n_users, r), -1, dtype=np.int64)
    out[u[keep], from_end[keep]] = i[keep]
    return out


def _seen_matrix(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(user), np.float32), (user, item)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    m.sort_indices()
    return m


def load_run(path: str | Path, *, n_recent: int | None = None) -> RunFolder:
    """Load a retrieval run folder for serving: nothing but the folder (``recgraph.train.runner.load_run``:
    ``config.json``, ``model/`` with verified checksums, ``vocab.npz``, ``train.npz``). Seen items are the
    run's training + validation interactions; ``n_recent``: the latest of them (by the times ``train.npz``
    holds; folders written before it held times: in file order) kept per user for U2I2I and the demo's
    history, default the model's ``n_recent``, else 10.

    Raises:
        ArtifactError: a missing or damaged file, named; a ranking run (serve it with ``ranker=``).
    """
    from ..train.runner import load_run as load_run_folder

    path = Path(path)
    r = load_run_folder(path)
    if r.task != "retrieval":
        raise ArtifactError(path / "config.json", f"is a {r.task} run ({r.config.model}); serve a retrieval run and "
                                                  "pass this one as the ranker (--ranker)")
    seen = r.seen
    n_recent = int(n_recent if n_recent is not None else r.meta.get("config", {}).get("n_recent", 10))
    titles = r.item_title
    if titles is not None and len(titles) != seen.n_items:
        raise ArtifactError(path / "vocab.npz", f"item_title has {len(titles)} rows, expected {seen.n_items}")
    return RunFolder(path=path, config=r.config.to_json(), artifact=r.meta, model=r.model, users=IdMap(r.user_vocab),
                     items=IdMap(r.item_vocab), titles=None if titles is None else np.asarray(titles).astype(str),
                     seen=_seen_matrix(seen.user, seen.item, seen.n_users, seen.n_items),
                     recent=_recent_items(seen.user, seen.item, seen.timestamp, seen.n_users, n_recent),
                     provenance="run folder (vocab.npz, train.npz: training + validation interactions"
                                + (", recency by their times)" if seen.timestamp is not None else
                                   ", no times: recency by file order)"))


# ------------------------------------------------------------------------------------------ ranker
class Ranker(Protocol):
    """Re-scores one user's candidates (e.g. a CTR model through ``CTRData.request``)."""

    name: str

    def describe(self) -> dict: ...

    def score(self, user_raw, history_raw: list | None, item_raw: list) -> np.ndarray | None:
        """Scores ``[B]`` (higher is better; ``nan`` where the ranker does not know the item), or
        None when it cannot score the request (e.g. a visitor).

        A multi-task ranker also has ``tasks`` (names), ``weights(task_weights) -> [T]`` and
        ``score_tasks(user_raw, history_raw, item_raw) -> [B, T] | None`` (per-task probabilities);
        the engine then ranks by ``score_tasks(...) @ weights(...)``."""


# ------------------------------------------------------------------------------------------- engine
@dataclass
class Recommendation:
    """``items [n]`` dense ids, best first; ``scores [n]`` final scores (the ranker's when one ran,
    else the retrieval score); ``retrieval_scores [n]``; ``sources``: the paths that found each item;
    ``timings``: seconds per stage; ``candidates``: items each path returned."""

    items: np.ndarray
    scores: np.ndarray
    retrieval_scores: np.ndarray
    sources: list[tuple[str, ...]]
    timings: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, int] = field(default_factory=dict)
    skipped_history: list = field(default_factory=list)
    history: np.ndarray | None = None
    ranked: bool = False  # whether the ranker re-ordered the candidates
    tasks: tuple[str, ...] = ()  # multi-task ranker: task names of ``task_scores`` columns
    task_scores: np.ndarray | None = None  # [n, T] per-task probabilities (nan: item unknown to the ranker)
    task_weights: np.ndarray | None = None  # [T] the weights the final score used


def _has_vectors(model) -> bool:
    return hasattr(model, "embeddings") or hasattr(model, "item_embeddings")


@torch.no_grad()
def _model_vectors(model) -> tuple[torch.Tensor, torch.Tensor]:
    """User ``[N, d]`` and item ``[M, d]`` vectors of a two-tower model, float32 CPU, contiguous."""
    if hasattr(model, "embeddings"):
        u, i = model.embeddings()
    else:  # DC-GNN: towers over precomputed propagation features
        i = model.item_embeddings()
        n = model.n_users
        u = torch.cat([model.user_embeddings(torch.arange(s, min(s + 65536, n))) for s in range(0, n, 65536)])
    return (u.detach().to("cpu", torch.float32).contiguous(), i.detach().to("cpu", torch.float32).contiguous())


def _drop(ids: np.ndarray, scores: np.ndarray, exclude: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` of ranked ``ids`` that are valid (>= 0) and not in sorted ``exclude``."""
    keep = ids >= 0
    if len(exclude):
        pos = np.searchsorted(exclude, ids).clip(0, len(exclude) - 1)
        keep &= exclude[pos] != ids
    return ids[keep][:k], scores[keep][:k]


class Engine:
    """Answers recommendation requests against one loaded run.

    Args:
        run: the loaded run folder.
        index: the item index for ``u2i``: ``"auto"`` (``RUN/index/items`` when the folder holds one,
            else RankGraph-2's co-learned RQ index, else exact), ``"colearned"`` (RankGraph-2 only), the
            folder of a saved index, or a :func:`recgraph.index.build_index` description (``"Flat"``, ``"IVF256,nprobe16"``,
            ``"RQ2x64,nprobe8"``), built from the item vectors at load time; or an :class:`Index`.
        ranker: optional re-scorer of the merged candidates.
        n_candidates: candidates per path when a ranker runs (``max(k, n_candidates)``).
        n_neighbours: users per ``u2u2i`` request.
        nprobe: clusters probed by an IVF / RQ item index (overrides the built or saved value).
        threads: set torch's and Faiss' intra-op threads for the whole process (the server uses 1, so
            that concurrent requests do not oversubscribe the cores); None leaves them alone.
    """

    def __init__(self, run: RunFolder, index: str | Index = "auto", ranker: Ranker | None = None, *,
                 n_candidates: int = 100, n_neighbours: int = 50, nprobe: int | None = None,
                 threads: int | None = None):
        if threads is not None:
            import faiss

            torch.set_num_threads(int(threads))
            faiss.omp_set_num_threads(int(threads))
        self.run, self.ranker = run, ranker
        self.n_candidates, self.n_neighbours = int(n_candidates), int(n_neighbours)
        self.model = run.model.eval()
        self.name = run.name
        self.loaded_at = time.time()
        t0 = time.perf_counter()
        self.user_vecs = self.item_vecs = None
        self.index: Index | None = None
        self.user_index = None
        self.item_rq = None
        if _has_vectors(self.model):
            self.user_vecs, self.item_vecs = _model_vectors(self.model)
            self.index = self._item_index(index)
            if nprobe is not None:
                if not hasattr(self.index, "nprobe"):
                    raise ValueError(f"nprobe applies to IVF / RQ indexes, not {self.index.describe()!r}")
                self.index.nprobe = int(nprobe)
            if self.name == "rankgraph":  # co-learned RQ indexes: the U2I2I / U2U2I paths of RankGraph-2
                self.item_rq = self.index if self._is_colearned else self.model.export_index("items")
                self.user_index = self.model.export_index("users")
            self.sources = ("u2i",) + (("u2i2i", "u2u2i") if self.item_rq is not None else ())
        elif self.name in DIRECT_SOURCE:
            self.sources = (DIRECT_SOURCE[self.name],)
        else:
            raise NotSupported(f"model {self.name!r} has neither vectors nor a direct scorer that serving knows")
        self._seen_indptr = run.seen.indptr.astype(np.int64)
        self._seen_indices = run.seen.indices.astype(np.int64)
        self.item_counts = np.bincount(self._seen_indices, minlength=run.n_items)  # training interactions per item
        self._search_text: np.ndarray | None = None
        self.build_seconds = time.perf_counter() - t0
        self.inline = True
        self.warmup_ms = self._warmup()
        self.inline = self.warmup_ms < INLINE_MS

    def _warmup(self, n: int = 5) -> float:
        """Median CPU milliseconds (this thread's, so a busy machine does not inflate it) of ``n``
        requests for the first users; also fills lazy caches."""
        times = []
        for u in range(min(n, self.run.n_users)):
            t0 = time.thread_time()
            self.recommend(user=self.run.users.to_raw([u])[0], k=10)
            times.append((time.thread_time() - t0) * 1e3)
        return float(np.median(times)) if times else 0.0

    # ---------------------------------------------------------------------------------- building
    _is_colearned = False

    def _item_index(self, index) -> Index:
        if isinstance(index, Index):
            return index
        saved = self.run.path / "index" / "items"
        if index != "auto" and (Path(str(index)) / "index.json").exists():  # a saved index folder
            saved, index = Path(str(index)), "auto"
        if index == "auto" and (saved / "index.json").exists():
            idx = load_index(saved)
            if idx.ntotal != self.run.n_items or idx.d != self.item_vecs.shape[1]:
                raise ArtifactError(saved / "index.json", f"holds {idx.ntotal} vectors of d={idx.d}, the model has "
                                                          f"{self.run.n_items} of d={self.item_vecs.shape[1]}")
            return idx
        if index in ("auto", "colearned") and self.name == "rankgraph":
            self._is_colearned = True
            return self.model.export_index("items")
        if index == "colearned":
            raise NotSupported(f"only RankGraph-2 co-learns an index; {self.name!r} serves 'Flat', 'IVF…' or 'RQ…'")
        desc = "Flat" if index == "auto" else str(index)
        kwargs = {}
        if desc.startswith("RQ") and self.item_vecs.shape[0] > 200_000:
            # residual k-means on a 200k sample, then every vector coded (bounded build time)
            from ..index import parse_description

            cls, params = parse_description(desc)
            sample = self.item_vecs[torch.randperm(self.item_vecs.shape[0], generator=torch.Generator()
                                                   .manual_seed(0))[:200_000]]
            return cls(self.item_vecs.shape[1], **params).train(sample).add(self.item_vecs)
        return build_index(desc, self.item_vecs, **kwargs)

    def save_index(self) -> Path:
        """Write the item index into ``RUN/index/items`` (loaded by ``index="auto"`` next time)."""
        from ..io import atomic_write_dir

        return atomic_write_dir(self.run.path / "index" / "items", lambda tmp: self.index.save(tmp))

    def describe(self) -> dict:
        a = self.run.artifact
        return {"run": str(self.run.path), "model": self.name, "n_users": self.run.n_users,
                "n_items": self.run.n_items, "sources": list(self.sources),
                "index": None if self.index is None else self.index.describe() + (" (co-learned)" if self._is_colearned
                                                                                  else ""),
                "artifact": {"format": a.get("format"), "recgraph_version": a.get("recgraph_version"),
                             "git_commit": a.get("git_commit"), "dataset": a.get("dataset"),
                             "weights_sha256": (a.get("files") or {}).get("weights.safetensors", {}).get("sha256")},
                "data": self.run.provenance, "titles": self.run.titles is not None,
                "ranker": None if self.ranker is None else self.ranker.describe(),
                "loaded_at": self.loaded_at, "build_seconds": round(self.build_seconds, 4),
                "warmup_ms": round(self.warmup_ms, 3), "inline": self.inline}

    # ---------------------------------------------------------------------------------- helpers
    def seen_items(self, user: int) -> np.ndarray:
        """Sorted training items of dense ``user``."""
        return self._seen_indices[self._seen_indptr[user]:self._seen_indptr[user + 1]]

    def resolve_user(self, raw) -> int:
        u = int(self.run.users.lookup([raw])[0])
        if u < 0:
            raise UnknownUser(f"user {raw!r} is not in the training data of this run; send the items they interacted "
                              "with instead: {\"history\": [item ids], \"k\": 10}")
        return u

    def resolve_items(self, raw: Sequence) -> tuple[np.ndarray, list]:
        """Dense ids of the known ``raw`` items (order kept, repeats dropped) and the unknown raw ids."""
        idx = self.run.items.lookup(list(raw))
        known = idx[idx >= 0]
        _, first = np.unique(known, return_index=True)
        return known[np.sort(first)], [r for r, i in zip(raw, idx) if i < 0]

    def search_items(self, q: str) -> np.ndarray:
        """Dense ids of the items whose title or raw id contains ``q`` (case-insensitive)."""
        if self._search_text is None:
            text = np.char.lower(self.run.items.raw.astype(str))
            if self.run.titles is not None:
                text = np.char.add(np.char.add(text, "\t"), np.char.lower(self.run.titles.astype(str)))
            self._search_text = text
        return np.flatnonzero(np.char.find(self._search_text, q.lower()) >= 0)

    def history_items(self, user: int, limit: int) -> np.ndarray:
        """A known user's training items, most recent first (the rest in id order)."""
        recent = self.run.recent[user]
        recent = recent[recent >= 0]
        rest = np.setdiff1d(self.seen_items(user), recent)
        return np.concatenate([recent, rest])[:limit]

    # ---------------------------------------------------------------------------------- requests
    @torch.no_grad()
    def recommend(self, user=None, history: Sequence | None = None, k: int = 10, *, exclude_seen: bool = True,
                  sources: Sequence[str] | None = None, task_weights: dict | None = None) -> Recommendation:
        """Top-``k`` for a known raw ``user`` id or for a visitor's raw ``history`` item ids.

        ``task_weights`` (multi-task ranker only): ``{task: weight >= 0}``; the candidates are ranked by
        ``Σ_t w_t · p_t`` (default equal weights) and every task's probability comes back in
        ``task_scores``.

        Raises:
            TaskWeightError: ``task_weights`` without a multi-task ranker, or weights it cannot use.
            UnknownUser: ``user`` is not in the run (send a history instead).
            UnknownItems: no item of ``history`` is in the catalogue.
            ValueError: both or neither of ``user`` / ``history``; ``k < 1``; an unknown source.
        """
        t = {}
        t0 = time.perf_counter()
        if (user is None) == (history is None):
            raise ValueError("send exactly one of user (a known user id) or history (item ids)")
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = int(k)
        srcs = self.sources if sources is None else tuple(dict.fromkeys(sources))
        bad = [s for s in srcs if s not in self.sources]
        if bad or not srcs:
            raise UnservedSource(f"sources {bad or '[]'} are not served by this {self.name} run; it serves "
                                 f"{list(self.sources)}")
        tasks = tuple(getattr(self.ranker, "tasks", ()) or ())
        if task_weights is not None and not tasks:
            raise TaskWeightError("task_weights need a multi-task ranker; this service ranks with "
                                  + (f"{self.ranker.name} (one score)" if self.ranker is not None else "no ranker")
                                  + " (start it with --ranker MULTITASK_RUN)")
        w = self.ranker.weights(task_weights) if tasks else None
        skipped: list = []
        if user is not None:
            u = self.resolve_user(user)
            hist = self.seen_items(u)
            recent = self.run.recent[u]
            recent = recent[recent >= 0]
        else:
            u = -1
            items, skipped = self.resolve_items(history)
            if not len(items):
                raise UnknownItems(f"none of the history items {list(history)[:5]} is in this run's catalogue")
            hist, recent = np.sort(items), np.ascontiguousarray(items[::-1][: self.run.recent.shape[1]])
        exclude = hist if exclude_seen else np.zeros(0, np.int64)
        n_per_path = max(k, self.n_candidates) if self.ranker is not None else k
        t["lookup"] = time.perf_counter() - t0

        per_path: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if self.item_vecs is None:
            t1 = time.perf_counter()
            per_path[srcs[0]] = self._direct(u, hist, exclude, n_per_path)
            t["retrieve"] = time.perf_counter() - t1
        else:
            t1 = time.perf_counter()
            q = self.user_vecs[u] if u >= 0 else self._history_query(hist)
            t["query"] = time.perf_counter() - t1
            for s in srcs:
                t2 = time.perf_counter()
                per_path[s] = getattr(self, f"_{s}")(q, u, recent, exclude, n_per_path)
                t[f"retrieve_{s}"] = time.perf_counter() - t2
            t["retrieve"] = sum(v for key, v in t.items() if key.startswith("retrieve_")) + t["query"]
        t3 = time.perf_counter()
        ids, scores, found = self._merge(per_path, list(srcs))
        t["merge"] = time.perf_counter() - t3
        final = scores
        ranked = False
        per_task = None
        if self.ranker is not None and len(ids):
            t4 = time.perf_counter()
            args = (None if u < 0 else user, None if u >= 0 else self.run.items.to_raw(hist),
                    self.run.items.to_raw(ids))
            if tasks:
                per_task = self.ranker.score_tasks(*args)
                rs = None if per_task is None else per_task @ w
            else:
                rs = self.ranker.score(*args)
            if rs is not None:  # None: the ranker cannot score this request (e.g. a visitor)
                final = np.where(np.isnan(rs), -np.inf, np.asarray(rs, np.float64))
                order = np.lexsort((-scores, -final))  # ranker score, retrieval score breaks ties
                ids, scores, final, found = ids[order], scores[order], final[order], [found[j] for j in order]
                if per_task is not None:
                    per_task = per_task[order]
                ranked = True
            t["rank"] = time.perf_counter() - t4
        out = Recommendation(items=ids[:k], scores=np.asarray(final[:k], np.float32),
                             retrieval_scores=scores[:k].astype(np.float32), sources=found[:k],
                             candidates={s: int(len(v[0])) for s, v in per_path.items()}, skipped_history=skipped,
                             history=hist, ranked=ranked, tasks=tasks,
                             task_scores=None if per_task is None else per_task[:k], task_weights=w)
        t["total"] = time.perf_counter() - t0
        out.timings = t
        return out

    @torch.no_grad()
    def similar(self, item, k: int = 10) -> Recommendation:
        """Items most similar to raw ``item`` (I2I), the item itself excluded."""
        t0 = time.perf_counter()
        i = int(self.run.items.lookup([item])[0])
        if i < 0:
            raise UnknownItems(f"item {item!r} is not in this run's catalogue")
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = int(k)
        t = {"lookup": time.perf_counter() - t0}
        t1 = time.perf_counter()
        if self.item_vecs is not None:
            D, I = self.index.search(self.item_vecs[i:i + 1], k + 1)
            ids, sc = _drop(I[0], D[0], np.array([i]), k)
        elif self.name == "itemknn":
            nbr = self.model.nbr_index[i].numpy().astype(np.int64)
            sc_all = self.model.nbr_score[i].numpy()
            order = np.argsort(-sc_all, kind="stable")
            ids, sc = _drop(nbr[order], sc_all[order], np.array([i]), k)
        else:
            raise NotSupported(f"a {self.name} run has no item-to-item similarity")
        t["retrieve"] = time.perf_counter() - t1
        t["total"] = time.perf_counter() - t0
        return Recommendation(items=ids, scores=sc.astype(np.float32), retrieval_scores=sc.astype(np.float32),
                              sources=[("i2i",)] * len(ids), timings=t, candidates={"i2i": int(len(ids))})

    # ---------------------------------------------------------------------------------- paths
    def _history_query(self, hist: np.ndarray) -> torch.Tensor:
        """A visitor's query: the mean of their items' vectors (normalised for cosine models)."""
        q = self.item_vecs[torch.from_numpy(hist)].mean(0)
        return torch.nn.functional.normalize(q, dim=0) if self.name == "rankgraph" else q

    def _u2i(self, q, u, recent, exclude, n):
        D, I = self.index.search(q[None], int(min(self.run.n_items, n + len(exclude))))
        return _drop(I[0], D[0], exclude, n)

    def _u2i2i(self, q, u, recent, exclude, n):
        rq = self.item_rq
        if not len(recent):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        clusters = rq.cluster_of(recent)[None]
        D, I = rq.search_clusters(q[None], clusters, int(min(self.run.n_items, n + len(exclude))))
        return _drop(I[0], D[0], exclude, n)

    def _u2u2i(self, q, u, recent, exclude, n):
        _, nb = self.user_index.search(q[None], self.n_neighbours + (1 if u >= 0 else 0))
        nb = nb[0]
        nb = nb[(nb >= 0) & (nb != u)][: self.n_neighbours]
        if not len(nb):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        starts, ends = self._seen_indptr[nb], self._seen_indptr[nb + 1]
        from ..index.rq import ranges_to_flat

        cand = np.unique(self._seen_indices[ranges_to_flat(starts, ends - starts)])
        if len(exclude):
            cand = cand[~np.isin(cand, exclude, assume_unique=False)]
        if not len(cand):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        D, I = topk_over_candidates(q[None], self.item_vecs, np.array([0, len(cand)]), cand, n)
        return _drop(I[0].numpy(), D[0].numpy(), np.zeros(0, np.int64), n)

    def _direct(self, u, hist, exclude, n):
        """Pop / ItemKNN: every item scored (no vectors, no index)."""
        if self.name == "pop":
            s = self.model.counts.numpy().astype(np.float32).copy()
        elif u >= 0:
            s = self.model.score(torch.tensor([u])).numpy()[0].copy()
        else:
            s = self.model.score_history(hist)
        s[exclude] = -np.inf
        kk = min(n, len(s))
        top = np.argpartition(-s, kk - 1)[:kk]
        top = top[np.lexsort((top, -s[top]))]
        top = top[np.isfinite(s[top])]
        return top.astype(np.int64), s[top].astype(np.float32)

    @staticmethod
    def _merge(per_path: dict, order: list[str]) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...]]]:
        """Union of the paths' candidates, best retrieval score first; each item tagged with every
        path that found it (in ``order``)."""
        ids = np.concatenate([per_path[s][0] for s in order]) if order else np.zeros(0, np.int64)
        if not len(ids):
            return np.zeros(0, np.int64), np.zeros(0, np.float32), []
        sc = np.concatenate([per_path[s][1] for s in order]).astype(np.float32)
        path = np.concatenate([np.full(len(per_path[s][0]), j) for j, s in enumerate(order)])
        uniq, inv = np.unique(ids, return_inverse=True)
        best = np.full(len(uniq), -np.inf, np.float32)
        np.maximum.at(best, inv, sc)
        mask = np.zeros((len(uniq), len(order)), bool)
        mask[inv, path] = True
        rank = np.lexsort((uniq, -best))
        return uniq[rank], best[rank], [tuple(s for s, m in zip(order, row) if m) for row in mask[rank].tolist()]


def result_json(engine: Engine, rec: Recommendation) -> list[dict]:
    """The items of ``rec`` as JSON rows: raw id, score, source(s), title."""
    raw = engine.run.items.to_raw(rec.items)
    titles = engine.run.titles
    rows = []
    for j, (r, s, rs, src) in enumerate(zip(raw, rec.scores.tolist(), rec.retrieval_scores.tolist(), rec.sources)):
        row = {"item": r, "score": float(s) if np.isfinite(s) else None,
               "retrieval_score": float(rs) if np.isfinite(rs) else None,
               "source": src[0] if src else None, "sources": list(src)}
        if titles is not None:
            row["title"] = str(titles[rec.items[j]])
        if rec.task_scores is not None:
            row["task_scores"] = {t: (float(v) if np.isfinite(v) else None)
                                  for t, v in zip(rec.tasks, rec.task_scores[j].tolist())}
        rows.append(row)
    return rows
