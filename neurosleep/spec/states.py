"""The brain state a phase of a spiking run asks for: the keys every ``snn`` phase shares.

A named modulation state of the model spec (``state``), extra inline modulation, and source
rates; wake, test and the sleep algorithms' parameters extend it.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from neurosleep.params import Params
from neurosleep.spec.snn import Modulation, SNNSpec
from neurosleep.units import Rate


class PhaseState(Params):
    """Keys shared by every phase: brain state, extra modulation, source rates."""

    state: str | None = Field(None, description="a modulation state of the model spec")
    modulation: Modulation | None = Field(None, description="extra scale factors / gains")
    rates: dict[str, Rate | list[Rate]] = Field(default_factory=dict, description="source rates")

    @field_validator("rates")
    @classmethod
    def _non_negative(cls, rates: dict[str, float | list[float]]) -> dict:
        for name, rate in rates.items():
            if min(rate if isinstance(rate, list) else [rate], default=0) < 0:
                raise ValueError(f"rates of {name!r} must be >= 0 Hz")
        return rates


def compose(spec: SNNSpec, default: str, phase: PhaseState, plasticity: float) -> Modulation:
    """The phase's modulation: the named state (or the default name if the spec defines it),
    updated by the phase's inline modulation, all learning rates × ``plasticity``."""
    name = phase.state or default
    if phase.state and phase.state not in spec.modulation:
        raise ValueError(
            f"unknown state {phase.state!r}; the model defines {list(spec.modulation)}"
        )
    base = spec.modulation.get(name, Modulation())
    extra = phase.modulation or Modulation()
    gains = {**base.plasticity, **extra.plasticity}
    everyone = {p: gains.get(p, gains.get("*", 1.0)) * plasticity for p in spec.projections}
    return Modulation(
        scale={**base.scale, **extra.scale},
        plasticity=everyone,
        depression={**base.depression, **extra.depression},
        form={**base.form, **extra.form},
    )
