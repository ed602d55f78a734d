"""Protocol files: load, override, validate and expand into a list of phases.

Validation happens completely before anything runs. Every problem names the file, the line and
the key path (or the ``--set`` override it came from) and says what was expected; all problems
of a file are reported together. docs/protocols.md is the reference of every key.

Examples
--------
>>> protocol = load_protocol("protocols/hopfield_dreaming.yaml", ["seed=3"])  # doctest: +SKIP
>>> [(p.kind, p.name) for p in protocol.phases]                              # doctest: +SKIP
[('wake', 'store'), ('test', 'hebb'), ('sleep', 'dream'), ('test', 'after_sleep')]
"""

from __future__ import annotations

import copy
import os
import re
import string
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from neurosleep.catalogue import EXPERIMENTS, SLEEP, ExperimentSchema
from neurosleep.errors import (
    KeyPath,
    Locator,
    Problem,
    SpecError,
    format_key,
    problems_from,
    raise_if,
)
from neurosleep.expressions import evaluate, is_expression_of
from neurosleep.spec import Spec, load_model, validate_model
from neurosleep.yamlfile import file_problem, load_yaml, load_yaml_text, non_finite

PROTOCOL_FORMAT_VERSION = 1
PHASE_KINDS = ("wake", "sleep", "test")
MAX_NAME = 100  # characters of a run or phase name
MAX_PHASES = 10_000  # phases of an expanded schedule (and the largest repeat count)
MAX_STAGES = 16  # stages of one staged sleep phase
MAX_CYCLES = 1000  # cycles of one staged sleep phase
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
COMMON_PHASE_KEYS = ("name", "task", "engine")
PhaseKind = Literal["wake", "sleep", "test"]


@dataclass(frozen=True)
class PlannedPhase:
    """One phase of the expanded schedule.

    ``task`` is the 0-based task index (−1: none); ``params`` is the validated schema of the
    phase kind (or of the sleep algorithm); ``source`` is its key path in the protocol file.
    """

    index: int
    kind: PhaseKind
    name: str
    task: int
    params: BaseModel
    source: KeyPath
    algorithm: str | None = None  # sleep phases: the registered sleep algorithm's name
    engine: str | None = None  # phase-level engine override (sleep on another engine)
    #: a staged sleep phase: its stages (each a sleep phase of this ``index`` whose ``name`` is
    #: the stage's and ``source`` its key path), run in turn ``params.cycles`` times
    stages: tuple[PlannedPhase, ...] = ()

    def steps(self) -> list[tuple[int, PlannedPhase]]:
        """(cycle, stage) in the order they run: every stage of cycle 0, then of cycle 1, …
        (a phase without stages: itself, once)."""
        if not self.stages:
            return [(0, self)]
        return [(c, stage) for c in range(self.params.cycles) for stage in self.stages]


def flat_phases(phases: list[PlannedPhase]) -> list[PlannedPhase]:
    """The phases with each staged sleep replaced by its stages (once each, not per cycle):
    what the experiments' and the algorithms' checks look at."""
    return [stage for phase in phases for stage in (phase.stages or (phase,))]


class Subject(BaseModel):
    """``metadata.subject``: what the simulated network stands for (NWB ``Subject``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_id: str | None = Field(None, description="default: <name>-seed<seed>")
    species: str | None = Field(
        None, description="Latin binomial or NCBI taxonomy IRI; default: 'synthetic construct'"
    )
    description: str | None = None
    age: str | None = Field(None, description="ISO 8601 duration, e.g. P90D")
    sex: Literal["M", "F", "U", "O"] = "U"
    strain: str | None = None


class Metadata(BaseModel):
    """``metadata``: who ran the experiment and what it is about; exported to NWB."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experimenter: list[str] = Field(default_factory=list, description="'Last, First' names")
    institution: str | None = None
    lab: str | None = None
    keywords: list[str] = Field(default_factory=list)
    experiment_description: str | None = Field(None, description="default: the description")
    related_publications: list[str] = Field(default_factory=list, description="DOIs or URLs")
    subject: Subject = Field(default_factory=Subject)


class ProtocolFile(BaseModel):
    """The top level of a protocol file; ``data``, ``record`` and phase keys are checked later
    against the schemas of the model kind's experiment and of the sleep algorithms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Literal[1] = Field(description="protocol format version (1)")
    name: str = Field(description="run name, used in output paths")
    description: str = ""
    seed: int = Field(ge=0, lt=2**32, description="seeds python, numpy, torch and Brian2")
    model: str | dict[str, Any] = Field(description="model file (relative to this file) or inline")
    engine: str = Field("torch", description="simulation engine: torch or brian2")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="torch device")
    data: dict[str, Any] = Field(default_factory=dict)
    record: dict[str, Any] = Field(default_factory=dict)
    schedule: list[dict[str, Any]] = Field(min_length=1)
    output: str = "outputs/{name}_seed{seed}.h5"
    metadata: Metadata = Field(default_factory=Metadata)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return checked_name(value)

    @field_validator("output")
    @classmethod
    def _output_placeholders(cls, value: str) -> str:
        problem = template_problem(value, ("name", "seed"))
        if problem:
            raise ValueError(f"output may use only {{name}} and {{seed}}: {problem}")
        return value


def checked_name(value: str) -> str:
    """``value`` if it is a valid run or phase name, else ``ValueError`` saying why."""
    if len(value) > MAX_NAME:
        raise ValueError(f"a name has at most {MAX_NAME} characters (got {len(value)})")
    if not _NAME.fullmatch(value) or set(value) == {"."}:
        raise ValueError(
            f"a name is letters, digits and _ . - (not only dots; no / or spaces), got {value!r}"
        )
    return value


def template_problem(text: str, fields: Collection[str]) -> str | None:
    """Why ``text`` is not a template of plain ``{field}``s from ``fields`` (``None``: it is)."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        return f"not a valid template ({exc})"
    for _, field, spec, conversion in parts:
        if field is not None and (field not in fields or spec or conversion):
            shown = (
                "{"
                + field
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            allowed = ", ".join(f"{{{name}}}" for name in fields)
            return f"{shown} is not allowed here (allowed: {allowed}; no formats or attributes)"
    return None


class Stages(BaseModel):
    """A staged sleep phase's own keys: ``sleep: {stages: [...], cycles: N}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_STAGES)
    cycles: int = Field(1, ge=1, le=MAX_CYCLES)


class Repeat(BaseModel):
    """``repeat:`` block: run ``phases`` once per task (``over: tasks``) or ``count`` times."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    over: Literal["tasks"] | None = None
    count: int | None = Field(None, ge=1, le=MAX_PHASES)
    phases: list[dict[str, Any]] = Field(min_length=1)


@dataclass(frozen=True)
class Protocol:
    """A validated protocol: everything the runner needs, nothing left to check."""

    path: Path | None
    resolved: dict[str, Any]  # the protocol after overrides, model inlined: stored in the run file
    name: str
    seed: int
    engine: str
    device: str
    output: Path
    model: Spec
    experiment: type[ExperimentSchema]  # the model kind's experiment class
    data: BaseModel
    record: BaseModel
    n_tasks: int
    phases: list[PlannedPhase]

    def resolved_yaml(self) -> str:
        return yaml.safe_dump(self.resolved, sort_keys=False)


def load_protocol(
    path: str | Path, overrides: list[str] = (), *, check_device: bool = True
) -> Protocol:
    """Read, override (``key.path=value``), validate and expand a protocol file.
    ``check_device``: refuse a torch device this machine does not have (off where another
    machine runs it: ``neurosleep validate``, a study's driver)."""
    path = Path(path)
    data, locate = load_yaml(path)
    return build_protocol(
        data, locate, overrides, base=path.parent, path=path, check_device=check_device
    )


def build_protocol(
    data: Any,
    locate: Locator,
    overrides: list[str] = (),
    *,
    base: Path = Path("."),
    path: Path | None = None,
    check_device: bool = True,
) -> Protocol:
    """Validate a protocol mapping (already read) and expand its schedule (``check_device``:
    as in :func:`load_protocol`)."""
    if not isinstance(data, dict):
        raise SpecError([locate.problem((), "a protocol must be a mapping of keys")])
    data = copy.deepcopy(data)
    for text in overrides:
        apply_override(data, text, locate)
    raise_if(non_finite(data, locate))
    try:
        top = ProtocolFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, locate)) from None

    model, model_data = _load_model(top.model, base, locate)
    try:
        experiment = EXPERIMENTS.get(model.kind)
    except KeyError as exc:
        raise SpecError([locate.problem(("model",), str(exc.args[0]))]) from None

    problems: list[Problem] = []
    if top.engine not in experiment.engines:
        problems.append(
            locate.problem(
                ("engine",),
                f"engine {top.engine!r} does not run {model.kind!r} models; "
                f"choose one of: {', '.join(experiment.engines)}",
            )
        )
    device = device_problem(top.device) if check_device else None
    if device:
        problems.append(locate.problem(("device",), f"{device}; or run it with --device cpu"))
    data_params = _validate(experiment.Data, top.data, locate, ("data",), problems)
    record_params = _validate(experiment.Record, top.record, locate, ("record",), problems)
    if data_params is None:  # the schedule's tasks depend on the data
        raise SpecError(problems)
    n_tasks = experiment.n_tasks(data_params) if data_params is not None else 1
    phases = _expand(top.schedule, experiment, n_tasks, locate, problems)
    problems.extend(_duplicate_names(phases, locate))
    if not problems:
        checked = experiment.check(
            model, data_params, record_params, flat_phases(phases), top.engine, top.device
        )
        problems.extend(locate.problem(key, message) for key, message in checked)
        problems.extend(_sleep_checks(phases, model, locate))
    if problems:
        raise SpecError(problems)

    output = Path(top.output.format(name=top.name, seed=top.seed))
    raise_if([locate.problem(("output",), message)] if (message := _output_problem(output)) else [])
    resolved = top.model_dump()
    resolved["model"] = model_data
    return Protocol(
        path=path,
        resolved=resolved,
        name=top.name,
        seed=top.seed,
        engine=top.engine,
        device=top.device,
        output=output,
        model=model,
        experiment=experiment,
        data=data_params,
        record=record_params,
        n_tasks=n_tasks,
        phases=phases,
    )


def device_problem(device: str) -> str | None:
    """Why the torch ``device`` cannot be used on this machine (``None``: it can)."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return (
            f"device {device!r} asked for, but torch {torch.__version__} sees no CUDA device "
            "(a CUDA build of torch: see README)"
        )
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        return f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA device(s)"
    return None


def _sleep_checks(phases: list[PlannedPhase], model: Spec, locate: Locator) -> list[Problem]:
    """Each sleep algorithm's own check of its parameters against the model and the phases
    before it (the first phase of a repeat block that fails stands for the others)."""
    problems, seen = [], set()
    flat = flat_phases(phases)
    for phase in flat:
        entry = SLEEP.get(phase.algorithm) if phase.algorithm else None
        if entry is None or entry.check is None:
            continue
        before = [p for p in flat if p.index < phase.index]
        for key, message in entry.check(phase.params, model, before):
            if (phase.source + key, message) not in seen:
                seen.add((phase.source + key, message))
                problems.append(locate.problem(phase.source + key, message))
    return problems


def _output_problem(output: Path) -> str | None:
    """Why no run may write ``output`` (``None``: its folder can take a run file there): what
    ``run`` refuses whatever the flags, ``validate`` refuses too."""
    from neurosleep.io.ownership import refusal

    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"cannot create {output}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create {output}: the folder {folder} is not writable"
    why = refusal(output)
    return f"{output} {why}" if why else None


def _duplicate_names(phases: list[PlannedPhase], locate: Locator) -> list[Problem]:
    first: dict[str, PlannedPhase] = {}
    problems = []
    for phase in phases:
        if phase.name in first:
            message = (
                f"duplicate phase name {phase.name!r} (phase {phase.index}; also phase "
                f"{first[phase.name].index}): names must be unique, e.g. '{phase.name}{{k}}' "
                "in a repeat block"
            )
            problems.append(locate.problem(phase.source + ("name",), message))
        first.setdefault(phase.name, phase)
    return problems


def _load_model(model: str | dict, base: Path, locate: Locator) -> tuple[Spec, dict]:
    if isinstance(model, dict):
        return validate_model(model, locate, ("model",)), model
    model_path = base / model
    problem = file_problem(model_path)
    if problem == "file not found":
        raise SpecError([locate.problem(("model",), f"model file not found: {model_path}")])
    if problem is not None:
        raise SpecError([locate.problem(("model",), f"model file {model_path}: {problem}")])
    return load_model(model_path)


def _validate(schema, values, locate, key, problems, context=None):
    try:
        return schema.model_validate(values, context=context)
    except ValidationError as exc:
        problems.extend(problems_from(exc, locate, key))
        return None


# ---------------------------------------------------------------------------- schedule
def _expand(
    entries: list[dict],
    experiment: type[ExperimentSchema],
    n_tasks: int,
    locate: Locator,
    problems: list[Problem],
    key: KeyPath = ("schedule",),
    variables: dict[str, int] | None = None,
    out: list[PlannedPhase] | None = None,
) -> list[PlannedPhase]:
    out = [] if out is None else out
    variables = variables or {"n_tasks": n_tasks}
    for i, entry in enumerate(entries):
        where = key + (i,)
        if not isinstance(entry, dict) or len(entry) != 1:
            problems.append(
                locate.problem(
                    where,
                    "each schedule entry is one of: wake: {...}, sleep: {...}, "
                    "test: {...}, repeat: {...}",
                )
            )
            continue
        ((kind, body),) = entry.items()
        body = {} if body is None else body
        if kind == "repeat":
            _expand_repeat(
                body, experiment, n_tasks, locate, problems, where + ("repeat",), variables, out
            )
        elif kind in PHASE_KINDS:
            phase = _phase(
                kind, body, experiment, locate, where + (kind,), variables, len(out), problems
            )
            if phase is not None:
                if len(out) >= MAX_PHASES:
                    message = f"the schedule expands to more than {MAX_PHASES} phases"
                    raise SpecError([*problems, locate.problem(where, message)])
                out.append(phase)
        else:
            problems.append(
                locate.problem(
                    where + (kind,),
                    f"unknown schedule entry {kind!r}; expected one of: wake, sleep, test, repeat",
                )
            )
    return out


def _expand_repeat(body, experiment, n_tasks, locate, problems, key, variables, out) -> None:
    try:
        block = Repeat.model_validate(body)
    except ValidationError as exc:
        problems.extend(problems_from(exc, locate, key))
        return
    if (block.over is None) == (block.count is None):
        problems.append(locate.problem(key, "give exactly one of 'over: tasks' or 'count: N'"))
        return
    if block.over == "tasks" and "task" in variables:
        problems.append(locate.problem(key + ("over",), "repeat over tasks cannot be nested"))
        return
    iterations = n_tasks if block.over == "tasks" else block.count
    if len(out) + iterations > MAX_PHASES:  # every iteration adds at least one phase
        message = f"the schedule expands to more than {MAX_PHASES} phases"
        raise SpecError([*problems, locate.problem(key, message)])
    for i in range(iterations):
        inner = dict(variables, repeat=i)
        if block.over == "tasks":
            inner.update(task=i, k=i + 1)
        before = len(problems)
        _expand(block.phases, experiment, n_tasks, locate, problems, key + ("phases",), inner, out)
        if len(problems) > before:  # the same mistake would repeat on every iteration
            return


def _phase(kind, body, experiment, locate, key, variables, index, problems) -> PlannedPhase | None:
    if not isinstance(body, dict):
        problems.append(locate.problem(key, f"a {kind} phase takes a mapping of keys"))
        return None
    before = len(problems)
    name = _phase_name(body.get("name", f"{kind}{index}"), variables, locate, key, problems)
    params = {
        k: _substitute(v, variables, locate, key + (k,), problems)
        for k, v in body.items()
        if k != "name"
    }
    if len(problems) > before:
        return None
    task = params.pop("task", variables.get("task", -1))
    engine = params.pop("engine", None)
    if "task" in body and "task" in variables:
        problems.append(locate.problem(key + ("task",), "task is set by 'repeat: over: tasks'"))
    algorithm = None
    if kind == "sleep" and "stages" in params:
        return _staged(
            name, task, engine, params, experiment, locate, key, index, variables, problems
        )
    if kind == "sleep":
        algorithm = params.pop("kind", None)
        schema = _sleep_schema(algorithm, experiment, locate, key, problems)
        if schema is None:
            return None
    else:
        schema = experiment.Wake if kind == "wake" else experiment.Test
    context = {"variables": variables}
    validated = _validate(schema, params, locate, key, problems, context)
    if validated is None:
        return None
    if not _task_ok(task, variables["n_tasks"], locate, key, problems):
        return None
    return PlannedPhase(
        index=index,
        kind=kind,
        name=name,
        task=task,
        params=validated,
        source=key,
        algorithm=algorithm,
        engine=engine,
    )


def _task_ok(task, n_tasks: int, locate, key, problems) -> bool:
    if not isinstance(task, int) or not -1 <= task < n_tasks:
        message = f"task must be an index 0..{n_tasks - 1} (got {task!r})"
        problems.append(locate.problem(key + ("task",), message))
        return False
    return True


def _staged(name, task, engine, params, experiment, locate, key, index, variables, problems):
    """A staged sleep phase: its ``stages`` (each ``{name, kind, ...}``, validated like a sleep
    phase of that kind) and ``cycles``; ``task`` and ``engine`` as a sleep phase's."""
    staged = _validate(Stages, params, locate, key, problems)
    if staged is None or not _task_ok(task, variables["n_tasks"], locate, key, problems):
        return None
    stages, names = [], set()
    for j, body in enumerate(staged.stages):
        where = key + ("stages", j)
        body = dict(body)
        stage_name = _phase_name(body.pop("name", body.get("kind")), {}, locate, where, problems)
        if stage_name in names:
            problems.append(
                locate.problem(where + ("name",), f"duplicate stage name {stage_name!r}")
            )
        names.add(stage_name)
        algorithm = body.pop("kind", None)
        schema = _sleep_schema(algorithm, experiment, locate, where, problems)
        if schema is None:
            continue
        validated = _validate(schema, body, locate, where, problems, {"variables": variables})
        if validated is not None:
            stages.append(
                PlannedPhase(index, "sleep", stage_name, task, validated, where, algorithm, engine)
            )
    if len(stages) < len(staged.stages):
        return None
    return PlannedPhase(index, "sleep", name, task, staged, key, None, engine, tuple(stages))


def _sleep_schema(algorithm, experiment, locate, key, problems):
    if algorithm not in SLEEP:
        known = ", ".join(
            name for name in SLEEP.names() if SLEEP.get(name).model_kind == experiment.model_kind
        )
        problems.append(
            locate.problem(
                key + ("kind",),
                f"unknown sleep kind {algorithm!r}; for {experiment.model_kind!r} models: {known}",
            )
        )
        return None
    entry = SLEEP.get(algorithm)
    if entry.model_kind != experiment.model_kind:
        problems.append(
            locate.problem(
                key + ("kind",),
                f"sleep kind {algorithm!r} applies to {entry.model_kind} models, not "
                f"{experiment.model_kind!r}",
            )
        )
        return None
    return entry.Params


def _substitute(
    value: Any, variables: dict[str, int], locate: Locator, key: KeyPath, problems: list
) -> Any:
    """Evaluate a whole-string expression of the loop variables (``"15000 + 5000*k"``)."""
    if isinstance(value, str) and is_expression_of(value, variables):
        try:
            return evaluate(value, variables)
        except ValueError as exc:
            problems.append(locate.problem(key, str(exc)))
            return value
    if isinstance(value, dict):
        return {
            k: _substitute(v, variables, locate, key + (k,), problems) for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _substitute(v, variables, locate, key + (i,), problems) for i, v in enumerate(value)
        ]
    return value


def _phase_name(name: Any, variables: dict[str, int], locate, key, problems) -> str:
    """The phase's name with the loop variables filled in (``"sleep{k}"`` → ``"sleep2"``)."""
    text = str(name)
    problem = template_problem(text, list(variables))
    if problem:
        hint = "" if "task" in variables else " ({task} and {k} only inside 'repeat: over: tasks')"
        problems.append(locate.problem(key + ("name",), problem + hint))
        return text
    try:
        return checked_name(text.format(**variables))
    except ValueError as exc:
        problems.append(locate.problem(key + ("name",), str(exc)))
        return text


# ---------------------------------------------------------------------------- overrides
# Keys whose values are text: ``{name}`` and ``{seed}`` in an output path template are not YAML
# mappings (``--set output={name}_s{seed}.h5``). A value that YAML reads as a string is kept.
TEXT_KEYS = {("output",)}


def override_value(key: KeyPath, text: str, origin: str) -> Any:
    """The value of ``--set KEY=TEXT``: TEXT read as YAML (bounded like a file; empty: null),
    or TEXT itself for :data:`TEXT_KEYS` when YAML does not read it as a string."""
    try:  # bounded like a file: an alias bomb in a value is refused too
        value = load_yaml_text(text, origin)[0] if text.strip() else None
    except SpecError as exc:
        if key in TEXT_KEYS:
            return text
        message = exc.problems[0].message
        raise SpecError([Problem(origin, None, key, f"value: {message}")]) from None
    if key in TEXT_KEYS and text.strip() and not isinstance(value, str):
        return text
    return value


def apply_override(data: dict, text: str, locate: Locator) -> None:
    """Apply ``key.path=value`` to the raw protocol mapping.

    Path parts are mapping keys, list indices, or — inside ``schedule`` — the ``name`` of a
    phase (``schedule.dream.t=20``). The value is read as YAML (``20``, ``"20 ms"``, ``[1, 2]``);
    an ``output`` path template is text (:func:`override_value`).
    """
    shown = text.replace("\n", "\\n")
    origin = f"--set {shown if len(shown) <= 80 else shown[:77] + '...'}"  # one line
    if "=" not in text:
        raise SpecError([Problem(origin, None, (), "expected KEY=VALUE, e.g. seed=3")])
    key_text, value_text = text.split("=", 1)
    parts = [p for p in key_text.strip().split(".") if p]
    if not parts:
        raise SpecError([Problem(origin, None, (), "empty key")])
    value = override_value(tuple(parts), value_text, origin)
    node: Any = data
    path: KeyPath = ()
    for depth, part in enumerate(parts):
        if isinstance(node, list):
            if part.lstrip("-").isdigit():
                container, key = node, _checked_index(node, int(part), origin, path)
                steps: KeyPath = (key,)
            else:
                index = _named_phase(node, part, origin, path)
                container = node[index]
                key = next(iter(container))
                steps = (index, key)
        elif isinstance(node, dict):
            container, key, steps = node, part, (part,)
        elif path == ("model",):
            message = (
                f"the model is a file ({node}); its keys cannot be overridden here — "
                "edit a copy of the model file, or write the model inline"
            )
            raise SpecError([Problem(origin, None, path, message)])
        else:
            raise SpecError([Problem(origin, None, path, f"{format_key(path)} holds no keys")])
        path += steps
        if depth == len(parts) - 1:
            container[key] = value
        else:
            if isinstance(container, dict) and container.get(key) is None:
                container[key] = {}
            node = container[key]
    locate.overrides[path] = origin


def _checked_index(items: list, index: int, origin: str, path: KeyPath) -> int:
    if not -len(items) <= index < len(items):
        message = f"index {index} out of range ({len(items)} items)"
        raise SpecError([Problem(origin, None, path, message)])
    return index % len(items)


def _named_phase(items: list, name: str, origin: str, path: KeyPath) -> int:
    """Index of the schedule entry whose phase has ``name`` (``sleep`` finds ``sleep{k}`` too)."""
    bodies = [
        next(iter(item.values())) if isinstance(item, dict) and len(item) == 1 else None
        for item in items
    ]
    matches = [
        i
        for i, body in enumerate(bodies)
        if isinstance(body, dict) and name in (body.get("name"), _literal(body.get("name")))
    ]
    if len(matches) != 1:
        names = ", ".join(str(b["name"]) for b in bodies if isinstance(b, dict) and "name" in b)
        what = "no" if not matches else "more than one"
        message = f"{what} phase named {name!r} here (phases named here: {names or 'none'})"
        raise SpecError([Problem(origin, None, path, message)])
    return matches[0]


def _literal(name: Any) -> str | None:
    """A name template without its fields: ``"sleep{k}"`` → ``"sleep"``."""
    try:
        return "".join(text for text, *_ in string.Formatter().parse(str(name)))
    except ValueError:
        return None
