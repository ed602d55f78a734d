"""Hopfield unlearning (Hopfield, Feinstein, Palmer 1983).

Each dream starts from a random state, relaxes under the current couplings to a fixed point σ
(or stops after ``max_updates`` synchronous updates), and weakens it: ``ΔJ = −(ε/N) σσᵀ`` off
the diagonal. Repeated, this flattens spurious attractors more than stored ones.
"""

from __future__ import annotations

import torch
from pydantic import Field

from neurosleep.engines.hopfield import random_state, relax, retrieval_couplings
from neurosleep.params import Params
from neurosleep.sleep import (
    HopfieldContext,
    HopfieldOutcome,
    SleepAlgorithm,
    StatesSink,
    register,
)
from neurosleep.sleep.hopfield_dreaming import StateBlocks, block_memory


class UnlearningParams(Params):
    """``sleep: {kind: unlearning, ...}``."""

    dreams: int = Field(ge=1, description="number of random starts, each unlearnt once")
    epsilon: float = Field(0.01, gt=0, description="unlearning strength ε (ΔJ = −ε σσᵀ/N)")
    max_updates: int = Field(50, ge=1, description="synchronous updates allowed per relaxation")
    block: int = Field(100, ge=1, description="fixed points handed to the recorder per block")


def unlearn(
    j: torch.Tensor,
    params: UnlearningParams,
    generator: torch.Generator,
    diagonal: str,
    on_states: StatesSink,
) -> torch.Tensor:
    """Run ``params.dreams`` unlearning dreams; return the new couplings (``diagonal``: the
    model's convention for the relaxing network, ``zero``/``keep``)."""
    n = j.shape[0]
    off_diagonal = 1.0 - torch.eye(n, dtype=j.dtype, device=j.device)
    blocks = StateBlocks(on_states, params.block, params.dreams)
    for _ in range(params.dreams):
        start = random_state(n, generator, j)
        sigma, _ = relax(retrieval_couplings(j, diagonal), start, params.max_updates)
        j = j - (params.epsilon / n) * torch.outer(sigma, sigma) * off_diagonal
        blocks.add(sigma)
    blocks.flush()
    return j


def run(params: UnlearningParams, context: HopfieldContext) -> HopfieldOutcome:
    """The ``hopfield`` contract: :func:`unlearn` on the context's couplings."""
    return HopfieldOutcome(
        unlearn(context.couplings, params, context.generator, context.diagonal, context.on_states)
    )


register(
    SleepAlgorithm(
        name="unlearning",
        Params=UnlearningParams,
        model_kind="hopfield",
        run=run,
        check=lambda params, model, before: block_memory(params.block, params.dreams, model),
        summary="Hopfield et al. 1983 unlearning: relax from noise, ΔJ = −ε σσᵀ/N",
    )
)
