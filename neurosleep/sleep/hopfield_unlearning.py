"""Hopfield unlearning (Hopfield, Feinstein, Palmer 1983).

Each dream starts from a random state, relaxes under the current couplings to a fixed point σ
(or stops after ``max_updates`` synchronous updates), and weakens it: ``ΔJ = −(ε/N) σσᵀ`` off
the diagonal. Repeated, this flattens spurious attractors more than stored ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field

from neurosleep.params import Params
from neurosleep.sleep import SleepAlgorithm, register
from neurosleep.sleep.hopfield_dreaming import StateBlocks, StatesSink, random_state, sign_update


class UnlearningParams(Params):
    """``sleep: {kind: unlearning, ...}``."""

    dreams: int = Field(ge=1, description="number of random starts, each unlearnt once")
    epsilon: float = Field(0.01, gt=0, description="unlearning strength ε (ΔJ = −ε σσᵀ/N)")
    max_updates: int = Field(50, ge=1, description="synchronous updates allowed per relaxation")
    block: int = Field(100, ge=1, description="fixed points handed to the recorder per block")


def relax(
    j_retrieval: torch.Tensor, state: torch.Tensor, max_updates: int
) -> tuple[torch.Tensor, int]:
    """Synchronous updates until a fixed point (or ``max_updates``); returns (state, updates)."""
    for update in range(1, max_updates + 1):
        new = sign_update(j_retrieval, state)
        if torch.equal(new, state):
            return new, update
        state = new
    return state, max_updates


def unlearn(
    j: torch.Tensor,
    params: UnlearningParams,
    generator: torch.Generator,
    retrieval: Callable[[torch.Tensor], torch.Tensor],
    on_states: StatesSink,
) -> torch.Tensor:
    """Run ``params.dreams`` unlearning dreams; return the new couplings."""
    n = j.shape[0]
    off_diagonal = 1.0 - torch.eye(n, dtype=j.dtype, device=j.device)
    blocks = StateBlocks(on_states, params.block, params.dreams)
    for _ in range(params.dreams):
        sigma, _ = relax(retrieval(j), random_state(n, generator, j), params.max_updates)
        j = j - (params.epsilon / n) * torch.outer(sigma, sigma) * off_diagonal
        blocks.add(sigma)
    blocks.flush()
    return j


register(
    SleepAlgorithm(
        name="unlearning",
        Params=UnlearningParams,
        model_kinds=("hopfield",),
        run=unlearn,
        summary="Hopfield et al. 1983 unlearning: relax from noise, ΔJ = −ε σσᵀ/N",
    )
)
