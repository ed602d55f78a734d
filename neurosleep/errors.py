"""Errors that name where the bad input is: file, line and key path, or run-file path.

:class:`UserError` is the base of every error caused by what the user handed the tool (a
protocol, a flag, a run file, an output path); the command line prints those as one line and
exits with code 2. Anything else that escapes is a bug: the command line shows its traceback and
asks for a report.

Every user-facing failure of a protocol or model file is a :class:`SpecError` listing one
:class:`Problem` per bad key, so a user fixes all of them in one go.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One bad key: where it is, and what was expected."""

    origin: str  # file path, or "--set key=value" for a command-line override
    line: int | None
    key: KeyPath
    message: str

    def __str__(self) -> str:
        where = self.origin if self.line is None else f"{self.origin}:{self.line}"
        key = format_key(self.key) or "(top level)"
        return f"{where}: {key}: {self.message}"


class UserError(Exception):
    """Bad input from the user; the message names the file (or flag) and what is wrong."""


class SpecError(UserError, ValueError):
    """A protocol or model file (or an override) does not satisfy its schema."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RunFileError(UserError, ValueError):
    """A path is not a readable neurosleep run file; the message says why."""


class MissingExtra(UserError, ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


class StudyError(UserError, ValueError):
    """A study folder or a study option cannot be used; the message names it and says why."""


class OutputError(UserError):
    """An output path cannot be written: it is not a run file the tool may replace, or another
    process is writing it."""


def format_key(key: KeyPath) -> str:
    """``("schedule", 2, "sleep", "t")`` → ``"schedule[2].sleep.t"``."""
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: dict) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown key (misspelt? see docs/protocols.md for the keys allowed here)"
    if kind == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind in {"literal_error", "enum"} or "input" not in error:
        return msg
    return f"{msg} (got {error['input']!r})"


def problems_from(error: ValidationError, locate: Locator, prefix: KeyPath = ()) -> list[Problem]:
    """Translate a pydantic error into problems located in the source file."""
    problems = []
    for item in error.errors():
        key = prefix + tuple(part for part in item["loc"] if not _is_pydantic_tag(part))
        origin, line = locate(key)
        problems.append(Problem(origin, line, key, _message(item)))
    return problems


def _is_pydantic_tag(part: object) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


class Locator:
    """Maps key paths to (origin, line); the longest known prefix wins."""

    def __init__(self, origin: str, lines: dict[KeyPath, int]) -> None:
        self.origin = origin
        self.lines = dict(lines)
        self.overrides: dict[KeyPath, str] = {}

    def __call__(self, key: KeyPath) -> tuple[str, int | None]:
        for end in range(len(key), -1, -1):
            prefix = key[:end]
            if prefix in self.overrides:
                return self.overrides[prefix], None
            if prefix in self.lines:
                return self.origin, self.lines[prefix]
        return self.origin, None

    def problem(self, key: KeyPath, message: str) -> Problem:
        origin, line = self(key)
        return Problem(origin, line, key, message)


def raise_if(problems: Iterable[Problem]) -> None:
    problems = list(problems)
    if problems:
        raise SpecError(problems)
