"""nn/losses.py: BPR and InfoNCE against hand computations."""

import math

import torch
import torch.nn.functional as F

from recgraph.nn.losses import bpr_loss, info_nce


def test_bpr_loss_by_hand_and_broadcast_over_negatives():
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    want = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.0))) / 2
    torch.testing.assert_close(bpr_loss(pos, neg), torch.tensor(want))
    many = torch.tensor([[1.0, 3.0], [1.0, 1.0]])  # [B, N] negatives against [B] positives
    want2 = (math.log1p(math.exp(-1)) + math.log1p(math.exp(1)) + 2 * math.log1p(math.exp(1))) / 4
    torch.testing.assert_close(bpr_loss(pos, many), torch.tensor(want2))


def test_info_nce_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    lq = torch.tensor([0.0, 1.0])
    logits = q @ p.T / 0.5 - lq
    expected = -torch.log_softmax(logits, 1).diagonal().mean()
    torch.testing.assert_close(info_nce(q, p, 0.5, lq), expected)
    same = torch.tensor([[True, True], [True, True]])  # both columns are the same entity
    torch.testing.assert_close(info_nce(q, p, 0.5, lq, same), torch.tensor(0.0))
    w = torch.tensor([3.0, 1.0])
    rows = -torch.log_softmax(logits, 1).diagonal()
    torch.testing.assert_close(info_nce(q, p, 0.5, lq, weight=w), (rows * w).sum() / 4)


def test_symmetric_cosine_info_nce_is_the_two_way_average_of_normalised_views():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 4, generator=g) * 3, torch.randn(6, 4, generator=g)
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / 0.2
    labels = torch.arange(6)
    want = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    torch.testing.assert_close(info_nce(a, b, 0.2, cosine=True, symmetric=True), want)
    assert info_nce(a, a, 0.2, cosine=True, symmetric=True) < want  # aligned views score better
