"""DCCL benchmark: cloud alone, + MetaPatch, a BCE-only control, + MoMoDistill rounds, and DIN, over
seeds, per user group.

    RECGRAPH_DATA=../shared/datasets OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_dccl.py \
        --dataset movielens-100k --seeds 0 1 2 3 4 --rounds 2

Protocol (recgraph.train.dccl / recgraph.data.sequence_ctr): per user, last interaction = test,
second-to-last = validation; each ranks 1 positive among 100 distinct uniform negatives the user
never interacted with; HitRate@10, NDCG@10, mean per-user AUC, macro-AUC over 20 user groups by
training samples. Same budget for every trained part: epochs (cloud, DIN, distillation) and device
steps chosen on validation NDCG@10 with the same caps; every learning rate (cloud, DIN, device step,
MoMoDistill cloud retrain, basis + encoder distillation, and the BCE-only control) gets a grid of the
same size (4 values), chosen on validation NDCG@10 of the FIRST seed; the other seeds use the chosen
values. The seeds run one after the other in this one process. Each seed's record goes to
benchmarks/results/dccl_runs/<dataset>_seed<k>.json; benchmarks/results/dccl_<dataset>.json
aggregates the seeds of this invocation and is rewritten after every seed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, git_commit, machine_info, print_table, write_result  # noqa: E402

import torch  # noqa: E402

from recgraph.train.dccl import DCCLConfig, evaluate_rows, load_sequence_data, run_dccl  # noqa: E402

RUNS = Path(__file__).resolve().parent / "results" / "dccl_runs"

METRICS = ("hit@10", "ndcg@10", "auc", "macro_auc")

GIT_AT_START = git_commit()  # the code that runs; this script's own outputs dirty the tree as it goes


def run_git() -> dict:
    """``git`` of a result: the commit the run started from, dirty when the tree was dirty at start or
    anything other than this benchmark's own outputs (benchmarks/results/dccl*) changed since."""
    import subprocess

    now = git_commit()
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=10).stdout.splitlines()
    changed = [line[3:] for line in out if line.strip()]
    other = [c for c in changed if not c.startswith("benchmarks/results/dccl")]
    return {"commit": GIT_AT_START["commit"],
            "dirty": bool(GIT_AT_START["dirty"] or other or now["commit"] != GIT_AT_START["commit"]),
            "dirty_at_start": GIT_AT_START["dirty"], "own_outputs_changed_since_start": changed if not other else None,
            "other_changes_since_start": other}

# learning-rate grids, 4 values each, the same size for every trained part (the fixed rates of the first
# runs, 3e-3 Adam and 0.05 on devices, lie inside them)
ADAM = (1e-3, 3e-3, 1e-2, 3e-2)
GRID = {"lr_grid": ADAM, "ref_lr_grid": ADAM, "device_lr_grid": (0.01, 0.03, 0.1, 0.3), "distill_lr_grid": ADAM,
        "basis_lr_grid": ADAM, "control_lr_grid": ADAM}
# the chosen value of each grid -> the config field the other seeds get
CHOSEN = {"lr": "lr", "din_lr": "ref_lr", "device_lr": "device_lr", "distill_lr": "distill_lr",
          "basis_lr": "basis_lr", "control_lr": "control_lr"}


def aggregate(runs: list[dict]) -> dict:
    names = list(runs[0]["stages"])
    out = {}
    for n in names:
        st = [r["stages"][n] for r in runs]
        row = {m: {"mean": float(np.mean([s[m] for s in st])), "std": float(np.std([s[m] for s in st])),
                   "per_seed": [s[m] for s in st]} for m in METRICS}
        for sub in ("device_users", "no_device_users"):
            if sub in st[0]:
                row[sub] = {m: float(np.mean([s[sub][m] for s in st])) for m in ("hit@10", "ndcg@10", "auc")}
                row[sub]["n"] = st[0][sub]["n"]
        groups = []
        for g in range(len(st[0]["groups"])):
            gs = [s["groups"][g] for s in st]
            groups.append({"group": g, "min_samples": gs[0]["min_samples"], "max_samples": gs[0]["max_samples"],
                           "users": gs[0]["users"], "auc": float(np.mean([x["auc"] for x in gs])),
                           "hit@10": float(np.mean([x["hit@10"] for x in gs])),
                           "ndcg@10": float(np.mean([x["ndcg@10"] for x in gs]))})
        row["groups"] = groups
        out[n] = row
    return out


def tail_head(agg: dict, base: str = "cloud", n_tail: int = 5) -> dict:
    """Mean group-AUC change against ``base`` over the ``n_tail`` tail groups and the ``n_tail`` head groups."""
    ref = [g["auc"] for g in agg[base]["groups"]]
    out = {}
    for n, row in agg.items():
        d = np.array([g["auc"] for g in row["groups"]]) - np.array(ref)
        out[n] = {"tail_delta_auc": float(d[:n_tail].mean()), "head_delta_auc": float(d[-n_tail:].mean()),
                  "all_groups_delta_auc": float(d.mean())}
    return out


def _trim(rec: dict) -> dict:
    return {"seed": rec["seed"], "stages": rec["stages"], "config": rec["config"], "protocol": rec["protocol"],
            "selection": rec["selection"], "hyperparameters": rec["hyperparameters"],
            "device_cost": rec["device_cost"], "ondevice": rec.get("ondevice"),
            "git_commit": rec["git_commit"], "seconds": rec["seconds"],
            "train": {k: {kk: vv for kk, vv in v.items() if kk != "history"} for k, v in rec["train"].items()}}


class _Pop(torch.nn.Module):
    """Popularity reference: an item's number of training interactions (no learning, no tuning)."""

    def __init__(self, counts: np.ndarray):
        super().__init__()
        self.register_buffer("counts", torch.from_numpy(counts.astype(np.float32)))

    def forward(self, batch):
        return self.counts[batch.item.ids]


def pop_stage(run: dict) -> dict:
    """Test metrics of popularity on the seed's own rows and negatives (same evaluator, same groups)."""
    cfg = DCCLConfig.from_json(run["config"])
    data = load_sequence_data(cfg)
    counts = np.bincount(data.train.item[data.train.label == 1], minlength=data.n_items)
    return evaluate_rows(_Pop(counts), data, "test", cfg.ks, n_groups=cfg.n_groups)


def write_aggregate(dataset: str, name: str, command: str, runs: list[dict], files: list[Path],
                    hyperparameters: dict) -> dict:
    """Aggregate this invocation's per-seed records of ``dataset`` into NAME.json."""
    for r in runs:
        r["stages"]["pop"] = pop_stage(r)
    agg = aggregate(runs)
    first = next((r for r in runs if r.get("ondevice")), runs[0])
    write_result(name, {
        "benchmark": "dccl", "dataset": dataset, "command": command, "git": run_git(), "git_commit": GIT_AT_START,
        "machine": machine_info(), "load_average": os.getloadavg(), "seeds": [r["seed"] for r in runs],
        "config": runs[0]["config"], "protocol": runs[0]["protocol"],
        "selection": runs[0]["selection"], "hyperparameters": hyperparameters,
        "stages": agg, "tail_vs_head": tail_head(agg), "device_cost": first["device_cost"],
        "ondevice": first.get("ondevice"), "train": [r["train"] for r in runs],
        "per_seed_files": [str(f.relative_to(RUNS.parent)) for f in files],
        "seconds_per_seed": [r["seconds"]["total"] for r in runs]})
    rows = [[n, *(f"{agg[n][m]['mean']:.4f}±{agg[n][m]['std']:.4f}" for m in METRICS)] for n in agg]
    print_table(f"{dataset}: {len(runs)} seed(s)", ["stage", *METRICS], rows)
    return agg


def markdown(dataset: str, name: str) -> str:
    """BENCHMARKS.md tables of an aggregated result: stages (mean ± std over seeds), users with / without
    device training, tail vs head groups."""
    from recgraph.io import read_json

    d = read_json(RUNS.parent / f"{name}.json")
    st, th = d["stages"], d["tail_vs_head"]
    out = [f"**{dataset}**, seeds {d['seeds']} (mean ± std):", "",
           "| stage | HR@10 | NDCG@10 | AUC | macro-AUC | NDCG@10 device users | NDCG@10 no-device users "
           "| Δ group-AUC tail 5 | Δ head 5 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, row in st.items():
        cells = [f"{row[m]['mean']:.4f} ± {row[m]['std']:.4f}" for m in METRICS]
        dev = row.get("device_users", {}).get("ndcg@10")
        nod = row.get("no_device_users", {}).get("ndcg@10")
        fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
        out.append(f"| {n} | " + " | ".join(cells) + f" | {fmt(dev)} | {fmt(nod)} | "
                   f"{th[n]['tail_delta_auc']:+.4f} | {th[n]['head_delta_auc']:+.4f} |")
    return "\n".join(out)


def device_cost(datasets: list[str], repeats: int = 5) -> dict:
    """Device-side cost, independent of the trained weights: per-user parameters and state, one phone's
    training time (its features + ``device_steps`` full-batch Adam steps, one thread) for the median and
    the largest user, the ONNX artifact's size and its one-thread latency per request (1 + 100 candidates)."""
    import tempfile

    from recgraph.models.ondevice.dccl import DCCLRanker
    from recgraph.models.ondevice.device import device_step_time
    from recgraph.models.ondevice.export import export_onnx, onnx_session, request_latency, scorer_inputs

    torch.set_num_threads(1)
    out = {}
    for ds in datasets:
        cfg = DCCLConfig(dataset=ds)
        data = load_sequence_data(cfg)
        torch.manual_seed(0)
        m = DCCLRanker(data.n_users, data.n_items, 1, data.n_item_macros, dim=cfg.dim, hidden=tuple(cfg.hidden),
                       vec_dim=cfg.vec_dim, patch_rank=cfg.patch_rank, profile_size=data.profile_size,
                       n_profile_fields=len(data.profile_fields))
        m.set_profile(torch.from_numpy(data.profile))
        m.eval()
        m.patched = True
        cnt = data.train_positives
        users = np.flatnonzero(cnt > 0)
        pick = {"median_user": int(users[np.argsort(cnt[users], kind="stable")[len(users) // 2]]),
                "largest_user": int(users[np.argmax(cnt[users])])}
        timing = {}
        for label, u in pick.items():
            runs = [device_step_time(m, data, u, steps=cfg.device_steps, lr=cfg.device_lr, l2=cfg.device_l2)
                    for _ in range(repeats)]
            timing[label] = {"user": u, "training_samples": runs[0]["samples"], "steps": cfg.device_steps,
                             "median_seconds": float(np.median([r["seconds"] for r in runs])),
                             "median_cpu_seconds": float(np.median([r["cpu_seconds"] for r in runs]))}
        r = 0
        items = np.concatenate([data.test.pos[r:r + 1], data.test.neg[r]])
        inputs = scorer_inputs(m, items, data.item_macro[items], data.test.recent[r], np.zeros(cfg.vec_dim),
                               data.profile[data.test.user[r]])
        with tempfile.TemporaryDirectory() as tmp:
            size = export_onnx(m, Path(tmp) / "m.onnx", inputs)
            lat = request_latency(onnx_session(Path(tmp) / "m.onnx"), inputs, repeats=500)
        cloud = sum(p.numel() for mod in m.cloud_modules() for p in mod.parameters())
        out[ds] = {"per_user_trainable_parameters": cfg.vec_dim, "per_user_state_bytes": 4 * cfg.vec_dim,
                   "cloud_parameters": int(cloud), "basis_and_encoder_parameters": int(m.n_patch_parameters()),
                   "profile_fields": list(data.profile_fields), "device_training": timing,
                   "onnx_bytes": int(size), "latency_one_thread": lat}
        print(ds, out[ds], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="movielens-100k")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cloud-epochs", type=int, default=DCCLConfig.cloud_epochs)
    ap.add_argument("--distill-epochs", type=int, default=DCCLConfig.distill_epochs)
    ap.add_argument("--device-steps", type=int, default=DCCLConfig.device_steps)
    ap.add_argument("--dim", type=int, default=DCCLConfig.dim)
    ap.add_argument("--recent", type=int, default=DCCLConfig.recent)
    ap.add_argument("--onnx-seed", type=int, default=0, help="seed whose run exports and times the ONNX artifact")
    ap.add_argument("--name", default=None, help="result file name (default dccl_<dataset>)")
    ap.add_argument("--no-grid", action="store_true", help="no learning-rate grid: DCCLConfig's fixed rates")
    ap.add_argument("--device-cost", action="store_true", help="measure device-side cost on all three datasets")
    ap.add_argument("--markdown", action="store_true", help="print the BENCHMARKS.md tables of NAME.json and exit")
    args = ap.parse_args()
    name = args.name or f"dccl_{args.dataset}"
    command = "python " + " ".join(sys.argv)
    if args.markdown:
        print(markdown(args.dataset, name))
        return
    if args.device_cost:
        ds = ["movielens-100k", "taobao-userbehavior-sample", "amazon2014-musical-instruments-5core"]
        d = DCCLConfig()
        write_result("dccl_device_cost", {
            "benchmark": "dccl_device_cost", "command": command, "git": run_git(), "git_commit": GIT_AT_START,
            "machine": machine_info(), "load_average": os.getloadavg(),
            "hyperparameters": f"none selected (no tuning): defaults of DCCLConfig: dim {d.dim}, MLP {list(d.hidden)}, "
                               f"theta {d.vec_dim} floats, patch rank {d.patch_rank}, {d.device_steps} device "
                               f"steps (the benchmark's cap on device steps: the most a phone runs); untrained "
                               "weights and the device step size do not change the cost measured",
            "note": "untrained weights (the cost does not depend on them); "
                    "the shared 2-core machine's load average is recorded",
            "datasets": device_cost(ds)})
        return
    if not args.seeds:
        ap.error("--seeds needs at least one seed")
    from recgraph.io import atomic_write_json

    base = dict(dataset=args.dataset, rounds=args.rounds, cloud_epochs=args.cloud_epochs,
                distill_epochs=args.distill_epochs, device_steps=args.device_steps, dim=args.dim, recent=args.recent,
                reference=("din",))
    runs, files, chosen, hyper = [], [], {}, None
    for i, seed in enumerate(args.seeds):
        grid = {} if (args.no_grid or i > 0) else GRID
        cfg = DCCLConfig(**base, seed=seed, onnx=(seed == args.onnx_seed), **grid, **chosen)
        data = load_sequence_data(cfg)
        t = time.perf_counter()
        rec = run_dccl(cfg, data, log=lambda s: print(
            f"[{args.dataset} seed {seed} {time.perf_counter() - t:.0f}s] {s}", flush=True))
        if i == 0:
            hp = rec["hyperparameters"]
            if not args.no_grid:
                chosen = {CHOSEN[k]: v["value"] for k, v in hp.items()}
            hyper = {"how": (f"learning rates: grid of {len(GRID['lr_grid'])} values each, chosen on validation "
                             f"NDCG@10 of seed {seed} (test never used), the chosen values given to the other seeds"
                             if not args.no_grid else "learning rates fixed (DCCLConfig defaults), no grid"),
                     "grids_seed": seed, "grids": hp,
                     "epochs_and_device_steps": "per seed on validation NDCG@10: cloud / DIN up to "
                                                f"{cfg.cloud_epochs} epochs (patience {cfg.patience}), distillation "
                                                f"and control {cfg.distill_epochs} epoch, device steps among "
                                                f"0..{cfg.device_steps} by {cfg.device_eval_every}",
                     "fixed": {"beta": cfg.beta, "vec_dropout": cfg.vec_dropout, "dim": cfg.dim,
                               "hidden": list(cfg.hidden), "vec_dim": cfg.vec_dim, "patch_rank": cfg.patch_rank,
                               "batch_size": cfg.batch_size, "device_l2": cfg.device_l2,
                               "note": "architecture and these weights as in the first runs, not tuned"}}
        f = RUNS / f"{args.dataset}_seed{seed}.json"
        atomic_write_json(f, {**_trim(rec), "command": command,
                              "hyperparameters_from": "this seed's grid" if i == 0 else f"seed {args.seeds[0]}"})
        runs.append(_trim(rec))
        files.append(f)
        write_aggregate(args.dataset, name, command, [dict(r, stages=dict(r["stages"])) for r in runs], files, hyper)


if __name__ == "__main__":
    main()
