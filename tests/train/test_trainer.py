import numpy as np
import pytest
import torch

from recgraph.train import checkpoint as ckpt
from recgraph.train.trainer import Trainer


class TinyRegressor(torch.nn.Module):
    """y = x·w + noise; dropout makes the torch RNG matter for determinism."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(5, 1)
        self.drop = torch.nn.Dropout(0.2)
        g = np.random.default_rng(0)
        self.x = torch.from_numpy(g.normal(size=(256, 5)).astype(np.float32))
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1

    def train_batches(self, epoch, rng):
        order = torch.from_numpy(rng.permutation(256))
        for s in range(0, 256, 32):
            idx = order[s:s + 32]
            yield self.x[idx], self.y[idx]

    def loss(self, batch):
        x, y = batch
        return ((self.lin(self.drop(x)).squeeze(-1) - y) ** 2).mean()


def validate(model):
    with torch.no_grad():
        return {"mse": float(((model.lin(model.x).squeeze(-1) - model.y) ** 2).mean())}


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_training_is_deterministic_and_learns():
    torch.manual_seed(0)
    a = TinyRegressor()
    torch.manual_seed(0)
    b = TinyRegressor()
    ra = Trainer(max_epochs=5, lr=0.05, monitor="mse", mode="min", progress=False, device="cpu").fit(a, validate=validate)
    Trainer(max_epochs=5, lr=0.05, monitor="mse", mode="min", progress=False, device="cpu").fit(b, validate=validate)
    assert torch.equal(weights(a), weights(b))
    assert ra.history[-1]["valid_mse"] < ra.history[0]["valid_mse"] / 2


def test_resumed_run_matches_uninterrupted(tmp_path):
    torch.manual_seed(0)
    full = TinyRegressor()
    Trainer(max_epochs=6, lr=0.05, monitor=None, patience=None, progress=False, device="cpu",
            checkpoint_dir=tmp_path / "full").fit(full)
    torch.manual_seed(0)
    part = TinyRegressor()
    Trainer(max_epochs=3, lr=0.05, monitor=None, patience=None, progress=False, device="cpu",
            checkpoint_dir=tmp_path / "part").fit(part)
    torch.manual_seed(123)  # a fresh process would start from other weights: resume must restore them
    resumed = TinyRegressor()
    res = Trainer(max_epochs=6, lr=0.05, monitor=None, patience=None, progress=False, device="cpu",
                  checkpoint_dir=tmp_path / "part", resume=True).fit(resumed)
    assert [h["epoch"] for h in res.history] == list(range(6))
    assert torch.equal(weights(full), weights(resumed))


def test_early_stopping_restores_best_epoch():
    torch.manual_seed(0)
    m = TinyRegressor()
    calls = iter([5.0, 3.0, 4.0, 4.5, 6.0, 1.0])  # best at epoch 1, then patience 3 runs out at epoch 4
    snapshots = []

    def fake_validate(model):
        snapshots.append(weights(model).clone())
        return {"loss": next(calls)}

    res = Trainer(max_epochs=6, lr=0.05, monitor="loss", mode="min", patience=3, progress=False,
                  device="cpu").fit(m, validate=fake_validate)
    assert res.stopped_early and res.epochs_run == 5 and res.best_epoch == 1
    assert torch.equal(weights(m), snapshots[1])


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    torch.manual_seed(0)
    m = TinyRegressor()
    ckpt.save_checkpoint(tmp_path, m, None, {"epoch": 0})
    before = weights(m).clone()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)

    import recgraph.io.atomic as atomic

    def exploding_fsync(fd):  # the temp file holds partial bytes when the disk fills up
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", exploding_fsync)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path, m, None, {"epoch": 1})
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp")), "temp file left behind"
    fresh = TinyRegressor()
    meta = ckpt.load_checkpoint(tmp_path, fresh)
    assert meta["epoch"] == 0 and torch.equal(weights(fresh), before)


def test_cosine_schedule_sets_each_epochs_lr():
    tr = Trainer(max_epochs=4, lr=0.2, lr_schedule="cosine", progress=False, device="cpu", monitor=None)
    expected = [0.2 * 0.5 * (1 + np.cos(np.pi * e / 4)) for e in range(4)]  # 0.2, 0.1707, 0.1, 0.0293
    assert [tr.lr_at(e) for e in range(4)] == pytest.approx(expected)
    torch.manual_seed(0)
    m = TinyRegressor()
    res = tr.fit(m)
    assert [h["lr"] for h in res.history] == pytest.approx(expected)
    assert Trainer(max_epochs=4, lr=0.2, progress=False, device="cpu").lr_at(3) == 0.2  # constant


class ConstantGradient(torch.nn.Module):
    """loss = w · c: every SGD step moves w by exactly −lr · c."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.c = torch.tensor([1.0, -2.0, 0.5])

    def train_batches(self, epoch, rng):
        yield torch.zeros(1)

    def loss(self, batch):
        return (self.w * self.c).sum()


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_scheduled_lr_reaches_the_optimizer(schedule, tmp_path):
    tr = Trainer(max_epochs=5, lr=0.1, optimizer="sgd", lr_schedule=schedule, monitor=None, patience=None,
                 progress=False, device="cpu")
    m = ConstantGradient()
    tr.fit(m)
    total = sum(tr.lr_at(e) for e in range(5))  # cosine: 0.1 · ½ Σ_e (1 + cos(πe/5)) = 0.1 · ½ · (5 + 1)
    assert total == pytest.approx(0.5 if schedule == "constant" else 0.3)
    torch.testing.assert_close(m.w.detach(), -total * m.c)
    # killed in epoch 2 and resumed: the same schedule, the same weights
    class Killed(ConstantGradient):
        def train_batches(self, epoch, rng):
            if epoch == 2:
                raise KeyboardInterrupt
            yield torch.zeros(1)

    with pytest.raises(KeyboardInterrupt):
        Trainer(max_epochs=5, lr=0.1, optimizer="sgd", lr_schedule=schedule, monitor=None, patience=None,
                progress=False, device="cpu", checkpoint_dir=tmp_path).fit(Killed())
    resumed = ConstantGradient()
    Trainer(max_epochs=5, lr=0.1, optimizer="sgd", lr_schedule=schedule, monitor=None, patience=None,
            progress=False, device="cpu", checkpoint_dir=tmp_path, resume=True).fit(resumed)
    torch.testing.assert_close(resumed.w.detach(), m.w.detach())


def test_unknown_lr_schedule_is_an_error():
    with pytest.raises(ValueError, match="lr_schedule"):
        Trainer(lr_schedule="linear")


def test_checkpoint_every_writes_last_on_its_epochs_and_resumes_exactly(tmp_path, monkeypatch):
    saved = []
    real_save = ckpt.save_checkpoint

    def spy(path, model, opt, meta, *a, **kw):
        if path.name == "last":
            saved.append(meta["epoch"])
        return real_save(path, model, opt, meta, *a, **kw)

    monkeypatch.setattr("recgraph.train.trainer.save_checkpoint", spy)
    torch.manual_seed(0)
    full = TinyRegressor()
    Trainer(max_epochs=7, lr=0.05, monitor=None, patience=None, progress=False, device="cpu",
            checkpoint_dir=tmp_path / "full", checkpoint_every=3).fit(full)
    assert saved == [2, 5, 6]  # every 3rd epoch and the final one

    class KilledInEpoch5(TinyRegressor):
        def train_batches(self, epoch, rng):
            if epoch == 5:
                raise KeyboardInterrupt
            yield from super().train_batches(epoch, rng)

    saved.clear()
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        Trainer(max_epochs=7, lr=0.05, monitor=None, patience=None, progress=False, device="cpu",
                checkpoint_dir=tmp_path / "part", checkpoint_every=3).fit(KilledInEpoch5())
    assert saved == [2]  # epochs 3 and 4 were trained but not written: the resume repeats them
    torch.manual_seed(123)
    resumed = TinyRegressor()
    res = Trainer(max_epochs=7, lr=0.05, monitor=None, patience=None, progress=False, device="cpu",
                  checkpoint_dir=tmp_path / "part", checkpoint_every=3, resume=True).fit(resumed)
    assert [h["epoch"] for h in res.history] == list(range(7))
    assert torch.equal(weights(full), weights(resumed))


def test_checkpoint_every_must_be_positive():
    with pytest.raises(ValueError, match="checkpoint_every"):
        Trainer(checkpoint_every=0)
