"""Command line: ``recgraph quickstart | datasets | train | eval | models``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from .config import parse_model_args

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="recgraph: graph learning for recommendation — from interaction logs to served recommendations.")
console = Console()

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


def _fail(msg: str) -> None:
    console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(2)


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


@app.command()
def quickstart(dataset: str = typer.Option("movielens-100k", help="dataset name (see `recgraph datasets`)"),
               models: str = typer.Option("pop,itemknn,bpr,lightgcn", help="comma-separated model names"),
               out: Path = typer.Option(Path("runs/quickstart"), help="run folder"),
               seed: int = 0, device: str = typer.Option("auto", help="cpu | cuda | auto"),
               data_dir: Optional[Path] = DataDirOpt, no_verify_data: bool = NoVerifyOpt):
    """Load MovieLens-100K, split it, train Pop / ItemKNN / MF-BPR / LightGCN, evaluate, report."""
    _no_verify(no_verify_data)
    from .data.datasets import load_dataset
    from .graph.bipartite import BipartiteGraph
    from .report.html import degree_distribution_png, training_curves_png, write_report
    from .train.checkpoint import atomic_write_json
    from .train.experiment import ExperimentConfig, make_split, run_experiment

    t0 = time.perf_counter()
    try:
        with console.status(f"loading {dataset}"):
            ds = load_dataset(dataset, data_dir)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:
        _fail(str(exc))
    split = make_split(ds, "auto", seed)
    console.print(f"[bold]{dataset}[/]: {len(ds.interactions):,} interactions, {split.n_users:,} users, "
                  f"{split.n_items:,} items · split {split.protocol.get('split')}: train {len(split.train):,} / "
                  f"valid {0 if split.valid is None else len(split.valid):,} / test {len(split.test):,}")
    if ds.skipped.total:
        console.print(f"[yellow]{ds.skipped}[/]")
    records = []
    for name in [m.strip() for m in models.split(",") if m.strip()]:
        console.rule(f"[bold]{name}")
        cfg = ExperimentConfig(model=name, dataset=dataset, seed=seed, device=device,
                               data_dir=None if data_dir is None else str(data_dir), out=str(out / name))
        rec = run_experiment(cfg, dataset=ds, split=split)
        m = rec["metrics"]
        console.print(f"{name}: recall@20 {m['recall@20']:.4f}  ndcg@20 {m['ndcg@20']:.4f}  "
                      f"({rec['seconds']['total']:.1f} s)")
        records.append(rec)
    keys = ["recall@10", "ndcg@10", "recall@20", "ndcg@20", "hit@20", "mrr@20"]
    console.print(metrics_table(records, keys, f"{dataset} · test · full ranking, train+valid items excluded"))
    graph = BipartiteGraph.from_interactions(split.train)
    report = write_report(out / "report.html", title=f"recgraph quickstart · {dataset}", records=records,
                          metric_keys=keys, images=[("training curves", training_curves_png(records)),
                                                    ("degree distribution of the training graph",
                                                     degree_distribution_png(graph.user_degree, graph.item_degree))])
    atomic_write_json(out / "metrics.json", {"dataset": dataset, "runs": records,
                                              "total_seconds": time.perf_counter() - t0})
    atomic_write_json(out / "config.json", {"dataset": dataset, "models": models, "seed": seed, "device": device,
                                             "split": split.protocol})
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
        console.print(line)


@app.command()
def train(model: str = typer.Argument(..., help="model name (see `recgraph models`)"),
          dataset: str = typer.Option(..., "--dataset", help="dataset name (see `recgraph datasets`)"),
          epochs: Optional[int] = typer.Option(None, help="max epochs (default: the model's)"),
          seed: int = 0, device: str = typer.Option("auto", help="cpu | cuda | auto"),
          out: Optional[Path] = typer.Option(None, help="run folder (default runs/MODEL-DATASET-SEED)"),
          split: str = typer.Option("auto", help="retrieval models: auto | predefined | random-ratio | leave-last-out | "
                                                 "time-quantile"),
          protocol: str = typer.Option("macgnn-quantile", help="ranking (CTR) models: macgnn-quantile | leave-last-out"),
          lr: Optional[float] = None, patience: Optional[int] = None,
          weight_decay: Optional[float] = typer.Option(None, help="the optimizer's weight decay on every parameter "
                                                                  "(default: the model's, else 0)"),
          eval_every: Optional[int] = None,
          lr_schedule: Optional[str] = typer.Option(None, help="retrieval models: constant | cosine (decays to 0 "
                                                              "over the epoch budget)"),
          resume: bool = typer.Option(False, help="retrieval models: continue a killed run from OUT/checkpoint"),
          checkpoint_every: int = typer.Option(1, min=1, help="retrieval models: epochs between OUT/checkpoint/last "
                                                             "writes (a resume repeats at most N-1 epochs)"),
          select_on_test: bool = typer.Option(False, help="official LightGCN protocol: select the epoch on the test "
                                                          "file when the split has no validation part"),
          set_: List[str] = typer.Option([], "--set", help="model argument KEY=VALUE (repeatable)"),
          data_dir: Optional[Path] = DataDirOpt, no_verify_data: bool = NoVerifyOpt):
    """Train and evaluate one model; writes OUT/metrics.json and the model artifact."""
    _no_verify(no_verify_data)
    from .models.registry import get_model_class
    from .train.experiment import ExperimentConfig, run_experiment

    out = out or Path("runs") / f"{model}-{dataset}-{seed}"
    try:
        task = getattr(get_model_class(model), "task", "retrieval")
    except KeyError as exc:
        _fail(str(exc.args[0]))
    if task == "ctr":
        from .train.ctr_experiment import run_ctr_experiment

        if lr_schedule is not None or resume or checkpoint_every != 1:
            _fail("--lr-schedule, --resume and --checkpoint-every apply to retrieval models; ranking (CTR) runs "
                  "train a fixed recipe")

        try:
            rec = run_ctr_experiment(model, dataset, protocol=protocol, seed=seed, epochs=epochs, device=device,
                                     out=str(out), lr=lr, weight_decay=weight_decay,
                                     patience=patience if patience is not None else 5,
                                     model_args=_parse_model_args(set_), select_on_test=select_on_test,
                                     data_dir=None if data_dir is None else str(data_dir), progress=True)
        except (FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:
            _fail(str(exc))
        console.print(metrics_table([rec], ["auc", "gauc", "logloss"], f"{model} on {dataset} ({protocol})"))
        console.print(f"metrics: {out / 'metrics.json'}")
        return
    cfg = ExperimentConfig(model=model, dataset=dataset, split=split, seed=seed, epochs=epochs, lr=lr,
                           weight_decay=weight_decay, lr_schedule=lr_schedule, resume=resume,
                           checkpoint_every=checkpoint_every, patience=patience,
                           eval_every=eval_every, device=device, out=str(out),
                           data_dir=None if data_dir is None else str(data_dir),
                           model_args=_parse_model_args(set_), select_on_test=select_on_test)
    try:
        rec = run_experiment(cfg)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:
        _fail(str(exc))
    keys = ["recall@10", "ndcg@10", "recall@20", "ndcg@20"]
    console.print(metrics_table([rec], keys, f"{model} on {dataset}"))
    console.print(f"metrics: {out / 'metrics.json'}")


@app.command("eval")
def eval_(run: Path = typer.Argument(..., help="run folder written by `recgraph train --out`"),
          data_dir: Optional[Path] = DataDirOpt):
    """Re-evaluate a saved model on its test split (same protocol as training)."""
    from .data.datasets import load_dataset
    from .serve.artifacts import load_model
    from .train.experiment import evaluate_model, make_split

    cfg_path = run / "config.json"
    if not cfg_path.exists():
        _fail(f"{cfg_path} not found: pass a folder written by `recgraph train --out`")
    cfg = json.loads(cfg_path.read_text())
    ds = load_dataset(cfg["dataset"], data_dir or cfg.get("data_dir"))
    split = make_split(ds, cfg["split"], cfg["seed"])
    model, meta = load_model(run / "model", train=split.train)
    metrics = evaluate_model(model, split, "test", ks=tuple(cfg["ks"]))
    table = Table(title=f"{meta['model']} on {cfg['dataset']} (re-evaluated)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)


@app.command()
def models():
    """List the registered models."""
    from .models.registry import available_models, get_model_class

    table = Table(title="models")
    table.add_column("name")
    table.add_column("class")
    table.add_column("summary")
    for name in available_models():
        cls = get_model_class(name)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        table.add_row(name, cls.__name__, doc[0] if doc else "")
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
