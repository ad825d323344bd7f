"""recgraph: graph learning for recommendation, from interaction logs to served recommendations."""

import os as _os

# OpenMP threads that spin while waiting make torch 50x slower as soon as another process shares
# the cores (measured: MF-BPR epoch on MovieLens-100K 18 s instead of 0.35 s with one busy
# neighbour on 2 cores). Passive waiting costs little on an idle machine. Must be set before torch
# loads its OpenMP runtime; a value the user set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
