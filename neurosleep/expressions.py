"""Safe, bounded arithmetic expressions of loop variables in protocol files.

A numeric field inside a repeat block may be an expression such as ``"15000 + 5000*(k-1)"``,
and the number of a quantity may be one (``"(100 + 50*k) ms"``). It is parsed with :mod:`ast`
and only numbers, the loop variables, arithmetic operators and a few pure functions are allowed;
nothing is passed to ``eval``. Evaluation is bounded: an expression has at most
:data:`MAX_CHARS` characters, every value (each literal, each intermediate result) is finite
and at most :data:`MAX_MAGNITUDE` in size, and ``**`` is refused before it computes anything
larger, so ``10**10**10`` is an error at once rather than a hang.

Examples
--------
>>> evaluate("15000 + 5000*(k-1)", {"k": 3})
25000
>>> evaluate("max(1, task) ** 2", {"task": 3})
9
>>> evaluate("__import__('os')", {})
Traceback (most recent call last):
...
ValueError: not allowed in an expression: function '__import__' (allowed: abs, int, max, min, round)
>>> evaluate("10**10**10", {})
Traceback (most recent call last):
...
ValueError: 10 ** 10 ** 10 is larger than 1e+15, the largest value an expression may reach
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Mapping

MAX_CHARS = 200
MAX_MAGNITUDE = 1e15

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"abs": abs, "int": int, "max": max, "min": min, "round": round}
_ARITY = {"abs": (1, 1), "int": (1, 1), "max": (2, 16), "min": (2, 16), "round": (1, 1)}


def evaluate(text: str, variables: Mapping[str, float]) -> float | int:
    """Evaluate an arithmetic expression over ``variables``; raise ``ValueError`` otherwise."""
    return _bounded(_eval(parse(text), variables), text)


def parse(text: str) -> ast.expr:
    """The syntax tree of an expression of at most :data:`MAX_CHARS` characters."""
    text = text.strip()
    if len(text) > MAX_CHARS:
        raise ValueError(f"expression longer than {MAX_CHARS} characters ({len(text)})")
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, MemoryError, RecursionError) as exc:
        reason = getattr(exc, "msg", None) or "too deeply nested"
        raise ValueError(f"not a valid expression: {text!r} ({reason})") from None


def is_expression_of(text: str, variables: Mapping[str, float]) -> bool:
    """True when ``text`` parses as an expression that uses at least one of ``variables`` (or
    is too long to parse but names one, so that :func:`evaluate` says why)."""
    try:
        tree = parse(text)
    except ValueError:
        words = set(re.findall(r"[A-Za-z_]\w*", text[: 10 * MAX_CHARS]))
        return len(text.strip()) > MAX_CHARS and bool(words & set(variables))
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return bool(names & set(variables))


def _bounded(value: float | int, what: str | ast.AST) -> float | int:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{_text(what)} is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{_text(what)} is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(
            f"{_text(what)} is larger than {MAX_MAGNITUDE:g}, the largest value an expression "
            "may reach"
        )
    return value


def _text(what: str | ast.AST) -> str:
    return what.strip() if isinstance(what, str) else ast.unparse(what)


def _power(base: float | int, exponent: float | int, node: ast.BinOp) -> float | int:
    """``base ** exponent``, refused before computing when the result would be too large."""
    if base == 0 and exponent < 0:
        raise ValueError(f"{_text(node)}: zero to a negative power")
    if abs(base) > 1 and exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE):
        raise ValueError(
            f"{_text(node)} is larger than {MAX_MAGNITUDE:g}, the largest value an expression "
            "may reach"
        )
    if base < 0 and not float(exponent).is_integer():
        raise ValueError(f"{_text(node)} is not a real number")
    return base**exponent


def _eval(node: ast.AST, variables: Mapping[str, float]) -> float | int:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if not math.isfinite(node.value):
            raise ValueError("a number too large to be finite")
        return _bounded(node.value, node)
    if isinstance(node, ast.Name):
        if node.id not in variables:
            known = ", ".join(sorted(variables)) or "none here"
            raise ValueError(f"unknown name {node.id!r} in expression (known: {known})")
        return variables[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in (*_BINARY, ast.Pow):
        left, right = _eval(node.left, variables), _eval(node.right, variables)
        try:
            if isinstance(node.op, ast.Pow):
                return _bounded(_power(left, right, node), node)
            return _bounded(_BINARY[type(node.op)](left, right), node)
        except ZeroDivisionError:
            raise ValueError(f"{_text(node)}: division by zero") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, variables))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name = node.func.id
        if name not in _FUNCTIONS:
            allowed = ", ".join(sorted(_FUNCTIONS))
            raise ValueError(
                f"not allowed in an expression: function {name!r} (allowed: {allowed})"
            )
        low, high = _ARITY[name]
        if not low <= len(node.args) <= high:
            count = f"{low}" if low == high else f"{low} to {high}"
            raise ValueError(f"{_text(node)}: {name} takes {count} argument(s)")
        args = [_eval(arg, variables) for arg in node.args]
        return _bounded(_FUNCTIONS[name](*args), node)
    raise ValueError(f"not allowed in an expression: {ast.unparse(node)!r}")
