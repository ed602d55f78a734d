"""The engine contract and the translation of an ``snn`` spec into concrete arrays.

:func:`build` draws everything random in a network (initial values, connectivity, weights,
delays, random patterns) with numpy from one seed, so that every engine simulates the very same
network for the same seed. An :class:`Engine` then maps those arrays to native objects (Brian2
groups, torch tensors) and runs them; it only simulates: what to record and when phases change
is the caller's (an experiment's) business.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

import numpy as np

from neurosleep.registry import Registry
from neurosleep.spec.snn import (
    STATE_UNITS,
    AllToAll,
    FixedProbability,
    Local,
    Modulation,
    OneToOne,
    PairList,
    Patterns,
    Poisson,
    Projection,
    RandomPatterns,
    SNNSpec,
    SpikeArray,
)


# ---------------------------------------------------------------------- concrete network
@dataclass(frozen=True)
class Synapses:
    """One projection's synapses, sorted by (pre, post); ``delay`` in steps."""

    name: str
    pre: np.ndarray  # int64 [S]
    post: np.ndarray  # int64 [S]
    weight: np.ndarray  # float64 [S], in the projection's weight unit
    delay: np.ndarray  # int64 [S], steps


@dataclass(frozen=True)
class SourceSpikes:
    """A source's given spikes (array sources) or random patterns, drawn at build time."""

    steps: np.ndarray | None = None  # int64 [n], time step of each spike
    indices: np.ndarray | None = None  # int64 [n]
    patterns: np.ndarray | None = None  # bool [P, size]


@dataclass(frozen=True)
class Network:
    """Everything an engine needs, as arrays; one per seed."""

    spec: SNNSpec
    seed: int
    initial: dict[str, dict[str, np.ndarray]]  # population -> state var -> [size]
    synapses: dict[str, Synapses]
    sources: dict[str, SourceSpikes] = field(default_factory=dict)


def build(spec: SNNSpec, seed: int) -> Network:
    """Draw the random parts of ``spec`` with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    initial = {name: _initial(pop, rng) for name, pop in spec.populations.items()}
    sources = {name: _source(src, spec.dt, rng) for name, src in spec.sources.items()}
    synapses = {name: _synapses(spec, name, proj, rng) for name, proj in spec.projections.items()}
    return Network(spec, seed, initial, synapses, sources)


def _initial(pop, rng: np.random.Generator) -> dict[str, np.ndarray]:
    values = {}
    for var, unit in STATE_UNITS.items():
        if var in pop.initial:
            values[var] = pop.initial[var].sample(rng, pop.size, unit or pop.g_unit)
        else:
            values[var] = np.full(pop.size, pop.neuron.v_rest if var == "v" else 0.0)
    return values


def _source(src, dt: float, rng: np.random.Generator) -> SourceSpikes:
    if isinstance(src, SpikeArray):
        steps = np.rint(np.asarray(src.times, dtype=float) / dt).astype(np.int64)
        indices = np.asarray(src.indices, dtype=np.int64)
        order = np.lexsort((indices, steps))
        steps, indices = steps[order], indices[order]
        twice = (np.diff(steps) == 0) & (np.diff(indices) == 0)
        if twice.any():
            k = int(np.flatnonzero(twice)[0])
            raise ValueError(f"neuron {indices[k]} spikes twice in step {steps[k]} (dt {dt} ms)")
        return SourceSpikes(steps=steps, indices=indices)
    if isinstance(src, Patterns):
        if isinstance(src.patterns, RandomPatterns):
            n_on = max(1, round(src.patterns.active * src.size))
            patterns = np.zeros((src.patterns.count, src.size), dtype=bool)
            for row in patterns:
                row[rng.choice(src.size, n_on, replace=False)] = True
        else:
            patterns = np.asarray(src.patterns, dtype=bool)
        return SourceSpikes(patterns=patterns)
    return SourceSpikes()


def _synapses(spec: SNNSpec, name: str, proj: Projection, rng: np.random.Generator) -> Synapses:
    n_pre, n_post = spec.size(proj.pre), spec.size(proj.post)
    same = proj.pre == proj.post
    rule = proj.connect
    if isinstance(rule, FixedProbability):
        pre, post = _fixed_probability(n_pre, n_post, rule.p, rng)
        keep = (pre != post) | (not same) | rule.autapses
        pre, post = pre[keep], post[keep]
    elif isinstance(rule, OneToOne):
        pre = post = np.arange(n_pre)
    elif isinstance(rule, AllToAll):
        pre, post = np.divmod(np.arange(n_pre * n_post), n_post)
        keep = (pre != post) | (not same) | rule.autapses
        pre, post = pre[keep], post[keep]
    elif isinstance(rule, PairList):
        pairs = np.asarray(rule.pairs, dtype=np.int64).reshape(-1, 2)
        pairs = np.unique(pairs, axis=0)
        pre, post = pairs[:, 0], pairs[:, 1]
    elif isinstance(rule, Local):
        pre, post = _local(n_pre, n_post, rule, rng)
        keep = (pre != post) | (not same) | rule.autapses
        pre, post = pre[keep], post[keep]
    else:  # pragma: no cover - the spec's union is closed
        raise TypeError(f"unknown connectivity rule {rule!r}")
    unit = spec.weight_unit(name)
    n = len(pre)
    weight = proj.weight.sample(rng, n, unit)
    delay = np.rint(proj.delay.sample(rng, n, "ms") / spec.dt).astype(np.int64)
    return Synapses(name, pre.astype(np.int64), post.astype(np.int64), weight, delay)


def _local(
    n_pre: int, n_post: int, rule: Local, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs within ``rule.radius`` on a line or ring (positions in post neurons), sorted by
    (pre, post), each kept with probability ``rule.p`` (one uniform draw per candidate pair)."""
    centre = np.arange(n_pre) * (n_post / n_pre)
    reach = int(np.ceil(rule.radius)) + 1
    offsets = np.arange(-reach, reach + 1)
    post = np.floor(centre)[:, None].astype(np.int64) + offsets[None, :]
    distance = np.abs(post - centre[:, None])
    near = distance <= rule.radius + 1e-9
    if rule.ring:
        post = post % n_post
    else:
        near &= (post >= 0) & (post < n_post)
    pre = np.broadcast_to(np.arange(n_pre)[:, None], post.shape)[near]
    pairs = np.unique(np.stack([pre, post[near]], axis=1), axis=0)  # a ring smaller than 2r
    pre, post = pairs[:, 0], pairs[:, 1]
    if rule.p < 1.0:
        kept = rng.random(len(pre)) < rule.p
        pre, post = pre[kept], post[kept]
    return pre.astype(np.int64), post.astype(np.int64)


def _fixed_probability(
    n_pre: int, n_post: int, p: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Bernoulli(p) for every pair, drawn row by row as binomial counts + distinct targets."""
    counts = rng.binomial(n_post, p, n_pre)
    pre = np.repeat(np.arange(n_pre), counts)
    if n_post * p > 0.1 * n_post or n_post <= 64:  # dense rows: exact per-row choice
        post = np.concatenate(
            [np.sort(rng.choice(n_post, c, replace=False)) for c in counts] or [np.zeros(0, int)]
        )
        return pre, post.astype(np.int64)
    post = rng.integers(0, n_post, counts.sum())
    while True:  # redraw the few duplicates within a row
        order = np.lexsort((post, pre))
        pre, post = pre[order], post[order]
        dup = np.flatnonzero((np.diff(pre) == 0) & (np.diff(post) == 0)) + 1
        if dup.size == 0:
            return pre, post
        post[dup] = rng.integers(0, n_post, dup.size)


# ---------------------------------------------------------------------- parameters
def population_params(spec: SNNSpec, name: str, mod: Modulation | None = None) -> dict[str, float]:
    """A population's neuron parameters (ms, mV, unit-less g) after a modulation's scale factors."""
    neuron = spec.populations[name].neuron
    scale = (mod.scale if mod else {}) if mod else {}
    leak = scale.get(f"{name}.leak", 1.0)
    adaptation = neuron.adaptation
    return {
        "tau_m": neuron.tau_m / leak if leak > 0 else np.inf,
        "v_rest": neuron.v_rest,
        "v_threshold": neuron.v_threshold,
        "v_reset": neuron.v_reset,
        "refractory": neuron.refractory,
        "tau_e": neuron.tau_e * scale.get(f"{name}.tau_e", 1.0),
        "tau_i": neuron.tau_i * scale.get(f"{name}.tau_i", 1.0),
        "e_e": neuron.e_e,
        "e_i": neuron.e_i,
        "tau_a": adaptation.tau * scale.get(f"{name}.adaptation_tau", 1.0) if adaptation else 1.0,
        "increment": (adaptation.increment if adaptation else 0.0)
        * scale.get(f"{name}.adaptation", 1.0),
    }


def source_rates(spec: SNNSpec, name: str) -> np.ndarray:
    """A Poisson source's base rates (Hz, [size]); pattern sources start silent at rate_off."""
    src = spec.sources[name]
    if isinstance(src, Poisson):
        return np.broadcast_to(np.asarray(src.rate, dtype=float), (src.size,)).copy()
    if isinstance(src, Patterns):
        return np.full(src.size, src.rate_off)
    return np.zeros(src.size)


def projection_gain(mod: Modulation | None, name: str) -> float:
    return (mod.scale if mod else {}).get(f"{name}.gain", 1.0)


def rule_gain(
    mod: Modulation | None, kind: Literal["plasticity", "depression"], name: str
) -> float:
    """A brain state's factor on projection ``name``'s rules: on their learning rate
    (``plasticity``) or on STDP's depression amplitude ``a_minus`` (``depression``)."""
    gains = getattr(mod, kind) if mod else {}
    return gains.get(name, gains.get("*", 1.0))


def stdp_form(mod: Modulation | None, name: str, default: str) -> str:
    """The STDP form a brain state gives projection ``name``'s STDP rules (``default``: the
    rule's own)."""
    forms = mod.form if mod else {}
    return forms.get(name, forms.get("*", default))


def rule_bounds(spec: SNNSpec, projection: str, rule, initial: np.ndarray):
    """A rule's (lower, upper) weight bounds: numbers, or arrays [S] over the synapses (in
    :class:`Synapses` order) with ``bounds: relative``; ``initial``: their built weights."""
    return rule.limits(spec.weight_unit(projection), initial)


def channel(spec: SNNSpec, projection: str) -> str:
    """``"e"`` or ``"i"``: the synaptic variable a projection drives (sign of its pre)."""
    pre = spec.projections[projection].pre
    group = spec.populations.get(pre) or spec.sources[pre]
    return "e" if group.sign == "excitatory" else "i"


def steps_of(duration_ms: float, dt_ms: float) -> int:
    """Number of whole steps in a duration; refuses durations that are not multiples of dt."""
    steps = round(duration_ms / dt_ms)
    if abs(steps * dt_ms - duration_ms) > 1e-6 * max(dt_ms, 1.0):
        raise ValueError(f"duration {duration_ms} ms is not a multiple of dt = {dt_ms} ms")
    return steps


# ---------------------------------------------------------------------- recording
@dataclass(frozen=True)
class Recording:
    """What an engine hands to a :class:`Sink` while it runs, in blocks of ``block`` ms.

    ``spikes``: populations or sources whose spikes are recorded; ``states``: (variable,
    population) -> neuron indices sampled every ``interval`` ms.
    """

    spikes: tuple[str, ...] = ()
    states: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    interval: float = 1.0
    block: float = 100.0


class Sink(Protocol):
    """Receives recorded blocks (node ids: ``b * size + i`` for batch element ``b``)."""

    def spikes(self, population: str, times_ms: np.ndarray, node_ids: np.ndarray) -> None: ...

    def state(
        self, variable: str, population: str, times_ms: np.ndarray, rows: np.ndarray
    ) -> None: ...


# ---------------------------------------------------------------------- engine base
class Engine(ABC):
    """One simulation of an ``snn`` spec; ``seeds`` gives one network per batch element.

    Subclasses keep all native objects on the instance (no global state), translate
    :class:`Network` arrays in ``__init__``, and implement the methods below. Times in ms.
    """

    name: ClassVar[str]
    max_batch: ClassVar[int | None] = None
    devices: ClassVar[tuple[str, ...] | None] = None  # torch device types it runs on (None: any)

    @classmethod
    def form_problems(cls, spec: SNNSpec, modulation: Modulation | None) -> list[str]:
        """Why this engine cannot run ``modulation``'s STDP ``form`` for ``spec`` (one message
        per projection; none: it can). The base engine runs every form in every state."""
        return []

    def __init__(
        self, spec: SNNSpec, *, seeds: Sequence[int], device: str = "cpu", dtype: str = "float64"
    ) -> None:
        seeds = list(seeds)
        if not seeds or (self.max_batch is not None and len(seeds) > self.max_batch):
            raise ValueError(f"engine {self.name!r} runs 1..{self.max_batch} networks at once")
        self.spec = spec
        self.seeds = seeds
        self.device = device
        self.dtype = dtype
        self.networks = [build(spec, seed) for seed in seeds]
        self.modulation: Modulation | None = None
        self.step = 0

    @property
    def batch(self) -> int:
        return len(self.seeds)

    @property
    def t_ms(self) -> float:
        return self.step * self.spec.dt

    def run(self, duration_ms: float, recording: Recording | None = None, sink: Sink | None = None):
        """Advance by ``duration_ms``; hand recorded blocks to ``sink`` as they complete."""
        steps = steps_of(duration_ms, self.spec.dt)
        recording = recording or Recording()
        block = max(1, steps_of(recording.block, self.spec.dt))
        done = 0
        while done < steps:
            n = min(block, steps - done)
            self._run_block(n, recording, sink)
            done += n
            self.step += n

    @abstractmethod
    def _run_block(self, steps: int, recording: Recording, sink: Sink | None) -> None:
        """Run ``steps`` steps from ``self.step``; give what ``recording`` asks to ``sink``."""

    @abstractmethod
    def set_modulation(self, modulation: Modulation | None) -> None:
        """Apply a brain state (scale factors, plasticity gains) relative to the spec; ``None``
        restores the spec's values."""

    @abstractmethod
    def set_bias(self, population: str, values_mv: np.ndarray | None) -> None:
        """A constant input to each neuron of a population, [size] (mV: the shift of its
        resting potential, i.e. current × membrane resistance; negative inhibits), the same in
        every network; ``None`` removes it. Stays until changed (not part of a modulation)."""

    @abstractmethod
    def set_rates(self, source: str, rates_hz: np.ndarray) -> None:
        """Base rates of a Poisson or pattern source, [size] or [batch, size] (Hz); the
        modulation's ``<source>.rate`` factor still applies."""

    @abstractmethod
    def get_weights(self, projection: str) -> list[np.ndarray]:
        """Current weights, one array [synapses] per network, in :class:`Synapses` order."""

    @abstractmethod
    def set_weights(self, projection: str, values: np.ndarray | list[np.ndarray]) -> None:
        """Replace weights: one array per network (a list), or one array for every network."""

    @abstractmethod
    def set_floors(self, projection: str, floors: list[np.ndarray] | None) -> None:
        """Lower bounds per synapse for every plasticity rule of ``projection``: one array
        [synapses] per network (the projection's weight unit, :class:`Synapses` order; −inf
        where a synapse keeps its rule's bound), applied as the larger of each rule's own lower
        bound and the floor; a floor above a rule's upper bound yields to it. ``None`` restores
        the rules' own bounds. Stays until changed (not part of a modulation)."""

    @abstractmethod
    def get_state(self, variable: str, population: str) -> np.ndarray:
        """A state variable [batch, size] (v, a in mV; g_e, g_i in the population's g unit)."""


ENGINES: Registry[type[Engine]] = Registry("engine", discover="neurosleep.engines")


def make_engine(name: str, spec: SNNSpec, **kwargs) -> Engine:
    """Instantiate a registered engine (:data:`ENGINES` imports the engine modules on first use)."""
    return ENGINES.get(name)(spec, **kwargs)


def rates_with_modulation(base: np.ndarray, mod: Modulation | None, source: str) -> np.ndarray:
    return base * (mod.scale if mod else {}).get(f"{source}.rate", 1.0)


__all__ = [
    "ENGINES",
    "Engine",
    "Network",
    "Recording",
    "Sink",
    "Synapses",
    "build",
    "make_engine",
]
