"""Spontaneous sleep for spiking networks: the network runs without task input.

Pattern sources are silent (their ``rate_off``); the spec's ``sleep`` state (or the one the
phase names) scales leak, synaptic gains and input rates, and plasticity stays on (× the
phase's ``plasticity``), so whatever the network replays is consolidated by its own rules
(González et al. 2020-style reactivation). Diagnostics: mean rates per population and the
change of every plastic projection's weights, in ``/sleep/<phase>/``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import Field

from neurosleep.engines.base import Synapses, rule_bounds
from neurosleep.sleep import SleepAlgorithm, SNNContext, SNNOutcome, register
from neurosleep.spec.states import PhaseState
from neurosleep.units import Time


class SpontaneousParams(PhaseState):
    """``sleep: {kind: spontaneous, duration: 2000 ms, state: sleep, plasticity: 0.75}``."""

    duration: Time = Field(gt=0)
    plasticity: float = Field(1.0, ge=0)


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


def run(params: SpontaneousParams, context: SNNContext) -> SNNOutcome:
    before = plastic_weights(context)
    stats = context.simulate(params.duration, params, params.plasticity)
    rates = {f"rate_{p}": s.rate_mean for p, s in stats.items()}
    for name, value in rates.items():
        context.record.scalar(name, value, "Hz")
    write_change(context, before, rates)
    return SNNOutcome(changed=tuple(before))


register(
    SleepAlgorithm(
        name="spontaneous",
        Params=SpontaneousParams,
        model_kind="snn",
        run=run,
        summary="spiking network runs without task input under the sleep state, plasticity on",
    )
)
