"""Safe arithmetic expressions of loop variables in protocol files.

A numeric field inside a repeat block may be an expression such as ``"15000 + 5000*(k-1)"``.
It is parsed with :mod:`ast` and only numbers, the loop variables, arithmetic operators and a
few pure functions are allowed; nothing is passed to ``eval``.

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
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"abs": abs, "int": int, "max": max, "min": min, "round": round}


def evaluate(text: str, variables: Mapping[str, float]) -> float | int:
    """Evaluate an arithmetic expression over ``variables``; raise ``ValueError`` otherwise."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not a valid expression: {text!r} ({exc.msg})") from None
    return _eval(tree.body, variables)


def is_expression_of(text: str, variables: Mapping[str, float]) -> bool:
    """True when ``text`` parses as an expression that uses at least one of ``variables``."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return False
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return bool(names & set(variables))


def _eval(node: ast.AST, variables: Mapping[str, float]) -> float | int:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in variables:
            known = ", ".join(sorted(variables)) or "none here"
            raise ValueError(f"unknown name {node.id!r} in expression (known: {known})")
        return variables[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_eval(node.left, variables), _eval(node.right, variables))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, variables))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in _FUNCTIONS:
            allowed = ", ".join(sorted(_FUNCTIONS))
            raise ValueError(
                f"not allowed in an expression: function {node.func.id!r} (allowed: {allowed})"
            )
        return _FUNCTIONS[node.func.id](*(_eval(arg, variables) for arg in node.args))
    raise ValueError(f"not allowed in an expression: {ast.unparse(node)!r}")
