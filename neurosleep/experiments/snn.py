"""Spiking-network experiment (model kind ``snn``), on the Brian2 or the torch engine.

- wake: the network runs for ``duration`` with plasticity on, under the spec's ``wake`` state
  (if it defines one); pattern sources present the phase's task patterns one after another.
  Each population's mean rate and CV of inter-spike intervals go to ``/metrics/scalars``.
- sleep: a registered sleep algorithm for ``snn`` models, called with an
  :class:`~neurosleep.sleep.SNNContext` (the engine, a ``simulate`` under a brain state
  defaulting to the spec's ``sleep`` state, the recorder's sleep group, progress). With
  ``data.memories``, replay events of the sleep are detected and matched to the memories.
- test: plasticity off, under the ``test`` state; for each task its patterns are presented (or,
  without pattern sources, the network runs once) and each population's mean rate and CV of
  inter-spike intervals are measured.

Everything recorded streams to the run file in blocks while the engine runs: spikes
(``/spikes/<population>``), sampled states (``/reports/<variable>/<population>``), and weight
snapshots after every wake and sleep phase (``/weights/<projection>``). With ``networks: B``
the torch engine runs B networks (seeds ``seed … seed+B−1``) at once; node ids of network b are
``b·size + i``; weights are recorded for network 0.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from pydantic import Field

from neurosleep.analysis.recall import (
    completion,
    full_recall,
    group_latencies,
    responded,
    sequence_recall,
)
from neurosleep.analysis.spikes import SpikeAccumulator, SpikeStats
from neurosleep.catalogue import EXPERIMENTS
from neurosleep.engines.base import (
    ENGINES,
    Engine,
    Recording,
    make_engine,
    source_rates,
    steps_of,
)
from neurosleep.errors import KeyPath
from neurosleep.experiments.base import (
    Evaluation,
    Experiment,
    Params,
    PlannedPhase,
    Progress,
)
from neurosleep.limits import memory_problem
from neurosleep.protocol import flat_phases
from neurosleep.sleep import SLEEP, Drive, SleepRecord, SNNContext
from neurosleep.sleep.spontaneous import blocked_groups
from neurosleep.spec.snn import Modulation, Patterns, SNNSpec
from neurosleep.spec.states import PhaseState, compose
from neurosleep.units import Rate, Time, Unit


class Memory(Params):
    """A stored memory: ordered groups of neurons (one group: an assembly; several: a
    sequence, presented group after group)."""

    name: str
    groups: list[str | list[int]] = Field(
        min_length=1, description='neuron indices, or "start:stop" ranges, in stored order'
    )

    def indices(self) -> list[np.ndarray]:
        """The groups as int arrays."""
        out = []
        for g in self.groups:
            if isinstance(g, str):
                start, _, stop = g.partition(":")
                out.append(np.arange(int(start), int(stop)))
            else:
                out.append(np.asarray(g, dtype=np.int64))
        return out


class Memories(Params):
    """``data: memories:`` memories of one population, presented by a Poisson ``source`` that
    projects one-to-one onto it; task ``k`` is memory ``k``. Tests cue a part of each memory
    and measure recall (docs/consolidation.md)."""

    population: str
    source: str
    stored: list[Memory] = Field(min_length=1)
    rate: Rate = Field("200 Hz", ge=0, description="source rate of a presented group's neurons")
    step: Time = Field("10 ms", gt=0, description="presentation of one group")
    gap: Time = Field("40 ms", ge=0, description="silence after a memory's presentation")
    cue_groups: int = Field(1, ge=1, description="sequences: the first groups are cued")
    cue_fraction: float = Field(0.5, gt=0, le=1, description="assemblies: fraction cued")
    cue_duration: Time = Field("10 ms", gt=0)
    window: Time = Field("60 ms", gt=0, description="recall window from cue onset")
    baseline: bool = Field(
        False, description="tests: also score as many windows without a cue (spontaneous)"
    )
    pause: Time = Field(
        "0 ms", ge=0, description="tests: free-running time before the first trial (not scored)"
    )
    shuffle: bool = Field(
        False, description="tests: each round of trials cues the memories in a seeded random order"
    )
    replay_bin: Time = Field("5 ms", gt=0, description="sleep: bin of the population rate")
    replay_threshold_sd: float = Field(3.0, gt=0, description="sleep: burst threshold (SD)")

    def cue(self, memory: Memory) -> np.ndarray:
        groups = memory.indices()
        if len(groups) > 1:
            return np.concatenate(groups[: self.cue_groups])
        return groups[0][: max(1, round(self.cue_fraction * groups[0].size))]


class SNNData(Params):
    """``data:`` tasks, and how many networks run at once."""

    tasks: int = Field(1, ge=1, description="tasks; pattern sources' patterns split evenly")
    networks: int = Field(1, ge=1, description="independent networks (torch: one batch)")
    target: Literal["numpy", "cython"] = Field("numpy", description="Brian2 codegen target")
    memories: Memories | None = Field(None, description="stored memories (sets the tasks)")


class StateProbe(Params):
    """One sampled state variable."""

    variable: Literal["v", "g_e", "g_i", "a"]
    population: str
    count: int = Field(100, ge=1, description="the first `count` neurons (all if fewer)")


class SNNRecord(Params):
    """``record:`` what goes into the run file."""

    spikes: Literal["all", "none"] | list[str] = "all"
    states: list[StateProbe] = Field(default_factory=list)
    interval: Time = Field("1 ms", gt=0, description="sampling interval of states")
    block: Time = Field(
        "1000 ms", gt=0, description="simulated time per block streamed to the run file"
    )
    weights: Literal["plastic", "none", "all"] = "plastic"


class SNNWake(PhaseState):
    duration: Time = Field(gt=0)
    plasticity: float = Field(1.0, ge=0, description="multiplies every learning rate")


class SNNTest(PhaseState):
    duration: Time = Field("1000 ms", gt=0, description="per task")


class RecorderSink:
    """Streams engine blocks to the run file; feeds spike statistics and kept spike blocks."""

    def __init__(self, recorder, spec: SNNSpec, interval: float, networks: int) -> None:
        self.recorder, self.spec, self.interval = recorder, spec, interval
        self.networks = networks  # node ids of network b: b * size + i
        self.stats: dict[str, SpikeAccumulator] = {}
        self.write_spikes: set[str] = set()
        self.keep: dict[str, list] = {}  # population -> (times, ids) blocks kept in memory

    def spikes(self, population: str, times_ms: np.ndarray, node_ids: np.ndarray) -> None:
        if population in self.write_spikes:
            size = self.spec.populations[population].size * self.networks
            self.recorder.append_spikes(population, times_ms, node_ids, n_nodes=size)
        if population in self.stats:
            self.stats[population].add(np.asarray(times_ms), np.asarray(node_ids))
        if population in self.keep:
            self.keep[population].append((np.asarray(times_ms), np.asarray(node_ids)))

    def state(self, variable: str, population: str, times_ms, rows) -> None:
        units = "mV" if variable in ("v", "a") else self.spec.populations[population].g_unit
        self.recorder.append_report(
            variable, population, rows, times_ms=times_ms, dt_ms=self.interval, units=units
        )


@EXPERIMENTS.register("snn")
class SNNExperiment(Experiment):
    """Holds one engine for the whole run; phases change its modulation, rates and plasticity."""

    model_kind = "snn"
    engines = ("torch", "brian2")
    Data = SNNData
    Record = SNNRecord
    Wake = SNNWake
    Test = SNNTest
    model: SNNSpec
    data: SNNData
    record: SNNRecord

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        seeds = [self.seed + b for b in range(self.data.networks)]
        options = {"target": self.data.target} if self.engine == "brian2" else {}
        self.sim: Engine = make_engine(
            self.engine, self.model, seeds=seeds, device=self.device, **options
        )
        self.sink = RecorderSink(
            self.recorder, self.model, self.record.interval, self.data.networks
        )
        self.recording = self._recording()
        self.sink.write_spikes = set(self.recording.spikes)
        self.tag_phases: set[str] = set()  # wake phases whose starting weights a sleep needs
        self.wake_weights: dict[str, dict[str, list[np.ndarray]]] = {}

    def prepare(self, phases: list[PlannedPhase]) -> None:
        """Note the wake phases that a sleep's ``protect.since`` names (their starting weights
        are kept)."""
        self.tag_phases = {
            protect.since
            for phase in flat_phases(phases)
            if (protect := getattr(phase.params, "protect", None)) is not None
        }

    @classmethod
    def n_tasks(cls, data: SNNData) -> int:
        return len(data.memories.stored) if data.memories else data.tasks

    @classmethod
    def check(
        cls,
        model: SNNSpec,
        data: SNNData,
        record: SNNRecord,
        phases: list[PlannedPhase],
        engine: str,
        device: str,
    ) -> list[tuple[KeyPath, str]]:
        """The engine runs this many networks on this device, recorded populations exist,
        phases set rates of Poisson or pattern sources only and keep the run's engine, every
        time is on the dt grid, the memory fits."""
        every = [*model.populations, *model.sources]
        simulator = ENGINES.get(engine)
        problems = []
        if simulator.max_batch is not None and data.networks > simulator.max_batch:
            message = f"engine {engine!r} runs at most {simulator.max_batch} network(s) at once"
            problems.append((("data", "networks"), message))
        if simulator.devices is not None and device.split(":")[0] not in simulator.devices:
            message = f"engine {engine!r} runs on {', '.join(simulator.devices)} only"
            problems.append((("device",), message))
        problems += [
            (("record", "spikes"), f"unknown population {name!r}; the model has {every}")
            for name in _recorded_spikes(record, every)
            if name not in every
        ]
        problems += [
            (("record", "states", i, "population"), f"unknown population {p.population!r}")
            for i, p in enumerate(record.states)
            if p.population not in model.populations
        ]
        stored = [m.name for m in data.memories.stored] if data.memories else []
        memories = {m.name: m.groups for m in data.memories.stored} if data.memories else {}
        wakes: list[str] = []  # the wake phases before the phase being checked
        for phase in phases:
            cue = getattr(phase.params, "cue", None)
            if cue is not None and cue.memory not in stored:
                message = f"unknown memory {cue.memory!r}; stored: {stored}"
                problems.append((phase.source + ("cue", "memory"), message))
            state = getattr(phase.params, "state", None)
            if state is not None and state not in model.modulation:
                message = f"unknown state {state!r}; the model defines {list(model.modulation)}"
                problems.append((phase.source + ("state",), message))
            inline = getattr(phase.params, "modulation", None)
            named = model.modulation.get(state or phase.kind)
            forms = {**(named.form if named else {}), **(inline.form if inline else {})}
            problems += [
                (phase.source + ("modulation", "form"), message)
                for message in simulator.form_problems(model, Modulation(form=forms))
            ]
            problems += [
                (phase.source + ("block", i), problem)
                for i, item in enumerate(getattr(phase.params, "block", None) or [])
                if (problem := blocked_groups(item, memories))
            ]
            protect = getattr(phase.params, "protect", None)
            if protect is not None and protect.since not in wakes:
                message = (
                    f"{protect.since!r} is not a wake phase before this one; "
                    f"wake phases so far: {wakes}"
                )
                problems.append((phase.source + ("protect", "since"), message))
            if phase.kind == "wake":
                wakes.append(phase.name)
            if phase.engine not in (None, engine):
                message = "snn runs keep one engine for the whole run (no phase engine override)"
                problems.append((phase.source + ("engine",), message))
            for name in getattr(phase.params, "rates", {}):
                source = model.sources.get(name)
                if source is None or source.type == "array":
                    what = "plays given spike trains" if source else "is not a source"
                    known = ", ".join(n for n, s in model.sources.items() if s.type != "array")
                    message = f"{name!r} {what}; rates are set for: {known or 'no source'}"
                    problems.append((phase.source + ("rates", name), message))
        timed = [(("record",), record)] + [(phase.source, phase.params) for phase in phases]
        if data.memories:
            timed.append((("data", "memories"), data.memories))
        for key, params in timed:
            problems += [
                (
                    key + (name,),
                    f"{value:g} ms is not a multiple of the model's dt ({model.dt:g} ms)",
                )
                for name, value in _times(params)
                if not _on_grid(value, model.dt)
            ]
        problems += _memory(model, data, record)
        return problems

    def _recording(self) -> Recording:
        rec, spec = self.record, self.model
        spikes = _recorded_spikes(rec, [*spec.populations, *spec.sources])
        states = {
            (p.variable, p.population): np.arange(min(p.count, spec.size(p.population)))
            for p in rec.states
        }
        return Recording(tuple(spikes), states, rec.interval, rec.block)

    # ------------------------------------------------------------------ running
    def simulate(
        self, duration_ms: float, progress: Progress, patterns: list | None = None
    ) -> None:
        """Run ``duration_ms``, presenting ``patterns`` (source, pattern index) in turn."""
        steps_of(duration_ms, self.model.dt)  # refuses durations off the time grid
        if not patterns:
            self._run_blocks(duration_ms, progress, 0.0, 1.0)
        else:
            source = self.model.sources[patterns[0][0]]
            length = source.presentation
            n = max(1, round(duration_ms / length))
            for k in range(n):
                name, index = patterns[k % len(patterns)]
                self.present(name, index)
                this = duration_ms - k * length if k == n - 1 else length
                self._run_blocks(this, progress, k / n, (k + 1) / n)
        self.time_ms = self.sim.t_ms

    def _run_blocks(self, duration: float, progress: Progress, start: float, stop: float) -> None:
        block = self.record.block
        done = 0.0
        while done < duration - 1e-9:
            this = min(block, duration - done)
            self.sim.run(this, self.recording, self.sink)
            done += this
            progress(start + (stop - start) * done / duration)

    def present(self, source: str, index: int | None) -> None:
        """Set a pattern source's rates to show pattern ``index`` (None: all off)."""
        src: Patterns = self.model.sources[source]
        net = self.sim.networks[0]
        on = net.sources[source].patterns[index] if index is not None else np.zeros(src.size, bool)
        self.sim.set_rates(source, np.where(on, src.rate_on, src.rate_off))

    def task_patterns(self, task: int) -> list[tuple[str, int]]:
        """(source, pattern) pairs of a task (task −1: all), over every pattern source."""
        pairs = []
        for name, src in self.model.sources.items():
            if isinstance(src, Patterns):
                count = len(self.sim.networks[0].sources[name].patterns)
                split = np.array_split(np.arange(count), self.data.tasks)
                chosen = range(count) if task < 0 else split[task]
                pairs += [(name, int(i)) for i in chosen]
        return pairs

    def enter(self, default: str, phase: PhaseState, plasticity: float) -> None:
        """Apply a phase's state and source rates (restored by :meth:`leave`)."""
        self.sim.set_modulation(compose(self.model, default, phase, plasticity))
        for name, rates in phase.rates.items():
            if name not in self.model.sources:
                raise ValueError(f"rates: unknown source {name!r}")
            self.sim.set_rates(name, np.asarray(rates, dtype=float))

    def run_state(
        self,
        default: str,
        state: PhaseState,
        plasticity: float,
        duration_ms: float,
        progress: Progress,
        drive: Drive | None = None,
    ) -> dict[str, SpikeStats]:
        """Run ``duration_ms`` without task input under ``state`` (named state ``default`` if
        it names none), learning rates × ``plasticity``, cued by ``drive`` if given; each
        population's spike statistics."""
        self.enter(default, state, plasticity)
        if drive is None:
            stats = self._measure(lambda: self.simulate(duration_ms, progress), duration_ms)
        else:
            stats = self._measure(lambda: self.cued(duration_ms, progress, drive), duration_ms)
        self.leave(state)
        return stats

    def cued(self, duration_ms: float, progress: Progress, drive: Drive) -> None:
        """Run ``duration_ms`` with the memories' source driving ``drive.neurons`` at
        ``drive.rate_hz`` for ``drive.duration_ms`` from each onset (every ``drive.every_ms``
        from now), silent in between."""
        if self.data.memories is None:
            raise ValueError("a cue during sleep needs data.memories (its source drives it)")
        steps_of(duration_ms, self.model.dt)
        neurons = np.asarray(drive.neurons, dtype=np.int64)
        segments = [(neurons, drive.duration_ms), (None, drive.every_ms - drive.duration_ms)]
        self.play(segments, duration_ms, progress, drive.rate_hz)

    def leave(self, phase: PhaseState) -> None:
        self.sim.set_modulation(None)
        for name in phase.rates:
            self.sim.set_rates(name, source_rates(self.model, name))
        for name, src in self.model.sources.items():
            if isinstance(src, Patterns):
                self.present(name, None)

    # ------------------------------------------------------------------ phases
    def wake(self, phase: PlannedPhase, progress: Progress) -> None:
        params: SNNWake = phase.params
        if phase.name in self.tag_phases:
            self.wake_weights[phase.name] = {
                name: self.sim.get_weights(name)
                for name, proj in self.model.projections.items()
                if proj.plasticity
            }
        self.enter("wake", params, params.plasticity)
        if self.data.memories:
            stats = self._measure(
                lambda: self.rehearse(params.duration, progress, phase.task), params.duration
            )
        else:
            stats = self._measure(
                lambda: self.simulate(params.duration, progress, self.task_patterns(phase.task)),
                params.duration,
            )
        self.leave(params)
        for p, st in stats.items():
            self.recorder.add_scalar(f"rate_{p}", st.rate_mean, "Hz")
            self.recorder.add_scalar(f"cv_isi_{p}", st.cv_mean, "1")
        self._snapshot()

    def sleep(self, phase: PlannedPhase, progress: Progress) -> None:
        if phase.engine not in (None, self.engine):
            raise ValueError("snn runs keep one engine for the whole run (phase engine override)")
        memories = self.data.memories
        algorithm = SLEEP.get(phase.algorithm)
        read = algorithm.spikes(phase.params, self.model) if algorithm.spikes else set()
        if memories:  # the replay diagnostics
            read.add(memories.population)
        self.sink.keep = {name: [] for name in self.model.populations if name in read}
        start = self.sim.t_ms
        context = SNNContext(
            model=self.model,
            engine=self.sim,
            simulate=lambda duration, state, plasticity, drive=None: self.run_state(
                "sleep", state, plasticity, duration, progress, drive
            ),
            record=SleepRecord(self.recorder),
            progress=progress,
            memories={m.name: m.indices() for m in memories.stored} if memories else {},
            memory_population=memories.population if memories else None,
            spikes=self._kept_spikes,
            wake_weights=self.wake_weights,
        )
        try:
            algorithm(phase.params, context)
        finally:
            kept, self.sink.keep = self.sink.keep, {}
        if memories and self.sim.t_ms > start:
            self._replay_diagnostics(kept[memories.population], start, self.sim.t_ms)
        self._snapshot()

    def _kept_spikes(self, population: str) -> tuple[np.ndarray, np.ndarray]:
        """The spikes of ``population`` kept since the sleep phase began (times ms, node ids)."""
        if population not in self.sink.keep:
            raise ValueError(
                f"no spikes of {population!r} kept: the sleep algorithm's `spikes` names the "
                f"populations it reads; kept: {list(self.sink.keep)}"
            )
        return joined(self.sink.keep[population])

    def test(self, phase: PlannedPhase, progress: Progress) -> Evaluation:
        params: SNNTest = phase.params
        if self.data.memories:
            return self.recall_test(phase, params, progress)
        self.enter("test", params, 0.0)
        names = list(self.model.populations)
        rates = {p: np.full(self.data.tasks, np.nan) for p in names}
        cvs = {p: np.full(self.data.tasks, np.nan) for p in names}
        tasks = range(self.data.tasks) if phase.task < 0 else [phase.task]
        for k, task in enumerate(tasks):
            stats = self._measure(
                lambda task=task, k=k: self.simulate(
                    params.duration,
                    lambda f, k=k: progress((k + f) / len(tasks)),
                    self.task_patterns(task),
                ),
                params.duration,
            )
            for p in names:
                rates[p][task] = stats[p].rate_mean
                cvs[p][task] = stats[p].cv_mean
        self.leave(params)
        metrics = {f"rate_{p}": rates[p] for p in names} | {f"cv_isi_{p}": cvs[p] for p in names}
        return Evaluation(
            metrics=metrics,
            units={f"rate_{p}": "Hz" for p in names} | {f"cv_isi_{p}": "1" for p in names},
            descriptions={f"rate_{p}": f"mean firing rate of {p} (plasticity off)" for p in names}
            | {f"cv_isi_{p}": f"mean CV of inter-spike intervals in {p}" for p in names},
        )

    # ------------------------------------------------------------------ memories
    def show(self, neurons: np.ndarray | None, rate: float | None = None) -> None:
        """Drive the memories' source on ``neurons`` at ``rate`` Hz (default the memories'
        ``rate``; None: silent)."""
        m = self.data.memories
        rates = np.zeros(self.model.size(m.source))
        if neurons is not None:
            rates[neurons] = m.rate if rate is None else rate
        self.sim.set_rates(m.source, rates)

    def rehearse(self, duration_ms: float, progress: Progress, task: int) -> None:
        """Present memory ``task`` (−1: all, interleaved) group by group, then ``gap`` of
        silence, repeatedly for ``duration_ms``."""
        m = self.data.memories
        chosen = m.stored if task < 0 else [m.stored[task]]
        segments = []
        for memory in chosen:
            segments += [(g, m.step) for g in memory.indices()] + [(None, m.gap)]
        self.play(segments, duration_ms, progress)

    def play(
        self,
        segments: list[tuple[np.ndarray | None, float]],
        duration_ms: float,
        progress: Progress,
        rate_hz: float | None = None,
    ) -> None:
        """Drive the memories' source with each segment in turn — ``(neurons or None: silence,
        length ms)``, at ``rate_hz`` (None: the memories' rate) — over and over for
        ``duration_ms``; silent afterwards. A segment of zero length is skipped."""
        done = 0.0
        try:
            while done < duration_ms - 1e-9:
                for neurons, length in segments:
                    this = min(length, duration_ms - done)
                    if this <= 1e-9:
                        continue
                    self.show(neurons, rate_hz)
                    self._run_blocks(this, lambda f: None, 0.0, 1.0)
                    done += this
                    progress(done / duration_ms)
        finally:
            self.show(None)
        self.time_ms = self.sim.t_ms

    def recall_test(self, phase: PlannedPhase, params: SNNTest, progress: Progress) -> Evaluation:
        """Cue trials per memory (``window + gap`` each, as many as fit in ``duration``):
        pattern completion, graded sequence recall, full recall, no response and intrusion,
        averaged over trials and networks; per network in ``/recall/<phase>/``. The trials
        follow ``pause`` of free running, memory by memory or (``shuffle``) in seeded random
        order (:func:`cue_order`). With ``baseline``, as many trials without a cue follow,
        scored against every memory (``spontaneous_*``)."""
        m = self.data.memories
        size = self.model.size(m.population)
        n_mem, nets = len(m.stored), self.data.networks
        trials = max(1, int(params.duration // (m.window + m.gap)))
        keys = RECALL_KEYS + (SPONTANEOUS_KEYS if m.baseline else ())
        values = {k: np.full((nets, n_mem), np.nan) for k in keys}
        tasks = list(range(n_mem) if phase.task < 0 else [phase.task])
        start = round(self.sim.t_ms / self.model.dt)  # the test's first step
        sets = [trial_sets(m, memory, size) for memory in m.stored]
        order = cue_order(tasks, trials, (self.seed, start) if m.shuffle else None)
        self.enter("test", params, 0.0)
        self.sink.keep = {m.population: []}

        def window(cue: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float]:
            """Run one trial (``cue`` driven for ``cue_duration``; None: no cue); its spikes
            of the memory population and its onset (ms)."""
            self.sink.keep[m.population] = []
            onset = self.sim.t_ms
            if cue is not None:
                self.show(cue)
            self._run_blocks(m.cue_duration, lambda f: None, 0.0, 1.0)
            self.show(None)
            self._run_blocks(m.window + m.gap - m.cue_duration, lambda f: None, 0.0, 1.0)
            times, ids = joined(self.sink.keep[m.population])
            return times, ids, onset

        def trials_of(cued: bool) -> None:
            scores = {k: np.full((nets, n_mem, trials), np.nan) for k in RECALL_KEYS}
            cues = order if cued else [(None, trial) for trial in range(trials)]
            for n, (task, trial) in enumerate(cues):
                times, ids, onset = window(None if task is None else m.cue(m.stored[task]))
                for b in range(nets):
                    mine = ids // size == b
                    t, i = times[mine], ids[mine] - b * size
                    for j in tasks if task is None else [task]:
                        for key, v in score_trial(m, sets[j], t, i, onset).items():
                            scores[key][b, j, trial] = v
                done = n + 1 + (0 if cued else len(order))
                progress(done / (len(order) + m.baseline * trials))
            prefix = "" if cued else "spontaneous_"
            for key in RECALL_KEYS if cued else SPONTANEOUS_BASE:
                values[prefix + key][:, tasks] = scores[key][:, tasks].mean(axis=2)

        def run_trials() -> None:
            if m.pause > 0:
                self._run_blocks(m.pause, lambda f: None, 0.0, 1.0)
            trials_of(cued=True)
            if m.baseline:
                trials_of(cued=False)

        try:
            self._measure(run_trials)
        finally:
            self.sink.keep = {}
        self.leave(params)
        self.show(None)
        self.time_ms = self.sim.t_ms
        self.recorder.write_arrays(
            f"recall/{self.recorder.phase}", values, dict.fromkeys(values, "1")
        )
        return Evaluation(
            metrics={k: v.mean(axis=0) for k, v in values.items()},
            units=dict.fromkeys(values, "1"),
            descriptions={k: RECALL_DESCRIPTIONS[k] for k in values},
        )

    def _replay_diagnostics(self, blocks: list, start: float, stop: float) -> None:
        """Replay events of a sleep phase, matched to the memories, in ``/sleep/<phase>/``:
        network 0's counts, rates per memory (Hz) and per-event start/memory/order, and every
        network's event counts (``network_replay_events`` [networks],
        ``network_replay_count`` and ``network_replay_forward`` [networks × memories])."""
        from neurosleep.analysis.replay import replay_rates

        m = self.data.memories
        size = self.model.size(m.population)
        times, ids = joined(blocks)
        memories = {mem.name: mem.indices() for mem in m.stored}
        names = list(memories)
        per_network = []
        for b in range(self.data.networks):
            mine = ids // size == b
            per_network.append(
                self._replay_events(times[mine], ids[mine] - b * size, start, stop, memories)
            )
        matches = per_network[0]
        rates = replay_rates(matches, names, stop - start)
        arrays = {f"replay_rate_{k}": v for k, v in rates.items()}
        arrays |= {
            "replay_events": len(matches),
            "replay_memories": np.array(names, dtype="S"),
            "event_start_ms": np.array([e.start_ms for e in matches]),
            "event_memory": np.array([names.index(e.memory) if e.memory else -1 for e in matches]),
            "event_order": np.array(
                [e.order[e.memory] if e.memory else np.nan for e in matches], dtype=float
            ),
            "network_replay_events": np.array([len(ms) for ms in per_network]),
            "network_replay_count": np.array(
                [[sum(e.memory == n for e in ms) for n in names] for ms in per_network]
            ),
            "network_replay_forward": np.array(
                [
                    [sum(e.memory == n and e.direction == "forward" for e in ms) for n in names]
                    for ms in per_network
                ]
            ),
        }
        units = {k: "Hz" for k in arrays if k.startswith("replay_rate_")} | {"event_start_ms": "ms"}
        self.recorder.write_arrays(self.recorder.sleep_path, arrays, units)

    def _replay_events(self, times, ids, start: float, stop: float, memories: dict) -> list:
        """One network's bursts over ``[start, stop)`` (``ids`` its neuron indices), matched to
        the memories (:func:`~neurosleep.analysis.replay.match_event`)."""
        from neurosleep.analysis.replay import detect_events, match_event, population_rate

        m = self.data.memories
        size = self.model.size(m.population)
        rate = population_rate([(times, ids)], size, start, stop, m.replay_bin)
        events = detect_events(
            rate, t_start=start, bin_ms=m.replay_bin, threshold_sd=m.replay_threshold_sd
        )
        return [match_event(times, ids, e.start_ms, e.stop_ms, memories) for e in events]

    def _measure(self, run, duration_ms: float | None = None) -> dict[str, SpikeStats]:
        """Run with every population's spikes handed to the sink (streamed where recorded);
        with ``duration_ms``, return each population's statistics over the ``duration_ms`` from
        now (rates, CV of ISI; node ids of every network together)."""
        n, start = self.data.networks, self.sim.t_ms
        self.sink.stats = (
            {
                p: SpikeAccumulator(n * pop.size, start, start + duration_ms)
                for p, pop in self.model.populations.items()
            }
            if duration_ms is not None
            else {}
        )
        wanted = set(self.recording.spikes) | set(self.model.populations)
        saved = self.recording
        self.recording = Recording(tuple(wanted), saved.states, saved.interval, saved.block)
        try:
            run()
        finally:
            self.recording = saved
        stats, self.sink.stats = self.sink.stats, {}
        return {p: acc.result() for p, acc in stats.items()}

    def _snapshot(self) -> None:
        kind = self.record.weights
        for name, proj in self.model.projections.items():
            if kind == "all" or (kind == "plastic" and proj.plasticity):
                syn = self.sim.networks[0].synapses[name]
                self.recorder.add_weights(
                    name,
                    self.sim.get_weights(name)[0],
                    time_ms=self.time_ms,
                    units=self.model.weight_unit(name),
                    pre=syn.pre,
                    post=syn.post,
                )

    def task_names(self) -> list[str]:
        """The stored memories' names (A, B), else "task k"."""
        if self.data.memories:
            return [memory.name for memory in self.data.memories.stored]
        return super().task_names()

    @classmethod
    def headline(cls, phases, evaluations, task_names=None) -> str:
        """Each test phase's metrics per memory (recall of A and of B, not only their mean)."""
        names = {p.index: p.name for p in phases}
        rows = []
        for i, phase in enumerate(evaluations.phases):
            parts = []
            for key, values in sorted(evaluations.metrics.items()):
                row = np.asarray(values[i])
                tasks = task_names or [f"task {k + 1}" for k in range(row.size)]
                if row.size > 1 and task_names:
                    cells = " ".join(f"{n} {v:.3g}" for n, v in zip(tasks, row, strict=True))
                    parts.append(f"{key} {cells}")
                else:
                    parts.append(f"{key} {np.nanmean(row):.3g}")
            rows.append(f"  {names.get(int(phase), phase)!s:<16} " + "  ".join(parts))
        if not rows:
            return "no test phase ran"
        numbered = all(n.startswith("task ") for n in task_names or ["task"])
        what = "mean over tasks" if not task_names else "per task" if numbered else "per memory"
        return f"test phases ({what}):\n" + "\n".join(rows)


def joined(blocks: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Kept spike blocks as one (times ms, node ids) pair; empty arrays when there are none."""
    if not blocks:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate([t for t, _ in blocks]), np.concatenate([i for _, i in blocks])


def _recorded_spikes(record: SNNRecord, every: list[str]) -> list[str]:
    named = {"all": every, "none": []}
    return named[record.spikes] if isinstance(record.spikes, str) else record.spikes


def _times(params: Params) -> list[tuple[str, float]]:
    """(field, value) of every time (``Unit("ms")`` field) of a parameter set."""
    return [
        (name, getattr(params, name))
        for name, field in type(params).model_fields.items()
        if any(isinstance(m, Unit) and m.symbol == "ms" for m in field.metadata)
    ]


def _on_grid(value_ms: float, dt_ms: float) -> bool:
    try:
        steps_of(value_ms, dt_ms)
    except ValueError:
        return False
    return True


RECALL_KEYS = ("completion", "sequence", "full_recall", "no_response", "intrusion")
SPONTANEOUS_BASE = ("sequence", "full_recall", "no_response")
SPONTANEOUS_KEYS = tuple(f"spontaneous_{k}" for k in SPONTANEOUS_BASE)
RECALL_DESCRIPTIONS = {
    "completion": "fraction of a memory's non-cued neurons firing after a partial cue",
    "sequence": "graded: order score of the non-cued groups' first spikes x fraction firing",
    "full_recall": "fraction of trials in which every group fired, in stored order",
    "no_response": "fraction of trials in which no non-cued group fired",
    "intrusion": "fraction of neurons outside the memory firing after its cue",
} | {f"spontaneous_{k}": f"{k}, scored in the same windows without a cue" for k in SPONTANEOUS_BASE}


def cue_order(tasks: list[int], trials: int, seed: tuple[int, int] | None) -> list[tuple[int, int]]:
    """(memory, trial) pairs in the order a test cues them: memory by memory (``seed`` None),
    or round by round, each round the memories in a random order drawn from ``seed`` (the
    run's seed and the test's first time step: the same every run, whether the sleep before it
    is one staged phase or several, and independent of the engine's draws).

    >>> cue_order([0, 1], 2, None)
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    >>> sorted(cue_order([0, 1], 2, (1, 3))) == cue_order([0, 1], 2, None)
    True
    """
    if seed is None:
        return [(task, trial) for task in tasks for trial in range(trials)]
    rng = np.random.default_rng(seed)
    return [(int(task), trial) for trial in range(trials) for task in rng.permutation(tasks)]


class TrialSets(NamedTuple):
    """What scoring a trial of one memory needs (:func:`trial_sets`), computed once per test."""

    groups: list[np.ndarray]
    cue: np.ndarray
    members: np.ndarray
    others: np.ndarray  # the population's neurons outside the memory
    cued: int  # groups cued (sequences), or 1 (assemblies)


def trial_sets(m: Memories, memory: Memory, size: int) -> TrialSets:
    groups = memory.indices()
    members = np.concatenate(groups)
    others = np.setdiff1d(np.arange(size), members)
    cued = m.cue_groups if len(groups) > 1 else len(groups)
    return TrialSets(groups, m.cue(memory), members, others, cued)


def score_trial(
    m: Memories, sets: TrialSets, t: np.ndarray, i: np.ndarray, onset: float
) -> dict[str, float]:
    """One network's recall measures (:data:`RECALL_KEYS`) of a memory (its ``sets``) in the
    trial window ``[onset, onset + window)`` (``t`` ms, ``i`` neuron indices of the memory
    population)."""
    stop = onset + m.window
    lat = group_latencies(t, i, sets.groups, onset, stop)
    fired = np.unique(i[(t >= onset) & (t < stop)])
    others = sets.others
    return {
        "completion": completion(t, i, sets.members, sets.cue, onset, stop),
        "sequence": sequence_recall(lat, sets.cued),
        "full_recall": full_recall(lat, sets.cued),
        "no_response": 1.0 - responded(lat, sets.cued),
        "intrusion": float(np.isin(others, fired).mean()) if others.size else 0.0,
    }


BYTES_PER_SYNAPSE = 48  # pre and post index, weight, delay, traces and a working copy
BYTES_PER_NEURON = 64  # membrane, conductances, adaptation, refractory clock, spike flags


def _memory(model: SNNSpec, data: SNNData, record: SNNRecord) -> list[tuple[KeyPath, str]]:
    """A problem when the networks' synapses, neurons and one recorded block need too much."""
    synapses = sum(
        p.connect.expected(model.size(p.pre), model.size(p.post))
        for p in model.projections.values()
    )
    neurons = sum(p.size for p in model.populations.values())
    samples = (
        record.block
        / record.interval
        * sum(
            min(p.count, model.size(p.population))
            for p in record.states
            if p.population in model.populations
        )
    )
    estimate = data.networks * (
        synapses * BYTES_PER_SYNAPSE + neurons * BYTES_PER_NEURON + samples * 8
    )
    what = (
        f"{data.networks} network(s) × ({synapses:.3g} synapses × {BYTES_PER_SYNAPSE} bytes + "
        f"{neurons} neurons × {BYTES_PER_NEURON} bytes + {samples:.3g} recorded state samples "
        "per block × 8 bytes)"
    )
    problem = memory_problem(estimate, what)
    return [(("model",), problem)] if problem else []
