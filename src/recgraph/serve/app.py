"""HTTP service over run folders: FastAPI app (served by uvicorn), demo page, Prometheus metrics.

Endpoints (OpenAPI at ``/openapi.json``, docs at ``/docs``):

* ``GET /health`` — status, model, index, sources, artifact versions, reload generation.
* ``POST /recommend`` — ``{"user": id, "k": 10}`` or ``{"history": [item ids], "k": 10}``
  (+ ``exclude_seen``, ``sources``, and ``task_weights`` with a multi-task ranker) → ranked items
  with score, source path(s), title (and every task's probability with a multi-task ranker).
  Unknown user → 404 (the message says to send a history); bad body or ``k`` outside 1..1000 → 422.
* ``POST /similar`` — ``{"item": id, "k": 10}`` → I2I neighbours.
* ``GET /users``, ``GET /users/{user}/history``, ``GET /items`` — what the demo page lists.
* ``GET /metrics`` — Prometheus text: request counts / latency per endpoint and status, and
  per-stage timings (``lookup``, ``query``, ``retrieve_<path>``, ``merge``, ``rank``).
* ``POST /admin/reload`` (or ``SIGHUP`` to the process) — load the run folders again (or new ones)
  in the background and swap them in; requests in flight finish on the engine they started with,
  so a reload fails no request. Guarded by ``X-Admin-Token`` when a token is set; refused on a
  non-loopback bind without one.
* ``GET /`` — the demo page (``static/``).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import signal
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException

from .recommend import (Engine, NotSupported, Ranker, TaskWeightError, UnknownItems, UnknownUser, UnservedSource,
                        load_run, result_json)

__all__ = ["Service", "create_app"]

STATIC = Path(__file__).resolve().parent / "static"
RawId = Annotated[str, Field(min_length=1, max_length=200)] | StrictInt
TaskWeight = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5)


# ------------------------------------------------------------------------------------------- schemas
class _RequestOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(10, ge=1, le=1000, description="how many items")
    exclude_seen: bool = Field(True, description="drop the user's training items (or the sent history)")
    sources: list[Literal["u2i", "u2i2i", "u2u2i", "i2i", "pop"]] | None = Field(
        None, min_length=1, max_length=5, description="candidate paths to use (default: every path the run serves)")


class UserRequest(_RequestOptions):
    """Recommendations for a user the run was trained on."""

    user: RawId


class HistoryRequest(_RequestOptions):
    """Recommendations for a visitor the model never saw, from the items they interacted with."""

    history: list[RawId] = Field(min_length=1, max_length=1000)


RecommendRequest = UserRequest | HistoryRequest


def request_models(tasks: tuple[str, ...]):
    """The ``/recommend`` body of a service: with a multi-task ranker predicting ``tasks`` the body may
    carry ``task_weights`` whose keys are those task names (the OpenAPI schema lists them, and an
    unknown task is a 422 that names them); without one, ``task_weights`` is not part of the body."""
    if not tasks:
        return RecommendRequest
    task_name = Literal[tuple(tasks)]  # type: ignore[valid-type]

    class _MultiTaskOptions(_RequestOptions):
        task_weights: dict[task_name, TaskWeight] | None = Field(
            None, min_length=1, max_length=len(tasks),
            description=f"weight per task of the multi-task ranker ({', '.join(tasks)}; finite, >= 0; tasks not "
                        "named get 0): candidates are ranked by the weighted sum of the task probabilities. "
                        "Default: equal weights. All zero: every ranker score is 0 and the retrieval order stands")

    class UserRequest(_MultiTaskOptions):
        """Recommendations for a user the run was trained on."""

        user: RawId

    class HistoryRequest(_MultiTaskOptions):
        """Recommendations for a visitor the model never saw, from the items they interacted with."""

        history: list[RawId] = Field(min_length=1, max_length=1000)

    return UserRequest | HistoryRequest


class SimilarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: RawId
    k: int = Field(10, ge=1, le=1000)


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run: str | None = Field(None, min_length=1, max_length=4096,
                            description="new retrieval run folder (default: the current one)")
    ranker: str | None = Field(None, min_length=1, max_length=4096,
                               description="new ranker run folder (default: the current one)")


class ItemOut(BaseModel):
    item: str | int
    score: float | None = Field(description="final score: the ranker's when one ran, else the retrieval score")
    retrieval_score: float | None
    source: str | None = Field(description="the first candidate path that found the item")
    sources: list[str] = Field(description="every candidate path that found the item")
    title: str | None = None
    task_scores: dict[str, float | None] | None = Field(
        None, description="multi-task ranker: each task's probability (null where the ranker does not know the item)")


class RecommendResponse(BaseModel):
    items: list[ItemOut]
    user: str | int | None = None
    history_used: int = Field(description="history items the query was built from (known items only)")
    skipped_history: list[str | int] = Field(description="history ids not in the catalogue (ignored)")
    candidates: dict[str, int] = Field(description="candidates returned by each path")
    model: str
    index: str | None
    ranker: str | None
    ranked: bool = Field(description="whether the ranker re-ordered the candidates (a visitor without a user id "
                                     "keeps the retrieval order)")
    task_weights: dict[str, float] | None = Field(None, description="multi-task ranker: the weight of each task in "
                                                                    "the final score")
    generation: int
    timings_ms: dict[str, float]


class SimilarResponse(BaseModel):
    item: str | int
    items: list[ItemOut]
    model: str
    generation: int
    timings_ms: dict[str, float]


class Error(BaseModel):
    detail: str


class HealthResponse(BaseModel):
    status: Literal["ok"]
    generation: int
    uptime_seconds: float
    service: dict
    retrieval: dict


class ItemRow(BaseModel):
    item: str | int
    title: str | None = None
    count: int | None = None


class ItemList(BaseModel):
    total: int
    items: list[ItemRow]


class UserList(BaseModel):
    total: int
    users: list[str | int]


class HistoryResponse(BaseModel):
    user: str | int
    total: int
    items: list[ItemRow]


_ERRORS = {404: {"model": Error, "description": "unknown user, or no known item in the history"},
           422: {"description": "invalid request"}}


# ------------------------------------------------------------------------------------------- service
class Service:
    """The loaded engine plus how to reload it. ``engine`` is swapped as one reference: a request
    reads it once and keeps that engine until it answers."""

    def __init__(self, run: str | Path, *, ranker: str | Path | None = None, index: str = "auto",
                 engine: Engine | None = None, nprobe: int | None = None, threads: int | None = 1):
        self.run_path, self.ranker_path, self.index = Path(run), ranker, index
        self.nprobe = nprobe
        self.threads = threads
        self._reload_lock = threading.Lock()
        self.generation = 0
        self.started = time.time()
        self.last_reload: dict | None = None
        self.engine = engine if engine is not None else self._build(self.run_path, self.ranker_path)

    def _build(self, run: Path, ranker) -> Engine:
        r: Ranker | None = None
        if ranker is not None:
            from .rank import load_ranker

            r = load_ranker(ranker)
        return Engine(load_run(run), index=self.index, ranker=r, nprobe=self.nprobe,
                      threads=self.threads)

    def reload(self, run: str | Path | None = None, ranker: str | Path | None = None) -> dict:
        """Load (new) run folders and swap them in; the old engine serves until the swap."""
        with self._reload_lock:
            t0 = time.perf_counter()
            run_path = Path(run) if run is not None else self.run_path
            ranker_path = ranker if ranker is not None else self.ranker_path
            engine = self._build(run_path, ranker_path)
            self.engine, self.run_path, self.ranker_path = engine, run_path, ranker_path  # the swap
            self.generation += 1
            self.last_reload = {"generation": self.generation, "run": str(run_path),
                                "ranker": None if ranker_path is None else str(ranker_path),
                                "seconds": time.perf_counter() - t0, "at": time.time()}
            return dict(self.last_reload)


class _Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("recgraph_http_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("recgraph_http_request_seconds", "server-side request latency by route", ["route"],
                                 buckets=_BUCKETS, registry=self.registry)
        self.stage = Histogram("recgraph_stage_seconds", "time per serving stage (lookup, query, retrieve_<path>, "
                               "merge, rank, total)", ["endpoint", "stage"], buckets=_BUCKETS, registry=self.registry)
        self.candidates = Histogram("recgraph_candidates", "candidates returned per path", ["source"],
                                    buckets=(1, 10, 50, 100, 200, 500, 1000, 5000), registry=self.registry)
        self.reloads = Counter("recgraph_reloads", "completed reloads", ["outcome"], registry=self.registry)
        self.generation = Gauge("recgraph_generation", "reload generation of the engine in service",
                                registry=self.registry)

    def observe(self, endpoint: str, timings: dict, candidates: dict | None = None) -> None:
        for stage, sec in timings.items():
            self.stage.labels(endpoint, stage).observe(sec)
        for src, n in (candidates or {}).items():
            self.candidates.labels(src).observe(n)


class _HTTPMetrics:
    """Pure ASGI middleware: count and time every HTTP request by route template and status."""

    def __init__(self, app, metrics: _Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or ("static" if scope["path"].startswith("/static") else "unmatched")
            self.metrics.requests.labels(path, str(status["code"])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - t0)


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _ms(timings: dict) -> dict:
    return {k: round(v * 1e3, 4) for k, v in timings.items()}


# ----------------------------------------------------------------------------------------------- app
def create_app(service: Service, *, admin_token: str | None = None, bind_host: str | None = "127.0.0.1",
               handle_sighup: bool = True) -> FastAPI:
    """The FastAPI app over ``service``. Admin endpoints need ``admin_token`` (header
    ``X-Admin-Token``) when one is set, and are disabled on a non-loopback ``bind_host`` without one."""
    metrics = _Metrics()
    metrics.generation.set(service.generation)
    body_model = request_models(tuple(getattr(service.engine.ranker, "tasks", ()) or ()))

    def reload_now(run=None, ranker=None) -> dict:
        try:
            out = service.reload(run, ranker)
        except Exception:
            metrics.reloads.labels("failed").inc()
            raise
        metrics.reloads.labels("ok").inc()
        metrics.generation.set(service.generation)
        return out

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loop = asyncio.get_running_loop()
        if handle_sighup and threading.current_thread() is threading.main_thread():
            def on_hup():  # reload off the event loop; failures leave the old engine serving
                fut = loop.run_in_executor(None, reload_now)
                fut.add_done_callback(lambda f: f.exception())

            try:
                loop.add_signal_handler(signal.SIGHUP, on_hup)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        yield

    app = FastAPI(title="recgraph", version="1", lifespan=lifespan,
                  description="Recommendations from recgraph run folders: retrieve (U2I / U2I2I / U2U2I) → "
                              "merge → optional ranker.")
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":  # e.g. not UTF-8
            return JSONResponse({"detail": [{"type": "json_invalid", "loc": ["body"],
                                             "msg": "the request body is not valid JSON text (UTF-8)"}]}, 422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # FastAPI's handler echoes the input; a NaN / inf in it (Python's json reads them) cannot be
        # written as JSON, which would turn a 422 into a 500
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, 422)

    app.state.service = service
    app.state.metrics = metrics
    app.add_middleware(_HTTPMetrics, metrics=metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index_page():
        return FileResponse(STATIC / "index.html")

    @app.get("/health", response_model=HealthResponse)
    async def health():
        return {"status": "ok", "generation": service.generation, "uptime_seconds": time.time() - service.started,
                "service": {"last_reload": service.last_reload, "admin": admin_token is not None or
                            _is_loopback(bind_host)},
                "retrieval": service.engine.describe()}

    async def recommend(req):
        engine, gen = service.engine, service.generation
        user, history = getattr(req, "user", None), getattr(req, "history", None)
        try:
            rec = await _call(engine, engine.recommend, user=user, history=history, k=req.k,
                              exclude_seen=req.exclude_seen, sources=req.sources,
                              task_weights=getattr(req, "task_weights", None))
        except TaskWeightError as exc:  # a reload swapped in a ranker with other tasks than the schema's
            raise HTTPException(409, str(exc)) from None
        except (UnknownUser, UnknownItems) as exc:
            raise HTTPException(404, str(exc)) from None
        except UnservedSource as exc:
            raise HTTPException(409, str(exc)) from None
        metrics.observe("recommend", rec.timings, rec.candidates)
        # returned as a ready response: the body is built to RecommendResponse's schema already, and
        # validating ~100 items again through the response model cost ~1 ms of CPU per request
        return JSONResponse({"items": result_json(engine, rec), "user": user,
                "history_used": int(len(rec.history)) if rec.history is not None else 0,
                "skipped_history": rec.skipped_history, "candidates": rec.candidates, "model": engine.name,
                "index": None if engine.index is None else engine.index.describe(),
                "ranker": None if engine.ranker is None else engine.ranker.name, "ranked": rec.ranked,
                "task_weights": None if rec.task_weights is None else dict(zip(rec.tasks, rec.task_weights.tolist())),
                "generation": gen, "timings_ms": _ms(rec.timings)})

    recommend.__annotations__["req"] = body_model  # the body model is built per service (its ranker's tasks)
    app.post("/recommend", response_model=RecommendResponse,
             responses={**_ERRORS, 409: {"model": Error, "description": "a requested source is not served by the "
                                                                         "loaded run (or, after a reload, task_weights "
                                                                         "the new ranker cannot use)"}})(recommend)

    @app.post("/similar", response_model=SimilarResponse,
              responses={**_ERRORS, 501: {"model": Error, "description": "the model has no item similarity"}})
    async def similar(req: SimilarRequest):
        engine, gen = service.engine, service.generation
        try:
            rec = await _call(engine, engine.similar, req.item, req.k)
        except UnknownItems as exc:
            raise HTTPException(404, str(exc)) from None
        except NotSupported as exc:
            raise HTTPException(501, str(exc)) from None
        metrics.observe("similar", rec.timings, rec.candidates)
        return {"item": req.item, "items": result_json(engine, rec), "model": engine.name, "generation": gen,
                "timings_ms": _ms(rec.timings)}

    @app.get("/users", response_model=UserList)
    def users(limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0, le=2 ** 62)):
        """Known user ids (dense order), for the demo page's picker."""
        run = service.engine.run
        return {"total": run.n_users, "users": run.users.to_raw(range(min(offset, run.n_users),
                                                                      min(offset + limit, run.n_users)))}

    @app.get("/users/{user}/history", response_model=HistoryResponse, responses=_ERRORS)
    def history(user: str, limit: int = Query(50, ge=1, le=1000)):
        """A known user's training items, most recent first."""
        engine = service.engine
        try:
            u = engine.resolve_user(user)
        except UnknownUser as exc:
            raise HTTPException(404, str(exc)) from None
        return {"user": engine.run.users.to_raw([u])[0], "total": int(len(engine.seen_items(u))),
                "items": _item_rows(engine, engine.history_items(u, limit).tolist())}

    @app.get("/items", response_model=ItemList)
    def items(q: str | None = Query(None, max_length=200, description="title substring or id (case-insensitive)"),
              limit: int = Query(20, ge=1, le=1000)):
        """The most popular items (training interactions), or those whose title or id contains ``q``."""
        engine = service.engine
        pop = engine.item_counts
        if q:
            match = engine.search_items(q)
            ids = match[_argsort_desc(pop[match])][:limit]
            total = len(match)
        else:
            ids, total = _argsort_desc(pop)[:limit], engine.run.n_items
        return {"total": int(total), "items": _item_rows(engine, ids.tolist())}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload", responses={403: {"model": Error, "description": "admin disabled or bad token"},
                                          404: {"model": Error, "description": "no folder at the path"},
                                          409: {"model": Error, "description": "the folder cannot be served (the "
                                                                               "old engine keeps serving)"}})
    def admin_reload(req: ReloadRequest | None = None, x_admin_token: str | None = Header(None)) -> dict:
        """Load the run folders again (or the ones named) and swap them in without dropping requests."""
        if admin_token is not None:
            if x_admin_token is None or not hmac.compare_digest(x_admin_token, admin_token):
                raise HTTPException(403, "send the admin token in the X-Admin-Token header")
        elif not _is_loopback(bind_host):
            raise HTTPException(403, "admin endpoints are disabled on a non-loopback bind without --admin-token")
        req = req or ReloadRequest()
        for p in (req.run, req.ranker):
            if p is not None and not _is_dir(p):
                raise HTTPException(404, f"no run folder at {p!r}; still serving generation {service.generation}")
        try:
            return reload_now(req.run, req.ranker)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:  # a folder that cannot be served
            raise HTTPException(409, f"reload failed, still serving generation {service.generation}: {exc}") from None

    return app


async def _call(engine: Engine, fn, *args, **kwargs):
    """Run a request on the event loop when the engine answers in about a millisecond (a hop to the
    thread pool costs more than that on a busy machine: two thread wake-ups), else in the pool so the
    loop keeps accepting connections (e.g. exact search over a million items)."""
    if engine.inline:
        return fn(*args, **kwargs)
    return await run_in_threadpool(fn, *args, **kwargs)


def _finite(x):
    """``x`` with every non-finite float written as a string (JSON has no NaN / inf)."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _is_dir(p: str) -> bool:
    try:
        return Path(p).is_dir()
    except (OSError, ValueError):  # too long, a NUL byte, ...
        return False


def _argsort_desc(x):
    import numpy as np

    return np.argsort(-np.asarray(x), kind="stable")


def _item_rows(engine: Engine, ids) -> list[dict]:
    raw = engine.run.items.to_raw(ids)
    titles = engine.run.titles
    counts = engine.item_counts
    return [{"item": r, "title": None if titles is None else str(titles[i]), "count": int(counts[i])}
            for r, i in zip(raw, ids)]
