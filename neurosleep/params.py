"""Base types every layer's schemas share: strict parameter records and the progress callback.

The bottom layer (with :mod:`neurosleep.errors`, :mod:`neurosleep.registry` and
:mod:`neurosleep.units`): protocol sections, sleep algorithms and replay methods all declare
their keys as :class:`Params` subclasses, so none of them needs to import another's module.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

Progress = Callable[[float], None]  # called with the fraction of the phase done, per block


class Params(BaseModel):
    """Base of every protocol section schema (data, record, phase parameters): strict keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
