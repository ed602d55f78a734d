"""Hopfield experiment: store ±1 patterns with the Hebb rule, sleep, test retrieval.

- wake: ``J += ξᵀξ/N`` for the patterns of the phase's task (all tasks when the phase has none).
- sleep: a registered algorithm for ``hopfield`` models maps ``J`` to new couplings (called
  with a :class:`~neurosleep.sleep.HopfieldContext`; the retrieval dynamics are in
  :mod:`neurosleep.engines.hopfield`); the free network's states during sleep go to the run
  file as the report ``/reports/sleep_state/hopfield``.
- test: every stored pattern, with a fraction ``cue_noise`` of its bits flipped, is the start of
  synchronous retrieval; metrics per task: mean final overlap m = σ·ξ/N and the fraction of
  patterns that are fixed points of the dynamics.

Time: one network update (or one integration step / one dream) is ``update_interval`` ms.

Recorded: ``/weights/J`` and ``coupling_change_rms`` are the couplings the dynamics use (the
diagonal zeroed under ``diagonal: zero``); ``eigenvalues_before``/``_after`` are of the full J
the sleep algorithm evolves (the dreaming flow acts on J with its diagonal).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from neurosleep.catalogue import EXPERIMENTS
from neurosleep.engines.hopfield import relax, retrieval_couplings, sign_update
from neurosleep.errors import KeyPath
from neurosleep.experiments.base import (
    Evaluation,
    Experiment,
    Params,
    PlannedPhase,
    Progress,
)
from neurosleep.limits import memory_problem
from neurosleep.sleep import SLEEP, HopfieldContext, SleepRecord
from neurosleep.spec.hopfield import HopfieldSpec

POPULATION = "hopfield"


class HopfieldData(Params):
    """``data:`` random ±1 patterns, ``patterns`` per task."""

    kind: Literal["random_patterns"] = "random_patterns"
    patterns: int = Field(ge=1, description="patterns P per task (load α = P/N)")
    tasks: int = Field(1, ge=1, description="number of pattern sets stored one after another")
    p_active: float = Field(0.5, gt=0, lt=1, description="probability of +1 in a pattern")


class HopfieldRecord(Params):
    """``record:`` what goes into the run file."""

    weights: bool = Field(True, description="J snapshot after every wake and sleep phase")
    sleep_states: bool = Field(True, description="network states during sleep as a report")


class HopfieldWake(Params):
    """``wake:`` keys."""

    rule: Literal["hebb"] = "hebb"


class HopfieldTest(Params):
    """``test:`` keys."""

    cue_noise: float = Field(0.05, ge=0, le=0.5, description="fraction of bits flipped in a cue")
    max_updates: int = Field(
        10,
        ge=1,
        description="synchronous updates of retrieval (10, as in the reference table; above "
        "capacity the dynamics may end in 2-cycles instead of fixed points)",
    )


@EXPERIMENTS.register("hopfield")
class HopfieldExperiment(Experiment):
    """Patterns and couplings live on ``device`` as float64 torch tensors."""

    model_kind = "hopfield"
    engines = ("torch",)
    Data = HopfieldData
    Record = HopfieldRecord
    Wake = HopfieldWake
    Test = HopfieldTest
    model: HopfieldSpec
    data: HopfieldData
    record: HopfieldRecord

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        n = self.model.neurons
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        shape = (self.data.tasks, self.data.patterns, n)
        bits = torch.rand(shape, generator=self.generator, device=self.device, dtype=torch.float64)
        self.patterns = torch.where(bits < self.data.p_active, 1.0, -1.0).to(torch.float64)
        self.couplings = torch.zeros((n, n), dtype=torch.float64, device=self.device)
        self.stored = torch.zeros(self.data.tasks, dtype=torch.bool)

    @classmethod
    def n_tasks(cls, data: HopfieldData) -> int:
        return data.tasks

    @classmethod
    def check(
        cls,
        model: HopfieldSpec,
        data: HopfieldData,
        record: Params,
        phases: list[PlannedPhase],
        engine: str,
        device: str,
    ) -> list[tuple[KeyPath, str]]:
        """The couplings (float64, with the working copies of retrieval and dreaming) and the
        patterns must fit in memory."""
        n, patterns = model.neurons, data.patterns * data.tasks
        estimate = 8 * (8 * n * n + patterns * n)
        what = f"{n}² couplings × 8 bytes × 8 working copies + {patterns} patterns × {n} × 8 bytes"
        problem = memory_problem(estimate, what)
        return [(("model",), problem)] if problem else []

    def retrieval_couplings(self, j: torch.Tensor) -> torch.Tensor:
        """The couplings the dynamics use (the spec's diagonal convention)."""
        return retrieval_couplings(j, self.model.diagonal)

    # ------------------------------------------------------------------ phases
    def wake(self, phase: PlannedPhase, progress: Progress) -> None:
        tasks = range(self.data.tasks) if phase.task < 0 else [phase.task]
        for task in tasks:
            xi = self.patterns[task]
            self.couplings = self.couplings + xi.T @ xi / self.model.neurons
            self.stored[task] = True
        self.time_ms += self.model.update_interval
        progress(1.0)
        self._snapshot()

    def sleep(self, phase: PlannedPhase, progress: Progress) -> None:
        algorithm = SLEEP.get(phase.algorithm)
        before = self.couplings.clone()
        recorded = 0

        def on_states(states: torch.Tensor, done: float) -> None:
            nonlocal recorded
            if self.record.sleep_states:
                times = self.time_ms + self.model.update_interval * (
                    recorded + np.arange(states.shape[0])
                )
                self.recorder.append_report(
                    "sleep_state",
                    POPULATION,
                    states.cpu().numpy().astype(np.int8),
                    times_ms=times,
                    dt_ms=self.model.update_interval,
                    units="1",
                )
            recorded += states.shape[0]
            progress(done)

        context = HopfieldContext(
            couplings=self.couplings,
            diagonal=self.model.diagonal,
            generator=self.generator,
            on_states=on_states,
            record=SleepRecord(self.recorder),
            progress=progress,
        )
        self.couplings = algorithm(phase.params, context).couplings
        self.time_ms += self.model.update_interval * recorded
        change = self.retrieval_couplings(self.couplings - before)  # the couplings in use
        self.recorder.write_arrays(
            self.recorder.sleep_path,
            {
                "eigenvalues_before": torch.linalg.eigvalsh(before).cpu().numpy(),
                "eigenvalues_after": torch.linalg.eigvalsh(self.couplings).cpu().numpy(),
                "coupling_change_rms": float(change.pow(2).mean().sqrt()),
                "states": np.int64(recorded),
            },
            units={"coupling_change_rms": "1", "states": "1"},
        )
        self.recorder.add_scalar("coupling_change_rms", float(change.pow(2).mean().sqrt()), "1")
        self._snapshot()

    def test(self, phase: PlannedPhase, progress: Progress) -> Evaluation:
        params: HopfieldTest = phase.params
        j = self.retrieval_couplings(self.couplings)
        n = self.model.neurons
        flips = round(params.cue_noise * n)
        overlap = np.full(self.data.tasks, np.nan)
        fixed = np.full(self.data.tasks, np.nan)
        longest = 0
        for task in range(self.data.tasks):
            xi = self.patterns[task]
            cues = flip_bits(xi, flips, self.generator)
            final, updates = relax(j, cues, params.max_updates)
            longest = max(longest, updates)
            overlap[task] = float((final * xi).sum(dim=1).mean() / n)
            fixed[task] = float((sign_update(j, xi) == xi).all(dim=1).double().mean())
            progress((task + 1) / self.data.tasks)
        self.time_ms += self.model.update_interval * longest
        return Evaluation(
            metrics={"overlap": overlap, "fixed_point_fraction": fixed},
            units={"overlap": "1", "fixed_point_fraction": "1"},
            descriptions={
                "overlap": f"mean final overlap σ·ξ/N from cues with {params.cue_noise:.0%} "
                "of bits flipped",
                "fixed_point_fraction": "fraction of stored patterns that are fixed points",
            },
        )

    def _snapshot(self) -> None:
        """Record J as the network uses it (diagonal zeroed under ``diagonal: zero``), so that
        weight histograms and ‖ΔJ‖/‖J‖ count only couplings that act."""
        if self.record.weights:
            j = self.retrieval_couplings(self.couplings)
            self.recorder.add_weights("J", j.cpu().numpy(), time_ms=self.time_ms, units="1")

    @classmethod
    def headline(cls, phases, evaluations, task_names=None) -> str:
        overlap = evaluations.metrics.get("overlap")
        if overlap is None or len(overlap) == 0:
            return "no test phase ran"
        names = {p.index: p.name for p in phases}
        rows = [
            f"  {names.get(int(i), i)!s:<20} overlap {np.nanmean(o):.3f}   fixed points "
            f"{np.nanmean(f):.3f}"
            for i, o, f in zip(
                evaluations.phases,
                overlap,
                evaluations.metrics["fixed_point_fraction"],
                strict=True,
            )
        ]
        return "retrieval after each test phase (mean over tasks):\n" + "\n".join(rows)


def flip_bits(patterns: torch.Tensor, flips: int, generator: torch.Generator) -> torch.Tensor:
    """Copies of ``patterns`` [P × N] with exactly ``flips`` random bits flipped in each row."""
    p, n = patterns.shape
    order = torch.rand((p, n), generator=generator, device=patterns.device).argsort(dim=1)
    signs = torch.ones((p, n), dtype=patterns.dtype, device=patterns.device)
    signs.scatter_(1, order[:, :flips], -1.0)
    return patterns * signs
