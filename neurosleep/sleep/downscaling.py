"""Synaptic downscaling (Tononi & Cirelli's synaptic homeostasis): plastic weights × factor.

An instantaneous sleep phase: every plastic projection's weights (or those listed) are
multiplied by ``factor`` and clipped to each rule's bounds; no time passes.
"""

from __future__ import annotations

from pydantic import Field

from neurosleep.params import Params
from neurosleep.sleep import (
    SleepAlgorithm,
    SNNContext,
    SNNOutcome,
    register,
    unknown_projections,
)
from neurosleep.sleep.spontaneous import plastic_weights, rescale_plastic, write_change


class DownscalingParams(Params):
    """``sleep: {kind: downscaling, factor: 0.8}``."""

    factor: float = Field(gt=0, le=1, description="multiplies the weights")
    projections: list[str] | None = Field(None, description="default: every plastic projection")


def run(params: DownscalingParams, context: SNNContext) -> SNNOutcome:
    before = plastic_weights(context)
    names = params.projections if params.projections is not None else list(before)
    rescale_plastic(context, names, lambda w, synapses, n_post: w * params.factor)
    context.progress(1.0)
    write_change(context, before)
    return SNNOutcome(changed=tuple(names))


register(
    SleepAlgorithm(
        name="downscaling",
        Params=DownscalingParams,
        model_kind="snn",
        run=run,
        check=lambda params, model, before: unknown_projections(params.projections, model),
        summary="multiply plastic weights by a factor (synaptic homeostasis)",
    )
)
