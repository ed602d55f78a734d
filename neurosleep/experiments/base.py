"""The contract between the runner and a model kind's experiment.

The runner owns the phase loop, seeding, progress and the run file's lifecycle; an experiment
owns the model state and knows what ``wake``, ``sleep`` and ``test`` mean for its kind. The
runner calls exactly one method per phase (no per-step hooks) and reads the experiment's
clock (``time_ms``) at phase boundaries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from neurosleep.analysis.metrics import ContinualOptions
from neurosleep.errors import KeyPath
from neurosleep.io.recorder import Recorder
from neurosleep.params import Params, Progress
from neurosleep.protocol import PlannedPhase
from neurosleep.spec import Spec


@dataclass(frozen=True)
class Evaluation:
    """A test phase's result: one value per task for each metric (NaN: task not tested).

    ``continual``: set by experiments whose metric is a per-task accuracy; the runner then
    writes the continual-learning metrics after each task to ``/metrics/continual``.
    """

    metrics: dict[str, np.ndarray]
    units: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    continual: ContinualOptions | None = None


class Experiment(ABC):
    """Base class: subclasses declare their schemas and implement the three phase kinds.

    Parameters
    ----------
    model : Spec
        The validated model spec.
    data, record : Params
        The protocol's validated ``data`` and ``record`` sections.
    engine, device : str
        Simulation engine name and torch device string.
    seed : int
        The protocol seed (the runner has already seeded python, numpy and torch with it).
    recorder : Recorder
        Where the experiment writes what it records.
    """

    model_kind: ClassVar[str]
    engines: ClassVar[tuple[str, ...]]
    Data: ClassVar[type[Params]]
    Record: ClassVar[type[Params]]
    Wake: ClassVar[type[Params]]
    Test: ClassVar[type[Params]]

    def __init__(
        self,
        model: Spec,
        data: Params,
        record: Params,
        *,
        engine: str,
        device: str,
        seed: int,
        recorder: Recorder,
    ) -> None:
        self.model = model
        self.data = data
        self.record = record
        self.engine = engine
        self.device = device
        self.seed = seed
        self.recorder = recorder
        self.time_ms = 0.0

    @classmethod
    @abstractmethod
    def n_tasks(cls, data: Params) -> int:
        """Number of tasks the data section defines."""

    @classmethod
    def check(
        cls,
        model: Spec,
        data: Params,
        record: Params,
        phases: list[PlannedPhase],
        engine: str,
        device: str,
    ) -> list[tuple[KeyPath, str]]:
        """Problems seen only with model, data, record, schedule, engine and device together, as
        (key path in the protocol, message); e.g. durations off the time grid, a memory estimate
        too large, more networks than the engine runs at once."""
        return []

    def prepare(self, phases: list[PlannedPhase]) -> None:
        """The expanded schedule, once before its first phase runs (e.g. to know which phases
        a later one refers to); by default unused."""
        return None

    @abstractmethod
    def wake(self, phase: PlannedPhase, progress: Progress) -> None: ...

    @abstractmethod
    def sleep(self, phase: PlannedPhase, progress: Progress) -> None: ...

    @abstractmethod
    def test(self, phase: PlannedPhase, progress: Progress) -> Evaluation: ...

    def task_names(self) -> list[str]:
        """A short name per task for tables and figures (memory names, class pairs); stored
        in the run file's ``task_names`` attribute."""
        return [f"task {k + 1}" for k in range(self.n_tasks(self.data))]

    @property
    def scenario(self) -> str | None:
        """The continual-learning scenario (``class``, ``task``, ``domain``) where there is one;
        stored as the run file's ``scenario`` attribute (FWT means nothing in class-IL)."""
        return None

    @classmethod
    def headline(
        cls, phases: list[Any], evaluations: Any, task_names: list[str] | None = None
    ) -> str:
        """One or two lines summing up a finished run (from what the run file holds)."""
        return ""
