"""DCCL ranker parts: factored DIN attention, the MoMoDistill KL, the vectorised device trainer (against
one device training alone) and the ONNX artifact (against PyTorch), on real MovieLens-100K samples."""

import numpy as np
import pytest
import torch

from recgraph.models.ondevice.dccl import DCCLRanker, din_attention_factored
from recgraph.models.ondevice.device import device_step_time, train_device_vectors
from recgraph.models.ondevice.momodistill import bernoulli_kl
from recgraph.nn.attention import DINAttention


@pytest.fixture(scope="module")
def small():
    """The first 60 MovieLens users' leave-last-out data and a briefly trained cloud model."""
    from tests.conftest import _require_ml100k

    _require_ml100k()
    from recgraph.data.datasets import load_dataset
    from recgraph.data.sequence_ctr import build_sequence_ctr

    inter = load_dataset("movielens-100k").interactions
    inter = inter.select(np.flatnonzero(inter.user < 60))
    d = build_sequence_ctr(inter, neg_ratio=1, recent=6, seed=0)
    torch.manual_seed(0)
    m = DCCLRanker(d.n_users, d.n_items, 1, d.n_item_macros, dim=8, hidden=(16, 8), vec_dim=4, patch_rank=3,
                   profile_size=d.profile_size, n_profile_fields=len(d.profile_fields))
    m.set_profile(torch.from_numpy(d.profile))
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    m.train()
    for a in range(0, len(d.train), 256):
        loss = m.loss(d.batch(np.arange(a, min(a + 256, len(d.train)))))
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    return d, m


def test_factored_attention_equals_din_attention():
    torch.manual_seed(0)
    att = DINAttention(6)
    q, k = torch.randn(7, 6), torch.randn(7, 5, 6)
    mask = (torch.rand(7, 5) > 0.3).float()
    assert torch.allclose(att(q, k, mask), din_attention_factored(att, q, k, mask), atol=1e-6)
    assert torch.allclose(att(q, k[:1], mask[:1]), din_attention_factored(att, q, k[:1], mask[:1]), atol=1e-6)


def test_bernoulli_kl():
    p = torch.tensor([0.1, 0.5, 0.9, 0.3])
    z = torch.tensor([0.3, -1.0, 2.0, float(np.log(0.3 / 0.7))])
    q = torch.sigmoid(z)
    ref = p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()
    assert torch.allclose(bernoulli_kl(p, z), ref, atol=1e-6)
    assert abs(float(bernoulli_kl(p[3:], z[3:]))) < 1e-6


def test_unpatched_equals_zero_vector(small):
    d, m = small
    b = d.batch(np.arange(100))
    m.patched = False
    cloud = m(b)
    m.patched = True
    assert torch.allclose(cloud, m(b), atol=1e-6)  # θ̂ = 0, untrained basis: the patch is the identity
    m.patched = False


def test_vectorised_devices_equal_one_device_alone(small):
    d, m = small
    users = np.zeros(d.n_users, bool)
    users[[3, 7, 11]] = True
    with torch.no_grad():
        m.user_vec.weight.zero_()
    res = train_device_vectors(m, d, users, steps=4, lr=0.05, l2=1e-3)
    for u in (3, 7):
        with torch.no_grad():
            m.user_vec.weight.zero_()
        alone = device_step_time(m, d, u, steps=4, lr=0.05, l2=1e-3)["theta"][0]
        assert torch.allclose(res.theta[u], alone, atol=1e-5), (res.theta[u], alone)
    assert res.theta[3].abs().sum() > 0 and res.theta[0].abs().sum() == 0  # non-device users never move
    with torch.no_grad():
        m.user_vec.weight.zero_()


def test_device_training_lowers_each_users_loss(small):
    d, m = small
    users = d.train_positives > 0
    with torch.no_grad():
        m.user_vec.weight.zero_()

    def per_user_loss():
        m.patched = True
        with torch.no_grad():
            z = m(d.batch(np.arange(len(d.train))))
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.from_numpy(d.train.label), reduction="none")
        return np.bincount(d.train.user, weights=bce.numpy(), minlength=d.n_users) / np.maximum(
            np.bincount(d.train.user, minlength=d.n_users), 1)

    before = per_user_loss()
    train_device_vectors(m, d, users, steps=20, lr=0.05, l2=0.0)
    after = per_user_loss()
    assert (after[users] < before[users]).mean() > 0.9
    with torch.no_grad():
        m.user_vec.weight.zero_()
    m.patched = False


def test_onnx_matches_pytorch(small, tmp_path):
    pytest.importorskip("onnxruntime")
    from recgraph.models.ondevice.export import export_onnx, onnx_session, scorer_inputs

    d, m = small
    torch.manual_seed(3)
    with torch.no_grad():  # exercise every path: non-zero vectors, encoder, shared patch column
        m.user_vec.weight.normal_()
        m.encoder.w1.weight.normal_(std=0.3)
        for p in m.patches:
            p.up.normal_(std=0.3)
    m.patched = True
    rows = d.test
    r = 5
    items = np.concatenate([rows.pos[r:r + 1], rows.neg[r]])
    u = int(rows.user[r])
    inputs = scorer_inputs(m, items, d.item_macro[items], rows.recent[r], m.user_vec.weight[u].numpy(), d.profile[u])
    size = export_onnx(m, tmp_path / "m.onnx", inputs)
    assert size == (tmp_path / "m.onnx").stat().st_size > 0
    sess = onnx_session(tmp_path / "m.onnx")
    ref = m(d.candidate_batch(rows, np.array([r]), items[None, :])).detach().numpy()
    assert np.abs(sess.run(None, inputs)[0] - ref).max() < 1e-5
    # another user and a different number of candidates through the same graph
    r2 = 9
    items2 = rows.neg[r2][:17]
    u2 = int(rows.user[r2])
    in2 = scorer_inputs(m, items2, d.item_macro[items2], rows.recent[r2], m.user_vec.weight[u2].numpy(), d.profile[u2])
    ref2 = m(d.candidate_batch(rows, np.array([r2]), items2[None, :])).detach().numpy()
    assert np.abs(sess.run(None, in2)[0] - ref2).max() < 1e-5
    with torch.no_grad():
        m.user_vec.weight.zero_()
    m.patched = False
