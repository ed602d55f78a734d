"""Model specs: what a network is (populations, couplings, parameters with units).

A model file (``models/*.yaml``) names its ``kind``; the kind's schema validates the rest. Specs
hold no engine detail: engines and experiments translate them. A new model kind is one module
here registering its schema in :data:`MODEL_KINDS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from neurosleep.errors import KeyPath, Locator, Problem, SpecError, problems_from, raise_if
from neurosleep.registry import Registry
from neurosleep.yamlfile import load_yaml, non_finite

MODEL_FORMAT_VERSION = 1


class Spec(BaseModel):
    """Base of every model schema: strict keys, immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    format_version: int = MODEL_FORMAT_VERSION
    kind: str
    name: str
    description: str = ""


MODEL_KINDS: Registry[type[Spec]] = Registry("model kind")


def load_model(path: str | Path) -> tuple[Spec, dict]:
    """Load and validate a model file; return the spec and its raw mapping."""
    data, locate = load_yaml(path)
    raise_if(non_finite(data, locate))
    return validate_model(data, locate), data


def validate_model(data: Any, locate: Locator, prefix: KeyPath = ()) -> Spec:
    """Validate a model mapping (from a file, or inline in a protocol at ``prefix``)."""
    if not isinstance(data, dict):
        raise SpecError([locate.problem(prefix, "a model must be a mapping with a 'kind' key")])
    _import_kinds()
    kind = data.get("kind")
    if kind not in MODEL_KINDS:
        known = ", ".join(MODEL_KINDS.names())
        raise SpecError(
            [locate.problem(prefix + ("kind",), f"unknown model kind {kind!r}; known: {known}")]
        )
    version = data.get("format_version", MODEL_FORMAT_VERSION)
    if version != MODEL_FORMAT_VERSION:
        raise SpecError(
            [
                locate.problem(
                    prefix + ("format_version",),
                    f"model format version {version!r} is not supported (this neurosleep reads "
                    f"{MODEL_FORMAT_VERSION})",
                )
            ]
        )
    try:
        return MODEL_KINDS.get(kind).model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, locate, prefix)) from None


def _import_kinds() -> None:
    """Import the modules that register model kinds (kept lazy: no engine imports here)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


__all__ = ["MODEL_KINDS", "Problem", "Spec", "load_model", "validate_model"]
