"""Static run report: one self-contained ``report.html`` (plots embedded as PNG) next to ``metrics.json``."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from ..io import atomic_write_bytes


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def training_curves_png(records: list[dict], monitor: str = "ndcg@20") -> str | None:
    """Loss and validation ``monitor`` per epoch for every trained model in ``records``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [r for r in records if r.get("train", {}).get("history")]
    if not trained:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in trained:
        hist = r["train"]["history"]
        ax1.plot([h["epoch"] for h in hist], [h["loss"] for h in hist], label=r["model"])
        pts = [(h["epoch"], h[f"valid_{monitor}"]) for h in hist if f"valid_{monitor}" in h]
        if pts:
            ax2.plot(*zip(*pts), marker=".", label=r["model"])
    ax1.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    ax2.set(xlabel="epoch", ylabel=monitor, title=f"Validation {monitor}")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    return _png(fig)


def degree_distribution_png(user_degree: np.ndarray, item_degree: np.ndarray) -> str:
    """Log–log complementary CDF of degrees (share of nodes with degree ≥ d) for users and items:
    smoother than a histogram at high degrees, and a power law shows as a straight line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for deg, name in ((user_degree, "users"), (item_degree, "items")):
        deg = deg[deg > 0]
        values, counts = np.unique(deg, return_counts=True)
        ccdf = counts[::-1].cumsum()[::-1] / max(1, len(deg))
        ax.loglog(values, ccdf, drawstyle="steps-post",
                  label=f"{name} (n={len(deg)}, median={int(np.median(deg)) if len(deg) else 0}, max={deg.max() if len(deg) else 0})")
    ax.set(xlabel="degree d (training interactions)", ylabel="share of nodes with degree ≥ d",
           title="Degree distribution (CCDF)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _png(fig)


def metrics_table_html(records: list[dict], keys: list[str]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["model", *keys, "epochs", "s/epoch", "fit s"])
    rows = []
    best = {k: max((r["metrics"].get(k, float("-inf")) for r in records), default=None) for k in keys}
    for r in records:
        cells = [f"<td>{html.escape(r['model'])}</td>"]
        for k in keys:
            v = r["metrics"].get(k)
            txt = "–" if v is None else f"{v:.4f}"
            cells.append(f"<td class='{'best' if v is not None and v == best[k] else ''}'>{txt}</td>")
        tr = r.get("train", {})
        cells.append(f"<td>{tr.get('epochs_run', '–')}</td>")
        spe = tr.get("seconds_per_epoch")
        cells.append(f"<td>{'–' if spe is None else f'{spe:.2f}'}</td>")
        cells.append(f"<td>{r['seconds']['fit']:.1f}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def write_report(path: str | Path, *, title: str, records: list[dict], metric_keys: list[str],
                 sections: list[tuple[str, str]] = (), images: list[tuple[str, str | None]] = ()) -> Path:
    """Write a self-contained HTML report. ``sections``: (heading, html) blocks; ``images``:
    (caption, base64 PNG) pairs."""
    protocol = records[0]["protocol"] if records else {}
    proto_html = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in protocol.items())
    imgs = "".join(f"<figure><img src='data:image/png;base64,{b64}' alt='{html.escape(c)}'/>"
                   f"<figcaption>{html.escape(c)}</figcaption></figure>" for c, b64 in images if b64)
    extra = "".join(f"<h2>{html.escape(h)}</h2>{body}" for h, body in sections)
    meta = records[0] if records else {}
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child {{ text-align: left; font-weight: 600; }}
td.best {{ background: #e6f4e6; font-weight: 600; }}
figure {{ display: inline-block; margin: 0.5em; }} figcaption {{ font-size: 0.9em; color: #555; }}
.meta {{ color: #666; font-size: 0.9em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="meta">recgraph {html.escape(str(meta.get('version', '')))} · commit {html.escape(str(meta.get('git_commit')))} ·
device {html.escape(str(meta.get('device', '')))} · seed {html.escape(str(meta.get('seed', '')))}</p>
<h2>Test metrics</h2>{metrics_table_html(records, metric_keys)}
<h2>Protocol</h2><ul>{proto_html}</ul>
{extra}
<h2>Plots</h2>{imgs}
</body></html>
"""
    path = Path(path)
    atomic_write_bytes(path, doc.encode())
    return path


def group_metrics_png(stages: dict[str, dict], metric: str = "auc", base: str = "cloud") -> str | None:
    """Per-user-group ``metric`` of every stage (left) and its change against ``base`` (right); groups
    run from the tail (fewest training samples) to the head, labelled with their sample ranges.
    ``stages``: ``{name: {"groups": [{"group", "min_samples", "max_samples", metric, ...}, ...]}}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    named = {n: s["groups"] for n, s in stages.items() if s.get("groups")}
    if not named:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    first = next(iter(named.values()))
    x = [g["group"] for g in first]
    labels = [f"{g['min_samples']}-{g['max_samples']}" for g in first]
    ref = {g["group"]: g[metric] for g in named.get(base, [])}
    colors = plt.get_cmap("tab10")
    for c, (name, groups) in enumerate(named.items()):
        ax1.plot([g["group"] for g in groups], [g[metric] for g in groups], marker=".", label=name,
                 color=colors(c % 10))
        if ref and name != base:
            ax2.plot([g["group"] for g in groups], [g[metric] - ref.get(g["group"], float("nan")) for g in groups],
                     marker=".", label=f"{name} − {base}", color=colors(c % 10))
    for ax in (ax1, ax2):
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=60, fontsize=7)
        ax.set_xlabel("user group by training samples (tail → head)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax1.set(ylabel=f"group {metric}", title=f"{metric} per user group")
    ax2.axhline(0.0, color="k", lw=0.8)
    ax2.set(ylabel=f"Δ {metric}", title=f"change against {base}")
    return _png(fig)


def write_dccl_report(path: str | Path, record: dict) -> Path:
    """``report.html`` of a DCCL run (:func:`recgraph.train.dccl.run_dccl` record): one row per stage
    (cloud, + MetaPatch, + MoMoDistill rounds, references) and the per-user-group plot."""
    k = record["config"]["ks"][0]
    rows = [{**record, "model": name, "metrics": {m: v for m, v in st.items() if m != "groups"},
             "seconds": {"fit": float("nan")}, "train": {}} for name, st in record["stages"].items()]
    cost = record.get("device_cost", {})
    ond = record.get("ondevice") or {}
    items = {"per-user trainable parameters": cost.get("per_user_trainable_parameters"),
             "device users / without device": f"{cost.get('device_users')} / {cost.get('no_device_users')}",
             "ONNX artifact bytes": ond.get("onnx_bytes"),
             "request latency, 1 thread (median ms)": (ond.get("latency_one_thread") or {}).get("median_ms"),
             "ONNX vs PyTorch max |diff|": ond.get("max_abs_diff_vs_torch")}
    body = "<ul>" + "".join(f"<li><b>{html.escape(a)}</b>: {html.escape(str(b))}</li>"
                            for a, b in items.items()) + "</ul>"
    return write_report(path, title=f"DCCL on {record['dataset']}", records=rows,
                        metric_keys=[f"hit@{k}", f"ndcg@{k}", "auc", "macro_auc"],
                        sections=[("Device cost and on-device artifact", body)],
                        images=[("AUC per user group (tail → head) and its change against the cloud model",
                                 group_metrics_png(record["stages"]))])
