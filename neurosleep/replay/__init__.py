"""Replay baselines for the ``mlp`` experiment, one module each, found by name in :data:`REPLAY`.

A wake phase names one with ``replay: {kind: <name>, ...}``. The method's state (a buffer, a
generator, Fisher information) lives across tasks in a :class:`ReplayStrategy`; the wake loop
asks it, at phase boundaries, for the training set of the task (:meth:`training_set`) and, per
optimisation step, for a replayed batch and a penalty — the method itself, not a plugin hook.
With a replayed batch the loss is ``(1/k)·current + (1 − 1/k)·replay`` at task k (1-based).

Corrupted replay ("nightmares"): ``corrupt_labels`` replaces that fraction of replayed labels
with a uniformly drawn wrong class, for every method that replays labelled samples.

A method may write what it made (a generator's dreams, its loss) through ``context.record``:
rows of ``/metrics/scalars`` and arrays in ``/replay/<phase index>/`` of the wake phase running.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field

from neurosleep.io.recorder import Recorder
from neurosleep.params import Params
from neurosleep.registry import Registry


class ReplayParams(Params):
    """Keys every replay method accepts."""

    kind: str
    corrupt_labels: float = Field(
        0.0, ge=0.0, le=1.0, description="fraction of replayed labels made wrong (nightmares)"
    )


@dataclass(frozen=True)
class ReplayRecord:
    """The part of the run file a replay method writes (the recorder itself stays private)."""

    _recorder: Recorder

    def scalar(self, name: str, value: float, units: str) -> None:
        """One scalar of the running wake phase in ``/metrics/scalars``."""
        self._recorder.add_scalar(name, value, units)

    def arrays(self, arrays: dict[str, Any], units: dict[str, str]) -> None:
        """Arrays in ``/replay/<phase index>/`` of the running wake phase (units per name)."""
        self._recorder.write_arrays(f"replay/{self._recorder.phase}", arrays, units)


@dataclass(frozen=True)
class Context:
    """What a strategy may know about the run: output size, device, generator, and where it may
    write (``record``; None outside a run)."""

    n_outputs: int
    device: torch.device
    generator: torch.Generator
    record: ReplayRecord | None = None


class ReplayStrategy:
    """Base strategy: no replay. Subclasses override what their method needs."""

    def __init__(self, params: Any, context: Context) -> None:
        self.params = params
        self.context = context

    def training_set(
        self, x: torch.Tensor, y: torch.Tensor, task: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples a wake phase on ``task`` trains on (default: the task's own)."""
        return x, y

    def replay_batch(self, size: int, task: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A replayed batch (inputs, int or soft targets), or None (no replay this task)."""
        return None

    def replay_loss(self, loss_fn, z: torch.Tensor, a: torch.Tensor, target: torch.Tensor):
        """The loss on a replayed batch (default: the wake loss); returns (loss, reported)."""
        return loss_fn(z, a, target)

    def penalty(self, net: torch.nn.Module) -> torch.Tensor | None:
        """A regularisation term added to the loss, or None."""
        return None

    def end_task(self, net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: int) -> None:
        """Update the method's memory after training on ``task`` with samples ``x, y``."""


def corrupt_labels(
    y: torch.Tensor, fraction: float, n_outputs: int, generator: torch.Generator
) -> torch.Tensor:
    """Replace ``fraction`` of integer labels by a different label drawn uniformly."""
    if fraction <= 0 or y.ndim != 1:
        return y
    pick = torch.rand(y.shape, generator=generator, device=y.device) < fraction
    shift = torch.randint(1, n_outputs, y.shape, generator=generator, device=y.device)
    return torch.where(pick, (y + shift) % n_outputs, y)


@dataclass(frozen=True)
class ReplayMethod:
    name: str
    Params: type[ReplayParams]
    Strategy: type[ReplayStrategy]
    summary: str


REPLAY: Registry[ReplayMethod] = Registry("replay method")


def register(method: ReplayMethod) -> ReplayMethod:
    return REPLAY.register(method.name)(method)


def load_methods() -> None:
    """Import every module of this package (each registers its method)."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
