"""numba's on-disk kernel cache goes to the user cache dir, never into the installed package."""

import os
import subprocess
import sys
from pathlib import Path

import recgraph

PKG = Path(recgraph.__file__).resolve().parent


def _nb_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")} if folder.exists() else set()


def test_numba_cache_goes_to_user_cache_dir(tmp_path):
    before = _nb_files(PKG)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(RECGRAPH_CACHE_DIR=str(tmp_path / "cache"), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(PKG.parent), env.get("PYTHONPATH", "")]))
    code = ("import numpy as np, os; from recgraph.graph.bipartite import _indptr_of; "
            "assert _indptr_of(np.array([0, 1, 1]), 2).tolist() == [0, 1, 3]; "
            "print(os.environ['NUMBA_CACHE_DIR'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path / "cache" / "numba")
    assert _nb_files(tmp_path / "cache" / "numba"), "no kernel was cached in the user cache dir"
    assert _nb_files(PKG) == before, "numba wrote cache files into the package directory"


def test_user_setting_wins(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "mine"),
               PYTHONPATH=os.pathsep.join([str(PKG.parent), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", "import recgraph, os; print(os.environ['NUMBA_CACHE_DIR'])"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == str(tmp_path / "mine")
