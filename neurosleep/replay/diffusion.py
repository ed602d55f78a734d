"""Diffusion dreams: generative replay whose dreams are denoising-diffusion samples.

DDGR (Gao & Liu, ICML 2023) in the form of the VAE's generative replay (:mod:`.generative`):
after each task a denoiser is trained on the task's inputs — and, from the second task on, on
the previous generator's dreams, loss ``(1/k)·current + (1 − 1/k)·replay`` — then a pool of
``dreams`` samples is drawn from it and labelled; while training task k > 1 every step replays
a batch drawn from the pool. Labels: the frozen classifier's argmax over the classes seen so
far (``conditional: false``, as the VAE's), or, with ``conditional: true``, the class each dream
was generated for (class-conditional denoiser, classes drawn in equal numbers).

Formulas (Ho et al. 2020; Song et al. 2021; Nichol & Dhariwal 2021), t = 0 … T−1,
``ᾱ_t = Π_{s≤t} (1 − β_s)``:

- schedules: ``linear`` β_t from ``beta_start`` to ``beta_end``; ``cosine``
  ``ᾱ_t = f(t + 1)/f(0)``, ``f(t) = cos²(π/2 · (t/T + s)/(1 + s))``, s = 0.008, β ≤ 0.999;
- forward noising ``q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)``, ``x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε``;
  the denoiser predicts, with ``prediction``, the noise ε (``eps``, Ho et al.), the velocity
  ``v = √ᾱ_t ε − √(1 − ᾱ_t) x_0`` (``v``, Salimans & Ho 2022) or the clean input (``x0``); the
  loss is the mean squared error to that target (with ``eps``: the simplified DDPM loss), and
  the samplers take x̂_0 and ε̂ from it: from v, ``x̂_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v̂``,
  ``ε̂ = √(1 − ᾱ_t) x_t + √ᾱ_t v̂``; from x̂_0, ``ε̂ = (x_t − √ᾱ_t x̂_0)/√(1 − ᾱ_t)``. An MLP whose
  layers are narrower than its input cannot carry the noise through, as ε- (and v-) prediction
  need; a clean image lies near a low-dimensional manifold that it can reach, hence ``x0``;
- DDIM (S steps on an evenly spaced subsequence of T−1 … 0, ``eta`` η): x̂_0 clipped to the
  data range and ε̂ recomputed from it, ``σ = η √((1 − ᾱ_p)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_p)``,
  ``x_p = √ᾱ_p x̂_0 + √(1 − ᾱ_p − σ²) ε̂ + σ z`` (ᾱ_p = 1 after the last step);
- DDPM ancestral (all T steps): the posterior mean of q(x_{t−1} | x_t, x̂_0),
  ``(√ᾱ_{t−1} β_t x̂_0 + √(1 − β_t) (1 − ᾱ_{t−1}) x_t)/(1 − ᾱ_t)`` (with ε̂ unclipped, Ho et al.'s
  ``(x_t − β_t/√(1 − ᾱ_t) ε̂)/√(1 − β_t)``), plus σ_t z,
  ``σ_t² = β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t)``.

Inputs in [0, 1] are diffused as ``2x − 1``; dreams come back clipped to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from neurosleep.replay import ReplayMethod, ReplayParams, ReplayStrategy, corrupt_labels, register


class DiffusionParams(ReplayParams):
    """``replay: {kind: diffusion, ...}``."""

    kind: Literal["diffusion"] = "diffusion"
    steps: int = Field(1000, ge=2, description="diffusion steps T")
    schedule: Literal["linear", "cosine"] = Field("cosine", description="β schedule")
    beta_start: float = Field(1e-4, gt=0, lt=1, description="linear schedule: β_0")
    beta_end: float = Field(0.02, gt=0, lt=1, description="linear schedule: β_{T−1}")
    prediction: Literal["eps", "v", "x0"] = Field("x0", description="what the denoiser predicts")
    hidden: list[int] = Field([256, 256, 256], min_length=1, description="denoiser layers")
    embedding: int = Field(128, ge=2, description="size of the time (and class) embedding")
    iterations: int = Field(600, ge=1, description="denoiser training steps per task")
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0, description="Adam learning rate of the denoiser")
    conditional: bool = Field(False, description="class-conditional dreams, labelled by class")
    sampler: Literal["ddim", "ddpm"] = Field("ddim", description="ddim, or ddpm ancestral")
    sample_steps: int = Field(20, ge=1, description="DDIM steps")
    eta: float = Field(0.0, ge=0, description="DDIM η (0: deterministic, 1: DDPM-like)")
    dreams: int = Field(2000, ge=1, description="dreams drawn after each task (the pool)")
    record_dreams: int = Field(200, ge=0, description="dreams written to the run file per task")
    corrupt_noise: float = Field(
        0.0, ge=0, description="std of Gaussian noise added to replayed dreams (nightmares)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> DiffusionParams:
        if self.sample_steps > self.steps:
            raise ValueError(f"sample_steps {self.sample_steps} > steps {self.steps}")
        if self.record_dreams > self.dreams:
            raise ValueError(f"record_dreams {self.record_dreams} > dreams {self.dreams}")
        if self.schedule == "linear" and self.beta_end < self.beta_start:
            raise ValueError(f"beta_end {self.beta_end} < beta_start {self.beta_start}")
        return self


# ------------------------------------------------------------------------ schedule
def linear_betas(steps: int, start: float, end: float) -> torch.Tensor:
    """β_t evenly spaced from ``start`` to ``end`` (Ho et al. 2020), float64 [steps]."""
    return torch.linspace(start, end, steps, dtype=torch.float64)


def cosine_betas(steps: int, s: float = 0.008) -> torch.Tensor:
    """β_t of ``ᾱ_t = f(t + 1)/f(0)`` (Nichol & Dhariwal 2021), capped at 0.999, float64."""
    t = torch.arange(steps + 1, dtype=torch.float64)
    f = torch.cos((t / steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


SCHEDULES: dict[str, Callable[[DiffusionParams], torch.Tensor]] = {
    "linear": lambda p: linear_betas(p.steps, p.beta_start, p.beta_end),
    "cosine": lambda p: cosine_betas(p.steps),
}


@dataclass(frozen=True)
class Schedule:
    """β_t and ᾱ_t (float32 [T]) of one noise schedule."""

    betas: torch.Tensor
    alpha_bar: torch.Tensor

    @classmethod
    def from_betas(cls, betas: torch.Tensor, device=None) -> Schedule:
        alpha_bar = torch.cumprod(1 - betas.double(), dim=0)
        return cls(betas.float().to(device), alpha_bar.float().to(device))

    @property
    def steps(self) -> int:
        return self.betas.numel()

    def noise(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """A sample of q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) from the noise ``eps``."""
        a = self.alpha_bar[t].unsqueeze(1)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps


# ------------------------------------------------------------------------ denoiser
class Denoiser(nn.Module):
    """MLP ε_θ(x_t, t[, class]) or v_θ (``prediction``): every hidden layer adds a projection of
    the embedding of t (sinusoidal, then a 2-layer MLP) and of the class (one-hot,
    ``n_classes`` > 0)."""

    def __init__(
        self,
        n_in: int,
        hidden: list[int],
        embedding: int,
        n_classes: int = 0,
        prediction: str = "eps",
    ) -> None:
        super().__init__()
        self.dim, self.n_classes, self.prediction = embedding, n_classes, prediction
        self.embed = nn.Sequential(
            nn.Linear(embedding + n_classes, embedding), nn.SiLU(), nn.Linear(embedding, embedding)
        )
        sizes = [n_in, *hidden]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=False)
        )
        self.conditions = nn.ModuleList(nn.Linear(embedding, b) for b in hidden)
        self.out = nn.Linear(sizes[-1], n_in)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The prediction [batch × n_in] for ``x`` at integer steps ``t`` [batch]."""
        half = self.dim // 2
        freq = torch.exp(-math.log(10_000) * torch.arange(half, device=x.device) / half)
        angle = t.float().unsqueeze(1) * freq
        e = torch.cat([angle.sin(), angle.cos(), angle[:, : self.dim - 2 * half]], dim=1)
        if self.n_classes:
            e = torch.cat([e, F.one_hot(y, self.n_classes).float()], dim=1)
        e = self.embed(e)
        h = x
        for layer, condition in zip(self.layers, self.conditions, strict=True):
            h = F.silu(layer(h) + condition(e))
        return self.out(h)


# target of the prediction from (x_0, ε, ᾱ_t), and (x̂_0, ε̂) from (x_t, prediction, ᾱ_t)
TARGETS: dict[str, Callable[..., torch.Tensor]] = {
    "eps": lambda x0, eps, a: eps,
    "v": lambda x0, eps, a: a.sqrt() * eps - (1 - a).sqrt() * x0,
    "x0": lambda x0, eps, a: x0,
}
ESTIMATES: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "eps": lambda x, out, a: ((x - (1 - a).sqrt() * out) / a.sqrt(), out),
    "v": lambda x, out, a: (
        a.sqrt() * x - (1 - a).sqrt() * out,
        (1 - a).sqrt() * x + a.sqrt() * out,
    ),
    "x0": lambda x, out, a: (out, (x - a.sqrt() * out) / (1 - a).sqrt()),
}


def diffusion_loss(
    model: Denoiser,
    schedule: Schedule,
    x0: torch.Tensor,
    generator: torch.Generator,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error of the prediction (ε, v or x_0) over inputs and batch,
    t ~ U{0 … T−1} (with ε: the simplified DDPM loss)."""
    t = torch.randint(0, schedule.steps, (x0.shape[0],), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    target = TARGETS[model.prediction](x0, eps, schedule.alpha_bar[t].unsqueeze(1))
    return F.mse_loss(model(schedule.noise(x0, t, eps), t, y), target)


def estimate(
    model: Denoiser, schedule: Schedule, x: torch.Tensor, t: int, y: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂_0, ε̂) of ``x`` at step ``t`` from the model's prediction."""
    out = model(x, torch.full((x.shape[0],), t, device=x.device), y)
    return ESTIMATES[model.prediction](x, out, schedule.alpha_bar[t])


# ------------------------------------------------------------------------ samplers
@torch.no_grad()
def ddim_sample(
    model: Denoiser,
    schedule: Schedule,
    x: torch.Tensor,
    steps: int,
    generator: torch.Generator,
    *,
    eta: float = 0.0,
    y: torch.Tensor | None = None,
    clip: tuple[float, float] | None = None,
    trajectory: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Denoise ``x`` (noise at t = T−1) in ``steps`` DDIM steps; appends the first sample's
    state to ``trajectory`` (from the noise to the sample) when given."""
    times = torch.linspace(schedule.steps - 1, 0, steps).round().long().tolist()
    one = torch.ones((), device=x.device)
    if trajectory is not None:
        trajectory.append(x[0])
    for i, t in enumerate(times):
        a = schedule.alpha_bar[t]
        a_prev = schedule.alpha_bar[times[i + 1]] if i + 1 < len(times) else one
        x0, eps = estimate(model, schedule, x, t, y)
        if clip is not None:
            x0 = x0.clamp(*clip)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).clamp(min=0).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0 and i + 1 < len(times):
            x = x + sigma * torch.randn(x.shape, generator=generator, device=x.device)
        if trajectory is not None:
            trajectory.append(x[0])
    return x


@torch.no_grad()
def ddpm_sample(
    model: Denoiser,
    schedule: Schedule,
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    y: torch.Tensor | None = None,
    clip: tuple[float, float] | None = None,
    trajectory: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Ancestral sampling through all T steps, σ_t² = β̃_t (posterior variance); the posterior
    mean is taken from x̂_0 (clipped with ``clip``), the same step as Ho et al.'s eq. 11 when
    unclipped. ``trajectory`` as :func:`ddim_sample`."""
    betas, alpha_bar = schedule.betas, schedule.alpha_bar
    if trajectory is not None:
        trajectory.append(x[0])
    for t in range(schedule.steps - 1, -1, -1):
        a, b = alpha_bar[t], betas[t]
        a_prev = alpha_bar[t - 1] if t > 0 else torch.ones((), device=x.device)
        x0, _ = estimate(model, schedule, x, t, y)
        if clip is not None:
            x0 = x0.clamp(*clip)
        # posterior mean of q(x_{t−1} | x_t, x̂_0) (Ho et al. eq. 7)
        x = (a_prev.sqrt() * b * x0 + (1 - b).sqrt() * (1 - a_prev) * x) / (1 - a)
        if t > 0:
            var = b * (1 - a_prev) / (1 - a)
            x = x + var.sqrt() * torch.randn(x.shape, generator=generator, device=x.device)
        if trajectory is not None:
            trajectory.append(x[0])
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ddim": lambda model, schedule, x, p, g, **options: ddim_sample(
        model, schedule, x, p.sample_steps, g, eta=p.eta, **options
    ),
    "ddpm": lambda model, schedule, x, p, g, **options: ddpm_sample(
        model, schedule, x, g, **options
    ),
}


# ------------------------------------------------------------------------ replay
class DiffusionReplay(ReplayStrategy):
    """The denoiser (kept and trained on across tasks) and the pool of labelled dreams."""

    params: DiffusionParams

    def __init__(self, params, context) -> None:
        super().__init__(params, context)
        self.schedule = Schedule.from_betas(SCHEDULES[params.schedule](params), context.device)
        self.model: Denoiser | None = None
        self.pool: tuple[torch.Tensor, torch.Tensor] | None = None  # dreams in [0, 1], labels
        self.seen = torch.zeros(context.n_outputs, dtype=torch.bool, device=context.device)

    def replay_batch(self, size, task):
        if self.pool is None:
            return None
        p, g = self.params, self.context.generator
        x, y = self.pool
        idx = torch.randint(0, y.numel(), (size,), generator=g, device=y.device)
        x, y = x[idx], y[idx]
        if p.corrupt_noise > 0:
            noise = torch.randn(x.shape, generator=g, device=x.device)
            x = (x + p.corrupt_noise * noise).clamp(0, 1)
        return x, corrupt_labels(y, p.corrupt_labels, self.context.n_outputs, g)

    def end_task(self, net, x, y, task) -> None:
        p = self.params
        if self.model is None:
            classes = self.context.n_outputs if p.conditional else 0
            self.model = Denoiser(x.shape[1], p.hidden, p.embedding, classes, p.prediction)
            self.model.to(x.device)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=p.lr)
        k = task + 1
        losses = []
        self.model.train()
        for _ in range(p.iterations):
            loss = self._loss(x, y)
            if self.pool is not None:
                loss = loss / k + (1 - 1 / k) * self._loss(*self.pool)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        self.model.eval()
        self.seen[torch.unique(y)] = True
        trajectory: list[torch.Tensor] = []
        self.pool = self._dream(net, trajectory)
        record = self.context.record
        if record is not None:
            n = p.record_dreams
            record.scalar("diffusion_loss_last", float(torch.stack(losses[-50:]).mean()), "1")
            record.arrays(
                {
                    "dreams": self.pool[0][:n].cpu().numpy(),
                    "dream_labels": self.pool[1][:n].cpu().numpy(),
                    "trajectory": ((torch.stack(trajectory) + 1) / 2).cpu().numpy(),
                },
                {"dreams": "1", "dream_labels": "1", "trajectory": "1"},
            )

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The denoising loss on a batch drawn from inputs ``x`` in [0, 1] with labels ``y``."""
        g = self.context.generator
        idx = torch.randint(0, y.numel(), (self.params.batch_size,), generator=g, device=y.device)
        condition = y[idx] if self.params.conditional else None
        return diffusion_loss(self.model, self.schedule, 2 * x[idx] - 1, g, condition)

    def _dream(
        self, net: nn.Module, trajectory: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``dreams`` samples in [0, 1] and their labels (the class they were generated for,
        or ``net``'s argmax over the seen classes); the first dream's states in ``trajectory``."""
        p, g, device = self.params, self.context.generator, self.context.device
        classes = torch.nonzero(self.seen).squeeze(1)
        xs, ys = [], []
        for start in range(0, p.dreams, p.batch_size):
            n = min(p.batch_size, p.dreams - start)
            y = classes[torch.arange(start, start + n, device=device) % classes.numel()]
            noise = torch.randn((n, self.model.out.out_features), generator=g, device=device)
            x = SAMPLERS[p.sampler](
                self.model,
                self.schedule,
                noise,
                p,
                g,
                y=y if p.conditional else None,
                clip=(-1.0, 1.0),
                trajectory=trajectory if start == 0 else None,
            )
            x = ((x + 1) / 2).clamp(0, 1)
            if not p.conditional:
                with torch.no_grad():
                    z, _ = net.forward_pre(x)
                y = z.masked_fill(~self.seen, float("-inf")).argmax(dim=1)
            xs.append(x)
            ys.append(y)
        return torch.cat(xs), torch.cat(ys)


register(
    ReplayMethod(
        "diffusion",
        DiffusionParams,
        DiffusionReplay,
        "denoising-diffusion dreams (DDPM training, DDIM sampling), labelled by the previous "
        "model or by class",
    )
)
