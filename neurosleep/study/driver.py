"""The study driver: plans runs, hands them to an executor, and is the ledger's only writer.

Resuming is the same as starting: every planned run whose ledger row is complete *and* whose run
file verifies (status ``complete``, stored protocol hashing to the key) is skipped; everything
else is submitted. A worker finds a partial file left by a dead writer, moves it aside and
re-runs. A run whose attempt fails is tried once more; failing twice, it is marked failed and
the study goes on.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from neurosleep.errors import MissingExtra
from neurosleep.registry import Registry
from neurosleep.study.execute import InProcess, Job, OnDask, Outcome, verify
from neurosleep.study.ledger import Ledger, Row
from neurosleep.study.spec import Configuration, Run, Study

MAX_ATTEMPTS = 2  # a run failing this many times in one `study run` is marked failed


@dataclass(frozen=True)
class Summary:
    """Counts after ``study run``: complete / failed / re-run (partial moved aside) / total."""

    complete: int
    failed: int
    rerun: int
    total: int
    best: str | None

    @property
    def ok(self) -> bool:
        return self.complete == self.total


class Driver:
    """Runs batches of planned runs to completion and records everything in the ledger."""

    def __init__(self, study: Study, workers: int = 1, scheduler: str | None = None) -> None:
        self.study = study
        self.folder = study.folder
        self.ledger = Ledger(self.folder)
        self.ledger.set_meta("study_file", str(study.path.resolve()))
        self.ledger.set_meta("study_yaml", study.path.read_text())
        self.workers = workers
        self.scheduler = scheduler
        self.executor = None
        self.active: dict[str, Job] = {}
        self.failures: dict[str, int] = {}
        self.seen: set[tuple] = set()  # attempts whose start is recorded
        self.bar = None

    def path_of(self, key: str) -> Path:
        return self.folder / "runs" / f"{key}.h5"

    # ------------------------------------------------------------------ batches
    def run_batch(self, runs: Sequence[Run]) -> list[Row]:
        """Run each planned run unless the ledger and its file say it is complete."""
        runs = list({r.key: r for r in runs}.values())
        self.ledger.add(runs, self.path_of)
        todo = []
        for run in runs:
            row = self.ledger.get(run.key)
            if row.state == "complete" and verify(row.path, run.key) is None:
                continue
            if row.state == "complete":  # its file is gone or changed: run it again
                self.ledger.update(run.key, state="queued")
            todo.append(Job(run, str(self.path_of(run.key)), str(self.folder)))
        if todo:
            executor = self._executor()
            for job in todo:
                self.active[job.run.key] = job
                executor.submit(job)
            while executor.pending():
                executor.step()
        return [self.ledger.get(r.key) for r in runs]

    def _executor(self):
        if self.executor is None:
            if self.workers == 1 and not self.scheduler:
                self.executor = InProcess(self._event)
            else:
                self.executor = OnDask(self._event, self.workers, self.scheduler)
        return self.executor

    def _event(self, event) -> None:
        kind, key, value = event
        if key not in self.active:  # a late start announcement of a finished attempt
            return
        if kind == "start":
            self._started(value)
        elif kind == "done":
            if value.started:  # its announcement may not have arrived yet
                self._started(value.started)
            self._done(key, value)
        else:  # the task was lost with its worker(s), too often for Dask to retry it
            self._done(key, Outcome(key, "failed", reason=f"worker lost: {value}"))
        self._progress()

    def _started(self, info: dict) -> None:
        """Record an attempt's start once (announcement and result both carry it)."""
        attempt = (info["key"], info["pid"], info["host"], info["start"])
        if attempt not in self.seen:
            self.seen.add(attempt)
            self.ledger.started(
                info["key"], info["worker"], info["pid"], info["host"], info["start"]
            )

    def _done(self, key: str, outcome: Outcome) -> None:
        row = self.ledger.get(key)
        aside = row.aside + outcome.aside
        if outcome.reused and outcome.started:  # it found the run complete: not an execution
            self.ledger.update(key, attempts=max(row.attempts - 1, 0))
        if outcome.state == "complete":
            wall = outcome.wall_s if not outcome.reused or row.wall_s is None else row.wall_s
            self.ledger.update(
                key,
                state="complete",
                wall_s=wall,
                metrics=outcome.metrics,
                aside=aside,
                reason=None,
            )
            self.active.pop(key)
            return
        self.failures[key] = self.failures.get(key, 0) + 1
        if self.failures[key] < MAX_ATTEMPTS:
            self.ledger.update(
                key, state="queued", reason=outcome.reason, aside=aside, traceback=outcome.traceback
            )
            self.executor.submit(self.active[key])
        else:
            self.ledger.update(
                key,
                state="failed",
                reason=outcome.reason,
                aside=aside,
                traceback=outcome.traceback,
                wall_s=outcome.wall_s,
            )
            self.active.pop(key)

    def _progress(self) -> None:
        if self.bar is None:
            return
        counts = self.ledger.counts()
        self.bar.n = counts["complete"] + counts["failed"]
        self.bar.total = sum(counts[s] for s in ("queued", "running", "complete", "failed"))
        self.bar.set_postfix_str(
            f"running {counts['running']}, failed {counts['failed']}", refresh=False
        )
        self.bar.refresh()

    # ------------------------------------------------------------------ the whole study
    def run(self, progress: bool = False) -> Summary:
        """Search, then confirm; return the counts (``ok`` only if every run completed)."""
        self.bar = tqdm(desc=self.study.name, unit="run", disable=not progress)
        try:
            best = SEARCHES.get(self.study.spec.search.kind)(self)
            if self.study.spec.confirm and best is not None:
                self.run_batch(confirmation_runs(self.study, best))
        finally:
            self.bar.close()
            if self.executor is not None:
                self.executor.close()
        counts = self.ledger.counts()
        total = sum(counts[s] for s in ("queued", "running", "complete", "failed"))
        self.ledger.set_meta("best", best.label if best else "")
        return Summary(
            counts["complete"],
            counts["failed"],
            counts["rerun"],
            total,
            best.label if best else None,
        )


# ---------------------------------------------------------------------------- searches
def objective_of(rows: Sequence[Row], column: str) -> float:
    """Mean objective over the complete runs of one configuration (NaN if none)."""
    values = [r.metrics.get(column, math.nan) for r in rows if r.state == "complete"]
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def best_configuration(study: Study, rows: Sequence[Row]) -> Configuration | None:
    """The search configuration with the best mean objective over its complete runs."""
    objective = study.spec.objective
    if objective is None:
        return None
    by_label: dict[str, list[Row]] = {}
    for row in rows:
        if row.stage == "search":
            by_label.setdefault(row.label, []).append(row)
    best, best_value = None, math.nan
    for group in by_label.values():
        value = objective_of(group, objective.column)
        if math.isfinite(value) and (math.isnan(best_value) or objective.better(value, best_value)):
            best, best_value = group[0], value
    if best is None:
        return None
    return (
        study.configuration(best.condition, best.params)
        if best.params
        else study.base(best.condition)
    )


def search_runs(study: Study, configs: Sequence[Configuration], trial=None) -> list[Run]:
    split = study.spec.select_on
    return [study.run(c, s, split, "search", trial) for c in configs for s in study.spec.seeds]


def confirmation_runs(study: Study, best: Configuration) -> list[Run]:
    confirm = study.spec.confirm
    configs = [best] + ([study.base(best.condition)] if confirm.against == "base" else [])
    return [study.run(c, s, confirm.split, "confirm") for c in configs for s in confirm.seeds]


def _grid(driver: Driver) -> Configuration | None:
    rows = driver.run_batch(search_runs(driver.study, driver.study.grid()))
    return best_configuration(driver.study, rows)


def _random(driver: Driver) -> Configuration | None:
    study = driver.study
    rng = random.Random(study.spec.search.seed)
    configs = []
    for _ in range(study.spec.search.n):
        condition = rng.randrange(len(study.protocols))
        params = {axis: _draw(rng, spec) for axis, spec in study.spec.space.items()}
        configs.append(study.configuration(condition, params))
    rows = driver.run_batch(search_runs(study, configs))
    return best_configuration(study, rows)


def _draw(rng: random.Random, axis):
    if axis.values is not None:
        return axis.values[rng.randrange(len(axis.values))]
    if axis.log:
        value = math.exp(rng.uniform(math.log(axis.low), math.log(axis.high)))
    else:
        value = rng.uniform(axis.low, axis.high)
    return round(value) if axis.integer else value


def _tpe(driver: Driver) -> Configuration | None:
    """Optuna TPE with its storage in the study folder (``optuna.sqlite``): a killed study
    resumes — trials asked but never told are re-run first (their complete runs are kept)."""
    try:
        import optuna
    except ImportError:
        raise MissingExtra("tpe searches need optuna: pip install 'neurosleep[study]'") from None
    study = driver.study
    spec = study.spec
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(driver.folder / 'optuna.sqlite').resolve()}"
    direction = spec.objective.goal
    tpe = optuna.create_study(
        study_name=spec.name, storage=storage, direction=direction, load_if_exists=True
    )
    # a resumed search must not replay the draws it made before: offset the seed by the history
    tpe.sampler = optuna.samplers.TPESampler(seed=spec.search.seed + len(tpe.trials))
    parallel = spec.search.parallel or max(driver.workers, 1)
    states = optuna.trial.TrialState
    while True:
        unfinished = [t for t in tpe.get_trials(deepcopy=False) if t.state == states.RUNNING]
        finished = [t for t in tpe.get_trials(deepcopy=False) if t.state.is_finished()]
        if not unfinished and len(finished) >= spec.search.n:
            break
        trials = [(t.number, t.params) for t in unfinished]
        while not unfinished and len(trials) < min(parallel, spec.search.n - len(finished)):
            trial = tpe.ask()
            trials.append((trial.number, _suggest(trial, study)))
        batch = {n: _trial_config(study, params) for n, params in trials}
        rows = driver.run_batch(
            [r for n, c in batch.items() for r in search_runs(study, [c], trial=n)]
        )
        for number, config in batch.items():
            mine = [r for r in rows if r.label == config.label]
            value = objective_of(mine, spec.objective.column)
            if math.isfinite(value):
                tpe.tell(number, value)
            else:
                tpe.tell(number, state=states.FAIL)
    return best_configuration(study, driver.ledger.rows())


def _suggest(trial, study: Study) -> dict:
    params = {}
    if len(study.protocols) > 1:
        params["condition"] = trial.suggest_categorical(
            "condition", list(range(len(study.protocols)))
        )
    for axis, spec in study.spec.space.items():
        if spec.values is not None:
            index = trial.suggest_categorical(axis, list(range(len(spec.values))))
            params[axis] = index
        elif spec.integer:
            params[axis] = trial.suggest_int(axis, int(spec.low), int(spec.high), log=spec.log)
        else:
            params[axis] = trial.suggest_float(axis, spec.low, spec.high, log=spec.log)
    return params


def _trial_config(study: Study, params: dict) -> Configuration:
    """Optuna parameters (listed values by index) → a configuration."""
    values = {}
    for axis, spec in study.spec.space.items():
        value = params[axis]
        values[axis] = spec.values[value] if spec.values is not None else value
    return study.configuration(int(params.get("condition", 0)), values)


SEARCHES: Registry[Callable[[Driver], Configuration | None]] = Registry("search kind")
for _name, _search in (("grid", _grid), ("random", _random), ("tpe", _tpe)):
    SEARCHES.register(_name)(_search)


def run_study(
    study: Study, workers: int = 1, scheduler: str | None = None, progress: bool = False
) -> Summary:
    """Run (or resume) a study; the ledger in its folder records every run. ``progress``: one
    bar over runs (done, running, failed) on stderr."""
    started = time.time()
    driver = Driver(study, workers, scheduler)
    try:
        summary = driver.run(progress)
    finally:
        driver.ledger.set_meta("last_run_seconds", f"{time.time() - started:.1f}")
        driver.ledger.close()
    return summary
