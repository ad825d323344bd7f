"""What the phone downloads: the frozen cloud model + MetaPatch basis + encoder, as one ONNX graph.

:class:`OnDeviceScorer` scores one request — one user's history against ``C`` candidate items —
given the vector the device keeps (θ̂ ``[1, m]``) and its profile codes ``[1, P]``::

    inputs : item_ids [C] int64, item_macro [C] int64, recent [1, R] int64 (pad = n_items),
             theta [1, m] float32, profile [1, P] int64 (only when the dataset has profile fields)
    output : logits [C] float32

:func:`export_onnx` writes it atomically (bytes via :func:`recgraph.io.atomic_write_bytes`);
:func:`onnx_session` opens it with onnxruntime on one thread; :func:`request_latency` times requests
(wall and the calling thread's CPU time: on a loaded machine the wall p90 is scheduler noise).
"""

from __future__ import annotations

import io
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...io import atomic_write_bytes
from .dccl import DCCLRanker, din_attention_factored

__all__ = ["OnDeviceScorer", "export_onnx", "onnx_session", "request_latency", "scorer_inputs"]


class OnDeviceScorer(nn.Module):
    def __init__(self, model: DCCLRanker):
        super().__init__()
        self.m = model
        self.has_profile = model.profile.shape[1] > 0 and model.encoder.profile is not None

    def forward(self, item_ids, item_macro, recent, theta, profile=None):
        m = self.m
        ei = m.item(item_ids)                                         # [C, d]
        keys = m.item(recent)                                         # [1, R, d]
        interest = din_attention_factored(m.att, ei, keys, (recent != m.n_items).float())     # [C, d]
        x = torch.cat([ei, m.im(item_macro), interest, ei * interest], -1)
        prof = profile if profile is not None else torch.zeros(1, 0, dtype=torch.int64)
        v = m.patch_vector(theta, prof)                               # [1, m]
        return m.head(x, v)


def scorer_inputs(model: DCCLRanker, item_ids: np.ndarray, item_macro: np.ndarray, recent: np.ndarray,
                  theta: np.ndarray, profile: np.ndarray | None) -> dict[str, np.ndarray]:
    """The named numpy inputs of one request (shapes in the module docstring)."""
    out = {"item_ids": np.asarray(item_ids, np.int64).reshape(-1),
           "item_macro": np.asarray(item_macro, np.int64).reshape(-1),
           "recent": np.asarray(recent, np.int64).reshape(1, -1),
           "theta": np.asarray(theta, np.float32).reshape(1, -1)}
    if OnDeviceScorer(model).has_profile:
        out["profile"] = np.asarray(profile, np.int64).reshape(1, -1)
    return out


def export_onnx(model: DCCLRanker, path: str | Path, example: dict[str, np.ndarray]) -> int:
    """Export the eval-mode scorer to ``path`` (dynamic number of candidates); returns its size in bytes."""
    model.eval()
    scorer = OnDeviceScorer(model).eval()
    names = list(example)
    args = tuple(torch.from_numpy(example[k]) for k in names)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(scorer, args, buf, input_names=names, output_names=["logits"],
                          dynamic_axes={"item_ids": {0: "candidates"}, "item_macro": {0: "candidates"},
                                        "logits": {0: "candidates"}},
                          opset_version=17, dynamo=False)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return len(data)


def onnx_session(path: str | Path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def request_latency(session, inputs: dict[str, np.ndarray], repeats: int = 200, warmup: int = 20) -> dict:
    """Median / p90 wall milliseconds of ``session.run`` on one request (one thread)."""
    for _ in range(warmup):
        session.run(None, inputs)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        session.run(None, inputs)
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.thread_time() - c0) * 1e3)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))],
            "cpu_median_ms": statistics.median(cpu), "repeats": repeats, "candidates": int(len(inputs["item_ids"]))}
