"""Execute a validated protocol: the whole phase loop, in one place.

The runner seeds python, numpy and torch from the protocol seed, creates the run file, asks the
experiment to run each phase in turn (one call per phase, no per-step hooks), writes each test's
evaluation row, and closes the file with its final status: ``complete``, ``failed`` (the
traceback goes to ``/provenance/traceback``) or ``interrupted`` (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import json
import random
import signal
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from neurosleep.io.ownership import Claim, claim_output
from neurosleep.io.recorder import Recorder, environment
from neurosleep.io.runfile import Evaluations, open_run
from neurosleep.progress import progress_shown
from neurosleep.protocol import Protocol


class RunInterrupted(Exception):
    """The run was stopped by Ctrl-C or SIGTERM; the run file says ``interrupted``."""


class RunFailed(Exception):
    """The run raised; the run file says ``failed`` and holds the traceback."""


@dataclass(frozen=True)
class RunResult:
    path: Path
    headline: str


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (engines seed their own)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(
    protocol: Protocol,
    *,
    output: Path | None = None,
    overwrite: bool = False,
    command_line: list[str] | None = None,
    progress: bool | str = "auto",
) -> RunResult:
    """Run every phase of ``protocol``; return the run file's path and the headline result.

    ``progress``: ``auto`` (bars only when stderr is a terminal), ``always``, ``never``, or a bool.
    """
    path = Path(output or protocol.output)
    with claim_output(path, overwrite=overwrite) as claim:
        _run_into(protocol, claim, command_line or sys.argv, progress)
        claim.commit()
    with open_run(path) as finished:
        from neurosleep.analysis.summary import task_names

        names = task_names(finished, protocol.n_tasks)
        headline = protocol.experiment.headline(finished.phases(), finished.evaluations(), names)
    return RunResult(path=path, headline=headline)


def _run_into(protocol: Protocol, claim: Claim, command_line: list[str], progress: bool) -> None:
    """Run every phase into ``claim.write_path``; close it with the final status."""
    seed_everything(protocol.seed)
    recorder = Recorder.create(
        claim.write_path,
        attrs={
            "name": protocol.name,
            "seed": protocol.seed,
            "engine": protocol.engine,
            "device": protocol.device,
            "model_kind": protocol.model.kind,
            "n_tasks": protocol.n_tasks,
        },
        n_tasks=protocol.n_tasks,
        provenance={
            "protocol": protocol.resolved_yaml(),
            "model": protocol.model.model_dump_json(indent=2),
            "environment": environment(command_line, protocol.device),
            "command_line": " ".join(command_line),
        },
    )
    try:
        with _terminate_as_interrupt():
            experiment = protocol.experiment(
                protocol.model,
                protocol.data,
                protocol.record,
                engine=protocol.engine,
                device=protocol.device,
                seed=protocol.seed,
                recorder=recorder,
            )
            recorder.file.attrs["task_names"] = json.dumps(experiment.task_names())
            if experiment.scenario is not None:
                recorder.file.attrs["scenario"] = experiment.scenario
            _phase_loop(protocol, experiment, recorder, progress_shown(progress))
    except KeyboardInterrupt:
        recorder.close("interrupted")
        raise RunInterrupted(f"run interrupted; {claim.kept_note()}") from None
    except Exception as exc:
        phase = recorder.phase
        recorder.set_provenance("traceback", traceback.format_exc())
        recorder.close("failed")
        raise RunFailed(
            f"run failed in phase {phase}: {type(exc).__name__}: {exc} "
            f"(traceback stored in {claim.write_path}:/provenance/traceback; "
            f"{claim.kept_note()})"
        ) from exc
    recorder.close("complete")


def _phase_loop(protocol, experiment, recorder: Recorder, show: bool) -> None:
    experiment.prepare(protocol.phases)
    phases = tqdm(protocol.phases, desc=protocol.name, unit="phase", disable=not show)
    for phase in phases:
        phases.set_postfix_str(f"{phase.kind} {phase.name}")
        recorder.begin_phase(phase.name, phase.kind, task=phase.task, start_time=experiment.time_ms)
        with tqdm(
            total=1.0,
            desc=f"  {phase.name}",
            leave=False,
            disable=not show,
            bar_format="{l_bar}{bar}| {elapsed}<{remaining}",
        ) as bar:

            def advance(fraction: float, bar=bar) -> None:
                bar.update(fraction - bar.n)

            if phase.stages:
                result = _stages(phase, experiment, recorder, advance)
            else:
                result = getattr(experiment, phase.kind)(phase, advance)
        if phase.kind == "test":
            recorder.add_evaluation(result.metrics, result.units, result.descriptions)
            if result.continual is not None:
                _write_continual(protocol, recorder, result.continual)
        recorder.end_phase(stop_time=experiment.time_ms)


def _stages(phase, experiment, recorder: Recorder, progress) -> None:
    """A staged sleep phase: each stage in turn, ``cycles`` times, each one sub-phase row of
    ``/stages`` and one call of the experiment's ``sleep`` (the stage is a sleep phase)."""
    steps = phase.steps()
    for k, (cycle, stage) in enumerate(steps):
        recorder.begin_stage(
            stage.name, stage.algorithm, cycle=cycle, start_time=experiment.time_ms
        )
        experiment.sleep(stage, lambda f, k=k: progress((k + f) / len(steps)))
        recorder.end_stage(stop_time=experiment.time_ms)


def _write_continual(protocol: Protocol, recorder: Recorder, options) -> None:
    """Rewrite ``/metrics/continual/<metric>`` from every evaluation so far (after a test)."""
    from neurosleep.analysis import metrics as M
    from neurosleep.analysis.summary import accuracy_matrix

    group = recorder.file["metrics/evaluations"]
    dataset = group[options.metric]
    evaluations = Evaluations(
        phases=group["phase"][:],
        metrics={options.metric: dataset[:]},
        units={},
        descriptions={},
    )
    R, rows = accuracy_matrix(protocol.phases, evaluations, options.metric, protocol.n_tasks)
    suffix = "; row k: after training on task k, over tasks 1..k (row 0 and rows not reached: NaN)"
    recorder.set_continual(
        options.metric,
        R,
        rows,
        M.after_each_task(R, options),
        units=str(dataset.attrs["units"]),
        descriptions={name: text + suffix for name, text in M.descriptions().items()}
        | {
            "matrix": f"accuracy matrix R[k, j] of {options.metric!r}: row 0 at start, "
            "row k after training on task k (NaN: not reached)",
            "evaluation": "row of /metrics/evaluations behind each matrix row (-1: none)",
        },
    )


@contextmanager
def _terminate_as_interrupt():
    """Turn SIGTERM into KeyboardInterrupt for the duration of the run (main thread only)."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
