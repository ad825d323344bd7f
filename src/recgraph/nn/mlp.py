"""MLP tower with Dice / ReLU / PReLU activations, ending in one logit (or ``out_dim``)."""

from __future__ import annotations

import torch
from torch import nn

from .dice import Dice


class MLP(nn.Module):
    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (200, 80), out_dim: int = 1, *,
                 activation: str = "dice", dropout: float = 0.0, dice_batch_stats_at_eval: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers.append(nn.Linear(d, h))
            if activation == "dice":
                layers.append(Dice(h, batch_stats_at_eval=dice_batch_stats_at_eval))
            elif activation == "relu":
                layers.append(nn.ReLU())
            elif activation == "prelu":
                layers.append(nn.PReLU(h))
            else:
                raise ValueError(f"unknown activation {activation!r}: dice, relu, prelu")
            if dropout:
                layers.append(nn.Dropout(dropout))
            d = h
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
