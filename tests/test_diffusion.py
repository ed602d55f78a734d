"""Diffusion dreams: the forward process against its closed form, DDIM against DDPM ancestral
sampling on a 2-D Gaussian mixture, and the replay source in a protocol run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neurosleep.analysis.dreams import manifold_precision_recall
from neurosleep.data import load_dataset, split_stream
from neurosleep.experiments.ann_network import MLP
from neurosleep.io.runfile import open_run
from neurosleep.replay import REPLAY, Context, load_methods
from neurosleep.replay.diffusion import (
    Denoiser,
    DiffusionParams,
    DiffusionReplay,
    Schedule,
    cosine_betas,
    ddim_sample,
    ddpm_sample,
    diffusion_loss,
    linear_betas,
)
from neurosleep.spec.mlp import MLPSpec
from tests.test_ann import WAKE, digits_protocol, run_dict, sequential

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]
load_methods()

MEANS = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
WEIGHTS = torch.tensor([0.5, 0.3, 0.2])
STD = 0.3


def mixture(n: int, g: torch.Generator) -> torch.Tensor:
    """n points of the 2-D mixture: modes MEANS with WEIGHTS, isotropic std STD."""
    k = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    return MEANS[k] + STD * torch.randn((n, 2), generator=g)


def mode_weights(x: torch.Tensor) -> torch.Tensor:
    """Share of points nearest to each mode."""
    return torch.bincount(torch.cdist(x, MEANS).argmin(1), minlength=3) / x.shape[0]


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Székely's energy distance 2E|X−Y| − E|X−X'| − E|Y−Y'| (V-statistic; 0 iff equal laws)."""
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


class ExactMixtureNoise(torch.nn.Module):
    """The optimal ε(x_t, t) of the mixture: −√(1 − ᾱ_t) ∇log q_t(x_t), where q_t is the
    mixture with means √ᾱ_t μ_k and variance ᾱ_t σ² + 1 − ᾱ_t."""

    prediction = "eps"

    def __init__(self, schedule: Schedule) -> None:
        super().__init__()
        self.alpha_bar = schedule.alpha_bar

    def forward(self, x, t, y=None):
        a = self.alpha_bar[t].unsqueeze(1)
        var = a * STD**2 + 1 - a
        centred = x.unsqueeze(1) - a.sqrt().unsqueeze(1) * MEANS  # [n × modes × 2]
        log_r = torch.log(WEIGHTS) - centred.pow(2).sum(2) / (2 * var)
        r = torch.softmax(log_r, dim=1).unsqueeze(2)
        score = -(r * centred).sum(1) / var
        return -(1 - a).sqrt() * score


# ------------------------------------------------------------------ forward process
@pytest.mark.parametrize("betas", [linear_betas(50, 1e-3, 0.2), cosine_betas(50)])
def test_forward_noising_matches_its_closed_form(betas):
    """Running the one-step chain x_t = √(1−β_t) x_{t−1} + √β_t ε from x_0 gives the closed form
    q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I), as does Schedule.noise; tolerance 5 standard
    errors of the mean (√(var/n)) and of the variance (var·√(2/(n−1))), n = 20000."""
    schedule = Schedule.from_betas(betas)
    g = torch.Generator().manual_seed(0)
    n = 20_000
    x0 = torch.tensor([-1.0, 0.0, 0.5, 1.0]).expand(n, 4)
    x = x0.clone()
    for t in range(schedule.steps):
        x = (1 - betas[t]).sqrt().float() * x + betas[t].sqrt().float() * torch.randn(
            x.shape, generator=g
        )
        if t not in (0, 9, 24, 49):
            continue
        a = float(schedule.alpha_bar[t])
        closed = schedule.noise(x0, torch.full((n,), t), torch.randn(x0.shape, generator=g))
        for sample in (x, closed):
            var = 1 - a
            mean_tol = 5 * math.sqrt(var / n)
            torch.testing.assert_close(sample.mean(0), math.sqrt(a) * x0[0], atol=mean_tol, rtol=0)
            var_tol = 5 * var * math.sqrt(2 / (n - 1))
            torch.testing.assert_close(sample.var(0), torch.full((4,), var), atol=var_tol, rtol=0)


def test_schedules_follow_their_formulas():
    linear = linear_betas(1000, 1e-4, 0.02)
    assert float(linear[0]) == pytest.approx(1e-4) and float(linear[-1]) == pytest.approx(0.02)
    cosine = Schedule.from_betas(cosine_betas(1000))
    f = [math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2 for t in (0, 1, 500)]
    assert float(cosine.alpha_bar[0]) == pytest.approx(f[1] / f[0], rel=1e-5)
    assert float(cosine.alpha_bar[499]) == pytest.approx(f[2] / f[0], rel=1e-5)
    assert float(cosine_betas(1000).max()) == pytest.approx(0.999)  # capped at the end


# ------------------------------------------------------------------ samplers
def test_samplers_with_the_exact_noise_reproduce_the_mixture():
    """With the mixture's exact ε, DDPM ancestral sampling (T = 100) and DDIM (100 steps, η = 0)
    give its mode weights within 4 standard errors (√(w(1−w)/n), n = 4000) and an energy
    distance to fresh data below 0.01 (two data samples: ≈ 0.001; weights off by 0.1: ≈ 0.04)."""
    schedule = Schedule.from_betas(linear_betas(100, 1e-3, 0.2))
    exact = ExactMixtureNoise(schedule)
    g = torch.Generator().manual_seed(0)
    n = 4000
    data = mixture(n, g)
    for x in (
        ddpm_sample(exact, schedule, torch.randn((n, 2), generator=g), g),
        ddim_sample(exact, schedule, torch.randn((n, 2), generator=g), 100, g),
    ):
        tol = 4 * torch.sqrt(WEIGHTS * (1 - WEIGHTS) / n)
        assert ((mode_weights(x) - WEIGHTS).abs() < tol).all(), mode_weights(x)
        assert energy_distance(x, data) < 0.01


def test_ddim_with_many_steps_and_ddpm_agree_on_a_trained_denoiser():
    """A small denoiser trained briefly (800 steps, learning rate decaying linearly to 0; seed 0
    — the same bounds held for seeds 1–3) on the mixture: DDIM with all 100
    steps (η = 0, the probability-flow ODE) and DDPM ancestral sampling give mode weights within
    0.05 of each other (3 standard errors of a difference of two shares, n = 2000) and an energy
    distance below 0.02 between them (two data samples ≈ 0.001; the data against a mixture whose
    weights are off by 0.1 ≈ 0.04), and both resemble the data (every weight within 0.12)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    schedule = Schedule.from_betas(linear_betas(100, 1e-3, 0.2))
    model = Denoiser(2, [64, 64], 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    decay = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0, 800)
    for _ in range(800):
        loss = diffusion_loss(model, schedule, mixture(256, g), g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        decay.step()
    n = 2000
    ddim = ddim_sample(model, schedule, torch.randn((n, 2), generator=g), 100, g)
    ddpm = ddpm_sample(model, schedule, torch.randn((n, 2), generator=g), g)
    assert ((mode_weights(ddim) - mode_weights(ddpm)).abs() < 0.05).all()
    assert energy_distance(ddim, ddpm) < 0.02
    for x in (ddim, ddpm):
        assert ((mode_weights(x) - WEIGHTS).abs() < 0.12).all(), mode_weights(x)


def test_trajectory_runs_from_noise_to_the_sample():
    schedule = Schedule.from_betas(cosine_betas(200))
    model = ExactMixtureNoise(schedule)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn((3, 2), generator=g)
    trajectory: list[torch.Tensor] = []
    x = ddim_sample(model, schedule, noise, 10, g, trajectory=trajectory)
    assert len(trajectory) == 11
    torch.testing.assert_close(trajectory[0], noise[0])
    torch.testing.assert_close(trajectory[-1], x[0])


# ------------------------------------------------------------------ replay source
TINY_DIFFUSION = {
    "kind": "diffusion",
    "steps": 100,
    "hidden": [64],
    "embedding": 16,
    "iterations": 30,
    "sample_steps": 5,
    "dreams": 100,
    "record_dreams": 20,
}


@pytest.fixture(scope="module")
def stream():
    return split_stream(load_dataset("digits", seed=0))


def test_dreams_are_images_labelled_by_seen_classes(stream):
    net = MLP(MLPSpec(kind="mlp", name="m", layers=[64, 32, 10]), torch.Generator().manual_seed(0))
    context = Context(10, torch.device("cpu"), torch.Generator().manual_seed(0))
    for conditional in (False, True):
        params = DiffusionParams(**TINY_DIFFUSION | {"conditional": conditional})
        strategy = DiffusionReplay(params, context)
        assert strategy.replay_batch(16, 0) is None
        for task in stream.tasks[:2]:
            x, y = torch.as_tensor(task.x_train), torch.as_tensor(task.y_train)
            strategy.end_task(net, x, y, task.index)
        dreams, labels = strategy.pool
        assert dreams.shape == (100, 64) and 0 <= float(dreams.min()) <= float(dreams.max()) <= 1
        assert set(labels.tolist()) <= {0, 1, 2, 3}
        if conditional:  # generated for each seen class in turn
            assert np.bincount(labels.numpy()).tolist() == [25, 25, 25, 25]
        xr, yr = strategy.replay_batch(50, 2)
        assert xr.shape == (50, 64) and set(yr.tolist()) <= {0, 1, 2, 3}
    # nightmares: Gaussian noise of std corrupt_noise on every replayed pixel, clipped to [0, 1]
    for sigma in (0.0, 0.1):
        noisy = DiffusionReplay(params.model_copy(update={"corrupt_noise": sigma}), context)
        noisy.pool = (torch.full((10, 64), 0.5), torch.arange(10) % 4)
        xn, _ = noisy.replay_batch(500, 2)
        assert float(xn.mean()) == pytest.approx(0.5, abs=0.002)
        assert float(xn.std()) == pytest.approx(sigma, abs=0.002)  # SE of the std ≈ 0.0004


def test_parameters_are_checked():
    method = REPLAY.get("diffusion")
    with pytest.raises(ValueError, match="sample_steps 50 > steps 20"):
        method.Params(kind="diffusion", steps=20, sample_steps=50)
    with pytest.raises(ValueError, match="record_dreams 300 > dreams 100"):
        method.Params(kind="diffusion", dreams=100, record_dreams=300)
    with pytest.raises(ValueError):
        method.Params(kind="diffusion", schedule="quadratic")


def test_protocol_run_records_dreams_and_beats_finetuning(write_protocol, tmp_path):
    """Split digits with a tiny denoiser: the run file holds, per wake phase, the recorded dreams
    [record_dreams × 64] in [0, 1], their labels (classes seen so far), the first dream's
    trajectory [sample_steps + 1 × 64] and the loss scalar; replay beats fine-tuning."""
    model = {"kind": "mlp", "name": "m", "layers": [64, 64, 10]}
    wake = {k: v for k, v in WAKE.items() if k != "epochs"}
    wake |= {"optimizer": "adam", "lr": 0.003, "iterations": 150}
    replay = TINY_DIFFUSION | {"iterations": 150, "hidden": [128], "dreams": 256}
    acc = {}
    for name, phase in [("finetune", wake), ("diffusion", wake | {"replay": replay})]:
        content = digits_protocol(tmp_path, sequential(phase), model=model, name=name)
        acc[name] = run_dict(write_protocol, content)[-1].mean()
    assert acc["diffusion"] > acc["finetune"] + 0.5, acc  # 0.917 against 0.194
    with open_run(tmp_path / "diffusion_seed1.h5") as run:
        wakes = [phase.index for phase in run.phases() if phase.kind == "wake"]
        scalars = run.scalars()
        for task, phase in enumerate(wakes):
            arrays = run.arrays(f"replay/{phase}")
            assert arrays["dreams"].shape == (20, 64)
            assert 0 <= arrays["dreams"].min() and arrays["dreams"].max() <= 1
            assert set(arrays["dream_labels"].tolist()) <= set(range(2 * task + 2))
            assert arrays["trajectory"].shape == (6, 64)
            np.testing.assert_array_equal(arrays["trajectory"][-1], arrays["dreams"][0])
            loss = [v for p, name, v, _ in scalars if (p, name) == (phase, "diffusion_loss_last")]
            assert len(loss) == 1 and 0 < loss[0] < 2


def test_manifold_precision_and_recall_tell_realism_from_coverage():
    """Kynkäänniemi et al.'s k-NN precision/recall: equal sets (1, 1); far-away dreams (0, 0);
    dreams of one of two real modes are mostly realistic (precision 0.87: their tails leave
    the real balls) but cover half (recall 0.45)."""
    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(0, 1, (300, 8)), rng.normal(20, 1, (300, 8))])
    assert manifold_precision_recall(real, real) == (1.0, 1.0)
    assert manifold_precision_recall(real, real + 100) == (0.0, 0.0)
    precision, recall = manifold_precision_recall(real, rng.normal(0, 1, (600, 8)))
    assert precision > 0.8 and 0.4 < recall < 0.55, (precision, recall)
    with pytest.raises(ValueError, match="more than k = 3"):
        manifold_precision_recall(real, real[:3])


def test_vae_dreams_are_recorded_without_changing_the_run(write_protocol, tmp_path):
    """``record_dreams`` of the VAE's generative replay writes its dreams with a generator of
    their own: the accuracies are bit-identical with and without it."""
    model = {"kind": "mlp", "name": "m", "layers": [64, 64, 10]}
    wake = {k: v for k, v in WAKE.items() if k != "epochs"}
    wake |= {"optimizer": "adam", "lr": 0.003, "iterations": 30}
    replay = {"kind": "generative", "hidden": [32], "latent": 8, "iterations": 30}
    acc = {}
    for n in (0, 20):
        phase = wake | {"replay": replay | {"record_dreams": n}}
        content = digits_protocol(tmp_path, sequential(phase), model=model, name=f"vae{n}")
        acc[n] = run_dict(write_protocol, content)
    np.testing.assert_array_equal(acc[0], acc[20])
    with open_run(tmp_path / "vae20_seed1.h5") as run:
        wakes = [phase.index for phase in run.phases() if phase.kind == "wake"]
        for task, phase in enumerate(wakes):
            arrays = run.arrays(f"replay/{phase}")
            assert arrays["dreams"].shape == (20, 64)
            assert set(arrays["dream_labels"].tolist()) <= set(range(2 * task + 2))
    with open_run(tmp_path / "vae0_seed1.h5") as run:
        assert "replay" not in run.file
