"""Running a study's runs: the worker function, and executors (in-process or Dask).

A worker runs one planned run and returns what happened; it never writes the ledger. It waits
while a live process holds the run file's lock (neurosleep.io.ownership), then looks at what
is already at the path:

- a complete run file whose stored resolved protocol hashes to the run's key: nothing to do;
- anything else (a partial file left by a killed worker, a failed run, a stale file): moved
  aside to ``runs/aside/`` — never deleted — and the run is re-run.

The driver (:mod:`neurosleep.study.driver`) owns the ledger and decides on retries.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neurosleep.errors import MissingExtra, StudyError
from neurosleep.io.ownership import is_locked, partial_path
from neurosleep.study.spec import Run, run_key

TOPIC = "neurosleep-study"  # Dask event topic a worker announces the start of a run on


@dataclass(frozen=True)
class Job:
    """A run to execute: the planned run, its run-file path and the study folder."""

    run: Run
    path: str
    folder: str


@dataclass
class Outcome:
    """What a worker reports back for one attempt."""

    key: str
    state: str  # complete | failed
    attempt_s: float = 0.0  # this attempt, start to end (for a reused run: only the check)
    phases_s: float | None = None  # the complete run file's phases' wall seconds
    reason: str = ""
    traceback: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    aside: list[str] = field(default_factory=list)
    reused: bool = False  # a complete, matching run file was already there
    started: dict[str, Any] = field(default_factory=dict)  # the attempt's start announcement


# ---------------------------------------------------------------------------- run files
def verify(path: str | Path, key: str) -> str | None:
    """None if ``path`` is a complete run file of the run ``key``; else why it is not."""
    from neurosleep.errors import RunFileError
    from neurosleep.io.runfile import open_run

    path = Path(path)
    if not path.exists():
        return "no run file"
    try:
        with open_run(path) as run:
            status = run.status
            text = run.provenance("protocol")
    except (RunFileError, OSError) as exc:
        return f"unreadable run file ({exc})"
    if status != "complete":
        return f"run file status {status}"
    if text is None or run_key(yaml.safe_load(text)) != key:
        return "run file holds another protocol"
    return None


def wait_for_writer(path: Path, poll_s: float = 1.0) -> None:
    """Wait while a live process writes ``path`` (its run-file lock is held; e.g. a worker of a
    killed driver finishing its run). A lock left by a dead process is stale and ignored."""
    while is_locked(path) is not None:
        time.sleep(poll_s)


def move_aside(path: Path) -> Path:
    """Move ``path`` into ``aside/`` beside it, under a name not yet taken; return it."""
    aside = path.parent / "aside"
    aside.mkdir(exist_ok=True)
    for n in range(1, 10_000):
        target = aside / f"{path.name}.{n}"
        if not target.exists():
            os.replace(path, target)
            return target
    raise RuntimeError(f"{aside}: too many files moved aside for {path.name}")


def final_metrics(path: str | Path) -> dict[str, float]:
    """Every final metric of a complete run: ``"<metric> <quantity>" → value`` (NaN kept)."""
    from neurosleep.analysis.compare import load

    return {f"{m} {q}": v for m, values in load(path).final.items() for q, v in values.items()}


# ---------------------------------------------------------------------------- the worker
def execute(job: Job, announce: Callable[[dict], dict] | None = None) -> Outcome:
    """Run one job in this process (a Dask task, or the in-process loop); never raises for a
    failing run — the outcome says ``failed`` with a one-line reason and a traceback file."""
    import torch

    torch.set_num_threads(1)
    path = Path(job.path)
    key = job.run.key
    info = {"key": key, "pid": os.getpid(), "host": socket.gethostname(), "start": time.time()}
    info = (announce or _announce_on_dask)(info)
    outcome = _attempt(job, path)
    outcome.started = info
    return outcome


def _attempt(job: Job, path: Path) -> Outcome:
    key = job.run.key
    aside: list[str] = []
    start = time.perf_counter()
    try:
        wait_for_writer(path)
        if verify(path, key) is None:  # complete already: nothing executed
            return _complete(key, path, time.perf_counter() - start, reused=True)
        for stale in (path, partial_path(path)):  # a dead writer's file: kept, out of the way
            if os.path.lexists(stale):
                aside.append(str(move_aside(stale)))
        _run(job, path)
        problem = verify(path, key)
        if problem is not None:
            raise RuntimeError(f"{path}: {problem} after the run")
        return _complete(key, path, time.perf_counter() - start, aside=aside)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a failed outcome
        tb = Path(job.folder) / "tracebacks" / f"{key}.{int(time.time() * 1000)}.txt"
        tb.parent.mkdir(parents=True, exist_ok=True)
        tb.write_text(traceback.format_exc())
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        attempt_s = time.perf_counter() - start
        return Outcome(key, "failed", attempt_s, reason=reason, traceback=str(tb), aside=aside)


def _complete(key: str, path: Path, attempt_s: float, **more: Any) -> Outcome:
    """The outcome of a complete run file: its metrics and the phases' recorded wall time."""
    from neurosleep.io.runfile import open_run

    with open_run(path) as run:
        phases_s = run.wall_seconds()
    return Outcome(
        key, "complete", attempt_s, phases_s=phases_s, metrics=final_metrics(path), **more
    )


def _run(job: Job, path: Path) -> None:
    from neurosleep.protocol import load_protocol
    from neurosleep.runner import run

    protocol = load_protocol(job.run.protocol, [*job.run.overrides, f"output={path}"])
    if run_key(protocol.resolved) != job.run.key:
        raise RuntimeError("the protocol file changed since the study was planned")
    run(protocol, progress=False, command_line=["neurosleep", "study", job.folder])


def _announce_on_dask(info: dict) -> dict:
    """Tell the driver (through the scheduler's event log) that this attempt starts; returns
    once the scheduler has the event, so a worker killed right after is still seen to have
    started the run (``Worker.log_event`` only queues the event on the worker's stream)."""
    from dask.distributed import get_worker
    from distributed.utils import sync

    worker = get_worker()
    info = info | {"worker": worker.address}
    sync(worker.loop, worker.scheduler.log_event, topic=TOPIC, msg=info)
    return info


# ---------------------------------------------------------------------------- executors
Event = tuple[str, str, Any]  # ("start", key, info) | ("done", key, Outcome) | ("lost", key, why)


class InProcess:
    """Runs jobs one after another in this process (``--workers 1``)."""

    def __init__(self, on_event: Callable[[Event], None]) -> None:
        self.on_event = on_event
        self.queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    def pending(self) -> int:
        return len(self.queue)

    def step(self) -> None:
        job = self.queue.popleft()
        outcome = execute(job, announce=self._announce)
        self.on_event(("done", job.run.key, outcome))

    def _announce(self, info: dict) -> dict:
        info = info | {"worker": "local"}
        self.on_event(("start", info["key"], info))
        return info

    def close(self) -> None:
        pass


# Loaded once into the fork server that a LocalCluster's workers fork from: what a run uses.
WORKER_IMPORTS = ("distributed", "neurosleep.study.warm")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
# Dask's own periodic machinery, slowed down (documented keys of distributed.yaml): the event
# loop's health tick (20 ms), the system monitor (500 ms) and the worker memory monitor
# (100 ms); `benchmarks/study_overhead.py --idle 20` prints what an idle cluster costs with
# Dask's values and with these (docs/scaling.md).
QUIET_DASK = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}


def start_fork_server() -> bool:
    """Start (in the background; at once) the process that a LocalCluster's workers are forked
    from, with :data:`WORKER_IMPORTS` loaded and one OpenMP/BLAS thread; False off Linux (on
    macOS a fork without exec is unsafe once system frameworks are loaded; the workers are then
    spawned, each importing for itself).

    Spawned workers import torch and neurosleep each, at the moment the first runs are due;
    forked from this server, they start with everything a run uses loaded, and the server's
    one import overlaps the driver's own work when started early (``study run`` starts it
    before reading the study).
    """
    import multiprocessing
    from multiprocessing import forkserver

    if sys.platform != "linux":
        return False
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(WORKER_IMPORTS))
    saved = {name: os.environ.get(name) for name in ONE_THREAD}
    os.environ.update(ONE_THREAD)  # the server's environment, inherited by every worker
    try:
        forkserver.ensure_running()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
    return True


def _local_cluster(workers: int):
    """A LocalCluster of ``workers`` processes, one thread each (and one OpenMP/MKL thread),
    forked from :func:`start_fork_server`'s server where there is one.

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_=65536`` in their workers; with it, glibc stops
    adapting its mmap threshold and every large tensor is mapped and unmapped again: the same
    Hopfield run took 2.1x the CPU time in a worker (9.5 s against 4.5 s in the task's thread,
    measured on this project's 2-core machine). Unset here, as Dask's config allows; the
    workers' statistical profiler is switched off (nobody looks at its dashboard here) and
    Dask's periodic monitors are slowed down (:data:`QUIET_DASK`). The configuration
    stays set while the cluster lives: a worker that dies is restarted with it. Returns the
    cluster and the configuration's context (exit it after closing)."""
    import dask
    from dask.distributed import LocalCluster

    method = "forkserver" if start_fork_server() else "spawn"
    config = dask.config.set(
        {
            "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
            "distributed.worker.profile.enabled": False,  # it samples stacks every 10 ms
            "distributed.worker.multiprocessing-method": method,
            **QUIET_DASK,
        }
    )
    try:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # its HTTP server starts anyway: any free port, not 8787
            scheduler_kwargs={"dashboard": False},
            silence_logs=logging.ERROR,
            env=ONE_THREAD,
        )
    except BaseException:
        config.__exit__(None, None, None)
        raise
    return cluster, config


class OnDask:
    """Runs jobs on a Dask cluster: a LocalCluster of ``workers`` processes (one thread and
    one torch thread each), or an existing scheduler at ``address``."""

    def __init__(
        self, on_event: Callable[[Event], None], workers: int, address: str | None
    ) -> None:
        import queue

        try:
            from dask.distributed import Client
        except ImportError:
            raise MissingExtra(
                "studies on Dask need distributed: pip install 'neurosleep[study]' "
                "(or use --workers 1)"
            ) from None
        self.on_event = on_event
        self.events: queue.Queue = queue.Queue()
        self.config = None
        if address:
            self.cluster = None
            try:
                self.client = Client(address, timeout="30s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise StudyError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        else:
            self.cluster, self.config = _local_cluster(workers)
            self.client = Client(self.cluster)
        self.client.subscribe_topic(TOPIC, lambda event: self.events.put(event[1]))
        self.futures: dict = {}

    def submit(self, job: Job) -> None:
        future = self.client.submit(execute, job, key=f"run-{job.run.key}-{time.time_ns()}")
        self.futures[future] = job

    def pending(self) -> int:
        return len(self.futures)

    def step(self) -> None:
        from dask.distributed import wait

        try:
            done, _ = wait(list(self.futures), timeout=0.5, return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        self._drain()
        for future in done:
            job = self.futures.pop(future)
            if future.status == "finished":
                outcome = future.result()
                self._drain()
                self.on_event(("done", job.run.key, outcome))
            else:
                reason = " ".join(repr(future.exception()).split())[:300]
                self.on_event(("lost", job.run.key, reason))

    def _drain(self) -> None:
        while not self.events.empty():
            info = self.events.get()
            self.on_event(("start", info["key"], info))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        if self.config is not None:
            self.config.__exit__(None, None, None)
