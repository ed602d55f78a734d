"""Replay baselines: buffer balance, corrupted replay, the VAE, EWC, and their protocols."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurosleep.data import load_dataset, split_stream
from neurosleep.experiments.ann_network import MLP
from neurosleep.replay import REPLAY, Context, corrupt_labels, load_methods
from neurosleep.replay.generative import VAE, GenerativeParams, GenerativeReplay
from neurosleep.spec.mlp import MLPSpec
from tests.test_ann import WAKE, digits_protocol, run_dict, sequential

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]
load_methods()


@pytest.fixture(scope="module")
def stream():
    return split_stream(load_dataset("digits", seed=0))


def context(seed: int = 0) -> Context:
    return Context(10, torch.device("cpu"), torch.Generator().manual_seed(seed))


def tensors(task):
    return torch.as_tensor(task.x_train), torch.as_tensor(task.y_train)


def test_registry_names_every_method():
    assert {"rehearsal", "generative", "ewc"} <= set(REPLAY.names())
    with pytest.raises(KeyError, match="unknown replay method"):
        REPLAY.get("dreamz")


def test_rehearsal_buffer_stays_class_balanced(stream):
    method = REPLAY.get("rehearsal")
    buffer = method.Strategy(method.Params(kind="rehearsal", per_class=5), context())
    for t in stream.tasks[:3]:
        x, y = tensors(t)
        assert buffer.training_set(x, y, t.index)[0] is x  # batch mode leaves the set alone
        buffer.end_task(None, x, y, t.index)
    assert np.bincount(buffer.y.numpy()).tolist() == [5] * 6
    xb, yb = buffer.replay_batch(64, 3)
    assert xb.shape == (64, 64) and set(yb.tolist()) <= set(range(6))
    # every replayed sample is a stored training image of its class
    x0, y0 = tensors(stream.tasks[0])
    stored = {tuple(row.tolist()): int(c) for row, c in zip(x0, y0, strict=True)}
    for row, c in zip(xb, yb, strict=True):
        if int(c) < 2:
            assert stored[tuple(row.tolist())] == int(c)


def test_rehearsal_fraction_and_concat(stream):
    method = REPLAY.get("rehearsal")
    params = method.Params(kind="rehearsal", fraction=0.1, mode="concat")
    buffer = method.Strategy(params, context())
    x, y = tensors(stream.tasks[0])
    buffer.end_task(None, x, y, 0)
    per_class = np.bincount(buffer.y.numpy())
    expected = [round(0.1 * int((y == c).sum())) for c in (0, 1)]
    assert per_class.tolist() == expected
    x1, y1 = tensors(stream.tasks[1])
    xc, yc = buffer.training_set(x1, y1, 1)
    assert len(yc) == len(y1) + sum(expected) and set(yc.tolist()) == {0, 1, 2, 3}
    assert buffer.replay_batch(32, 1) is None
    with pytest.raises(ValueError, match="exactly one"):
        method.Params(kind="rehearsal", fraction=0.1, per_class=3)


def test_corrupted_labels_are_wrong_in_the_given_fraction():
    y = torch.randint(0, 10, (4000,), generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    assert torch.equal(corrupt_labels(y, 0.0, 10, g), y)
    every = corrupt_labels(y, 1.0, 10, g)
    assert (every != y).all() and every.max() < 10 and every.min() >= 0
    some = corrupt_labels(y, 0.3, 10, g)
    assert float((some != y).double().mean()) == pytest.approx(0.3, abs=0.03)


def test_vae_reconstructs_better_than_the_mean_image(stream):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x = torch.cat([tensors(t)[0] for t in stream.tasks])
    vae = VAE(64, [64], 8)
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
    with torch.no_grad():
        before = float(vae.loss(x, g))
    for _ in range(400):
        idx = torch.randint(0, x.shape[0], (64,), generator=g)
        loss = vae.loss(x[idx], g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x_test = torch.as_tensor(np.concatenate([t.x_test for t in stream.tasks]))
    with torch.no_grad():
        recon = vae.decode(vae.mu(vae.encoder(x_test)))
    mse = float((recon - x_test).pow(2).mean())
    chance = float((x.mean(0) - x_test).pow(2).mean())
    assert mse < 0.6 * chance, (mse, chance)
    with torch.no_grad():
        assert float(vae.loss(x, g)) < 0.7 * before
    assert vae.sample(5, g, "cpu").shape == (5, 64)


def test_generative_replay_labels_only_seen_classes(stream):
    spec = MLPSpec(kind="mlp", name="m", layers=[64, 32, 10])
    net = MLP(spec, torch.Generator().manual_seed(0))
    params = GenerativeParams(kind="generative", hidden=[32], latent=4, iterations=20)
    strategy = GenerativeReplay(params, context())
    assert strategy.replay_batch(16, 0) is None
    x, y = tensors(stream.tasks[0])
    strategy.end_task(net, x, y, 0)
    xr, yr = strategy.replay_batch(200, 1)
    assert xr.shape == (200, 64) and set(yr.tolist()) <= {0, 1}
    soft = GenerativeReplay(params.model_copy(update={"distill": True}), context())
    soft.end_task(net, x, y, 0)
    _, probabilities = soft.replay_batch(10, 1)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(10))
    assert float(probabilities[:, 2:].abs().max()) == 0.0


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_away(stream):
    spec = MLPSpec(kind="mlp", name="m", layers=[64, 16, 10])
    net = MLP(spec, torch.Generator().manual_seed(0))
    method = REPLAY.get("ewc")
    ewc = method.Strategy(method.Params(kind="ewc", strength=100.0, fisher_samples=30), context())
    assert ewc.penalty(net) is None
    x, y = tensors(stream.tasks[0])
    ewc.end_task(net, x, y, 0)
    fisher, _ = ewc.anchors[0]
    assert all((f >= 0).all() for f in fisher) and sum(float(f.sum()) for f in fisher) > 0
    assert float(ewc.penalty(net)) == 0.0
    with torch.no_grad():
        net.linears[0].weight.add_(0.1)
    assert float(ewc.penalty(net)) > 0.0


def test_replay_protocols_beat_finetuning_on_digits(write_protocol, tmp_path):
    model = {"kind": "mlp", "name": "m", "layers": [64, 64, 10]}
    wake = dict(WAKE, optimizer="adam", lr=0.003, epochs=None, iterations=150)
    wake.pop("epochs")
    acc = {}
    for name, replay in [
        ("finetune", None),
        ("rehearsal", {"kind": "rehearsal", "per_class": 10}),
        ("generative", {"kind": "generative", "hidden": [64], "latent": 10, "iterations": 300}),
        ("nightmare", {"kind": "rehearsal", "per_class": 10, "corrupt_labels": 1.0}),
    ]:
        phase = wake | ({"replay": replay} if replay else {})
        R = run_dict(
            write_protocol, digits_protocol(tmp_path, sequential(phase), model=model, name=name)
        )
        acc[name] = R[-1].mean()
    assert acc["finetune"] < 0.25
    assert acc["rehearsal"] > acc["finetune"] + 0.4
    assert acc["generative"] > acc["finetune"] + 0.15
    assert acc["nightmare"] < acc["rehearsal"] - 0.2  # wrong replayed labels hurt
