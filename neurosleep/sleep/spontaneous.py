"""Spontaneous sleep for spiking networks: the network runs without task input.

Pattern sources are silent (their ``rate_off``); the spec's ``sleep`` state (or the one the
phase names) scales leak, synaptic gains and input rates, and plasticity stays on (× the
phase's ``plasticity``), so whatever the network replays is consolidated by its own rules
(González et al. 2020-style reactivation). Diagnostics: mean rates per population and the
change of every plastic projection's weights, in ``/sleep/<phase>/``.

Cued reactivation (targeted memory reactivation, cf. Cairney et al. 2016): ``cue`` drives the
first group of one stored memory weakly and periodically during the sleep (the memories'
source, ``rate`` for ``duration`` every ``every``).

Synaptic tagging (cf. Frey & Morris 1997): ``protect`` spares in sleep the synapses that the
wake phases since a named one potentiated: each such synapse's lower bound is, for the sleep,
its weight at the sleep's start (depression cannot take it lower; potentiation can still raise
it), while every other synapse keeps its rule's bounds (docs/protocols.md).

Two options make it a control (docs/consolidation.md, "Controls"): ``block`` inhibits the
neurons of named memories, or of some of a memory's groups, for the whole sleep (a constant
negative input, ``block_bias``, on each of their neurons: their reactivation is blocked);
``surrogate`` applies the sleep's STDP
to its own spikes shuffled (:mod:`neurosleep.sleep.surrogate`) instead of to the spikes as they
came.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from neurosleep.engines.base import Synapses, rule_bounds, rule_gain, stdp_form, steps_of
from neurosleep.params import Params
from neurosleep.sleep import Drive, SleepAlgorithm, SNNContext, SNNOutcome, register
from neurosleep.sleep.surrogate import SHUFFLES, apply_stdp
from neurosleep.spec.snn import STDP, SNNSpec
from neurosleep.spec.states import PhaseState, compose
from neurosleep.units import Rate, Time, Voltage


class Cue(Params):
    """``cue: {memory: A, rate: 20 Hz, every: 500 ms, duration: 20 ms}``: the first group of
    ``memory`` driven at ``rate`` for ``duration`` from each onset 0, ``every``, 2·``every``, …"""

    memory: str = Field(description="a stored memory's name (data.memories)")
    rate: Rate = Field("20 Hz", gt=0, description="rate of the cued neurons' source")
    every: Time = Field("500 ms", gt=0, description="time from one cue onset to the next")
    duration: Time = Field("20 ms", gt=0, description="length of one cue")

    @model_validator(mode="after")
    def _fits(self) -> Cue:
        if self.duration > self.every:
            raise ValueError(f"duration {self.duration:g} ms > every {self.every:g} ms")
        return self


class Groups(Params):
    """``{memory: A, groups: [0, 1]}`` in ``block``: the neurons of some of a memory's groups
    (0-based, in the memory's stored order)."""

    memory: str = Field(description="a stored memory's name (data.memories)")
    groups: list[int] = Field(min_length=1, description="indices of the memory's groups")


def blocked_groups(item: str | Groups, memories: dict[str, list]) -> str | None:
    """What is wrong with a ``block`` item given the stored ``memories`` (None: nothing)."""
    name = item if isinstance(item, str) else item.memory
    if name not in memories:
        return f"unknown memory {name!r}; stored: {list(memories)}"
    n = len(memories[name])
    bad = [g for g in ([] if isinstance(item, str) else item.groups) if not 0 <= g < n]
    return f"memory {name!r} has groups 0 to {n - 1}, not {bad[0]}" if bad else None


class Protect(Params):
    """``protect: {since: learn_B, margin: 0.0}``: a synapse of a plastic projection is tagged
    when its weight ``w`` at the sleep's start has risen since the start of wake phase
    ``since`` (``w0``): ``w − w0 > margin·|w0|``; in the sleep a tagged synapse's lower bound
    is ``w`` (at most its rule's upper bound), the others keep their rules' bounds."""

    since: str = Field(description="the name of a wake phase before this sleep")
    margin: float = Field(0.0, ge=0, description="rise that tags, relative to w0 (0: any rise)")


class SpontaneousParams(PhaseState):
    """``sleep: {kind: spontaneous, duration: 2000 ms, state: sleep, plasticity: 0.75}``."""

    duration: Time = Field(gt=0)
    plasticity: float = Field(1.0, ge=0)
    cue: Cue | None = Field(None, description="cued reactivation of one memory (None: none)")
    block: list[str | Groups] = Field(
        default_factory=list,
        description="memories (or some of a memory's groups) whose neurons are inhibited",
    )
    block_bias: Voltage = Field(
        "-40 mV", le=0, description="constant input to each blocked neuron (resting shift)"
    )
    surrogate: Literal["none", "time", "neurons"] = Field(
        "none", description="apply the sleep's STDP to its own spikes shuffled so"
    )
    protect: Protect | None = Field(
        None, description="synaptic tagging: the recently potentiated synapses are not depressed"
    )


def plastic_weights(context: SNNContext) -> dict[str, np.ndarray]:
    """Weights of network 0 of every plastic projection."""
    return {
        name: context.engine.get_weights(name)[0]
        for name, proj in context.model.projections.items()
        if proj.plasticity
    }


def rescale_plastic(
    context: SNNContext,
    names: list[str],
    transform: Callable[[np.ndarray, Synapses, int], np.ndarray],
) -> None:
    """Replace each named projection's weights, in every network, by ``transform(w, synapses,
    n_post)`` (weights [S] in the projection's unit) clipped to each plasticity rule's bounds;
    an instantaneous sleep (no time passes)."""
    engine, model = context.engine, context.model
    for name in names:
        proj = model.projections[name]
        n_post = model.size(proj.post)
        new = []
        for net, w in zip(engine.networks, engine.get_weights(name), strict=True):
            syn = net.synapses[name]
            scaled = transform(w, syn, n_post)
            for rule in proj.plasticity:  # bounds: relative are factors of the built weights
                low, high = rule_bounds(model, name, rule, syn.weight)
                scaled = np.clip(scaled, low, high)
            new.append(scaled)
        engine.set_weights(name, new)


def write_change(context: SNNContext, before: dict[str, np.ndarray], extra=None) -> None:
    """Per projection: RMS and mean weight change of the phase, in ``/sleep/<phase>/``."""
    arrays, units = dict(extra or {}), {}
    for name, old in before.items():
        new = context.engine.get_weights(name)[0]
        unit = context.model.weight_unit(name)
        arrays[f"{name}_change_rms"] = (
            float(np.sqrt(np.mean((new - old) ** 2))) if len(old) else 0.0
        )
        arrays[f"{name}_mean_after"] = float(new.mean()) if len(new) else 0.0
        units[f"{name}_change_rms"] = units[f"{name}_mean_after"] = unit
        context.record.scalar(f"{name}_change_rms", arrays[f"{name}_change_rms"], unit)
    context.record.arrays(arrays, units)


def drive(cue: Cue, context: SNNContext) -> Drive:
    """The periodic drive of ``cue``: its memory's first group."""
    if cue.memory not in context.memories:
        raise ValueError(f"cue: unknown memory {cue.memory!r}; stored: {list(context.memories)}")
    first = context.memories[cue.memory][0]
    return Drive(tuple(int(i) for i in first), cue.rate, cue.every, cue.duration)


def run(params: SpontaneousParams, context: SNNContext) -> SNNOutcome:
    before = plastic_weights(context)
    surrogate = params.surrogate != "none"  # every network's weights, to go back to
    initial = {name: context.engine.get_weights(name) for name in before} if surrogate else {}
    cue = drive(params.cue, context) if params.cue else None
    blocked, start = _block(params, context), context.engine.t_ms
    try:
        tagged = _protect(params.protect, context) if params.protect else {}
        stats = context.simulate(params.duration, params, params.plasticity, cue)
    finally:
        if blocked is not None:
            context.engine.set_bias(context.memory_population, None)
        for name in before if params.protect else ():
            context.engine.set_floors(name, None)
    for name, fraction in tagged.items():
        context.record.scalar(f"{name}_tagged", fraction, "1")
    rates = {f"rate_{p}": s.rate_mean for p, s in stats.items()}
    if blocked is not None:
        pop = context.memory_population
        per_neuron = stats[pop].rates_hz.reshape(context.engine.batch, -1)
        rates["rate_blocked"] = float(per_neuron[:, blocked].mean())
    for name, value in rates.items():
        context.record.scalar(name, value, "Hz")
    if surrogate:
        _surrogate(params, context, initial, start)
    write_change(context, before, rates)
    return SNNOutcome(changed=tuple(before))


def _protect(protect: Protect, context: SNNContext) -> dict[str, float]:
    """Floors at the tagged synapses' current weights (``engine.set_floors``); per plastic
    projection, the fraction of its synapses tagged (every network)."""
    if protect.since not in context.wake_weights:
        raise ValueError(f"protect: no weights kept from a wake phase {protect.since!r}")
    fractions = {}
    for name, before in context.wake_weights[protect.since].items():
        now = context.engine.get_weights(name)
        tags = [w - w0 > protect.margin * np.abs(w0) for w0, w in zip(before, now, strict=True)]
        floors = [np.where(tag, w, -np.inf) for tag, w in zip(tags, now, strict=True)]
        context.engine.set_floors(name, floors)
        fractions[name] = float(np.concatenate(tags).mean()) if sum(map(len, tags)) else 0.0
    return fractions


def _cue_on_grid(params: SpontaneousParams, model: SNNSpec) -> list[tuple[tuple, str]]:
    """A cue's times on the model's dt grid."""
    problems = []
    for name in ("every", "duration") if params.cue else ():
        value = getattr(params.cue, name)
        try:
            steps_of(value, model.dt)
        except ValueError:
            message = f"{value:g} ms is not a multiple of the model's dt ({model.dt:g} ms)"
            problems.append((("cue", name), message))
    return problems


def _block(params: SpontaneousParams, context: SNNContext) -> np.ndarray | None:
    """Put ``block_bias`` on the neurons of the blocked memories (or groups); their indices
    (None: none)."""
    if not params.block:
        return None
    for item in params.block:
        if problem := blocked_groups(item, context.memories):
            raise ValueError(f"block: {problem}")
    groups = [
        group
        for item in params.block
        for k, group in enumerate(context.memories[getattr(item, "memory", item)])
        if isinstance(item, str) or k in item.groups
    ]
    blocked = np.unique(np.concatenate(groups))
    bias = np.zeros(context.model.size(context.memory_population))
    bias[blocked] = params.block_bias
    context.engine.set_bias(context.memory_population, bias)
    return blocked


def _surrogate(
    params: SpontaneousParams, context: SNNContext, before: dict, start_ms: float
) -> None:
    """Every plastic projection's weights back to ``before`` (one array per network), then
    the sleep's STDP applied to each network's spikes of the sleep that began at
    ``start_ms``, shuffled by ``params.surrogate`` (the same shuffle for a projection's pre
    and post side when they are one population)."""
    model, engine = context.model, context.engine
    state = compose(model, "sleep", params, params.plasticity)
    n_steps = steps_of(params.duration, model.dt)
    rasters: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    spikes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # steps, network, id

    def shuffled(pop: str, b: int) -> tuple[np.ndarray, np.ndarray]:
        if (pop, b) not in rasters:
            if pop not in spikes:  # every network's spikes, joined once per population
                times, ids = context.spikes(pop)
                steps = np.rint((times - start_ms) / model.dt).astype(np.int64)
                spikes[pop] = (steps, *np.divmod(ids, model.size(pop)))
            steps, network, node = spikes[pop]
            mine = network == b
            rng = np.random.default_rng([engine.seeds[b], len(rasters)])
            rasters[pop, b] = SHUFFLES.get(params.surrogate)(
                steps[mine], node[mine], n_steps, model.size(pop), rng
            )
        return rasters[pop, b]

    for name, weights in before.items():
        (rule,) = model.projections[name].plasticity
        pre, post = model.projections[name].pre, model.projections[name].post
        new = []
        for b, (w, net) in enumerate(zip(weights, engine.networks, strict=True)):
            syn = net.synapses[name]
            new.append(
                apply_stdp(
                    w,
                    syn.pre,
                    syn.post,
                    rule_bounds(model, name, rule, syn.weight),
                    rule,
                    stdp_form(state, name, rule.form),
                    rule_gain(state, "plasticity", name),
                    rule_gain(state, "depression", name),
                    shuffled(pre, b),
                    shuffled(post, b),
                    model.dt,
                )
            )
        engine.set_weights(name, new)


def _surrogate_rules(params: SpontaneousParams, model: SNNSpec) -> list[tuple[tuple, str]]:
    """A surrogate needs one STDP rule per plastic projection, between populations."""
    if params.surrogate == "none":
        return []
    return [
        (
            ("surrogate",),
            f"projection {name!r}: a surrogate applies one STDP rule between "
            "populations (not a rate rule, several rules or a source)",
        )  # fmt: skip
        for name, proj in model.projections.items()
        if proj.plasticity
        and (
            len(proj.plasticity) != 1
            or not isinstance(proj.plasticity[0], STDP)
            or proj.pre not in model.populations
        )
    ]


def spikes_read(params: SpontaneousParams, model: SNNSpec) -> set[str]:
    """A surrogate reads both sides' spikes of every plastic projection; a sleep without one
    reads none."""
    if params.surrogate == "none":
        return set()
    plastic = [proj for proj in model.projections.values() if proj.plasticity]
    return {proj.pre for proj in plastic} | {proj.post for proj in plastic}


def check(params: SpontaneousParams, model: SNNSpec, before: list) -> list[tuple[tuple, str]]:
    """A cue's times on the dt grid; a surrogate's rules; no surrogate with ``protect`` (its
    offline STDP keeps the rules' bounds)."""
    problems = _cue_on_grid(params, model) + _surrogate_rules(params, model)
    if params.protect is not None and params.surrogate != "none":
        problems.append((("protect",), "protect cannot be combined with a surrogate"))
    return problems


register(
    SleepAlgorithm(
        name="spontaneous",
        Params=SpontaneousParams,
        model_kind="snn",
        run=run,
        summary="spiking network runs without task input under the sleep state, plasticity on",
        check=check,
        spikes=spikes_read,
    )
)
