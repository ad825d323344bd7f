"""How warm are a CTR protocol's samples? Share of samples whose item (user) has no positive in its
feature snapshot, per part and label, and the AUC of the item-popularity score on warm and cold rows.

MacGNN reads an item through its macro neighbourhood (the users who took it before the snapshot):
a cold item has none, so only its id / category embedding is left. This script measures how much of
a protocol's test set is in that state (no model, no training).

    python benchmarks/bench_ctr_cold.py --dataset taobao-userbehavior-sample --protocol macgnn-quantile

Writes benchmarks/results/ctr_cold_<dataset>_<protocol>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_result  # noqa: E402

from recgraph.data.datasets import load_dataset  # noqa: E402
from recgraph.eval.protocols import evaluate_ctr  # noqa: E402
from recgraph.graph.features import build_ctr_data  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="taobao-userbehavior-sample")
    ap.add_argument("--protocol", default="macgnn-quantile")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    data = build_ctr_data(load_dataset(a.dataset).interactions, a.protocol, seed=a.seed)
    f = data.features
    out, rows = {}, []
    for part in ("train", "valid", "test"):
        s = data.part(part)
        ideg = f.item_deg[s.snapshot * data.n_items + s.item]
        udeg = f.user_deg[s.snapshot * data.n_users + s.user]
        rec = {"samples": int(len(s.label)), "positives": int((s.label > 0.5).sum())}
        for name, lab in (("positive", s.label > 0.5), ("negative", s.label <= 0.5)):
            rec[f"cold_item_share_{name}"] = float((ideg[lab] == 0).mean()) if lab.any() else None
            rec[f"cold_user_share_{name}"] = float((udeg[lab] == 0).mean()) if lab.any() else None
        warm = ideg > 0
        for name, m in (("all", np.ones_like(warm)), ("warm_items", warm)):
            ok = m & np.isin(s.user, s.user[m & (s.label > 0.5)]) & np.isin(s.user, s.user[m & (s.label <= 0.5)])
            rec[f"popularity_auc_{name}"] = (evaluate_ctr(s.user[ok], s.label[ok], ideg[ok].astype(np.float64),
                                                          from_logits=True)["auc"] if ok.any() else None)
        out[part] = rec
        rows.append([part, f"{rec['samples']:,}", f"{rec['cold_item_share_positive']:.3f}",
                     f"{rec['cold_item_share_negative']:.3f}", f"{rec['popularity_auc_all']:.4f}",
                     "-" if rec["popularity_auc_warm_items"] is None else f"{rec['popularity_auc_warm_items']:.4f}"])
    print_table(f"{a.dataset} / {a.protocol}: cold items per part",
                ["part", "samples", "cold item | positive", "cold item | negative", "popularity AUC",
                 "popularity AUC, warm items"], rows)
    name = f"ctr_cold_{a.dataset}_{a.protocol}".replace("-", "_")
    print("wrote", write_result(name, {"dataset": a.dataset, "protocol": data.protocol, "seed": a.seed, "parts": out,
                                       "hyperparameters": "none selected: no model is trained (data statistics)"}))


if __name__ == "__main__":
    main()
