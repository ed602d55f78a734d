"""The bounded expression evaluator: arithmetic of loop variables, nothing else, never a hang."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurosleep.expressions import MAX_CHARS, MAX_MAGNITUDE, evaluate, is_expression_of
from neurosleep.units import to_unit


@pytest.mark.parametrize(
    "text, expected",
    [
        ("15000 + 5000*(k-1)", 25000),
        ("2**k", 8),
        ("10**15", 10**15),
        ("-(10**15)", -(10**15)),
        ("(-2)**3", -8),
        ("2**-2000", 0.0),
        ("0.5**1e15", 0.0),
        ("7 // 2 + 7 % 2", 4),
        ("max(1, k, 2)", 3),
        ("min(k, 2)", 2),
        ("round(2.6) + int(3.7) + abs(-1)", 7),
        ("k / 2", 1.5),
    ],
)
def test_arithmetic_of_loop_variables(text, expected):
    assert evaluate(text, {"k": 3}) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("repeat + 10**10**10", "larger than 1e+15"),
        ("max(repeat, 2**100000)", "larger than 1e+15"),
        ("10**16", "larger than 1e+15"),
        ("2**60 * 2**60", "larger than 1e+15"),
        ("9" * 20, "larger than 1e+15"),
        ("1e308 * 10", "larger than 1e+15"),
        ("1e400", "too large to be finite"),
        ("(-8)**0.5", "not a real number"),
        ("1/0", "division by zero"),
        ("0**-1", "zero to a negative power"),
        ("round(1, -10**9)", "round takes 1 argument"),
        ("max(1)", "max takes 2 to 16 argument"),
        ("1" + "+1" * MAX_CHARS, f"longer than {MAX_CHARS} characters"),
        ("(" * 100 + "1", "not a valid expression"),
        ("nan", "unknown name 'nan'"),
        ("__import__('os')", "function '__import__'"),
        ("repeat.__class__", "not allowed in an expression"),
        ("(lambda: 1)()", "not allowed in an expression"),
        ("[1] * 10", "not allowed in an expression"),
        ("True + 1", "not allowed in an expression"),
        ("'a' * 10", "not allowed in an expression"),
        ("max(x=1)", "not allowed in an expression"),
    ],
)
def test_bombs_and_injection_are_refused_at_once(text, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+").replace("(", r"\(")):
        evaluate(text, {"repeat": 1})


def test_every_intermediate_value_is_bounded():
    assert evaluate(str(int(MAX_MAGNITUDE)), {}) == MAX_MAGNITUDE
    with pytest.raises(ValueError, match="larger than"):
        evaluate(f"{int(MAX_MAGNITUDE)} * 2 - {int(MAX_MAGNITUDE)}", {})


def test_is_expression_of_needs_a_variable_and_is_bounded():
    assert is_expression_of("2*k", {"k": 1})
    assert not is_expression_of("200", {"k": 1})
    assert not is_expression_of("x" * (MAX_CHARS + 1), {"k": 1})
    assert is_expression_of("k" + "+1" * MAX_CHARS, {"k": 1})  # evaluate() says it is too long


@pytest.mark.parametrize(
    "text, expected",
    [
        ("200 ms", 200.0),
        ("0.2 s", 200.0),
        ("200ms", 200.0),
        ("1e3 ms", 1000.0),
        ("(100 + 50*k) ms", 300.0),
        ("0.1 1/s", 0.1),
        ("-65 mV", -65.0),
        ("5 /s", 5.0),
        ("5/s", 5.0),
        ("1 /ms", 1000.0),
    ],
)
def test_quantities_read_the_number_with_the_evaluator(text, expected):
    unit = "1/s" if "/" in text else {"mV": "mV"}.get(text.split()[-1], "ms")
    assert to_unit(text, unit, {"k": 4}) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, message",
    [
        ("10**10**10 ms", "larger than 1e+15"),
        ("nan ms", "unknown name 'nan'"),
        ("inf ms", "unknown name 'inf'"),
        ("1e400 ms", "too large to be finite"),
        ("3 ms**1000000000", "not a valid expression"),
        ("200", "missing unit"),
        ("2 mV", "wrong unit"),
        ("1e15 s", None),
    ],
)
def test_quantity_bombs_never_reach_pint(text, message):
    if message is None:  # large but finite: the schema's bounds decide
        assert to_unit(text, "ms") == 1e18
        return
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        to_unit(text, "ms")


def test_a_quantity_in_its_fields_unit_skips_pint_with_pints_float():
    """Written in the unit its field stores, a quantity is the float pint's conversion gives
    (a factor of 1), bit for bit; validating protocols whose quantities are all so written
    never builds pint's registry (importing pint is ≈0.15 s of a run's start)."""
    import numpy as np

    from neurosleep.protocol import load_protocol
    from neurosleep.units import registry

    rng = np.random.default_rng(0)
    numbers = rng.standard_normal(300) * 10.0 ** rng.integers(-12, 12, 300)
    for unit in ("ms", "Hz", "mV"):
        for x in [*numbers.tolist(), 0.0, 1, 239.515363]:
            by_pint = float((x * registry().Unit(unit)).to(unit).magnitude)
            by_shortcut = to_unit(f"{x!r} {unit}", unit)
            assert np.float64(by_shortcut).tobytes() == np.float64(by_pint).tobytes(), x
    registry.cache_clear()
    for name in ("split_mnist_sra", "consolidation_sleep"):
        load_protocol(Path(__file__).parents[1] / "protocols" / f"{name}.yaml")
    assert registry.cache_info().misses == 0
    assert to_unit("0.2 s", "ms") == 200.0 and registry.cache_info().misses == 1
