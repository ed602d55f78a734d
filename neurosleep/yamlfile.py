"""Safe, bounded YAML loading that remembers the line of every key, for error messages.

Protocol and model files are read only when they are regular files of at most
:data:`MAX_FILE_BYTES` (checked on the open file descriptor before any byte is read, so a FIFO
or a device never blocks), decoded as UTF-8 text without NUL or other control characters,
parsed with the safe loader, nested at most :data:`MAX_DEPTH` deep and at most
:data:`MAX_NODES` values large with every alias expanded (aliases and anchors are allowed, a
recursive alias is an error). docs/protocols.md states these limits.

Examples
--------
>>> data, locate = load_yaml_text("a: 1\\nb:\\n  c: [x, y]\\n", "p.yaml")
>>> data
{'a': 1, 'b': {'c': ['x', 'y']}}
>>> locate(("b", "c", 1))
('p.yaml', 3)
"""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from neurosleep.errors import KeyPath, Locator, Problem, SpecError

MAX_FILE_BYTES = 1 << 20  # 1 MiB
MAX_DEPTH = 64  # nested mappings and lists
MAX_NODES = 100_000  # values (scalars, mappings, lists), aliases expanded

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FILE_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a FIFO (named pipe)",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


def load_yaml(path: str | Path) -> tuple[Any, Locator]:
    """Read a YAML file; return the data and a locator of its keys' lines."""
    path = Path(path)
    text = read_text(path)
    return load_yaml_text(text, str(path))


def read_text(path: Path) -> str:
    """The UTF-8 text of a regular file of at most :data:`MAX_FILE_BYTES`; else a SpecError."""
    problem = file_problem(path)
    if problem is None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            problem = f"cannot read file: {exc.strerror}"
        else:
            with os.fdopen(fd, "rb") as handle:
                problem = _kind_problem(os.fstat(fd))
                raw = handle.read(MAX_FILE_BYTES + 1) if problem is None else b""
            if problem is None and len(raw) > MAX_FILE_BYTES:
                problem = _too_large(len(raw))
    if problem is not None:
        raise SpecError([Problem(str(path), None, (), problem)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        raise SpecError([Problem(str(path), line, (), message)]) from None
    control = _CONTROL.search(text)
    if control:
        line = text.count("\n", 0, control.start()) + 1
        char = control.group()
        what = "a NUL byte" if char == "\x00" else f"control character {char!r}"
        raise SpecError([Problem(str(path), line, (), f"not a text file: contains {what}")])
    return text.removeprefix("\ufeff")


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a protocol or model file (``None``: it may be), from ``stat``."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot read file: {exc.strerror}"
    return _kind_problem(info)


def _kind_problem(info: os.stat_result) -> str | None:
    for test, kind in _FILE_KINDS.items():
        if test(info.st_mode):
            return f"is {kind}, not a regular file"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    return _too_large(info.st_size) if info.st_size > MAX_FILE_BYTES else None


def _too_large(size: int) -> str:
    return f"file too large ({size} bytes; protocol and model files are at most {MAX_FILE_BYTES})"


def load_yaml_text(text: str, origin: str) -> tuple[Any, Locator]:
    """Parse YAML text with the safe loader; duplicate keys are errors."""
    try:
        _check_events(text, origin)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise SpecError([Problem(origin, None, (), "the file is empty")])
            lines: dict[KeyPath, int] = {}
            problems: list[Problem] = []
            _Walk(lines, problems, origin).node(node, (), frozenset())
            if problems:
                raise SpecError(problems)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise SpecError([Problem(origin, line, (), f"not valid YAML: {reason}")]) from None
    return data, Locator(origin, lines)


def _check_events(text: str, origin: str) -> None:
    """Bound depth and size on the event stream, before any (recursive) composing."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                message = f"nested more than {MAX_DEPTH} levels deep"
                raise SpecError([Problem(origin, line, (), message)])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_NODES:
                raise SpecError([Problem(origin, event.start_mark.line + 1, (), _too_many())])


def _too_many() -> str:
    return f"more than {MAX_NODES} values (aliases expanded); files hold at most {MAX_NODES}"


class _Walk:
    """Records the line of every key path; counts values with aliases expanded."""

    def __init__(self, lines: dict[KeyPath, int], problems: list[Problem], origin: str) -> None:
        self.lines, self.problems, self.origin = lines, problems, origin
        self.count = 0

    def node(self, node: yaml.Node, key: KeyPath, above: frozenset[int]) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise SpecError([Problem(self.origin, node.start_mark.line + 1, key, _too_many())])
        if id(node) in above:
            line = node.start_mark.line + 1
            raise SpecError([Problem(self.origin, line, key, "recursive alias (contains itself)")])
        self.lines[key] = node.start_mark.line + 1
        above = above | {id(node)}
        if isinstance(node, yaml.MappingNode):
            self._mapping(node, key, above)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.node(item, key + (index,), above)

    def _mapping(self, node: yaml.MappingNode, key: KeyPath, above: frozenset[int]) -> None:
        seen: set[str] = set()
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(Problem(self.origin, line, key, "keys must be plain names"))
                continue
            name = key_node.value
            if name in seen:
                self.problems.append(Problem(self.origin, line, key + (name,), "duplicate key"))
            seen.add(name)
            self.node(value_node, key + (name,), above)
            self.lines[key + (name,)] = line


def non_finite(data: Any, locate: Locator, key: KeyPath = ()) -> list[Problem]:
    """A problem for every ``inf`` or ``nan`` float in ``data`` (``.inf``, ``1.0e400``)."""
    if isinstance(data, float) and not math.isfinite(data):
        return [locate.problem(key, f"not a finite number ({data}); inf and nan are not accepted")]
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return []
    return [problem for k, v in items for problem in non_finite(v, locate, key + (k,))]
