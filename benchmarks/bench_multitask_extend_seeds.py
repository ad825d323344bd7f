"""Seeds 3-4 of bench_multitask.py's selected configs and ablations, on the same code as seeds 0-2.

Run from a snapshot of the commit that made ``multitask_taobao.json`` (``git archive f0ffb08 | tar -x -C
/tmp/prerun``, then ``cd /tmp/prerun/benchmarks && PYTHONPATH=../src python extend_seeds.py``), so all five
seeds come from one code version; ``python benchmarks/bench_multitask.py --combine`` then writes the 5-seed
summary. Writes ``multitask_taobao_seeds34.json`` after every run."""
import json, sys, time
import torch
import bench_multitask as b
from _common import write_result
from recgraph.train.runner import ExperimentConfig, run

RES = sys.argv[1] if len(sys.argv) > 1 else "/work/wt-mgoe/benchmarks/results"
torch.set_num_threads(1)
prev = json.load(open(f"{RES}/multitask_taobao.json"))
data = b.build_multitask_data(b.load_dataset(b.DATASET).interactions, b.TASKS, seed=0)
seeds = [3, 4]
out = {"command": "python benchmarks/extend_seeds.py (run from a `git archive f0ffb08` snapshot)",
       "code": "commit f0ffb08, the code of seeds 0-2 in multitask_taobao.json", "seeds": seeds,
       "budget": prev["budget"], "selected": prev["selected"], "runs": {}, "ablations": {}}
jobs = [(m, prev["selected"][m]["model_args"], None) for m in ("mmoe", "shared-bottom", "ple", "mgoe")]
jobs += [("mgoe", {**prev["selected"]["mgoe"]["model_args"], **extra}, name) for name, extra in b.ABLATIONS.items()]
jobs += [("macgnn", prev["selected"]["macgnn"]["model_args"], None)]
t0 = time.perf_counter()
for model, margs, abl in jobs:
    for s in seeds:
        rec = run(ExperimentConfig(model, b.DATASET, tasks=b.TASKS, seed=s, epochs=prev["budget"]["max_epochs"],
                                   device="cpu", patience=2, model_args=margs, progress=False), data=data)
        summ = b._summary(rec)
        (out["ablations"].setdefault(abl, []) if abl else out["runs"].setdefault(model, [])).append(summ)
        print(model, abl, s, round(summ["test"]["auc_mean"], 4), round(time.perf_counter() - t0), flush=True)
        out["elapsed_s"] = time.perf_counter() - t0
        write_result("multitask_taobao_seeds34", b._clean(out), RES)
