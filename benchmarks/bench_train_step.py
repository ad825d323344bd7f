"""Training-step cost of MF-BPR and LightGCN on the Gowalla split, old path vs new, in one run.

One step = BPR loss on a batch of 2048 triples, backward, Adam step — what the Trainer does 396
times per Gowalla epoch. Variants, side by side on the same batches:

* ``layerwise + Adam``: LightGCN's propagation as K autograd spmm nodes plus adds (the path
  before ``mean_propagation``), ``torch.optim.Adam`` with its default (for-each) kernels.
* ``fused propagation + Adam``: one autograd node for the layer mean (addmm into reused buffers).
* ``fused propagation + fused Adam``: the Trainer's default now.

The variants run interleaved (step i of each before step i + 1 of any), so machine noise is shared;
the median and the quartiles of the step time are reported.

    python benchmarks/bench_train_step.py --steps 30 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def hyperparameters(args) -> dict:
    return {"how_chosen": "none: systems benchmark (step time), nothing learned or selected",
            "fixed": {"optimizer": "Adam lr 1e-3 (for-each or fused kernels, both reported)", "sampling": "user",
                      "model": "MFBPR / LightGCN constructor defaults (dim 64, batch 2048, 3 layers)",
                      "steps": args.steps, "warmup": args.warmup, "threads": args.threads},
            "variants": "propagation (layerwise / fused) x Adam kernels: all reported, none chosen"}


def main() -> None:
    sys.path.insert(0, str(HERE))
    from _common import machine_info, print_table, write_result

    import numpy as np
    import torch

    from recgraph.data.datasets import load_dataset
    from recgraph.graph.bipartite import BipartiteGraph
    from recgraph.models.retrieval.lightgcn import LightGCN
    from recgraph.models.retrieval.mf import MFBPR
    from recgraph.nn.sparse import symmetric_spmm

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="train_step_gowalla")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    train = load_dataset("lightgcn-gowalla").predefined.train
    graph = BipartiteGraph.from_interactions(train)  # built once, shared by every model below

    def layerwise(self):  # the propagation before mean_propagation, kept here for the comparison
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        out = x
        for _ in range(self.n_layers):
            x = symmetric_spmm(self.adj, x)
            out = out + x
        out = out / (self.n_layers + 1)
        return out[: self.n_users], out[self.n_users:]

    variants = []
    for name, cls, propagation, fused in [("MF-BPR", MFBPR, None, False), ("MF-BPR", MFBPR, None, True),
                                          ("LightGCN", LightGCN, "layerwise", False),
                                          ("LightGCN", LightGCN, "fused", False),
                                          ("LightGCN", LightGCN, "fused", True)]:
        torch.manual_seed(0)
        model = cls(train.n_users, train.n_items, sampling="user")
        model.prepare(graph)
        if propagation == "layerwise":
            model.propagate = layerwise.__get__(model)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
        batches = list(model.train_batches(0, np.random.default_rng(0)))[: args.warmup + args.steps]
        label = ("" if propagation is None else f"{propagation} propagation + ") + ("fused Adam" if fused else "Adam")
        variants.append({"model": name, "variant": label, "net": model, "opt": opt, "batches": batches, "times": []})

    # Round robin: step i of every variant runs before step i + 1 of any, so a slow stretch of a
    # shared machine (steal time, another process) lands on all variants alike instead of on one.
    for i in range(args.warmup + args.steps):
        for v in variants:
            if i >= len(v["batches"]):
                continue
            t0 = time.perf_counter()
            loss = v["net"].loss(v["batches"][i])
            v["opt"].zero_grad(set_to_none=True)
            loss.backward()
            v["opt"].step()
            if i >= args.warmup:
                v["times"].append(time.perf_counter() - t0)

    rows, out = [], []
    for v in variants:
        ms = 1e3 * np.asarray(v["times"])
        med, q25, q75 = (float(x) for x in np.percentile(ms, [50, 25, 75]))
        row = {"model": v["model"], "variant": v["variant"], "median_step_ms": med, "p25_step_ms": q25,
               "p75_step_ms": q75, "epoch_seconds_estimate": med / 1e3 * len(v["net"].sampler),
               "steps_timed": len(ms)}
        out.append(row)
        rows.append([v["model"], v["variant"], f"{med:.1f}", f"{q25:.1f}–{q75:.1f}",
                     f"{row['epoch_seconds_estimate']:.1f}"])
    print_table(f"training step on Gowalla (batch 2048, {args.threads} threads)",
                ["model", "variant", "step ms (median)", "p25–p75", "epoch s (396 steps)"], rows)
    write_result(args.name, {"rows": out, "threads": args.threads, "schedule": "variants interleaved step by step", "hyperparameters": hyperparameters(args),
                             "seeds": {"torch": 0, "batches": 0}, "machine": machine_info()})


if __name__ == "__main__":
    main()
