"""REM dreaming for an MLP: training on novel inputs that do not reproduce the past.

After Wake-Sleep Consolidated Learning (WSCL; Sorrenti, Bellitto, Proietto Salanitri, Pennisi,
Palazzo, Spampinato, IEEE TNNLS 2024, arXiv 2401.08623). In WSCL's REM stage the network is
trained, with its own classification loss, on *dream classes*: images of classes it has never
seen (an auxiliary dataset), put on the output units that no real class uses yet (the code's
"free positions"); the paper reports that this dreaming gives positive forward transfer. There
is no auxiliary dataset here (MNIST 5k has only digits), so dreams are made in the sleep from
what the sleep may see, and never copy it:

- ``chimera`` (default): dream class ``(a, b, axis)`` joins the first half of a seen sample of
  class ``a`` with the second half of a seen sample of class ``b ≠ a``, split at the middle of
  one axis of the sample's shape (rows: top of ``a`` over bottom of ``b``; columns: left of ``a``
  beside right of ``b``) — new glyphs made of old strokes, WSCL's "previously unseen realistic
  sensory experience";
- ``noise``: dream class ``c`` is a random blocky prototype (uniform noise on a grid
  ``block`` times coarser than the sample, thresholded at ``1 − density``); its dreams are the
  prototype with each pixel kept with probability ``keep`` — inputs that owe nothing to the data.

Each step draws ``batch_size`` dreams (dream class uniform, samples uniform within the class),
and takes one SGD step (``lr``, ``momentum``) of softmax cross-entropy between the network's
output pre-activation on the dream units and the dream class. The dream units are the output
units that no seen training label uses (``head: free``, WSCL's), in increasing order, one per
dream class (at most as many classes as free units; the dream classes are a seeded choice
among all possible ones). Only the dream units' rows of the output layer and the hidden layers
learn; the seen classes' output rows never enter the loss, so they stay as they are. With no
free unit (domain-incremental streams, or every class seen) the stage trains nothing and its
``dream_classes`` diagnostic is 0. Biases are not trained (they stay as wake left them).

The stage advances the run's clock by ``steps × dt``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from neurosleep.params import Params
from neurosleep.registry import Registry
from neurosleep.sleep import MLPContext, MLPOutcome, SleepAlgorithm, register
from neurosleep.units import Time

__all__ = ["DREAMS", "DreamSource", "REMDreamsParams", "dream_batch", "free_units", "run"]


class REMDreamsParams(Params):
    """``sleep: {kind: rem_dreams, ...}`` (or a stage of a staged sleep)."""

    steps: int = Field(description="SGD steps on dream batches", ge=1)
    dt: Time = Field("1 ms", gt=0, description="the run's clock per step")
    batch_size: int = Field(64, ge=1, description="dreams per step")
    lr: float = Field(0.01, gt=0, description="SGD learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum (fresh each stage)")
    source: Literal["chimera", "noise"] = Field("chimera", description="how dreams are made")
    head: Literal["free"] = Field(
        "free", description="dream classes on the output units of no seen class (WSCL)"
    )
    max_classes: int | None = Field(
        None, ge=1, description="at most this many dream classes (default: one per free unit)"
    )
    block: int = Field(4, ge=1, description="'noise': prototype grid coarseness (samples)")
    density: float = Field(0.3, gt=0, lt=1, description="'noise': share of prototype pixels on")
    keep: float = Field(0.8, gt=0, le=1, description="'noise': pixel keep probability")
    keep_dreams: int = Field(
        16, ge=0, description="dreams of the last step stored in /sleep/<phase>/dreams"
    )


# -------------------------------------------------------------------- dream sources
@dataclass(frozen=True)
class DreamSource:
    """A way of making dreams. ``classes(labels, n, params, shape, generator)`` fixes at most
    ``n`` dream classes of one stage from the seen labels; ``draw(classes, picks, inputs, labels,
    shape, params, generator)`` makes dreams [len(picks) × feature] of the picked classes from
    the seen inputs."""

    classes: Callable[..., Any]
    draw: Callable[..., torch.Tensor]


DREAMS: Registry[DreamSource] = Registry("dream source")


def _chimera_classes(
    labels: torch.Tensor,
    n: int,
    params: REMDreamsParams,
    shape: tuple[int, ...],
    generator: torch.Generator,
) -> list[tuple[int, int, int]]:
    """``n`` of the ordered class pairs ``(a, b)``, ``a ≠ b``, × split axes, chosen at random."""
    seen = sorted(int(c) for c in labels.unique())
    every = [(a, b, ax) for a, b in itertools.permutations(seen, 2) for ax in range(len(shape))]
    order = torch.randperm(len(every), generator=generator, device=generator.device).tolist()
    return [every[i] for i in order[:n]]


def _chimera_draw(
    classes: list[tuple[int, int, int]],
    picks: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    shape: tuple[int, ...],
    params: REMDreamsParams,
    generator: torch.Generator,
) -> torch.Tensor:
    """Dreams [len(picks) × feature]: first half of a sample of ``a``, second half of ``b``."""
    by_class = {int(c): torch.nonzero(labels == c).flatten() for c in labels.unique()}
    device = inputs.device
    first = torch.empty(len(picks), dtype=torch.long, device=device)
    second = torch.empty_like(first)
    axes = torch.empty_like(first)
    table = torch.tensor(classes, dtype=torch.long, device=device)[picks]  # [n × (a, b, axis)]
    for k in range(len(picks)):  # one index per dream; n is a batch
        a, b, axis = (int(v) for v in table[k])
        ia = torch.randint(len(by_class[a]), (1,), generator=generator, device=device)
        ib = torch.randint(len(by_class[b]), (1,), generator=generator, device=device)
        first[k], second[k], axes[k] = by_class[a][ia], by_class[b][ib], axis
    masks = torch.stack([_half_mask(shape, axis, device).flatten() for axis in range(len(shape))])
    mask = masks[axes]  # [n × feature], True where the first sample shows
    return torch.where(mask, inputs[first], inputs[second])


def _half_mask(shape: tuple[int, ...], axis: int, device) -> torch.Tensor:
    """Boolean array of ``shape``: True in the first half along ``axis``."""
    pos = torch.arange(shape[axis], device=device) < shape[axis] // 2
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return pos.reshape(view).expand(shape)


def _noise_classes(
    labels: torch.Tensor,
    n: int,
    params: REMDreamsParams,
    shape: tuple[int, ...],
    generator: torch.Generator,
) -> torch.Tensor:
    """``n`` blocky binary prototypes [n × feature]."""
    coarse = [max(1, -(-s // params.block)) for s in shape]
    u = torch.rand((n, *coarse), generator=generator, device=generator.device)
    on = (u > 1 - params.density).float()
    for axis, size in enumerate(shape):
        on = on.repeat_interleave(params.block, dim=axis + 1).narrow(axis + 1, 0, size)
    return on.reshape(n, -1)


def _noise_draw(
    classes: torch.Tensor,
    picks: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    shape: tuple[int, ...],
    params: REMDreamsParams,
    generator: torch.Generator,
) -> torch.Tensor:
    """The picked prototypes, each pixel kept with probability ``keep``."""
    proto = classes.to(inputs.dtype)[picks]
    kept = torch.rand(proto.shape, generator=generator, device=proto.device) < params.keep
    return proto * kept


DREAMS.register("chimera")(DreamSource(_chimera_classes, _chimera_draw))
DREAMS.register("noise")(DreamSource(_noise_classes, _noise_draw))


def free_units(labels: torch.Tensor, n_outputs: int) -> list[int]:
    """Output units that no label in ``labels`` uses, in increasing order."""
    used = set(int(c) for c in labels.unique())
    return [u for u in range(n_outputs) if u not in used]


def dream_batch(
    source: DreamSource,
    classes,
    n_classes: int,
    context: MLPContext,
    params: REMDreamsParams,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch: dreams [batch × feature] and their dream class [batch] (0..n_classes−1)."""
    g = context.generator
    picks = torch.randint(n_classes, (params.batch_size,), generator=g, device=g.device)
    x = source.draw(classes, picks, context.inputs, context.labels, context.shape, params, g)
    return x, picks


# -------------------------------------------------------------------- the contract
def check(params: REMDreamsParams, model, before: list) -> list[tuple[tuple, str]]:
    """What the dreams need, known at validation: a wake phase before (the seen samples)."""
    if params.source == "chimera" and not any(phase.kind == "wake" for phase in before):
        return [(("source",), "rem_dreams 'chimera' joins seen samples: no wake phase before it")]
    return []


def run(params: REMDreamsParams, context: MLPContext) -> MLPOutcome:
    """The ``mlp`` contract: ``steps`` SGD steps of the dream loss on the context's weights;
    diagnostics to ``/sleep/<phase>/``: ``dream_classes`` (count), ``dream_units`` (the output
    unit of each dream class), ``loss`` [step] (nat), ``dreams`` [keep_dreams × feature] and
    ``dream_labels`` (their dream units)."""
    weights = [w.detach().clone() for w in context.weights]
    units = free_units(context.labels, weights[-1].shape[0])
    n = min(len(units), params.max_classes or len(units))
    source = DREAMS.get(params.source)
    if params.source == "chimera" and len(context.labels.unique()) < 2:
        raise ValueError("rem_dreams 'chimera' joins samples of two seen classes: fewer seen")
    classes = source.classes(context.labels, n, params, context.shape, context.generator)
    n = len(classes)
    losses = np.zeros(params.steps if n else 0)
    dreams = torch.zeros((0, weights[0].shape[1]))
    dream_units = torch.tensor(units[:n], dtype=torch.long, device=weights[-1].device)
    if n:
        for w in weights:
            w.requires_grad_(True)
        optimizer = torch.optim.SGD(weights, lr=params.lr, momentum=params.momentum)
        every = max(1, params.steps // 20)
        for step in range(params.steps):
            x, y = dream_batch(source, classes, n, context, params)
            z, _ = context.forward(weights, x)
            loss = F.cross_entropy(z[:, dream_units], y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses[step] = float(loss.detach())
            if (step + 1) % every == 0:
                context.progress((step + 1) / params.steps)
        dreams = x[: params.keep_dreams].detach().cpu()
        kept_labels = dream_units[y[: params.keep_dreams]].cpu()
    else:
        kept_labels = torch.zeros(0, dtype=torch.long)
    context.record.arrays(
        {
            "dream_classes": np.int64(n),
            "dream_units": dream_units.cpu().numpy(),
            "loss": losses,
            "dreams": dreams.numpy(),
            "dream_labels": kept_labels.numpy(),
        },
        units={"loss": "1"},
    )
    if n:
        context.record.scalar(
            "rem_loss_last", float(losses[-max(1, params.steps // 10) :].mean()), "1"
        )
    context.progress(1.0)
    new = [w.detach() for w in weights]
    return MLPOutcome(weights=new, steps=params.steps, dt_ms=params.dt)


register(
    SleepAlgorithm(
        name="rem_dreams",
        Params=REMDreamsParams,
        model_kind="mlp",
        run=run,
        check=check,
        summary="REM dreaming on novel inputs with dream classes on free units (WSCL 2024)",
    )
)
