"""The study driver: plans runs, hands them to an executor, and is the ledger's only writer.

Resuming is the same as starting: every planned run whose ledger row is complete *and* whose run
file verifies (status ``complete``, stored protocol hashing to the key) is skipped; everything
else is submitted. A worker finds a partial file left by a dead writer, moves it aside and
re-runs. A run whose attempt fails is tried once more; failing twice, it is marked failed and
the study goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from neurosleep.registry import Registry
from neurosleep.study.execute import InProcess, Job, OnDask, Outcome, verify
from neurosleep.study.ledger import Ledger, Row
from neurosleep.study.search import (
    Batches,
    confirmation_runs,
    control_runs,
    grid_search,
    random_search,
)
from neurosleep.study.spec import Configuration, Run, Study
from neurosleep.study.tpe import tpe_search

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
        self.folder = study.folder.resolve()  # workers may run in another working directory
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
            # (at least one made the file: a worker of a killed driver may have, unrecorded)
            self.ledger.update(key, attempts=max(row.attempts - 1, 1))
        if outcome.state == "complete":
            self.ledger.update(
                key,
                state="complete",
                attempt_s=row.attempt_s if outcome.reused else outcome.attempt_s,
                phases_s=outcome.phases_s,
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
                attempt_s=outcome.attempt_s,
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
        """Search, run the controls, then confirm; return the counts (``ok`` only if every run
        completed)."""
        self.bar = tqdm(desc=self.study.name, unit="run", disable=not progress)
        try:
            best = SEARCHES.get(self.study.spec.search.kind)(self)
            confirm = self.study.spec.confirm and best is not None
            # one batch: the controls need nothing of the search, the workers stay busy
            self.run_batch(
                control_runs(self.study) + (confirmation_runs(self.study, best) if confirm else [])
            )
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


SEARCHES: Registry[Callable[[Batches], Configuration | None]] = Registry("search kind")
for _name, _search in (("grid", grid_search), ("random", random_search), ("tpe", tpe_search)):
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
