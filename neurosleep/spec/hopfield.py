"""Hopfield network spec: N binary (±1) neurons with symmetric couplings J.

Time in a Hopfield run is counted in network updates; ``update_interval`` says how much
simulated time (ms) one synchronous update stands for, so that phases share the run's ms clock.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from neurosleep.spec import MODEL_KINDS, Spec
from neurosleep.units import Time


@MODEL_KINDS.register("hopfield")
class HopfieldSpec(Spec):
    """``kind: hopfield``: network size, diagonal convention, update rule for retrieval."""

    kind: Literal["hopfield"] = "hopfield"
    neurons: int = Field(gt=1, description="number of ±1 neurons N")
    diagonal: Literal["zero", "keep"] = Field(
        "zero", description="self-couplings J_ii during retrieval ('zero' as in Hopfield 1982)"
    )
    update_interval: Time = Field("1 ms", gt=0, description="simulated time per network update")
