"""Sleep and replay algorithms, one module each, found by name in :data:`SLEEP`.

Each module declares its protocol parameters (a :class:`~neurosleep.params.Params`
schema), the model kinds it applies to, and a pure ``run`` function whose signature is the
one the experiments of those model kinds call (documented in each experiment module).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from neurosleep.registry import Registry


@dataclass(frozen=True)
class SleepAlgorithm:
    """A registered sleep algorithm: its parameter schema and its update."""

    name: str
    Params: type[BaseModel]
    model_kinds: tuple[str, ...]
    run: Callable[..., Any]
    summary: str


SLEEP: Registry[SleepAlgorithm] = Registry("sleep algorithm")


def register(algorithm: SleepAlgorithm) -> SleepAlgorithm:
    """Add an algorithm to :data:`SLEEP` under its name."""
    return SLEEP.register(algorithm.name)(algorithm)
