"""recgraph: graph learning for recommendation, from interaction logs to served recommendations."""

import os as _os

# OpenMP threads that spin while waiting make torch 50x slower as soon as another process shares
# the cores (measured: MF-BPR epoch on MovieLens-100K 18 s instead of 0.35 s with one busy
# neighbour on 2 cores). Passive waiting costs little on an idle machine. Must be set before torch
# loads its OpenMP runtime; a value the user set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# numba's on-disk cache of compiled kernels (``cache=True``) goes to the user cache dir, not into the
# installed package (``graph/__pycache__``), which may be read-only or shared. Must be set before
# any recgraph module decorates a kernel; a value the user set wins.
if not _os.environ.get("NUMBA_CACHE_DIR"):
    from .config import cache_dir as _cache_dir

    _os.environ["NUMBA_CACHE_DIR"] = str(_cache_dir() / "numba")
    if "numba" in __import__("sys").modules:  # numba read its config already: tell it too
        __import__("numba").config.CACHE_DIR = _os.environ["NUMBA_CACHE_DIR"]

__version__ = "0.1.0"
