"""DC-GNN scaling: precompute time vs dual-tower epoch time as hops and graph size grow.

* Synthetic power-law graphs (``--sizes``, edges): build the graph, propagate random ``d``-dim
  features ``K_max`` hops (float16 storage; spilled to a memory-mapped directory past
  ``--memory-budget``), then train the dual tower for one epoch of a **fixed** number of examples
  (``--samples``) for each ``K`` in ``1..K_max``. The tower step reads ``B`` feature rows and never
  touches the graph, so its epoch time should be flat in graph size and grow with ``K`` only
  through the input width; the precompute grows linearly with edges.
* ``--ablation``: DC-GNN pretraining variants on MovieLens-100K scored by the untrained towers.
  (Model quality against the baselines: ``benchmarks/bench_retrieval.py``.)

    nice -n 10 python benchmarks/bench_dcgnn_scaling.py --sizes 100k,1M,10M
    nice -n 10 python benchmarks/bench_dcgnn_scaling.py --ablation
Writes benchmarks/results/dcgnn.json (and dcgnn_ablation.json).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_bytes, growth_exponent, measure, powerlaw_edges, print_table, write_result  # noqa: E402

from recgraph.graph.bipartite import BipartiteGraph  # noqa: E402
from recgraph.graph.propagation import PropagatedFeatures, propagate  # noqa: E402
from recgraph.models.retrieval.dcgnn import DCGNN  # noqa: E402


def parse_size(s: str) -> int:
    s = s.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
    return int(float(s[:-1]) * mult[s[-1]]) if s[-1] in mult else int(s)


def tower_epoch(g: BipartiteGraph, feats: PropagatedFeatures, k: int, dim: int, samples: int, batch: int) -> float:
    sub = PropagatedFeatures(user=feats.user[: k + 1], item=feats.item[: k + 1], path=feats.path)
    torch.manual_seed(0)
    model = DCGNN(g.n_users, g.n_items, dim=dim, n_hops=k, samples_per_epoch=samples, batch_size=batch,
                  memory_budget=0)
    model.prepare(g, features=sub)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    model.train()
    rng = np.random.default_rng(0)
    for j, batch_ in enumerate(model.train_batches(1, np.random.default_rng(1))):  # warm-up (lazy init)
        model.loss(batch_).backward()
        if j == 2:
            break
    opt.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    for batch_ in model.train_batches(0, rng):
        loss = model.loss(batch_)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def scaling(sizes, max_hops, dim, samples, batch, budget, workdir):
    rows = []
    for n_edges in sizes:
        n_users, n_items = max(100, n_edges // 10), max(100, n_edges // 20)
        u, i, _ = powerlaw_edges(n_edges, n_users, n_items, alpha=0.8, seed=0, with_timestamps=False)
        g, t_graph, m_graph = measure(BipartiteGraph.from_edges, u, i, n_users, n_items)
        rng = np.random.default_rng(0)
        xu = rng.standard_normal((n_users, dim), dtype=np.float32)
        xi = rng.standard_normal((n_items, dim), dtype=np.float32)
        feats, t_prop, m_prop = measure(propagate, g, xu, xi, max_hops, dtype=np.float16, memory_budget=budget,
                                        out_dir=None if (max_hops + 1) * (n_users + n_items) * dim * 2 <= budget
                                        else Path(workdir) / f"prop-{n_edges}")
        del xu, xi
        row = {"n_edges": int(g.n_edges), "n_users": n_users, "n_items": n_items, "graph_seconds": t_graph,
               "propagate_seconds": t_prop, "propagate_peak_bytes": m_prop, "feature_bytes": feats.nbytes,
               "features_on_disk": feats.on_disk, "epoch_seconds": {}}
        for k in range(1, max_hops + 1):
            row["epoch_seconds"][k] = tower_epoch(g, feats, k, dim, samples, batch)
        print(row, flush=True)
        rows.append(row)
        del g, feats
    return rows


def ablation() -> list[dict]:
    """Pretraining variants on MovieLens-100K, scored by the untrained towers (= the softmax-uniform
    mean of hops 0..K of the pretrained embeddings): what each pretraining ingredient contributes."""
    from recgraph.data.datasets import load_dataset
    from recgraph.data.split import random_ratio
    from recgraph.train.runner import evaluate_model, stage_fitter

    split = random_ratio(load_dataset("movielens-100k").interactions, seed=0)
    graph = BipartiteGraph.from_interactions(split.train)
    variants = {"spectral (SVD) start only, 0 epochs": dict(pretrain_epochs=0),
                "defaults (20 ep, random+khop+degree negatives, contrastive 0.01)": dict(),
                "no contrastive term": dict(pretrain_cl_weight=0.0),
                "contrastive 0.1": dict(pretrain_cl_weight=0.1),
                "random negatives only": dict(pretrain_neg_weights=(1.0, 0.0, 0.0)),
                "normal init instead of SVD": dict(pretrain_init="normal"),
                "first-session defaults (3 ep, lr 1e-2, 2 layers, contrastive 0.1)":
                    dict(pretrain_epochs=3, pretrain_lr=1e-2, pretrain_layers=2, pretrain_cl_weight=0.1)}
    out = []
    for name, kw in variants.items():
        torch.manual_seed(0)
        m = DCGNN(split.n_users, split.n_items, **kw)
        t = time.perf_counter()
        m.prepare(graph, fit=stage_fitter("cpu"))  # pretraining through the one Trainer
        row = {"variant": name, "model_args": kw, "prepare_seconds": time.perf_counter() - t}
        for part in ("valid", "test"):
            r = evaluate_model(m, split, part, ks=(20,))
            row[f"{part}_recall@20"], row[f"{part}_ndcg@20"] = r["recall@20"], r["ndcg@20"]
        print(row, flush=True)
        out.append(row)
    return out


def hyperparameters(args) -> dict:
    if args.ablation:
        return {"how_chosen": "no selection: every pretraining variant is reported (valid and test), none chosen; "
                              "'defaults' are DCGNN's constructor defaults, which its docstring says were chosen "
                              "earlier on MovieLens-100K validation NDCG@20 (the 'first-session defaults' row is the "
                              "setting they replaced)",
                "defaults": {k: p.default for k, p in inspect.signature(DCGNN.__init__).parameters.items()
                             if k.startswith("pretrain_") or k in ("dim", "n_hops", "seed")},
                "towers": "untrained (scores = softmax-uniform hop mean of the pretrained embeddings)",
                "split": "per-user random 80/10/10, seed 0"}
    return {"how_chosen": "none: systems benchmark (time / memory), model quality not measured",
            "sizes": f"swept: {args.sizes} edges; all points reported, none chosen",
            "hops": f"swept: K = 1..{args.max_hops}; all points reported, none chosen",
            "fixed": {"dim": args.dim, "samples_per_epoch": args.samples, "batch_size": args.batch_size,
                      "tower_lr": "5e-4 (Adam; DCGNN's train_defaults lr)", "feature_dtype": "float16",
                      "memory_budget": args.memory_budget, "threads": args.threads,
                      "features": "random normal (no pretraining)", "tower": "DCGNN constructor defaults otherwise"}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100k,1M,10M")
    ap.add_argument("--max-hops", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--samples", type=int, default=100_000, help="training examples per tower epoch (fixed)")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--memory-budget", type=parse_size, default=parse_size("256m"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ablation", action="store_true",
                    help="only the MovieLens-100K pretraining ablation (writes results/dcgnn_ablation.json)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.ablation:
        rows = ablation()
        print_table("DC-GNN pretraining ablation, MovieLens-100K (untrained towers)",
                    ["variant", "prepare s", "valid R@20", "test R@20", "test N@20"],
                    [[r["variant"], f"{r['prepare_seconds']:.1f}", f"{r['valid_recall@20']:.4f}",
                      f"{r['test_recall@20']:.4f}", f"{r['test_ndcg@20']:.4f}"] for r in rows])
        path = write_result("dcgnn_ablation", {"args": vars(args), "ablation": rows,
                                               "hyperparameters": hyperparameters(args),
                                               "seeds": {"split": 0, "torch": 0, "pretraining": 0}})
        print(f"wrote {path}")
        return
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="bench-dcgnn-") as wd:
        rows = scaling(sizes, args.max_hops, args.dim, args.samples, args.batch_size, args.memory_budget, wd)
    table = []
    for r in rows:
        table.append([f"{r['n_edges']:,}", f"{r['graph_seconds']:.2f}", f"{r['propagate_seconds']:.2f}",
                      fmt_bytes(r["propagate_peak_bytes"]), fmt_bytes(r["feature_bytes"]),
                      "disk" if r["features_on_disk"] else "mem",
                      *[f"{r['epoch_seconds'][k]:.2f}" for k in range(1, args.max_hops + 1)]])
    print_table(f"DC-GNN: precompute (K={args.max_hops}, d={args.dim}, fp16) vs tower epoch "
                f"({args.samples:,} examples) per K",
                ["edges", "graph s", "propagate s", "prop peak", "features", "where",
                 *[f"epoch s K={k}" for k in range(1, args.max_hops + 1)]], table)
    n = [r["n_edges"] for r in rows]
    payload = {"args": vars(args), "scaling": rows, "hyperparameters": hyperparameters(args),
               "seeds": {"edges": 0, "features": 0, "torch": 0, "batches": 0},
               "growth": {"propagate": growth_exponent(n, [r["propagate_seconds"] for r in rows]),
                          f"epoch_K{args.max_hops}": growth_exponent(
                              n, [r["epoch_seconds"][args.max_hops] for r in rows])}}
    path = write_result("dcgnn", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
