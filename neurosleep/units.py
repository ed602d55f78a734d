"""Quantities with units in protocol and model files.

Files write quantities as strings (``"200 ms"``, ``"5 Hz"``, ``"1.62 mV"``), parsed by pint.
In code a quantity is a plain ``float`` in the unit the schema declares, and the unit lives in
the type annotation (``Annotated[float, Unit("ms")]``) so that schema, docs and run-file
attributes read it from one place. Inside repeat blocks the number may be an expression of the
loop variables: ``"(100 + 50*k) ms"`` (see :mod:`neurosleep.expressions`).

Examples
--------
>>> to_unit("200 ms", "ms")
200.0
>>> to_unit("0.2 s", "ms")
200.0
>>> to_unit("(100 + 50*k) ms", "ms", {"k": 2})
200.0
>>> to_unit(200, "ms")
Traceback (most recent call last):
...
ValueError: missing unit: expected a quantity in ms written with its unit, e.g. '200 ms'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, ValidationInfo, WithJsonSchema

from neurosleep.expressions import evaluate
from neurosleep.imports import hidden

if TYPE_CHECKING:
    import pint


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    """pint's registry, made at the first quantity written in a unit other than the one its
    field stores (importing pint takes ≈0.15 s of processor time, and a protocol whose
    quantities are all written in their fields' units never needs it), its parsed unit
    definitions cached in pint's own user cache folder (building them takes 0.15 s); without
    the cache where the folder cannot be written."""
    with hidden("dask", "scipy", "babel", "uncertainties"):  # probed by pint.compat; never used
        import pint

    try:
        return pint.UnitRegistry(autoconvert_offset_to_baseunit=True, cache_folder=":auto:")
    except OSError:
        return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


# "<number or expression> <unit>": a unit is names joined by / or *, each with an optional
# one-digit power (mV, 1/s, m/s^2); everything before it is the number
_NAME = r"[A-Za-zµμΩ°]+(?:\^-?\d)?"
_QUANTITY = re.compile(
    rf"^\s*(?P<number>.*?)\s*(?P<unit>(?:1?/\s*)?{_NAME}(?:\s*[/*·]\s*{_NAME})*)\s*$"
)


@dataclass(frozen=True)
class Unit:
    """Annotation marker: the unit a ``float`` field is stored in (e.g. ``Unit("ms")``)."""

    symbol: str


@lru_cache(maxsize=256)
def _unit(symbol: str) -> pint.Unit:
    return registry().Unit(symbol)


def to_unit(value: Any, unit: str, variables: dict[str, float] | None = None) -> float:
    """Convert a quantity string to a float in ``unit``; raise ``ValueError`` with the reason.

    The number is read by the bounded evaluator of :mod:`neurosleep.expressions` (pint never
    sees an expression, so ``"10**10**10 ms"`` is refused at once) and only the unit by pint.
    """
    example = f"e.g. '200 {unit}'"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a quantity in {unit} written as a string, {example}")
    if not isinstance(value, str):
        raise ValueError(
            f"missing unit: expected a quantity in {unit} written with its unit, {example}"
        )
    match = _QUANTITY.match(value)
    number_text, unit_text = (match["number"], match["unit"]) if match else (value, "")
    try:
        number = evaluate(number_text, variables or {})
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"cannot read {value!r} as a quantity in {unit} ({exc}), {example}"
        ) from None
    if unit_text == unit:  # pint would multiply by 1: the same float, without importing pint
        result = float(number)
    else:
        result = _converted(number, unit_text, unit, value, example)
    if not math.isfinite(result):
        raise ValueError(f"{value!r} is not a finite quantity in {unit}")
    return result


def _converted(number: float, unit_text: str, unit: str, value: str, example: str) -> float:
    """``number`` in ``unit_text`` (the unit as ``value`` writes it) converted to ``unit`` by
    pint."""
    units = registry()
    import pint  # imported by registry()

    # "5 /s" and "5 1/s" are the same rate: pint reads only the second
    unit_text = "1" + unit_text if unit_text.startswith("/") else unit_text
    try:
        written = units.Unit(unit_text) if unit_text else units.dimensionless
    except (pint.errors.PintError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"cannot read {value!r} as a quantity in {unit} ({exc}), {example}"
        ) from None
    if written.dimensionless and not _unit(unit).dimensionless:
        raise ValueError(
            f"missing unit: expected a quantity in {unit} written with its unit, {example}"
        )
    try:
        return float((number * written).to(unit).magnitude)
    except pint.errors.DimensionalityError:
        raise ValueError(
            f"wrong unit in {value!r}: expected a quantity convertible to {unit}, {example}"
        ) from None


def quantity(unit: str) -> Any:
    """A pydantic field type: a float stored in ``unit``, written with a unit in files."""

    def parse(value: Any, info: ValidationInfo) -> float:
        return to_unit(value, unit, (info.context or {}).get("variables"))

    return Annotated[
        float,
        Unit(unit),
        BeforeValidator(parse),
        WithJsonSchema({"type": "string", "description": f"a quantity in {unit}, e.g. '1 {unit}'"}),
    ]


Time = quantity("ms")
Rate = quantity("Hz")
Voltage = quantity("mV")
