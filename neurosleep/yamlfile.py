"""Safe YAML loading that remembers the line of every key, for error messages.

Examples
--------
>>> data, locate = load_yaml_text("a: 1\\nb:\\n  c: [x, y]\\n", "p.yaml")
>>> data
{'a': 1, 'b': {'c': ['x', 'y']}}
>>> locate(("b", "c", 1))
('p.yaml', 3)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from neurosleep.errors import KeyPath, Locator, Problem, SpecError


def load_yaml(path: str | Path) -> tuple[Any, Locator]:
    """Read a YAML file; return the data and a locator of its keys' lines."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(
            [Problem(str(path), None, (), f"cannot read file: {exc.strerror}")]
        ) from None
    return load_yaml_text(text, str(path))


def load_yaml_text(text: str, origin: str) -> tuple[Any, Locator]:
    """Parse YAML text with the safe loader; duplicate keys are errors."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([Problem(origin, None, (), "the file is empty")])
        lines: dict[KeyPath, int] = {}
        problems: list[Problem] = []
        _walk(node, (), lines, problems, origin)
        if problems:
            raise SpecError(problems)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise SpecError([Problem(origin, line, (), f"not valid YAML: {reason}")]) from None
    finally:
        loader.dispose()
    return data, Locator(origin, lines)


def _walk(node: yaml.Node, key: KeyPath, lines: dict, problems: list, origin: str) -> None:
    lines[key] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                problems.append(Problem(origin, line, key, "keys must be plain names"))
                continue
            name = key_node.value
            if name in seen:
                problems.append(
                    Problem(origin, key_node.start_mark.line + 1, key + (name,), "duplicate key")
                )
            seen.add(name)
            _walk(value_node, key + (name,), lines, problems, origin)
            lines[key + (name,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, key + (index,), lines, problems, origin)
