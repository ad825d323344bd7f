import json
import shutil

import numpy as np
import pytest
import scipy.sparse as sp

from recgraph.graph.bipartite import BipartiteGraph
from recgraph.graph.propagation import PropagatedFeatures, propagate
from recgraph.io import ArtifactError


def _small_graph(seed=0, n=13, m=17, e=60):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, n, e), rng.integers(0, m, e)
    # node n-1 / item m-1 isolated on purpose
    keep = (u != n - 1) & (i != m - 1)
    return BipartiteGraph.from_edges(u[keep], i[keep], n, m), n, m


def _dense_hops(graph, xu, xi, k):
    n, m = graph.n_users, graph.n_items
    r = graph.to_scipy().toarray().astype(np.float64)
    a = np.zeros((n + m, n + m))
    a[:n, n:], a[n:, :n] = r, r.T
    deg = a.sum(1)
    dinv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    ahat = dinv[:, None] * a * dinv[None, :]
    x = np.concatenate([xu, xi]).astype(np.float64)
    out = [x]
    for _ in range(k):
        out.append(ahat @ out[-1])
    out = np.stack(out)
    return out[:, :n], out[:, n:]


def test_matches_dense_and_torch_adjacency():
    g, n, m = _small_graph()
    rng = np.random.default_rng(1)
    xu, xi = rng.normal(size=(n, 5)), rng.normal(size=(m, 5))
    res = propagate(g, xu, xi, 4)
    du, di = _dense_hops(g, xu, xi, 4)
    assert res.user.shape == (5, n, 5) and res.item.shape == (5, m, 5) and not res.on_disk
    np.testing.assert_allclose(res.user, du, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.item, di, rtol=1e-5, atol=1e-6)
    assert np.all(res.user[1:, n - 1] == 0) and np.all(res.item[1:, m - 1] == 0)
    # the graph's operators passed directly, or a scipy matrix converted to a graph: same answer
    res2 = propagate(sp.csr_matrix(g.to_scipy()), xu, xi, 4)
    np.testing.assert_array_equal(res.user, res2.user)
    res3 = propagate(g.normalized_biadjacency(), xu, xi, 4)
    np.testing.assert_array_equal(res.item, res3.item)


def test_gather_layout():
    g, n, m = _small_graph()
    rng = np.random.default_rng(2)
    res = propagate(g, rng.normal(size=(n, 3)), rng.normal(size=(m, 3)), 2)
    idx = np.array([3, 0, 3])
    got = res.gather("user", idx)
    assert got.shape == (3, 3, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got[1, 2], res.user[2, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_memmap_equals_memory(tmp_path, dtype):
    g, n, m = _small_graph(seed=3)
    rng = np.random.default_rng(4)
    xu, xi = rng.normal(size=(n, 8)).astype(np.float32), rng.normal(size=(m, 8)).astype(np.float32)
    mem = propagate(g, xu, xi, 3, dtype=dtype)
    disk = propagate(g, xu, xi, 3, dtype=dtype, out_dir=tmp_path / "prop")
    assert disk.on_disk and isinstance(disk.user, np.memmap) and disk.user.dtype == dtype
    np.testing.assert_array_equal(np.asarray(disk.user), mem.user)
    np.testing.assert_array_equal(np.asarray(disk.item), mem.item)
    # nothing temporary left behind; the directory reloads lazily
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prop"]
    again = PropagatedFeatures.load(tmp_path / "prop")
    np.testing.assert_array_equal(np.asarray(again.item), mem.item)
    assert json.loads((tmp_path / "prop" / "meta.json").read_text())["n_hops"] == 3
    # over budget without out_dir: spills to a temporary directory
    spill = propagate(g, xu, xi, 3, dtype=dtype, memory_budget=16)
    try:
        assert spill.on_disk
        np.testing.assert_array_equal(np.asarray(spill.user), mem.user)
    finally:
        shutil.rmtree(spill.path.parent, ignore_errors=True)  # the fresh temporary parent folder
    # float16 storage is one rounding of the float32 recursion
    if dtype == np.float16:
        full = propagate(g, xu, xi, 3)
        np.testing.assert_allclose(mem.user.astype(np.float32), full.user, rtol=2e-3, atol=2e-3)


def test_column_slices_equal_full_width(tmp_path, monkeypatch):
    """A budget below the full-width working set propagates the columns in slices (here 3 columns at a
    time, then 1) and merges them: same bytes as all columns at once, for array and memmapped inputs."""
    g, n, m = _small_graph(seed=5)
    rng = np.random.default_rng(6)
    xu, xi = rng.normal(size=(n, 7)).astype(np.float32), rng.normal(size=(m, 7)).astype(np.float32)
    full = propagate(g, xu, xi, 2, out_dir=tmp_path / "full")
    np.save(tmp_path / "xu.npy", xu)
    np.save(tmp_path / "xi.npy", xi)
    mu, mi = np.load(tmp_path / "xu.npy", mmap_mode="r"), np.load(tmp_path / "xi.npy", mmap_mode="r")
    three = 16 * (n + m) + 12 * (n + m) * 3  # the working set of 3 columns
    import recgraph.graph.propagation as prop

    seen, columns = [], prop._columns
    monkeypatch.setattr(prop, "_columns", lambda x, c0, c1: seen.append(type(x)) or columns(x, c0, c1))
    for name, (a, b), budget, slices in (("arr3", (xu, xi), three, 3), ("mm3", (mu, mi), three, 3),
                                         ("mm1", (mu, mi), 16 * (n + m) + 12 * (n + m), 7)):
        got = propagate(g, a, b, 2, out_dir=tmp_path / name, memory_budget=budget)
        np.testing.assert_array_equal(np.asarray(got.user), np.asarray(full.user))
        np.testing.assert_array_equal(np.asarray(got.item), np.asarray(full.item))
        assert json.loads((got.path / "meta.json").read_text())["feature_slices"] == slices
        assert sorted(p.name for p in got.path.iterdir()) == ["item.npy", "meta.json", "user.npy"]  # parts gone
    # memmapped inputs reach the column reader as memmaps (read with pread, not through the mapping)
    assert seen.count(np.memmap) == 2 * (3 + 7) and seen.count(np.ndarray) == 2 * 3
    with pytest.warns(ResourceWarning, match="one column at a time"):
        low = propagate(g, xu, xi, 2, out_dir=tmp_path / "low", memory_budget=16)
    np.testing.assert_array_equal(np.asarray(low.user), np.asarray(full.user))


def test_overwrite_and_errors(tmp_path):
    g, n, m = _small_graph()
    xu, xi = np.ones((n, 2)), np.ones((m, 2))
    propagate(g, xu, xi, 1, out_dir=tmp_path / "p")
    res = propagate(g, 2 * xu, 2 * xi, 2, out_dir=tmp_path / "p")
    assert res.n_hops == 2 and np.all(np.asarray(res.user[0]) == 2)
    with pytest.raises(FileExistsError):
        propagate(g, xu, xi, 1, out_dir=tmp_path / "p", overwrite=False)
    with pytest.raises(ValueError, match="features for"):
        propagate(g, np.ones((n + 1, 2)), xi, 1)
    with pytest.raises(ValueError, match="dtype"):
        propagate(g, xu, xi, 1, dtype=np.float64)
    with pytest.raises(ArtifactError, match="meta.json.*not found"):
        PropagatedFeatures.load(tmp_path / "nothing")
    # a damaged folder names the file that is wrong
    np.save(tmp_path / "p" / "user.npy", np.zeros((1, n, 2), np.float32))
    with pytest.raises(ArtifactError, match=r"user.npy: has shape \(1, 13, 2\), meta.json says \(3, 13, 2\)"):
        PropagatedFeatures.load(tmp_path / "p")
    (tmp_path / "p" / "item.npy").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="item.npy: is not a readable .npy"):
        PropagatedFeatures.load(tmp_path / "p")
