"""Spontaneous sleep for spiking networks: the network runs without task input.

Pattern sources are silent (their ``rate_off``); the spec's ``sleep`` state (or the one the
phase names) scales leak, synaptic gains and input rates, and plasticity stays on (× the
phase's ``plasticity``), so whatever the network replays is consolidated by its own rules
(González et al. 2020-style reactivation). Diagnostics: mean rates per population and the
change of every plastic projection's weights, in ``/sleep/<phase>/``.

Cued reactivation (targeted memory reactivation, cf. Cairney et al. 2016): ``cue`` drives the
first group of one stored memory weakly and periodically during the sleep (the memories'
source, ``rate`` for ``duration`` every ``every``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import Field, model_validator

from neurosleep.engines.base import Synapses, rule_bounds, steps_of
from neurosleep.params import Params
from neurosleep.sleep import Drive, SleepAlgorithm, SNNContext, SNNOutcome, register
from neurosleep.spec.states import PhaseState
from neurosleep.units import Rate, Time


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


class SpontaneousParams(PhaseState):
    """``sleep: {kind: spontaneous, duration: 2000 ms, state: sleep, plasticity: 0.75}``."""

    duration: Time = Field(gt=0)
    plasticity: float = Field(1.0, ge=0)
    cue: Cue | None = Field(None, description="cued reactivation of one memory (None: none)")


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
    cue = drive(params.cue, context) if params.cue else None
    stats = context.simulate(params.duration, params, params.plasticity, cue)
    rates = {f"rate_{p}": s.rate_mean for p, s in stats.items()}
    for name, value in rates.items():
        context.record.scalar(name, value, "Hz")
    write_change(context, before, rates)
    return SNNOutcome(changed=tuple(before))


def check(params: SpontaneousParams, model, before: list) -> list[tuple[tuple, str]]:
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


register(
    SleepAlgorithm(
        name="spontaneous",
        Params=SpontaneousParams,
        model_kind="snn",
        run=run,
        check=check,
        summary="spiking network runs without task input under the sleep state, plasticity on",
    )
)
