"""Dreaming sleep for Hopfield couplings (Fachechi, Agliari, Barra 2019).

The couplings evolve as ``dJ/dt = (J − J²)/(1 + t)`` from the Hebbian ``J(0) = ξᵀξ/N``, whose
solution is ``J(t) = ξᵀ (1+t)(I + tC)⁻¹ ξ / N`` with ``C = ξξᵀ/N``. In ``s = ln(1 + t)`` the
flow is autonomous, ``dJ/ds = J − J²``, and is integrated here with classical Runge–Kutta steps
uniform in ``s`` (accurate over t = 0…10⁴ with a few hundred steps). Sleeping t₁ then t₂ equals
one sleep of ``(1 + t₁)(1 + t₂) − 1``.

While the couplings evolve the network runs freely (no input) from a random state, one
synchronous update per integration step; its states are the sleep activity the run file records.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from neurosleep.engines.hopfield import random_state, retrieval_couplings, sign_update
from neurosleep.limits import memory_problem
from neurosleep.params import Params
from neurosleep.sleep import (
    HopfieldContext,
    HopfieldOutcome,
    SleepAlgorithm,
    StatesSink,
    register,
)


class DreamingParams(Params):
    """``sleep: {kind: dreaming, ...}``."""

    t: float = Field(ge=0, description="sleep time t of the dreaming flow (dimensionless)")
    steps: int = Field(500, ge=1, description="Runge–Kutta steps, uniform in ln(1+t)")
    block: int = Field(100, ge=1, description="states handed to the recorder per block")


def closed_form(patterns: torch.Tensor, t: float) -> torch.Tensor:
    """``J(t) = ξᵀ (1+t)(I + tC)⁻¹ ξ / N`` for patterns ξ [P × N]; returns [N × N]."""
    p, n = patterns.shape
    xi = patterns.to(torch.float64)
    c = xi @ xi.T / n
    eye = torch.eye(p, dtype=xi.dtype, device=xi.device)
    return xi.T @ torch.linalg.solve(eye + t * c, (1 + t) * xi) / n


def flow(j: torch.Tensor) -> torch.Tensor:
    """``dJ/ds = J − J²``, the dreaming flow in ``s = ln(1 + t)``."""
    return j - j @ j


def rk4_step(j: torch.Tensor, ds: float) -> torch.Tensor:
    """One classical Runge–Kutta step of :func:`flow`."""
    k1 = flow(j)
    k2 = flow(j + 0.5 * ds * k1)
    k3 = flow(j + 0.5 * ds * k2)
    k4 = flow(j + ds * k3)
    return j + ds / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def block_memory(block: int, total: int, model) -> list[tuple[tuple, str]]:
    """A check: one block of states [min(block, total) × N] (float64, and its stacked copy)."""
    rows = min(block, total)
    what = f"{rows} states per block × {model.neurons} neurons × 8 bytes × 2"
    problem = memory_problem(16 * rows * model.neurons, what)
    return [(("block",), problem)] if problem else []


class StateBlocks:
    """Collects sleep states [N] and hands them to a sink in blocks of ``size`` rows."""

    def __init__(self, sink: StatesSink, size: int, total: int) -> None:
        self.sink, self.size, self.total = sink, size, total
        self.rows: list[torch.Tensor] = []
        self.done = 0

    def add(self, state: torch.Tensor) -> None:
        self.rows.append(state)
        self.done += 1
        if len(self.rows) == self.size:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.sink(torch.stack(self.rows), self.done / self.total)
            self.rows = []


def dream(
    j: torch.Tensor,
    params: DreamingParams,
    generator: torch.Generator,
    diagonal: str,
    on_states: StatesSink,
) -> torch.Tensor:
    """Integrate the dreaming flow for sleep time ``params.t``; return the new couplings.

    ``diagonal``: the model's convention for the free-running network (``zero``/``keep``).
    """
    ds = math.log1p(params.t) / params.steps
    state = random_state(j.shape[0], generator, j)
    blocks = StateBlocks(on_states, params.block, params.steps)
    for _ in range(params.steps):
        j = rk4_step(j, ds)
        state = sign_update(retrieval_couplings(j, diagonal), state)
        blocks.add(state)
    blocks.flush()
    return j


def run(params: DreamingParams, context: HopfieldContext) -> HopfieldOutcome:
    """The ``hopfield`` contract: :func:`dream` on the context's couplings."""
    return HopfieldOutcome(
        dream(context.couplings, params, context.generator, context.diagonal, context.on_states)
    )


register(
    SleepAlgorithm(
        name="dreaming",
        Params=DreamingParams,
        model_kind="hopfield",
        run=run,
        check=lambda params, model, before: block_memory(params.block, params.steps, model),
        summary="Fachechi et al. 2019 dreaming flow dJ/dt = (J − J²)/(1+t)",
    )
)
