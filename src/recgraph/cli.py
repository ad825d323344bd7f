"""Command line: ``recgraph quickstart | datasets | train | eval | recommend | serve | models``."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich import box
from rich.table import Table

from .cli_output import console, fail as _fail
from .config import parse_model_args

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="recgraph: graph learning for recommendation — from interaction logs to served recommendations.")

DataDirOpt = typer.Option(None, "--data-dir", help="dataset root (default: $RECGRAPH_DATA, then ../shared/datasets next "
                                                    "to a checkout, then a user cache dir)")


NoVerifyOpt = typer.Option(False, "--no-verify-data", help="skip the sha256 check of the dataset's files against "
                           "the published sums (for files you changed on purpose)")


def _no_verify(flag: bool) -> None:
    """``--no-verify-data``: every dataset load in this process skips the checksum check."""
    if flag:
        import os

        from .data.datasets.verify import VERIFY_ENV

        os.environ[VERIFY_ENV] = "0"


def _parse_model_args(pairs: List[str]) -> dict:
    try:
        return parse_model_args(pairs)
    except ValueError as e:
        _fail(str(e))


SHORT = {"recall": "R", "ndcg": "N", "hit": "HR", "mrr": "MRR", "precision": "P"}


def _short(key: str) -> str:
    name, _, k = key.partition("@")
    return f"{SHORT.get(name, name)}@{k}" if k else name


def metrics_table(records: list[dict], keys: list[str], title: str) -> Table:
    """Compact metrics table (fits 80 columns): best value per column in green."""
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0), collapse_padding=True)
    table.add_column("model", style="bold", no_wrap=True)
    for k in keys:
        table.add_column(_short(k), justify="right", no_wrap=True)
    for col in ("epochs", "s/ep", "fit s"):
        table.add_column(col, justify="right", no_wrap=True)
    lower_is_better = {"logloss"}
    best = {k: (min if k in lower_is_better else max)(r["metrics"].get(k, float("nan")) for r in records) for k in keys}
    for r in records:
        tr = r.get("train", {})
        cells = []
        for k in keys:
            v = r["metrics"].get(k)
            s = "–" if v is None else f"{v:.4f}"
            cells.append(f"[green]{s}[/]" if v == best[k] else s)
        spe = tr.get("seconds_per_epoch")
        table.add_row(r["model"], *cells, str(tr.get("epochs_run", "–")), "–" if spe is None else f"{spe:.2f}",
                      f"{r['seconds']['fit']:.1f}")
    return table


USER_ERRORS = (FileNotFoundError, KeyError, ValueError, RuntimeError, TypeError, OSError)


def _data_source(data: Optional[Path], user: Optional[str], item: Optional[str], time_col: Optional[str],
                 rating: Optional[str], positive_threshold: Optional[float], sep: Optional[str],
                 encoding: str = "utf-8", time_unit: str = "s"):
    """The ``--data`` options as a :class:`~recgraph.train.runner.DataSource` (None without ``--data``)."""
    from .train.runner import DataSource

    if data is None:
        given = [n for n, v in (("--user", user), ("--item", item), ("--time", time_col), ("--rating", rating),
                                ("--positive-threshold", positive_threshold)) if v is not None]
        if given:
            _fail(f"{', '.join(given)} describe the columns of your own file: add --data PATH")
        return None
    if not data.exists():
        _fail(f"--data {data}: no such file")
    if data.is_dir():
        _fail(f"--data {data} is a directory; pass the interaction file itself (CSV / TSV / Parquet / JSON lines)")
    if not user or not item:
        _fail("--data needs --user COL and --item COL (the columns holding user and item ids)")
    try:
        return DataSource(str(data), user, item, time_col, rating, positive_threshold, sep, encoding, time_unit)
    except ValueError as exc:
        _fail(str(exc))


DataOpt = typer.Option(None, "--data", help="your own interaction log: CSV / TSV / Parquet / JSON lines, gzip or not")
UserOpt = typer.Option(None, "--user", help="--data: the user id column")
ItemOpt = typer.Option(None, "--item", help="--data: the item id column")
TimeOpt = typer.Option(None, "--time", help="--data: the timestamp column (epoch seconds or ISO-8601)")
RatingOpt = typer.Option(None, "--rating", help="--data: a rating / label column")
ThresholdOpt = typer.Option(None, "--positive-threshold", help="--data: rows with rating >= this are positives")
SepOpt = typer.Option(None, "--sep", help="--data: field separator of a text file (default: sniffed)")
EncodingOpt = typer.Option("utf-8", "--encoding", help="--data: text encoding of the file (e.g. latin-1, cp1252, "
                                                       "utf-16)")
TimeUnitOpt = typer.Option("s", "--time-unit", help="--data: unit of numeric --time values: s | ms | us | ns")


@app.command()
def quickstart(dataset: str = typer.Option("movielens-100k", help="dataset name (see `recgraph datasets`)"),
               models: str = typer.Option("pop,itemknn,bpr,lightgcn", help="comma-separated model names"),
               out: Path = typer.Option(Path("runs/quickstart"), help="run folder"),
               seed: int = 0, device: str = typer.Option("auto", help="cpu | cuda | auto"),
               data: Optional[Path] = DataOpt, user: Optional[str] = UserOpt, item: Optional[str] = ItemOpt,
               time_col: Optional[str] = TimeOpt, rating: Optional[str] = RatingOpt,
               positive_threshold: Optional[float] = ThresholdOpt, sep: Optional[str] = SepOpt,
               encoding: str = EncodingOpt, time_unit: str = TimeUnitOpt,
               split: str = typer.Option("auto", help="auto | predefined | random-ratio | leave-last-out | "
                                                      "time-quantile"),
               data_dir: Optional[Path] = DataDirOpt, no_verify_data: bool = NoVerifyOpt):
    """Load MovieLens-100K (or your --data), split it, train Pop / ItemKNN / MF-BPR / LightGCN, evaluate, report."""
    _no_verify(no_verify_data)
    from .graph.bipartite import BipartiteGraph
    from .io import atomic_write_json
    from .report.html import degree_distribution_png, training_curves_png, write_report
    from .train.runner import ExperimentConfig, load_data, make_split, run

    source = _data_source(data, user, item, time_col, rating, positive_threshold, sep, encoding, time_unit)
    name = dataset if source is None else data.name
    t0 = time.perf_counter()
    try:
        base = ExperimentConfig(model="pop", dataset=None if source else dataset, data=source, split=split, seed=seed,
                                device=device, data_dir=None if data_dir is None else str(data_dir))
        with console.status(f"loading {name}"):
            loaded = load_data(base)
        sp = make_split(loaded, split, seed, positive_threshold=positive_threshold)
    except USER_ERRORS as exc:
        _fail(str(exc))
    inter = loaded.interactions
    console.print(f"[bold]{name}[/]: {len(inter):,} interactions, {sp.n_users:,} users, "
                  f"{sp.n_items:,} items · split {sp.protocol.get('split')}: train {len(sp.train):,} / "
                  f"valid {0 if sp.valid is None else len(sp.valid):,} / test {len(sp.test):,}")
    if loaded.info.get("skipped", {}).get("total"):
        console.print(f"[yellow]skipped rows: {loaded.info['skipped']}[/]")
    records = []
    for m in [m.strip() for m in models.split(",") if m.strip()]:
        console.rule(f"[bold]{m}")
        try:
            rec = run(dataclasses.replace(base, model=m, out=str(out / m)), loaded=loaded, split=sp)
        except USER_ERRORS as exc:
            _fail(str(exc))
        mt = rec["metrics"]
        console.print(f"{m}: recall@20 {mt['recall@20']:.4f}  ndcg@20 {mt['ndcg@20']:.4f}  "
                      f"({rec['seconds']['total']:.1f} s)")
        records.append(rec)
    keys = ["recall@10", "ndcg@10", "recall@20", "ndcg@20", "hit@20", "mrr@20"]
    console.print(metrics_table(records, keys, f"{name} · test · full ranking, train+valid items excluded"))
    graph = BipartiteGraph.from_interactions(sp.train)
    report = write_report(out / "report.html", title=f"recgraph quickstart · {name}", records=records,
                          metric_keys=keys, images=[("training curves", training_curves_png(records)),
                                                    ("degree distribution of the training graph",
                                                     degree_distribution_png(graph.user_degree, graph.item_degree))])
    atomic_write_json(out / "metrics.json", {"dataset": name, "runs": records,
                                              "total_seconds": time.perf_counter() - t0})
    atomic_write_json(out / "config.json", {"dataset": name, "data": loaded.info, "models": models, "seed": seed,
                                             "device": device, "split": sp.protocol})
    console.print(f"done in {time.perf_counter() - t0:.0f} s · metrics: {out / 'metrics.json'} · report: {report}")


@app.command()
def datasets(data_dir: Optional[Path] = DataDirOpt, no_verify_data: bool = NoVerifyOpt):
    """List every dataset recgraph knows, whether it is available locally, and its statistics."""
    _no_verify(no_verify_data)
    from .config import resolve_data_dir
    from .data.datasets import list_datasets

    root = resolve_data_dir(data_dir)
    table = Table(title=f"datasets (data dir: {root})", header_style="bold")
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("here", no_wrap=True)
    for col in ("events", "users", "items"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("time range")
    table.add_column("behaviours")
    table.add_column("notes")
    fmt = lambda v: "–" if v is None else f"{v:,}" if isinstance(v, int) else str(v)  # noqa: E731
    day = lambda t: time.strftime("%Y-%m-%d", time.gmtime(t))  # noqa: E731
    errors = []
    for row in list_datasets(data_dir):
        st = row.get("stats") or {}
        tr = "–"
        if st.get("time_min") is not None:  # order-only datasets store positions, not epoch seconds
            tr = (f"{day(st['time_min'])} → {day(st['time_max'])}" if st["time_max"] > 10**8
                  else f"order only ({st['time_min']}–{st['time_max']})")
        beh = ", ".join(st["behaviors"]) if st.get("behaviors") else "–"
        notes = []
        if row.get("partial"):
            notes.append("[yellow]partial[/]")
        if row.get("stats_source") == "README":
            notes.append("stats from README")
        if not row["available"]:
            notes.append("downloadable" if row.get("downloadable") else "place files manually")
        if row.get("error"):
            notes.append("[red]error (below)[/]")
        table.add_row(row["name"], "[green]yes[/]" if row["available"] else "[red]no[/]", fmt(st.get("events")),
                      fmt(st.get("users")), fmt(st.get("items")), tr, beh, ", ".join(notes))
        if row.get("error"):
            errors.append(f"[bold red]error:[/] {row['name']}: {row['error']}")
    console.print(table)
    for line in errors:
        console.print(line, soft_wrap=True)


@app.command()
def train(model: str = typer.Argument(..., help="model name (see `recgraph models`)"),
          dataset: Optional[str] = typer.Option(None, "--dataset", help="dataset name (see `recgraph datasets`)"),
          data: Optional[Path] = DataOpt, user: Optional[str] = UserOpt, item: Optional[str] = ItemOpt,
          time_col: Optional[str] = TimeOpt, rating: Optional[str] = RatingOpt,
          positive_threshold: Optional[float] = ThresholdOpt, sep: Optional[str] = SepOpt,
          encoding: str = EncodingOpt, time_unit: str = TimeUnitOpt,
          epochs: Optional[int] = typer.Option(None, help="max epochs (default: the model's)"),
          seed: int = 0, device: str = typer.Option("auto", help="cpu | cuda | auto"),
          out: Optional[Path] = typer.Option(None, help="run folder (default runs/MODEL-DATASET-SEED)"),
          split: str = typer.Option("auto", help="retrieval models: auto | predefined | random-ratio | leave-last-out | "
                                                 "time-quantile"),
          protocol: str = typer.Option("macgnn-quantile", help="ranking (CTR) models: macgnn-quantile | leave-last-out | "
                                       "rows:PATH (an external row listing, recgraph.data.rows_protocol)"),
          lr: Optional[float] = None, patience: Optional[int] = None,
          weight_decay: Optional[float] = typer.Option(None, help="the optimizer's weight decay on every parameter "
                                                                  "(default: the model's, else 0)"),
          batch_size: Optional[int] = typer.Option(None, help="ranking models: training batch size (retrieval models: "
                                                              "--set batch_size=N)"),
          eval_every: Optional[int] = None,
          lr_schedule: Optional[str] = typer.Option(None, help="retrieval models: constant | cosine (decays to 0 "
                                                              "over the epoch budget)"),
          resume: bool = typer.Option(False, help="continue a killed run from OUT/checkpoint (same settings)"),
          checkpoint_every: int = typer.Option(1, help="epochs between OUT/checkpoint/last writes (a resume "
                                                       "repeats at most N-1 epochs)"),
          select_on_test: bool = typer.Option(False, help="official LightGCN / MacGNN protocols: select the epoch "
                                                          "on the test part (stamped into metrics.json)"),
          set_: List[str] = typer.Option([], "--set", help="model argument KEY=VALUE (repeatable)"),
          tasks: Optional[str] = typer.Option(None, help="multi-task ranking: comma-separated behaviours, e.g. "
                                                         "cart,fav,buy (macgnn then trains one MacGNN per task)"),
          rounds: Optional[int] = typer.Option(None, help="dccl: MoMoDistill rounds after MetaPatch (default 2)"),
          data_dir: Optional[Path] = DataDirOpt, no_verify_data: bool = NoVerifyOpt):
    """Train and evaluate one model (retrieval or ranking) on a dataset or your own --data; writes OUT."""
    _no_verify(no_verify_data)
    from .train.runner import ExperimentConfig, model_task, run

    source = _data_source(data, user, item, time_col, rating, positive_threshold, sep, encoding, time_unit)
    if source is None and dataset is None:
        _fail("name the data: --dataset NAME (see `recgraph datasets`) or --data PATH --user COL --item COL")
    if source is not None and dataset is not None:
        _fail("--dataset and --data both given: pick one")
    name = dataset if source is None else data.stem
    out = out or Path("runs") / f"{model}-{name}-{seed}"
    try:
        task = model_task(model)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    if task == "ondevice":
        if source is not None:
            _fail("dccl needs a bundled dataset with timestamps (--dataset NAME); --data is not supported yet")
        from .report.html import write_dccl_report
        from .train.dccl import run_dccl_cli

        try:
            rec = run_dccl_cli(dataset=dataset, seed=seed, rounds=rounds, epochs=epochs, lr=lr, out=out,
                               data_dir=None if data_dir is None else str(data_dir), overrides=_parse_model_args(set_),
                               console=console)
        except USER_ERRORS as exc:
            _fail(str(exc))
        console.print(f"run folder: {out} · report: {write_dccl_report(out / 'report.html', rec)}")
        return
    if rounds is not None:
        _fail("--rounds applies to dccl (device-cloud collaborative learning) only")
    try:
        cfg = ExperimentConfig(model=model, dataset=dataset, data=source, split=split, protocol=protocol, seed=seed,
                               epochs=epochs, lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule,
                               resume=resume, checkpoint_every=checkpoint_every, patience=patience,
                               batch_size=batch_size, eval_every=eval_every, device=device, out=str(out),
                               data_dir=None if data_dir is None else str(data_dir),
                               model_args=_parse_model_args(set_), select_on_test=select_on_test,
                               tasks=None if tasks is None else tuple(tasks.split(",")))
        from .distributed.ddp import DistributedContext  # under torchrun: DDP, rank 0 writes (README)

        ddp = DistributedContext.from_env(device)
        rec = run(cfg, distributed=ddp)
        ddp.close()
    except USER_ERRORS as exc:
        _fail(str(exc))
    if not ddp.is_main:
        return
    if rec["task"] == "multitask":
        console.print(metrics_table(_multitask_rows(rec), ["auc", "gauc", "logloss"],
                                    f"{model} on {name} (tasks {', '.join(rec['tasks'])})"))
    else:
        keys = ["recall@10", "ndcg@10", "recall@20", "ndcg@20"] if rec["task"] == "retrieval" else ["auc", "gauc",
                                                                                                     "logloss"]
        console.print(metrics_table([rec], keys, f"{model} on {name}"))
    console.print(f"run folder: {out} (metrics.json, model/, config.json)")


def _multitask_rows(rec: dict) -> list[dict]:
    """Per-task rows (and the mean) of a multi-task record, for :func:`metrics_table`."""
    rows = [{"model": f"{rec['model']} · {t}", "metrics": m, "seconds": rec["seconds"], "train": rec["train"]}
            for t, m in rec["metrics"]["per_task"].items()]
    rows.append({"model": f"{rec['model']} · mean", "seconds": rec["seconds"], "train": rec["train"],
                 "metrics": {k: rec["metrics"][f"{k}_mean"] for k in ("auc", "gauc", "logloss")}})
    return rows


@app.command("eval")
def eval_(run_dir: Path = typer.Argument(..., metavar="RUN", help="run folder written by `recgraph train --out`"),
          data_dir: Optional[Path] = DataDirOpt):
    """Re-evaluate a saved model (retrieval, ranking, multi-task or DCCL) on its test part with the recorded
    protocol."""
    from .train.runner import evaluate_run

    try:
        now, before = evaluate_run(run_dir, data_dir=None if data_dir is None else str(data_dir))
    except USER_ERRORS as exc:
        _fail(str(exc))
    table = Table(title=f"{run_dir} (re-evaluated)", header_style="bold")
    table.add_column("metric")
    table.add_column("now", justify="right")
    table.add_column("recorded", justify="right")
    fmt = lambda v: "–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    flat = lambda m: {**{f"{k}[{t}]": v for t, d in m.get("per_task", {}).items() for k, v in d.items()},  # noqa: E731
                      **{k: v for k, v in m.items() if k != "per_task"}}
    now, before = flat(now), flat(before)
    for k, v in now.items():
        table.add_row(k, fmt(v), fmt(before.get(k)))
    console.print(table)


IndexOpt = typer.Option("auto", "--index", help="item index for U2I: auto (the run's saved index, else RankGraph-2's "
                                                 "co-learned RQ, else exact) | colearned | Flat | IVF<n>,nprobe<p> | "
                                                 "RQ<L>x<K>,nprobe<p> | the folder of a saved index")


@app.command()
def recommend(run: Path = typer.Argument(..., help="run folder written by `recgraph train --out`"),
              user: Optional[str] = typer.Option(None, "--user", help="a raw user id the run was trained on"),
              history: Optional[str] = typer.Option(None, "--history", help="comma-separated raw item ids (a user "
                                                                           "the model never saw)"),
              k: int = typer.Option(10, "-k", "--k", min=1, max=1000, help="how many items"),
              include_seen: bool = typer.Option(False, help="keep the user's training (or history) items"),
              index: str = IndexOpt, ranker: Optional[Path] = typer.Option(None, help="ranking run folder (CTR or "
                                                                                    "multi-task) that re-scores the "
                                                                                    "candidates"),
              task_weights: Optional[str] = typer.Option(None, help="multi-task ranker: TASK=WEIGHT,... (e.g. "
                                                                    "cart=0.2,buy=1); default equal weights"),
              as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")):
    """Print a user's top-k: raw ids, scores, the candidate path each came from, titles."""
    from rich.markup import escape

    from .io import ArtifactError
    from .serve.app import Service
    from .serve.recommend import NotSupported, UnknownItems, UnknownUser, result_json

    if (user is None) == (history is None):
        _fail("pass exactly one of --user ID or --history ID,ID,...")
    weights = None
    if task_weights is not None:
        weights = {}
        for part in (x.strip() for x in task_weights.split(",") if x.strip()):
            name, eq, value = part.partition("=")
            try:
                weights[name.strip()] = float(value)
            except ValueError:
                _fail(escape(f"--task-weights {task_weights!r}: write TASK=WEIGHT,..., e.g. cart=0.2,buy=1"))
            if not eq:
                _fail(escape(f"--task-weights {task_weights!r}: write TASK=WEIGHT,..., e.g. cart=0.2,buy=1"))
    try:
        engine = Service(run, ranker=ranker, index=index).engine
        rec = engine.recommend(user=user, k=k, exclude_seen=not include_seen, task_weights=weights,
                               history=None if history is None else [h.strip() for h in history.split(",") if h.strip()])
    except UnknownUser as exc:
        _fail(escape(f"{exc}; here: --history ID,ID,..."))
    except (UnknownItems, NotSupported, ArtifactError, FileNotFoundError, ValueError) as exc:
        _fail(escape(str(exc)))
    rows = result_json(engine, rec)
    if as_json:
        print(json.dumps({"items": rows, "skipped_history": rec.skipped_history, "ranked": rec.ranked,
                          "task_weights": None if rec.task_weights is None else
                          dict(zip(rec.tasks, rec.task_weights.tolist())),
                          "timings_ms": {s: v * 1e3 for s, v in rec.timings.items()}}, indent=2))
        return
    who = f"user {user}" if user is not None else f"a visitor with {len(rec.history)} history item(s)"
    table = Table(title=f"{engine.name} · top-{k} for {who}", header_style="bold", box=box.SIMPLE_HEAD)
    tasks = list(rec.tasks) if rec.task_scores is not None else []
    for col, just in (("#", "right"), ("item", "right"), ("score", "right"), *((f"p({t})", "right") for t in tasks),
                      ("source", "left"), ("title", "left")):
        table.add_column(col, justify=just, no_wrap=col != "title")
    for j, r in enumerate(rows, 1):
        ts = r.get("task_scores") or {}
        table.add_row(str(j), str(r["item"]), "–" if r["score"] is None else f"{r['score']:.4f}",
                      *("–" if ts.get(t) is None else f"{ts[t]:.4f}" for t in tasks), ",".join(r["sources"]),
                      r.get("title") or "")
    console.print(table)
    if rec.skipped_history:
        console.print(f"[yellow]skipped {len(rec.skipped_history)} unknown history item(s): "
                      f"{', '.join(map(str, rec.skipped_history[:10]))}[/]")
    console.print(f"[dim]{engine.describe()['index'] or 'direct scoring'} · "
                  f"{rec.timings['total'] * 1e3:.2f} ms[/]")


KEEP_ALIVE_S = 75.0  # > the idle expiry of common clients (httpx 5 s): the client closes an idle connection first


@app.command()
def serve(run: Path = typer.Argument(..., help="run folder written by `recgraph train --out`"),
          ranker: Optional[Path] = typer.Option(None, help="ranking run folder whose model re-scores the candidates: "
                                                           "a CTR run, or a multi-task run (requests then send "
                                                           "task_weights)"),
          host: str = typer.Option("127.0.0.1", help="bind address (loopback unless told otherwise)"),
          port: int = typer.Option(8000, min=0, max=65535),
          index: str = IndexOpt,
          nprobe: Optional[int] = typer.Option(None, min=1, help="clusters an IVF / RQ index probes (overrides its own)"),
          save_index: bool = typer.Option(False, help="write the built item index into RUN/index/items"),
          admin_token: Optional[str] = typer.Option(None, envvar="RECGRAPH_ADMIN_TOKEN",
                                                    help="token for POST /admin/reload (X-Admin-Token header); "
                                                         "required for admin on a non-loopback bind"),
          timeout_keep_alive: float = typer.Option(KEEP_ALIVE_S, min=0.1, help="seconds an idle keep-alive "
                                                   "connection stays open"),
          backlog: int = typer.Option(2048, min=1, help="listen backlog (connections waiting to be accepted)"),
          log_level: str = typer.Option("warning", help="uvicorn log level")):
    """Serve recommendations over HTTP (FastAPI + uvicorn): /recommend, /similar, /health, /metrics,
    the demo page at /; SIGHUP or POST /admin/reload loads the run folders again without dropping requests."""
    import uvicorn
    from rich.markup import escape

    from .io import ArtifactError
    from .serve.app import Service, create_app
    from .serve.recommend import NotSupported

    try:
        service = Service(run, ranker=ranker, index=index, nprobe=nprobe)
    except (ArtifactError, FileNotFoundError, NotSupported, ValueError) as exc:
        _fail(escape(str(exc)))
    if save_index and service.engine.index is not None:
        console.print(f"index saved to {service.engine.save_index()}")
    d = service.engine.describe()
    console.print(f"serving {d['model']} ({d['n_users']:,} users, {d['n_items']:,} items, paths {', '.join(d['sources'])}, "
                  f"index {d['index'] or 'none'}) on http://{host}:{port}/")
    uvicorn.run(create_app(service, admin_token=admin_token, bind_host=host), host=host, port=port,
                log_level=log_level, access_log=False, timeout_keep_alive=timeout_keep_alive, backlog=backlog)


@app.command()
def models():
    """List the registered models."""
    from .models.registry import available_models, get_model_class

    table = Table(title="models")
    table.add_column("name")
    table.add_column("task")
    table.add_column("class")
    table.add_column("summary")
    for name in available_models():
        cls = get_model_class(name)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        table.add_row(name, getattr(cls, "task", "retrieval"), cls.__name__, doc[0] if doc else "")
    console.print(table)


from .cli_graph import graph_app  # noqa: E402  (recgraph graph build | info)

app.add_typer(graph_app, name="graph")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
