"""Simulation engines for ``snn`` specs: ``brian2`` (the reference) and ``torch`` (fast, batched).

Importing this package registers both in :data:`~neurosleep.engines.base.ENGINES`; the Brian2
engine module imports brian2 only when an engine is built.
"""

from neurosleep.engines import brian2 as _brian2  # noqa: F401  (registers "brian2")
from neurosleep.engines import torch as _torch  # noqa: F401  (registers "torch")
from neurosleep.engines.base import ENGINES, Engine, Recording, build, make_engine

__all__ = ["ENGINES", "Engine", "Recording", "build", "make_engine"]
