"""Sleep Replay Consolidation (SRA) for a no-bias ReLU MLP, as the paper's MATLAB code does it.

Tadros, Krishnan, Ramyaa, Bazhenov, Nat. Commun. 13:7742 (2022); code
``tmtadros/SleepReplayConsolidation`` (``sleep/sleepnn_old.m``, ``utils/normalize_nn_data.m``,
``utils/create_masked_input.m``). The MLP becomes a network of non-refractory integrate-and-fire
layers with the same weights:

- scaling (data-based max-normalisation, carried over from layer to layer as the code does):
  ``s_l = max(max(W_l, 0), max(a_{l+1}, 0))``, ``applied_l = s_l / applied_{l−1}``
  (``applied_0 = 1``), ``alpha_l = alpha_scale / applied_l``;
- input: the mean training image of the tasks seen so far; each step keeps a random
  ``window × window`` patch of it (top-left corner uniform in 0..H−window), and input neuron i
  spikes when ``U·(1/(dt·max_rate))/2 ≤ x_i`` (probability ``2·dt·max_rate·x_i``);
- each step, layer by layer: ``v_l ← decay·v_l + Σ_{i spiking} alpha_{l−1}·W_ji`` (no lower
  bound); spike where ``v_l ≥ beta_l``; then, for every post neuron j that spiked,
  ``W_ji += inc·f(W_ji)`` if pre neuron i spiked this step, else ``W_ji −= dec·f(W_ji)``, with
  ``f(w) = 2·(1 − 1/(1 + exp(−w/0.001)))``; plasticity comes before the reset ``v_j ← 0``.

:func:`sra_sleep` is event-driven — it touches only the columns of pre neurons that spiked (input
to a layer) and the rows of post neurons that spiked (plasticity); :func:`sra_sleep_dense` is the
literal translation (full matrix products and outer-product updates every step), kept as the
reference both are tested and benchmarked against. With the same input spikes both give the
same weights up to summation order (≈1e−17 in float64).

Nightmares: ``corrupt`` degrades the replayed content — ``noise`` adds uniform noise of
amplitude ``corrupt_level`` to the mean image, ``shuffle`` permutes its pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

import torch
from pydantic import Field

from neurosleep.params import Params
from neurosleep.registry import Registry
from neurosleep.sleep import SleepAlgorithm, register
from neurosleep.units import Rate, Time

SpikeSink = Callable[[int, torch.Tensor, torch.Tensor], None]  # layer (1-based), steps, neurons
Core = Callable[..., tuple[list[torch.Tensor], torch.Tensor]]
CORES: Registry[Core] = Registry("SRA engine")  # engine name → sleep loop (same signature)


class SRAParams(Params):
    """``sleep: {kind: sra, ...}``; defaults are the paper's MNIST hyperparameters."""

    steps: int = Field(description="sleep length in steps (paper: 15000 + 5000*(k-1))", ge=1)
    dt: Time = Field("1 ms", gt=0, description="time step (sets the input spike probability)")
    max_rate: Rate = Field(
        "239.515363 Hz", ge=0, description="input rate of a pixel of value 1 / 2"
    )
    inc: float = Field(0.032064, ge=0, description="potentiation step")
    dec: float = Field(0.003344, ge=0, description="depression step")
    beta: list[Annotated[float, Field(gt=0)]] = Field(
        [14.548273, 44.560317, 38.046326],
        min_length=1,
        description="threshold of each non-input layer (> 0: at 0 a resting neuron fires)",
    )
    alpha_scale: float = Field(55.882454, gt=0, description="scale of the normalised impulses")
    decay: float = Field(0.999, gt=0, le=1, description="membrane decay per step")
    window: int = Field(11, ge=0, description="side of the random input patch (0: whole image)")
    block: int = Field(1000, ge=1, description="steps of input spikes drawn at once")
    dtype: Literal["float32", "float64"] = "float32"
    corrupt: Literal["none", "noise", "shuffle"] = Field(
        "none", description="nightmares: degrade the mean image"
    )
    corrupt_level: float = Field(0.5, ge=0, description="'noise': amplitude of U(0, level)")


def normalisation_factors(weights: list[torch.Tensor], activation_max: list[float]) -> list[float]:
    """``factor_log`` of ``normalize_nn_data.m``: 1/applied_l per layer (weights [out × in])."""
    previous = 1.0
    factors = []
    for w, a in zip(weights, activation_max, strict=True):
        scale = max(float(w.max().clamp(min=0)), max(float(a), 0.0))
        applied = scale / previous
        factors.append(1.0 / applied)
        previous = applied
    return factors


def weight_factor(w: torch.Tensor) -> torch.Tensor:
    """``f(w) = 2·(1 − 1/(1 + exp(−w/0.001)))``, the code's ``sigmoid`` (≈2 below 0, ≈0 above)."""
    return 2 * (1.0 - 1.0 / (1 + torch.exp(-w / 0.001)))


def sleep_image(
    inputs: torch.Tensor, params: SRAParams, generator: torch.Generator
) -> torch.Tensor:
    """The mean input over ``inputs`` [sample × feature], corrupted if asked."""
    mean = inputs.mean(dim=0)
    if params.corrupt == "noise":
        noise = torch.rand(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        mean = (mean + params.corrupt_level * noise).clamp(0.0, 1.0)
    elif params.corrupt == "shuffle":
        perm = torch.randperm(mean.numel(), generator=generator, device=mean.device)
        mean = mean[perm]
    return mean


def input_spikes(
    image: torch.Tensor,
    shape: tuple[int, ...],
    params: SRAParams,
    generator: torch.Generator,
) -> Iterator[torch.Tensor]:
    """Blocks [steps × feature] of boolean input spikes from a random window of ``image``."""
    rescale = 1.0 / (params.dt * 1e-3 * params.max_rate)
    n = image.numel()
    device = image.device
    for start in range(0, params.steps, params.block):
        b = min(params.block, params.steps - start)
        mask = torch.ones((b, 1), dtype=torch.bool, device=device)
        for size in shape:
            window = params.window if 0 < params.window <= size else size
            corner = torch.randint(0, size - window + 1, (b, 1), generator=generator, device=device)
            pos = torch.arange(size, device=device)
            inside = (pos >= corner) & (pos < corner + window)  # [b × size]
            mask = (mask[:, :, None] & inside[:, None, :]).reshape(b, -1)
        x = torch.where(mask, image[None, :], torch.zeros((), dtype=image.dtype, device=device))
        draw = torch.rand((b, n), generator=generator, device=device, dtype=image.dtype)
        yield draw * rescale / 2 <= x


def sra_sleep(
    weights: list[torch.Tensor],
    alphas: list[float],
    thresholds: list[float],
    spikes_in: Iterator[torch.Tensor],
    *,
    inc: float,
    dec: float,
    decay: float,
    on_spikes: SpikeSink | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Event-driven SRA sleep; returns new weights and spike counts per non-input layer.

    Each layer keeps its weights ``W`` [out × in], whose rows (spiking post neurons) plasticity
    rewrites, and the impulses ``alpha·W`` transposed [in × out], so that a layer's input is a
    sum of contiguous rows (one per spiking pre neuron); plasticity refreshes the impulse columns
    it changed. A layer is searched for spiking neurons only when its largest potential reaches
    the threshold. The float operations on every value are those of the literal translation,
    in its order, except the order of summation of a step's input.
    """
    ws = [x.contiguous().clone() for x in weights]
    scaled = [(w * a).T.contiguous() for w, a in zip(ws, alphas, strict=True)]
    sizes = [x.shape[0] for x in ws]
    device, dtype = ws[0].device, ws[0].dtype
    membrane = torch.zeros(sum(sizes), dtype=dtype, device=device)
    mems = list(torch.split(membrane, sizes))
    impulses = [torch.empty(n, dtype=dtype, device=device) for n in sizes]
    rows: dict[tuple[int, int], torch.Tensor] = {}  # gather buffers by (layer, rows)
    decay_ = torch.tensor(decay, dtype=dtype, device=device)
    counts = torch.zeros(len(ws), dtype=torch.long)
    layers = list(zip(ws, scaled, mems, impulses, alphas, thresholds, strict=True))
    step0 = 0
    with _single_thread(device):
        for block in spikes_in:
            steps, cols = block.nonzero(as_tuple=True)
            per_step = torch.bincount(steps, minlength=block.shape[0]).tolist()
            fired: list[list[tuple[int, torch.Tensor]]] = [[] for _ in ws]
            start = 0
            for t, n_pre in enumerate(per_step):
                membrane.mul_(decay_)
                if not n_pre:
                    continue
                pre = cols.narrow(0, start, n_pre)
                start += n_pre
                for layer, (w, w_alpha, v, impulse, alpha, threshold) in enumerate(layers):
                    key = (layer, pre.shape[0])
                    if key not in rows:
                        rows[key] = torch.empty(key[1], w.shape[0], dtype=dtype, device=device)
                    torch.sum(torch.index_select(w_alpha, 0, pre, out=rows[key]), 0, out=impulse)
                    v.add_(impulse)
                    if v.max().item() < threshold:
                        break
                    post = (v >= threshold).nonzero().squeeze(1)
                    new = _plasticity(w, pre, post, inc, dec)
                    w_alpha.index_copy_(1, post, (new * alpha).T)
                    v.index_fill_(0, post, 0.0)
                    fired[layer].append((step0 + t, post))
                    pre = post
            _report(fired, counts, on_spikes, device)
            step0 += block.shape[0]
    return ws, counts


def _plasticity(
    w: torch.Tensor, pre: torch.Tensor, post: torch.Tensor, inc: float, dec: float
) -> torch.Tensor:
    """Rewrite the rows ``post`` of ``w`` [out × in] in place (inc where pre spiked, else dec);
    returns the new rows."""
    old = w.index_select(0, post)
    f = weight_factor(old)
    was_pre = torch.zeros((1, w.shape[1]), dtype=torch.bool, device=w.device)
    was_pre[0, pre] = True
    new = torch.where(was_pre, old + inc * f, old - dec * f)
    w.index_copy_(0, post, new)
    return new


def _report(fired, counts: torch.Tensor, on_spikes: SpikeSink | None, device) -> None:
    for layer, events in enumerate(fired):
        if events:
            ids = torch.cat([p for _, p in events])
            counts[layer] += ids.numel()
            if on_spikes is not None:
                when = torch.cat([torch.full((p.numel(),), s, device=device) for s, p in events])
                on_spikes(layer + 1, when, ids)


@contextmanager
def _single_thread(device: torch.device):
    """Run the step loop's small CPU ops on one thread (a loaded thread pool costs ms per op)."""
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def sra_sleep_dense(
    weights: list[torch.Tensor],
    alphas: list[float],
    thresholds: list[float],
    spikes_in: Iterator[torch.Tensor],
    *,
    inc: float,
    dec: float,
    decay: float,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The literal translation of ``sleepnn_old.m`` (every matrix, every step): the reference.

    Runs on one CPU thread, as :func:`sra_sleep` does, so that benchmarks compare like with like.
    """
    w = [x.clone() for x in weights]
    mems = [torch.zeros(x.shape[0], dtype=x.dtype, device=x.device) for x in w]
    counts = torch.zeros(len(w), dtype=torch.long)
    with _single_thread(w[0].device):
        for block in spikes_in:
            for s_in in block:
                s = s_in.to(w[0].dtype)
                for layer, wl in enumerate(w):
                    impulse = (alphas[layer] * s) @ wl.T
                    mems[layer] = decay * mems[layer] + impulse
                    post = (mems[layer] >= thresholds[layer]).to(wl.dtype)
                    f = weight_factor(wl)
                    pre = s[None, :]
                    wl += post[:, None] * (pre * inc * f - (1 - pre) * dec * f)
                    mems[layer] = mems[layer] * (1 - post)
                    counts[layer] += int(post.sum())
                    s = post
    return w, counts


def run(
    weights: list[torch.Tensor],
    inputs: torch.Tensor,
    activation_max: list[float],
    shape: tuple[int, ...],
    params: SRAParams,
    generator: torch.Generator,
    on_spikes: SpikeSink | None = None,
    engine: str = "torch",
) -> tuple[list[torch.Tensor], dict]:
    """SRA sleep of an MLP (the ``mlp`` experiment's sleep signature); see the module doc.

    ``engine`` picks the loop from :data:`CORES` (``torch``; ``brian2`` once
    :mod:`neurosleep.engines.sra_brian2` is imported); the input spikes are drawn here, so every
    engine gets the same ones for the same generator state.
    """
    if len(params.beta) != len(weights):
        raise ValueError(f"beta has {len(params.beta)} thresholds for {len(weights)} layers")
    dtype = getattr(torch, params.dtype)
    factors = normalisation_factors(weights, activation_max)
    alphas = [params.alpha_scale * f for f in factors]
    image = sleep_image(inputs.to(dtype), params, generator)
    new, counts = CORES.get(engine)(
        [w.detach().to(dtype) for w in weights],
        alphas,
        list(params.beta),
        input_spikes(image, shape, params, generator),
        inc=params.inc,
        dec=params.dec,
        decay=params.decay,
        on_spikes=on_spikes,
    )
    seconds = params.steps * params.dt * 1e-3
    sizes = torch.tensor([w.shape[0] for w in weights], dtype=torch.float64)
    return [w.to(weights[0].dtype) for w in new], {
        "steps": params.steps,
        "alpha": torch.tensor(alphas).numpy(),
        "spike_count": counts.numpy(),
        "mean_rate_hz": (counts.double() / sizes / seconds).numpy(),
    }


CORES.register("torch")(sra_sleep)

register(
    SleepAlgorithm(
        name="sra",
        Params=SRAParams,
        model_kinds=("mlp",),
        run=run,
        summary="Sleep Replay Consolidation (Tadros et al. 2022), event-driven, faithful port",
    )
)
