"""Typed model batches for ranking (CTR, multi-task) models.

A :class:`CTRBatch` is what :meth:`recgraph.graph.features.CTRData.batch` / ``request`` hand a ranking
model: two :class:`NodeSide` s (the user and the item of each sample) and the labels. Every feature
group is ``None`` unless the model's ``needs`` asked for it, so a model touching a field it did not
ask for fails loudly instead of reading a stale key.

Shapes: ``B`` samples; a request (one user against ``B`` candidates) has a user side of leading
size 1, which models broadcast (:func:`recgraph.models.ranking.base.broadcast_rows`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

__all__ = ["DynamicNeighborhood", "NodeSide", "CTRBatch"]


def _move(x, device, float_dtype):
    if x is None:
        return None
    if dataclasses.is_dataclass(x):
        return x.to(device, float_dtype)
    if float_dtype is not None and x.is_floating_point():
        return x.to(device, float_dtype)
    return x.to(device)


class _Movable:
    def to(self, device: torch.device | str | None = None, float_dtype: torch.dtype | None = None):
        """Copy with every tensor on ``device`` (floating tensors cast to ``float_dtype`` if given)."""
        return dataclasses.replace(self, **{f.name: _move(getattr(self, f.name), device, float_dtype)
                                            for f in dataclasses.fields(self)
                                            if f.name != "extra" and f.metadata.get("tensor", True)})


@dataclass(frozen=True, eq=False)
class DynamicNeighborhood:
    """Time-respecting k-depth neighbourhood of each node of a side (DSGL), from
    :func:`recgraph.graph.dynamic.sample_dynamic`: ``ids[h]`` ``[B, F1, ..., F(h+1)]`` int64 (hop 1
    = the other side's nodes, hop 2 = this side's, ...; padding = ``pads[h]``, the size of that
    hop's id space), most recent first, every edge strictly before the sample's time; ``gaps[h]``
    the same shape, int64 ``t - edge time`` (> 0; 0 at padding)."""

    ids: tuple[torch.Tensor, ...]
    gaps: tuple[torch.Tensor, ...]
    pads: tuple[int, ...]

    def to(self, device=None, float_dtype=None) -> "DynamicNeighborhood":
        return DynamicNeighborhood(tuple(x.to(device) for x in self.ids), tuple(x.to(device) for x in self.gaps),
                                   self.pads)

    @property
    def depth(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, eq=False)
class NodeSide(_Movable):
    """Features of one side (user or item) of a batch, as of each sample's feature snapshot.

    ``hop1`` slots are macro ids of the node's 1-hop neighbours (item macros for a user) with their
    counts, ``hop2`` the 2-hop macros (user macros for a user); slot padding id = number of macros of
    that kind, count 0. ``recent`` lists the latest neighbours (most recent first; pad = size of the
    other side's id space) and ``recent_time`` their times (-1 pad). ``nb`` / ``nb2`` are sampled
    1- and 2-hop neighbours (pad = size of that hop's id space). ``dynamic`` is the node's
    time-respecting neighbourhood as of each sample's own time (:class:`DynamicNeighborhood`)."""

    ids: torch.Tensor                          # [B] int64 dense ids
    macro: torch.Tensor                        # [B] int64 macro id of the node
    hop1_ids: torch.Tensor | None = None       # [B, S1] int64
    hop1_cnt: torch.Tensor | None = None       # [B, S1] float32
    hop2_ids: torch.Tensor | None = None       # [B, S2] int64
    hop2_cnt: torch.Tensor | None = None       # [B, S2] float32
    recent: torch.Tensor | None = None         # [B, R] int64
    recent_time: torch.Tensor | None = None    # [B, R] int64
    nb: torch.Tensor | None = None             # [B, F1] int64
    nb2: torch.Tensor | None = None            # [B, F1, F2] int64
    dynamic: DynamicNeighborhood | None = None  # time-respecting k-hop neighbourhood ("dynamic")

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True, eq=False)
class CTRBatch(_Movable):
    """One batch of ``B`` (user, item, time) samples with their label(s)."""

    user: NodeSide
    item: NodeSide
    label: torch.Tensor                        # [B] float32 0/1 (zeros in a request)
    time: torch.Tensor                         # [B] int64 sample time
    labels: torch.Tensor | None = None         # [B, T] float32 per-task labels (multi-task samples)

    def __len__(self) -> int:
        return int(self.item.ids.shape[0])
