"""Spontaneous sleep for spiking networks: the network runs without task input.

Pattern sources are silent (their ``rate_off``); the spec's ``sleep`` state (or the one the
phase names) scales leak, synaptic gains and input rates, and plasticity stays on (× the
phase's ``plasticity``), so whatever the network replays is consolidated by its own rules
(González et al. 2020-style reactivation). Diagnostics: mean rates per population and the
change of every plastic projection's weights, in ``/sleep/<phase>/``.
"""

from __future__ import annotations

import numpy as np

from neurosleep.experiments.snn import SNNExperiment, SNNSleep
from neurosleep.params import Progress
from neurosleep.sleep import SleepAlgorithm, register


class SpontaneousParams(SNNSleep):
    """``sleep: {kind: spontaneous, duration: 2000 ms, state: sleep, plasticity: 0.75}``."""


def plastic_weights(experiment: SNNExperiment) -> dict[str, np.ndarray]:
    """Weights of network 0 of every plastic projection."""
    return {
        name: experiment.sim.get_weights(name)[0]
        for name, proj in experiment.model.projections.items()
        if proj.plasticity
    }


def write_change(experiment: SNNExperiment, before: dict[str, np.ndarray], extra=None) -> None:
    """Per projection: RMS and mean weight change of the phase, in ``/sleep/<phase>/``."""
    arrays, units = dict(extra or {}), {}
    for name, old in before.items():
        new = experiment.sim.get_weights(name)[0]
        unit = experiment.model.weight_unit(name)
        arrays[f"{name}_change_rms"] = (
            float(np.sqrt(np.mean((new - old) ** 2))) if len(old) else 0.0
        )
        arrays[f"{name}_mean_after"] = float(new.mean()) if len(new) else 0.0
        units[f"{name}_change_rms"] = units[f"{name}_mean_after"] = unit
        experiment.recorder.add_scalar(f"{name}_change_rms", arrays[f"{name}_change_rms"], unit)
    experiment.recorder.write_arrays(f"sleep/{experiment.recorder.phase}", arrays, units)


def run(experiment: SNNExperiment, params: SpontaneousParams, progress: Progress) -> None:
    before = plastic_weights(experiment)
    experiment.enter("sleep", params, params.plasticity)
    stats = experiment._measure(
        lambda: experiment.simulate(params.duration, progress), params.duration
    )
    experiment.leave(params)
    rates = {f"rate_{p}": s.rate_mean for p, s in stats.items()}
    for name, value in rates.items():
        experiment.recorder.add_scalar(name, value, "Hz")
    write_change(experiment, before, rates)


register(
    SleepAlgorithm(
        name="spontaneous",
        Params=SpontaneousParams,
        model_kinds=("snn",),
        run=run,
        summary="spiking network runs without task input under the sleep state, plasticity on",
    )
)
