"""Synaptic renormalization: each neuron's plastic input weights scaled back to their initial sum.

The synaptic homeostasis hypothesis (Tononi & Cirelli, Neuron 81:12, 2014) has sleep undo the
net potentiation of waking while keeping what was learnt: the relative strengths of a neuron's
synapses. Where :mod:`~neurosleep.sleep.downscaling` multiplies every weight by one factor, this
algorithm scales the weights onto each postsynaptic neuron ``i`` by its own factor — the
multiplicative normalisation of a neuron's total input of Turrigiano's synaptic scaling, also used
to stabilise STDP networks (Diehl & Cook 2015; Lazar et al. 2009):

    r_i = (Σ_j w⁰_ij) / (Σ_j w_ij),    w_ij ← w_ij · (1 + strength · (r_i − 1))

with ``w⁰`` the network's built weights. ``strength = 1`` restores every neuron's total input
exactly (weights then clipped to the plasticity rules' bounds); the ratios between one neuron's
synapses never change. Instantaneous: no time passes. Diagnostics as for ``downscaling``.
"""

from __future__ import annotations

import numpy as np
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


class RenormalizationParams(Params):
    """``sleep: {kind: renormalization, strength: 1.0}``."""

    strength: float = Field(
        1.0, gt=0, le=1, description="fraction of the way back to each neuron's initial sum"
    )
    projections: list[str] | None = Field(None, description="default: every plastic projection")


def renormalized(
    w: np.ndarray, initial: np.ndarray, post: np.ndarray, n_post: int, strength: float
) -> np.ndarray:
    """Weights [S] scaled per postsynaptic neuron toward the sums of ``initial`` [S]."""
    target = np.bincount(post, weights=initial, minlength=n_post)
    total = np.bincount(post, weights=w, minlength=n_post)
    ratio = np.divide(target, total, out=np.ones(n_post), where=total != 0)
    return w * (1.0 + strength * (ratio - 1.0))[post]


def run(params: RenormalizationParams, context: SNNContext) -> SNNOutcome:
    before = plastic_weights(context)
    names = params.projections if params.projections is not None else list(before)
    rescale_plastic(
        context,
        names,
        lambda w, synapses, n_post: renormalized(
            w, synapses.weight, synapses.post, n_post, params.strength
        ),
    )
    context.progress(1.0)
    write_change(context, before)
    return SNNOutcome(changed=tuple(names))


register(
    SleepAlgorithm(
        name="renormalization",
        Params=RenormalizationParams,
        model_kind="snn",
        run=run,
        check=lambda params, model, before: unknown_projections(params.projections, model),
        summary="scale each neuron's plastic input weights back to their initial sum (SHY)",
    )
)
