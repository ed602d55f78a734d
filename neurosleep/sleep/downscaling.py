"""Synaptic downscaling (Tononi & Cirelli's synaptic homeostasis): plastic weights × factor.

An instantaneous sleep phase: every plastic projection's weights (or those listed) are
multiplied by ``factor`` and clipped to each rule's bounds; no time passes.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from neurosleep.experiments.base import Params, Progress
from neurosleep.experiments.snn import SNNExperiment
from neurosleep.sleep import SleepAlgorithm, register
from neurosleep.sleep.spontaneous import plastic_weights, write_change


class DownscalingParams(Params):
    """``sleep: {kind: downscaling, factor: 0.8}``."""

    factor: float = Field(gt=0, le=1, description="multiplies the weights")
    projections: list[str] | None = Field(None, description="default: every plastic projection")


def run(experiment: SNNExperiment, params: DownscalingParams, progress: Progress) -> None:
    before = plastic_weights(experiment)
    names = params.projections if params.projections is not None else list(before)
    for name in names:
        proj = experiment.model.projections.get(name)
        if proj is None:
            raise ValueError(f"downscaling: unknown projection {name!r}")
        low = max(
            (r.bounds(experiment.model.weight_unit(name))[0] for r in proj.plasticity),
            default=-np.inf,
        )
        scaled = [np.maximum(w * params.factor, low) for w in experiment.sim.get_weights(name)]
        experiment.sim.set_weights(name, scaled)
    progress(1.0)
    write_change(experiment, before)


register(
    SleepAlgorithm(
        name="downscaling",
        Params=DownscalingParams,
        model_kinds=("snn",),
        run=run,
        summary="multiply plastic weights by a factor (synaptic homeostasis)",
    )
)
