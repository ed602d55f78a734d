"""Sleep Replay Consolidation (SRA) for a no-bias ReLU MLP, as the paper's MATLAB code does it.

Tadros, Krishnan, Ramyaa, Bazhenov, Nat. Commun. 13:7742 (2022); code
``tmtadros/SleepReplayConsolidation`` (``sleep/sleepnn_old.m``, ``utils/normalize_nn_data.m``,
``utils/create_masked_input.m``). The MLP becomes a network of non-refractory integrate-and-fire
layers with the same weights:

- scaling (data-based max-normalisation, carried over from layer to layer as the code does):
  ``s_l = max(max(W_l, 0), max(a_{l+1}, 0))``, ``applied_l = s_l / applied_{l−1}``
  (``applied_0 = 1``), ``alpha_l = alpha_scale / applied_l``;
- input: the mean training image of the tasks seen so far (``input: mean_image``, the paper's;
  other contents in :data:`SLEEP_INPUTS`: ``class_means``, ``buffer``, ``noise``, each shown
  for ``image_steps`` steps per drawn image); each step keeps a random ``window × window``
  patch of it (top-left corner uniform in 0..H−window), and input neuron i spikes when
  ``U·(1/(dt·max_rate))/2 ≤ x_i`` (probability ``2·dt·max_rate·x_i``);
- each step, layer by layer: ``v_l ← decay·v_l + Σ_{i spiking} alpha_{l−1}·W_ji`` (no lower
  bound); spike where ``v_l ≥ beta_l``; then, for every post neuron j that spiked,
  ``W_ji += inc·f(W_ji)`` if pre neuron i spiked this step, else ``W_ji −= dec·f(W_ji)``, with
  ``f(w) = 2·(1 − 1/(1 + exp(−w/0.001)))``; plasticity comes before the reset ``v_j ← 0``.

The network itself is simulated by an engine loop from :data:`~neurosleep.engines.sra.CORES`
(:mod:`neurosleep.engines.sra`: event-driven torch, and its dense reference;
:mod:`neurosleep.engines.sra_brian2`), picked by the phase's engine; the input spikes are drawn
here, so every engine gets the same ones.

Requirements this algorithm checks itself (the experiment knows nothing of them): a model
without biases, and one threshold in ``beta`` per layer; it computes the activation maxima of
the normalisation from the seen tasks' training inputs.

Nightmares: ``corrupt`` degrades the replayed content — ``noise`` adds uniform noise of
amplitude ``corrupt_level`` to the mean image (or to each image of ``class_means`` and
``buffer``), ``shuffle`` permutes their pixels (one permutation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

import neurosleep.engines.sra_brian2  # noqa: F401  (registers the brian2 loop in CORES)
from neurosleep.engines.sra import CORES, SpikeSink, sra_sleep, sra_sleep_dense, weight_factor
from neurosleep.limits import memory_problem
from neurosleep.params import Params
from neurosleep.registry import Registry
from neurosleep.sleep import MLPContext, MLPOutcome, SleepAlgorithm, register
from neurosleep.units import Rate, Time

__all__ = [
    "SLEEP_INPUTS",
    "SRAParams",
    "input_spikes",
    "normalisation_factors",
    "run",
    "sleep_image",
    "sleep_images",
    "sra",
    "sra_sleep",
    "sra_sleep_dense",
    "weight_factor",
    "window_spikes",
]


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
    input: str = Field(
        "mean_image",
        description="what drives the input layer: mean_image (the paper's), class_means, "
        "buffer, noise (all of the seen tasks' training data only)",
    )
    buffer_size: int = Field(
        100, ge=1, description="'buffer': training images of the seen tasks kept (at most)"
    )
    image_steps: int = Field(
        100, ge=1, description="class_means, buffer, noise: steps each drawn image is shown"
    )

    @field_validator("input")
    @classmethod
    def _known_input(cls, value: str) -> str:
        if value not in SLEEP_INPUTS:
            raise ValueError(f"unknown input {value!r}; known: {', '.join(SLEEP_INPUTS.names())}")
        return value


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


def sleep_image(
    inputs: torch.Tensor, params: SRAParams, generator: torch.Generator
) -> torch.Tensor:
    """The mean input over ``inputs`` [sample × feature], corrupted if asked."""
    return corrupted(inputs.mean(dim=0), params, generator)


def corrupted(images: torch.Tensor, params: SRAParams, generator: torch.Generator) -> torch.Tensor:
    """``images`` [feature] or [image × feature] degraded as ``params.corrupt`` says (the same
    pixel permutation for every image)."""
    if params.corrupt == "noise":
        noise = torch.rand(
            images.shape, generator=generator, device=images.device, dtype=images.dtype
        )
        return (images + params.corrupt_level * noise).clamp(0.0, 1.0)
    if params.corrupt == "shuffle":
        perm = torch.randperm(images.shape[-1], generator=generator, device=images.device)
        return images[..., perm]
    return images


#: one image [feature] shown throughout, or ``draw(count)`` → ``count`` fresh images
#: [count × feature], each shown for ``image_steps`` steps
SleepInput = torch.Tensor | Callable[[int], torch.Tensor]
SLEEP_INPUTS: Registry[
    Callable[[torch.Tensor, torch.Tensor, SRAParams, torch.Generator], SleepInput]
] = Registry("SRA sleep input")


@SLEEP_INPUTS.register("mean_image")
def _mean_image(inputs, labels, params, generator) -> SleepInput:
    """The mean of every seen training image (the paper's)."""
    return sleep_image(inputs, params, generator)


def _drawn(images: torch.Tensor, generator: torch.Generator) -> SleepInput:
    """Draw uniformly, with replacement, among ``images`` [image × feature]."""

    def draw(count: int) -> torch.Tensor:
        pick = torch.randint(0, len(images), (count,), generator=generator, device=images.device)
        return images[pick]

    return draw


@SLEEP_INPUTS.register("class_means")
def _class_means(inputs, labels, params, generator) -> SleepInput:
    """The mean image of each seen class, drawn in turn at random."""
    if labels is None:
        raise ValueError("input 'class_means' needs the training samples' labels")
    classes = torch.unique(labels)
    means = torch.stack([inputs[labels == c].mean(dim=0) for c in classes])
    return _drawn(corrupted(means, params, generator), generator)


@SLEEP_INPUTS.register("buffer")
def _buffer(inputs, labels, params, generator) -> SleepInput:
    """``buffer_size`` seen training images (drawn without replacement at each sleep), shown
    one at a time at random."""
    keep = torch.randperm(len(inputs), generator=generator, device=inputs.device)
    return _drawn(corrupted(inputs[keep[: params.buffer_size]], params, generator), generator)


@SLEEP_INPUTS.register("noise")
def _noise(inputs, labels, params, generator) -> SleepInput:
    """Fresh uniform noise images U(0, 2m), m the seen inputs' mean pixel value (the same mean
    drive as the mean image, no content)."""
    level = 2.0 * float(inputs.mean())
    n = inputs.shape[1]

    def draw(count: int) -> torch.Tensor:
        device, dtype = inputs.device, inputs.dtype
        return level * torch.rand((count, n), generator=generator, device=device, dtype=dtype)

    return draw


def sleep_images(
    inputs: torch.Tensor,
    labels: torch.Tensor | None,
    params: SRAParams,
    generator: torch.Generator,
) -> SleepInput:
    """The sleep's input content (``params.input``) from the seen tasks' training ``inputs``
    [sample × feature] and ``labels`` [sample]."""
    return SLEEP_INPUTS.get(params.input)(inputs, labels, params, generator)


def input_spikes(
    image: SleepInput,
    shape: tuple[int, ...],
    params: SRAParams,
    generator: torch.Generator,
    n: int | None = None,
) -> Iterator[torch.Tensor]:
    """Blocks [steps × feature] of boolean input spikes from a random window of ``image`` (one
    image [feature], or ``draw(count)``: a fresh image every ``image_steps`` steps; ``n``
    features, default the image's)."""
    from neurosleep import uniform  # numba: imported where it draws

    rescale = 1.0 / (params.dt * 1e-3 * params.max_rate)
    half = rescale / 2  # draw·rescale/2 in one multiplication: halving is exact either way
    windows = tuple(params.window if 0 < params.window <= size else size for size in shape)
    fixed = isinstance(image, torch.Tensor)
    n = image.numel() if fixed else n
    device = image.device if fixed else None
    held: tuple[int, torch.Tensor] | None = None  # (segment, image) shown when a block ended
    for start in range(0, params.steps, params.block):
        b = min(params.block, params.steps - start)
        if fixed:
            pixels = image[None, :]
        else:
            segment = torch.arange(start, start + b) // params.image_steps
            first, last = int(segment[0]), int(segment[-1])
            kept = held is not None and held[0] == first
            new = image(last - first + 1 - kept)
            shown = torch.cat([held[1][None], new]) if kept else new
            held = (last, shown[-1])
            device = shown.device
            pixels = shown[(segment - first).to(device)]
        corners = torch.cat(
            [torch.randint(0, size - window + 1, (b, 1), generator=generator, device=device)
             for size, window in zip(shape, windows, strict=True)],
            dim=1,
        )  # fmt: skip
        draw = uniform.rand((b, n), generator, pixels.dtype, device)
        yield window_spikes(draw, pixels.expand(b, n), corners, shape, windows, half)


def window_spikes(
    draw: torch.Tensor,
    pixels: torch.Tensor,
    corners: torch.Tensor,
    shape: tuple[int, ...],
    windows: tuple[int, ...],
    half: float,
    fused: bool | None = None,
) -> torch.Tensor:
    """A block's input spikes [steps × pixels]: ``draw·half ≤ x``, ``x`` the pixel (``pixels``
    [steps × pixels], an image of ``shape``) inside the step's window (top-left corner
    ``corners`` [steps × dimensions], sides ``windows``), else 0. ``fused`` (default: on the
    CPU): in one compiled pass (:func:`neurosleep.engines.sra_fused.window_spikes`), the same
    spikes as the torch operations (``tests/test_sra.py``)."""
    steps, device = draw.shape[0], draw.device
    if fused is None:
        fused = device.type == "cpu"
    if fused:
        from neurosleep.engines import sra_fused  # numba: imported where it runs

        spikes = torch.empty(draw.shape, dtype=torch.bool)
        sizes, sides = np.array(shape), np.array(windows)
        scale = draw.numpy().dtype.type(half)  # torch's product: in the draws' type
        sra_fused.window_spikes(
            draw.numpy(), pixels.numpy(), corners.numpy(), sizes, sides, scale, spikes.numpy()
        )
        return spikes
    mask = torch.ones((steps, 1), dtype=torch.bool, device=device)
    for d, (size, window) in enumerate(zip(shape, windows, strict=True)):
        pos = torch.arange(size, device=device)
        inside = (pos >= corners[:, d : d + 1]) & (pos < corners[:, d : d + 1] + window)
        mask = (mask[:, :, None] & inside[:, None, :]).reshape(steps, -1)  # [steps × pixels]
    x = torch.where(mask, pixels, torch.zeros((), dtype=pixels.dtype, device=device))
    return draw * half <= x


def sra(
    weights: list[torch.Tensor],
    inputs: torch.Tensor,
    activation_max: list[float],
    shape: tuple[int, ...],
    params: SRAParams,
    generator: torch.Generator,
    on_spikes: SpikeSink | None = None,
    engine: str = "torch",
    labels: torch.Tensor | None = None,
) -> tuple[list[torch.Tensor], dict]:
    """SRA sleep of MLP ``weights`` [out × in]; returns the new weights and diagnostics.

    ``inputs`` [sample × feature] and ``labels`` [sample] (needed by ``class_means`` only): the
    seen training samples the input content is made of;
    ``activation_max``: the largest activation of each non-input layer on them; ``shape``: one
    sample's shape; ``engine`` picks the loop from :data:`CORES` (``torch``, ``brian2``).
    """
    if len(params.beta) != len(weights):
        raise ValueError(f"beta has {len(params.beta)} thresholds for {len(weights)} layers")
    dtype = getattr(torch, params.dtype)
    factors = normalisation_factors(weights, activation_max)
    alphas = [params.alpha_scale * f for f in factors]
    image = sleep_images(inputs.to(dtype), labels, params, generator)
    new, counts = CORES.get(engine)(
        [w.detach().to(dtype) for w in weights],
        alphas,
        list(params.beta),
        input_spikes(image, shape, params, generator, n=inputs.shape[1]),
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


def check(params: SRAParams, model, before: list) -> list[tuple[tuple, str]]:
    """What SRA needs, known at validation: no biases, one threshold per layer, a wake phase
    before it (its input is made of the seen tasks' images), a corruption only of images."""
    problems = []
    if model.bias:
        problems.append((("kind",), "sleep 'sra' needs a model without biases (bias: false)"))
    if len(params.beta) != len(model.layers) - 1:
        message = f"beta has {len(params.beta)} thresholds for {len(model.layers) - 1} layers"
        problems.append((("beta",), message))
    if not any(phase.kind == "wake" for phase in before):
        message = "sleep 'sra' replays the seen tasks' mean input: no wake phase before it"
        problems.append((("kind",), message))
    if params.input == "noise" and params.corrupt != "none":
        problems.append((("corrupt",), "corrupt degrades image contents; input 'noise' has none"))
    rows = min(params.block, params.steps)
    what = f"{rows} steps per block × {model.layers[0]} inputs × 16 bytes"
    memory = memory_problem(16 * rows * model.layers[0], what)
    if memory:
        problems.append((("block",), memory))
    return problems


def run(params: SRAParams, context: MLPContext) -> MLPOutcome:
    """The ``mlp`` contract: SRA on the context's weights; diagnostics to ``/sleep/<phase>/``
    (``steps``, ``alpha``, ``spike_count`` and ``mean_rate_hz`` per layer)."""
    if context.biases:
        raise ValueError("sleep 'sra' needs a model without biases (bias: false)")
    if not len(context.inputs):
        raise ValueError("sleep 'sra' replays the seen tasks' mean input: no wake phase before it")
    with torch.no_grad():
        maxima = [float(a.max().clamp(min=0)) for a in context.activations(context.inputs)]
    new, diagnostics = sra(
        list(context.weights),
        context.inputs,
        maxima,
        context.shape,
        params,
        context.generator,
        context.on_spikes,
        engine=context.engine,
        labels=context.labels,
    )
    context.record.arrays(diagnostics, units={})
    context.progress(1.0)
    return MLPOutcome(weights=new, steps=params.steps, dt_ms=params.dt)


register(
    SleepAlgorithm(
        name="sra",
        Params=SRAParams,
        model_kind="mlp",
        run=run,
        check=check,
        summary="Sleep Replay Consolidation (Tadros et al. 2022), event-driven, faithful port",
    )
)
