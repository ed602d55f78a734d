"""What the protocol layer knows about model kinds and sleep algorithms: two registries.

The layers above fill them — each experiment module registers its class in
:data:`EXPERIMENTS`, each sleep module its algorithm in :data:`SLEEP` — and each registry
imports its package's modules on first lookup (``Registry(discover=...)``), so that
:mod:`neurosleep.protocol` validates a protocol against every schema without importing
``experiments/`` or ``sleep/`` (docs/architecture.md). The entries satisfy the structural
types below; the full contracts live with their layers (:class:`~neurosleep.experiments.base.
Experiment`, :class:`~neurosleep.sleep.SleepAlgorithm`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from neurosleep.params import Params
from neurosleep.registry import Registry


class ExperimentSchema(Protocol):
    """A model kind's protocol schemas, as an experiment class declares them."""

    model_kind: ClassVar[str]
    engines: ClassVar[tuple[str, ...]]
    Data: ClassVar[type[Params]]
    Record: ClassVar[type[Params]]
    Wake: ClassVar[type[Params]]
    Test: ClassVar[type[Params]]

    @classmethod
    def n_tasks(cls, data: Any) -> int: ...


class SleepSchema(Protocol):
    """A sleep algorithm's name, parameters and the model kind it applies to."""

    name: str
    Params: type[Params]
    model_kind: str
    summary: str


EXPERIMENTS: Registry[Any] = Registry("experiment (model kind)", discover="neurosleep.experiments")
SLEEP: Registry[Any] = Registry("sleep algorithm", discover="neurosleep.sleep")
