"""recgraph.index (base.py, __init__.py): the one search contract — candidate top-k, description
strings, save / load of every index type, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from index_vectors import clustered
from recgraph.index import (ExactIndex, FaissIVFIndex, RQIndex, build_index, load_index, parse_description,
                            topk_over_candidates)
from recgraph.io import ArtifactError


@pytest.mark.parametrize("sizes", [(0, 3, 50, 7, 120),                     # few queries: one by one
                                   (0, 3, 50, 7, 120, 1, 9, 64, 2, 33, 0, 5)])  # many: padded blocks
def test_topk_over_candidates_matches_numpy(sizes):
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.normal(size=(200, 8)).astype(np.float32))
    q = torch.from_numpy(rng.normal(size=(len(sizes), 8)).astype(np.float32))
    lists = [rng.choice(200, size=n, replace=False) for n in sizes]
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in lists])])
    D, I = topk_over_candidates(q, x, indptr, np.concatenate(lists), 4, max_elements=300)
    for r, cand in enumerate(lists):
        s = (x[cand] @ q[r]).numpy()
        best = cand[np.argsort(-s)[:4]]
        got = I[r].numpy()
        np.testing.assert_array_equal(got[: len(best)], best)
        assert (got[len(best):] == -1).all()


@pytest.mark.parametrize("description", ["Flat", "IVF32,nprobe4", "RQ2x32,nprobe4", "RQ3x8,nprobe6,depth2,beam4"])
def test_save_load_round_trip(tmp_path, description):
    x, q = clustered(n=2000, n_queries=40, seed=4)
    index = build_index(description, x)
    D, I = index.search(q, 20)
    index.save(tmp_path / "ix")
    assert not list((tmp_path / "ix").glob("*.tmp"))
    loaded = load_index(tmp_path / "ix")
    assert type(loaded) is type(index) and loaded.describe() == description and loaded.ntotal == len(x)
    D2, I2 = loaded.search(q, 20)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_array_equal(D, D2)
    assert type(index).load(tmp_path / "ix").describe() == description
    if description != "Flat":
        with pytest.raises(TypeError):
            ExactIndex.load(tmp_path / "ix")
    # a damaged payload or metadata file is named in the error
    meta = json.loads((tmp_path / "ix" / "index.json").read_text())
    payload = tmp_path / "ix" / meta["payload"]
    payload.write_bytes(payload.read_bytes()[:40])
    with pytest.raises(ArtifactError, match=f"{meta['payload']}: is not a readable"):
        load_index(tmp_path / "ix")
    payload.unlink()
    with pytest.raises(ArtifactError, match=f"{meta['payload']}: not found"):
        load_index(tmp_path / "ix")


def test_errors_are_clear():
    x = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="unknown index description"):
        build_index("HNSW32", x)
    with pytest.raises(ValueError, match="bad option"):
        parse_description("RQ2x8,nprobe4,foo3")
    index = build_index("Flat", x)
    with pytest.raises(ValueError, match="dimension 4"):
        index.search(np.zeros((2, 4), np.float32), 3)
    with pytest.raises(ValueError, match="k must be"):
        index.search(np.zeros((2, 8), np.float32), 0)
    with pytest.raises(RuntimeError, match="train"):
        RQIndex(8).add(x)
    with pytest.raises(RuntimeError, match="train"):
        FaissIVFIndex(8, nlist=4).add(x)
    with pytest.raises(ArtifactError, match="index.json: not found"):
        load_index("/nonexistent/index")
