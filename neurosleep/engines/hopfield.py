"""Retrieval dynamics of a Hopfield network of ±1 neurons: the model the experiment and the
Hopfield sleep algorithms share.

Pure functions over torch tensors: the coupling convention of retrieval, one synchronous
update, relaxation to a fixed point, a random start state.
"""

from __future__ import annotations

import torch


def retrieval_couplings(j: torch.Tensor, diagonal: str) -> torch.Tensor:
    """The couplings the dynamics use: ``J`` with its diagonal zeroed (``diagonal='zero'``) or
    kept (``'keep'``); see :class:`~neurosleep.spec.hopfield.HopfieldSpec`."""
    return j - torch.diag(torch.diagonal(j)) if diagonal == "zero" else j


def sign_update(j_retrieval: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """Synchronous update ``σ ← sign(Jσ)``; a zero field keeps the neuron's state.

    ``state`` is [..., N] (±1); ``j_retrieval`` [N × N] already has its diagonal convention.
    """
    field = state @ j_retrieval
    return torch.where(field == 0, state, torch.sign(field))


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


def random_state(n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """A uniformly random ±1 state [n] with ``like``'s dtype and device."""
    bits = torch.randint(0, 2, (n,), generator=generator, device=like.device)
    return bits.to(like.dtype) * 2 - 1
