"""Study files: load, validate, and resolve every configuration before anything runs.

A study file names one base protocol (or a list of them: conditions compared side by side),
seeds, axes over protocol keys (addressed exactly as ``--set`` addresses them, or a documented
macro such as ``sleep_every``), a search, an objective and a confirmation. docs/studies.md is
the reference of every key. Errors name the study file, the line and the key; a protocol that
an axis value makes invalid is reported at that value's line in the study file.

Examples
--------
>>> study = load_study("studies/hopfield_capacity.yaml")        # doctest: +SKIP
>>> [c.label for c in study.grid()][:2]                         # doctest: +SKIP
['hopfield_dreaming_patterns10_t1', 'hopfield_dreaming_patterns10_t10']
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from neurosleep.analysis.compare import QUANTITIES
from neurosleep.errors import (
    KeyPath,
    Locator,
    Problem,
    SpecError,
    StudyError,
    format_key,
    problems_from,
)
from neurosleep.expressions import evaluate, is_expression_of
from neurosleep.protocol import apply_override, build_protocol, override_value, template_problem
from neurosleep.registry import Registry

STUDY_FORMAT_VERSION = 1
MAX_VALUES = 1000  # values per axis
MAX_RUNS = 10_000  # runs a study may plan (configurations × seeds, plus confirmation)
SPLITS = ("validation", "test")
LEDGER_FILE = "ledger.sqlite"  # in the study folder (neurosleep.study.ledger)
OUTPUT_REFUSED = (
    "a study writes each run to runs/<key>.h5 in its folder: choose the folder "
    "(folder: in a study file, --folder on the command line), not an output"
)
# How a split is reached when the study file gives no ``splits:``, per model kind.
DEFAULT_SPLITS: dict[str, dict[str, dict[str, Any]]] = {
    "mlp": {"validation": {"data.validation": 0.1}, "test": {"data.validation": None}},
}

Seed = int


class Axis(BaseModel):
    """One axis: discrete ``values``, or a range ``low``..``high`` (random and TPE searches)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: list[Any] | None = Field(None, min_length=1, max_length=MAX_VALUES)
    low: float | None = None
    high: float | None = None
    log: bool = Field(False, description="ranges: sample log-uniformly")
    integer: bool = Field(False, description="ranges: integer values")

    @model_validator(mode="after")
    def _one_kind(self) -> Axis:
        if (self.values is None) == (self.low is None or self.high is None):
            raise ValueError("give either values: [...] or both low: and high:")
        if self.values is None:
            if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
                raise ValueError("a range needs finite low < high")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs low > 0")
        elif self.log or self.integer:
            raise ValueError("log and integer apply to ranges (low, high), not to values")
        return self

    def ends(self) -> list[Any]:
        """The values to validate up front: every listed value, or both ends of a range."""
        if self.values is not None:
            return list(self.values)
        return [int(self.low), int(self.high)] if self.integer else [self.low, self.high]


class Objective(BaseModel):
    """The quantity the search optimises: ``metric`` (a run's test metric), its ``quantity``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(description="a test metric of the runs, e.g. accuracy or overlap")
    quantity: Literal[QUANTITIES] = Field("ACC", description="ACC, BWT, FWT or forgetting")
    goal: Literal["maximize", "minimize"] = "maximize"

    @property
    def column(self) -> str:
        return f"{self.metric} {self.quantity}"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.goal == "maximize" else a < b


class Search(BaseModel):
    """``grid`` (every combination), ``random`` (``n`` draws) or ``tpe`` (``n`` Optuna trials)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["grid", "random", "tpe"] = "grid"
    n: int | None = Field(None, ge=1, le=MAX_RUNS, description="random and tpe: configurations")
    seed: int = Field(0, ge=0, lt=2**32, description="seeds the draws of random and tpe")
    parallel: int | None = Field(
        None, ge=1, le=1000, description="tpe: trials asked at once (default: the workers)"
    )
    startup: int = Field(
        10, ge=0, le=MAX_RUNS, description="tpe: trials drawn at random before TPE models"
    )

    @model_validator(mode="after")
    def _n_given(self) -> Search:
        if self.kind == "grid" and self.n is not None:
            raise ValueError("a grid runs every combination; n applies to random and tpe")
        if self.kind != "grid" and self.n is None:
            raise ValueError(f"a {self.kind} search needs n (how many configurations)")
        misplaced = sorted({"parallel", "startup"} & self.model_fields_set)
        if self.kind != "tpe" and misplaced:
            raise ValueError(f"{' and '.join(misplaced)}: only a tpe search takes them")
        return self


class Confirm(BaseModel):
    """Re-run the best configuration on held-out seeds and split, beside the base protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seeds: list[Seed] = Field(min_length=1, max_length=MAX_VALUES)
    split: Literal["validation", "test"] = "test"
    against: Literal["base", "none"] = "base"

    _seeds = field_validator("seeds")(lambda cls, v: _check_seeds(v))


class StudyFile(BaseModel):
    """The top level of a study file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Literal[1] = Field(description="study format version (1)")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$", description="study name")
    description: str = ""
    protocol: str | list[str] = Field(description="base protocol file(s), relative to this file")
    controls: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="protocol files run as written beside the search (no axis applied)",
    )
    set: dict[str, Any] = Field(default_factory=dict, description="overrides of every run")
    seeds: list[Seed] = Field(min_length=1, max_length=MAX_VALUES)
    select_on: Literal["validation", "test"] = "validation"
    splits: dict[Literal["validation", "test"], dict[str, Any]] | None = None
    objective: Objective | None = None
    space: dict[str, Axis] = Field(default_factory=dict, max_length=32)
    search: Search = Field(default_factory=Search)
    confirm: Confirm | None = None
    folder: str = Field("outputs/studies/{name}", description="study folder; may use {name}")

    _seeds = field_validator("seeds")(lambda cls, v: _check_seeds(v))

    @field_validator("protocol")
    @classmethod
    def _some_protocol(cls, value):
        if isinstance(value, list) and not 1 <= len(value) <= 100:
            raise ValueError("give 1 to 100 protocols")
        return value

    @model_validator(mode="after")
    def _objective_for_confirm(self) -> StudyFile:
        if self.objective is None and (self.confirm is not None or self.search.kind != "grid"):
            raise ValueError("a confirmation, random or tpe search needs an objective")
        return self

    @property
    def searched(self) -> list[str]:
        """The searched protocol files (the study's conditions, before its controls)."""
        return self.protocol if isinstance(self.protocol, list) else [self.protocol]

    @field_validator("folder")
    @classmethod
    def _folder_template(cls, value: str) -> str:
        if value.replace("{name}", "").count("{") or "}" in value.replace("{name}", ""):
            raise ValueError("folder may use only {name}")
        return value


def _check_seeds(seeds: list[int]) -> list[int]:
    if any(not 0 <= s < 2**32 for s in seeds):
        raise ValueError("seeds must lie in 0 .. 2**32 - 1")
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be distinct")
    return seeds


# ---------------------------------------------------------------------------- macros
Macro = Callable[[dict, Any], None]
MACROS: Registry[Macro] = Registry("study macro")


@MACROS.register("sleep_every")
def sleep_every(data: dict, every: Any) -> None:
    """Keep the sleep phases of ``repeat: {over: tasks}`` blocks only after every k-th task.

    The block is unrolled into one block per task (``repeat: {count: 1}`` with the task fixed),
    so task indices, ``{task}`` names and expressions of ``k`` keep their meaning; ``every = 1``
    leaves the protocol as written. Sleep after the last task is kept only when the count divides.
    """
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"sleep_every takes a whole number >= 1 (got {every!r})")
    if every == 1:  # the protocol as written (and the same run key as the base)
        return
    n_tasks = _tasks_of(data)
    schedule = []
    for entry in data.get("schedule") or []:
        body = entry.get("repeat") if isinstance(entry, dict) and len(entry) == 1 else None
        if not isinstance(body, dict) or body.get("over") != "tasks":
            schedule.append(entry)
            continue
        for task in range(n_tasks):
            k = task + 1
            phases = [
                _fix_task(p, task, n_tasks)
                for p in body.get("phases", [])
                if k % every == 0 or not _sleeps(p)
            ]
            schedule.extend(phases)
    data["schedule"] = schedule


@MACROS.register("nap_every")
def nap_every(data: dict, every: Any) -> None:
    """Short sleeps inside a task: each wake phase that a sleep phase ends (a sleep phase after
    it and before the next wake phase of the same phase list, repeat blocks included) is cut
    into parts of ``every`` — epochs (an ``mlp`` wake with ``epochs``), batches (with
    ``iterations``) or ms (an ``snn`` wake's ``duration``) — with a copy of that sleep phase
    (a nap, named ``<sleep>_nap<i>``) after every part but the last; the parts are named
    ``<wake>_part<i>``. ``every = 0``, or a wake no longer than ``every``: as written."""
    if isinstance(every, bool) or not isinstance(every, int | float | str):
        raise ValueError(f"nap_every takes 0, a whole number or a time (got {every!r})")
    if every == 0:  # the protocol as written (and the same run key as the base)
        return
    data["schedule"] = _napped(list(data.get("schedule") or []), every)


def _napped(entries: list, every: Any) -> list:
    """``entries`` with every wake phase that a sleep phase ends cut into parts and naps."""
    out = []
    for i, entry in enumerate(entries):
        kind, body = next(iter(entry.items())) if _single(entry) else (None, None)
        if kind == "repeat" and isinstance(body, dict) and isinstance(body.get("phases"), list):
            out.append({"repeat": dict(body, phases=_napped(body["phases"], every))})
            continue
        ending = (
            _ending_sleep(entries[i + 1 :]) if kind == "wake" and isinstance(body, dict) else None
        )
        if ending is None:
            out.append(entry)
            continue
        if body.get("replay") is not None:
            raise ValueError(
                "nap_every: a wake with a replay method is not cut (each part ends a task)"
            )
        key, parts, unit = _wake_parts(body, every)
        sleep = ending["sleep"]
        for j, part in enumerate(parts, start=1):
            wake = dict(body, **{key: part if unit is None else f"{part:g} {unit}"})
            if len(parts) > 1 and "name" in body:
                wake["name"] = f"{body['name']}_part{j}"
            out.append({"wake": wake})
            if j < len(parts):
                nap = dict(sleep)
                if "name" in sleep:
                    nap["name"] = f"{sleep['name']}_nap{j}"
                out.append({"sleep": nap})
    return out


def _single(entry: Any) -> bool:
    return isinstance(entry, dict) and len(entry) == 1


def _ending_sleep(rest: list) -> dict | None:
    """The first sleep entry of ``rest`` before any wake or repeat entry (None: there is none)."""
    for entry in rest:
        kind = next(iter(entry)) if _single(entry) else None
        if kind == "sleep" and isinstance(entry["sleep"], dict):
            return entry
        if kind in ("wake", "repeat"):
            return None
    return None


def _wake_parts(body: dict, every: Any) -> tuple[str, list[float], str | None]:
    """The wake's length key, its parts of ``every`` (the last takes the rest) and their unit."""
    from neurosleep.units import to_unit

    key = next((k for k in ("epochs", "iterations", "duration") if k in body), None)
    if key is None:
        raise ValueError(
            "nap_every: a wake phase ended by a sleep has no epochs, iterations or duration"
        )
    if key == "duration":
        total, step, unit = to_unit(body[key], "ms"), to_unit(every, "ms"), "ms"
    else:
        total, step, unit = body[key], every, None
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (total, step)):
            raise ValueError(
                f"nap_every: {key} {total!r} and nap_every {step!r} must be whole numbers"
            )
    if not step > 0:
        raise ValueError(f"nap_every takes 0 or a positive length (got {every!r})")
    parts, done = [], 0
    while total - done > 1e-9:
        parts.append(min(step, total - done))
        done += parts[-1]
    return key, parts, unit


def _sleeps(entry: Any) -> bool:
    return isinstance(entry, dict) and "sleep" in entry


def _fix_task(entry: dict, task: int, n_tasks: int) -> dict:
    """A phase of a repeat-over-tasks block, written out for one task (k = task + 1): its name
    template filled in and whole-string expressions of the loop variables evaluated (a bad one
    is left as written, for protocol validation to report)."""
    variables = {"n_tasks": n_tasks, "task": task, "k": task + 1, "repeat": task}
    ((kind, body),) = entry.items()
    body = {key: _evaluated(value, variables) for key, value in dict(body or {}).items()}
    name = body.get("name")
    if isinstance(name, str) and template_problem(name, list(variables)) is None:
        body["name"] = name.format(**variables)
    if kind in ("wake", "sleep", "test"):
        body.setdefault("task", task)
    return {kind: body}


def _evaluated(value: Any, variables: dict[str, int]) -> Any:
    if isinstance(value, str) and is_expression_of(value, variables):
        try:
            return evaluate(value, variables)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _evaluated(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_evaluated(v, variables) for v in value]
    return value


def _tasks_of(data: dict) -> int:
    from neurosleep.catalogue import EXPERIMENTS

    model = data.get("model")
    kind = model.get("kind") if isinstance(model, dict) else None
    if kind is None:
        raise ValueError("sleep_every needs the model inline (resolved) to count the tasks")
    experiment = EXPERIMENTS.get(kind)
    return experiment.n_tasks(experiment.Data.model_validate(data.get("data") or {}))


# ---------------------------------------------------------------------------- configurations
@dataclass(frozen=True)
class Configuration:
    """One point of the space: the condition (protocol index) and a value per axis."""

    condition: int
    values: tuple[tuple[str, Any], ...]  # (axis, value) in the order of space:
    label: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True)
class Run:
    """One planned run: key = hash of its fully resolved protocol (seed included)."""

    key: str
    config: Configuration
    seed: int
    split: str
    stage: str  # search | confirm
    protocol: Path
    overrides: tuple[str, ...]
    trial: int | None = None


@dataclass
class Study:
    """A validated study file with its resolved base protocols."""

    path: Path
    spec: StudyFile
    locate: Locator
    protocols: list[Path]  # the searched conditions, then the controls
    base_raw: list[dict]  # each condition's raw protocol with the study's ``set`` applied
    folder: Path
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    devices: set[str] = field(default_factory=set)  # the torch devices its checked runs ask for

    @property
    def searched(self) -> int:
        """Conditions 0 .. searched - 1 are searched; the rest are controls."""
        return len(self.spec.searched)

    @property
    def controls(self) -> list[Configuration]:
        """The control conditions: each protocol as written (no axis), never selected."""
        return [self.base(c) for c in range(self.searched, len(self.protocols))]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def axes(self) -> list[str]:
        return list(self.spec.space)

    def base(self, condition: int = 0) -> Configuration:
        return Configuration(condition, (), self._label(condition, ()))

    def configuration(self, condition: int, params: dict[str, Any]) -> Configuration:
        values = tuple((axis, params[axis]) for axis in self.axes)
        return Configuration(condition, values, self._label(condition, values))

    def grid(self) -> list[Configuration]:
        """Every combination of the axes' values, for each condition."""
        lists = [axis.values for axis in self.spec.space.values()]
        return [
            self.configuration(c, dict(zip(self.axes, combo, strict=True)))
            for c in range(self.searched)
            for combo in itertools.product(*lists)
        ]

    def run(
        self, config: Configuration, seed: int, split: str, stage: str, trial: int | None = None
    ) -> Run:
        """Resolve (and validate) one run; raise SpecError located in the study file."""
        overrides = self.overrides(config, seed, split)
        protocol = self._resolve(config, overrides)
        return Run(
            key=run_key(protocol.resolved),
            config=config,
            seed=seed,
            split=split,
            stage=stage,
            protocol=self.protocols[config.condition],
            overrides=tuple(overrides),
            trial=trial,
        )

    def overrides(self, config: Configuration, seed: int, split: str) -> list[str]:
        """The ``--set`` overrides that turn the condition's protocol file into this run."""
        out = [f"{k}={json.dumps(v)}" for k, v in self.spec.set.items()]
        out += [f"{k}={json.dumps(v)}" for k, v in self.splits.get(split, {}).items()]
        out += [f"{k}={json.dumps(v)}" for k, v in config.values if k not in MACROS]
        macros = {k: v for k, v in config.values if k in MACROS}
        if macros:
            out.append(f"schedule={json.dumps(self._macro_schedule(config, macros, out))}")
        out += [f"seed={seed}", f"name={config.label}"]
        return out

    def _macro_schedule(self, config, macros, overrides) -> list:
        data = copy.deepcopy(self.base_raw[config.condition])
        locate = Locator(str(self.protocols[config.condition]), {})
        for text in overrides:
            apply_override(data, text, locate)
        data["model"] = build_protocol(
            data, locate, base=self.protocols[config.condition].parent, check_device=False
        ).resolved["model"]
        for name, value in macros.items():
            try:
                MACROS.get(name)(data, value)
            except ValueError as exc:
                raise SpecError([self.locate.problem(("space", name), str(exc))]) from None
        return data["schedule"]

    def _resolve(self, config: Configuration, overrides: list[str]):
        from neurosleep.protocol import load_protocol

        try:  # the device is the worker's to check (a scheduler's workers may have it)
            protocol = load_protocol(
                self.protocols[config.condition], overrides, check_device=False
            )
        except SpecError as exc:
            raise SpecError([self._relocate(p, config) for p in exc.problems]) from None
        self.devices.add(protocol.device)
        return protocol

    def _relocate(self, problem: Problem, config: Configuration) -> Problem:
        """A protocol problem caused by an override → the study key that set it."""
        if not problem.origin.startswith("--set "):
            return problem
        key_text = problem.origin[len("--set ") :].split("=", 1)[0]
        if key_text in self.spec.space:
            value = config.params[key_text]
            where: KeyPath = ("space", key_text)
            message = f"value {value!r}: {format_key(problem.key)}: {problem.message}"
        elif key_text == "schedule" and config.values:
            where = ("space",)
            message = f"{config.label}: {format_key(problem.key)}: {problem.message}"
        elif key_text in self.spec.set:
            where, message = ("set", key_text), problem.message
        elif key_text in self.splits.get("validation", {}) | self.splits.get("test", {}):
            where, message = ("splits",), f"{key_text}: {problem.message}"
        else:
            where, message = ("seeds",) if key_text == "seed" else (), problem.message
        return self.locate.problem(where, message)

    def _label(self, condition: int, values: tuple) -> str:
        base = str(self.base_raw[condition].get("name", f"c{condition}"))
        parts = "".join(f"_{k.split('.')[-1]}{v}" for k, v in values)
        return re.sub(r"[^A-Za-z0-9_.-]", "", base + parts)[:200]


def run_key(resolved: dict) -> str:
    """Hash of a resolved protocol (seed included) without its ``output`` path and ``name``
    (labels only: the same protocol under two configuration labels is one run): 16 hex digits."""
    content = {k: v for k, v in resolved.items() if k not in ("output", "name")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_study(path: str | Path, folder: str | Path | None = None) -> Study:
    """Read and validate a study file, and validate every run a grid (or a range's ends) makes.

    Nothing runs here; an invalid axis value is reported at its line in the study file.
    """
    from neurosleep.yamlfile import load_yaml

    path = Path(path)
    data, locate = load_yaml(path)
    if not isinstance(data, dict):
        raise SpecError([locate.problem((), "a study must be a mapping of keys")])
    try:
        spec = StudyFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, locate)) from None
    problems: list[Problem] = []
    names = spec.searched
    keys: list[KeyPath] = (
        [("protocol", i) for i in range(len(names))]
        if isinstance(spec.protocol, list)
        else [("protocol",)]
    )
    keys += [("controls", i) for i in range(len(spec.controls))]
    protocols, raws = [], []
    for key, name in zip(keys, names + spec.controls, strict=True):
        file = path.parent / name
        if not file.is_file():
            problems.append(locate.problem(key, f"protocol file not found: {file}"))
            continue
        raw, _ = load_yaml(file)
        protocols.append(file)
        raws.append(raw if isinstance(raw, dict) else {})
    for axis in spec.space:
        if "=" in axis or not axis.strip("."):
            problems.append(locate.problem(("space", axis), "an axis is a protocol key path"))
    for where in [("set", k) for k in spec.set] + [("space", k) for k in spec.space]:
        if where[1].strip(".") == "output":
            problems.append(locate.problem(where, OUTPUT_REFUSED))
    if spec.search.kind == "grid":
        for axis, spec_axis in spec.space.items():
            if spec_axis.values is None:
                problems.append(
                    locate.problem(("space", axis), "a grid needs values: [...], not a range")
                )
    if problems:
        raise SpecError(problems)
    study = Study(
        path=path,
        spec=spec,
        locate=locate,
        protocols=protocols,
        base_raw=raws,
        folder=Path(folder) if folder else Path(spec.folder.format(name=spec.name)),
    )
    study.splits = _splits(study)
    plan_checked(study)
    return study


def _splits(study: Study) -> dict[str, dict[str, Any]]:
    if study.spec.splits is not None:
        return {split: dict(study.spec.splits.get(split, {})) for split in SPLITS}
    kinds = {
        build_protocol(raw, Locator(str(p), {}), base=p.parent, check_device=False).model.kind
        for raw, p in zip(study.base_raw, study.protocols, strict=True)
    }
    defaults = [DEFAULT_SPLITS.get(kind) for kind in kinds]
    if len({json.dumps(d, sort_keys=True) for d in defaults}) != 1:
        raise SpecError([study.locate.problem(("splits",), "conditions differ: give splits:")])
    if defaults[0] is None:
        needed = {study.spec.select_on} | (
            {study.spec.confirm.split} if study.spec.confirm else set()
        )
        if "validation" in needed:
            raise SpecError(
                [
                    study.locate.problem(
                        ("select_on",),
                        f"{', '.join(sorted(kinds))} models have no validation split by default: "
                        "give splits: {validation: {KEY: VALUE}, test: {...}} or select on test",
                    )
                ]
            )
        return {split: {} for split in SPLITS}
    return defaults[0]


def plan_checked(study: Study) -> None:
    """Validate before anything runs: each axis value (or range end) alone on each condition,
    then every grid point, on each split the study uses, and the base for the confirmation.
    (The seed only sets the ``seed`` key, which the study schema has checked.)"""
    spec = study.spec
    conditions = range(study.searched)
    n_configs = len(conditions) * (
        math.prod(len(a.values) for a in spec.space.values())
        if spec.search.kind == "grid"
        else spec.search.n
    ) + len(spec.controls)
    confirmed = 2 + len(spec.controls)  # the best, the base and each control
    total = n_configs * len(spec.seeds)
    total += len(spec.confirm.seeds) * confirmed if spec.confirm else 0
    if total > MAX_RUNS:
        raise SpecError(
            [study.locate.problem(("space",), f"{total} runs planned; at most {MAX_RUNS}")]
        )
    splits = sorted({spec.select_on} | ({spec.confirm.split} if spec.confirm else set()))
    singles = [study.base(c) for c in range(len(study.protocols))] + [
        Configuration(c, ((axis, value),), study._label(c, ((axis, value),)))
        for axis, spec_axis in spec.space.items()
        for value in spec_axis.ends()
        for c in conditions
    ]
    _check(study, singles, splits)
    if spec.search.kind == "grid":
        _check(study, study.grid(), splits)


def _check(study: Study, configs: list[Configuration], splits: list[str]) -> None:
    problems: list[Problem] = []
    seen: set[str] = set()
    for config in configs:
        for split in splits:
            try:
                study.run(config, study.spec.seeds[0], split, "check")
            except SpecError as exc:
                new = [p for p in exc.problems if str(p) not in seen]
                seen.update(str(p) for p in new)
                problems.extend(new)
    if problems:
        raise SpecError(problems)


def sweep_study(
    protocol: str | Path,
    seeds: list[int],
    vary: list[str],
    overrides: list[str],
    folder: str | Path | None = None,
) -> Study:
    """The grid study behind ``neurosleep sweep``: seeds × every combination of ``--vary``
    values (``KEY=V1,V2,...``, values read as YAML), ``--set`` overrides in every run.

    The study file is written into the study folder (``sweep.yaml``) so that ``study status``
    and ``study report`` read it like any other; a folder holding another sweep is refused.
    """
    import yaml

    protocol = Path(protocol).resolve()
    space, fixed = {}, {}
    for item in vary:
        key, _, values = item.partition("=")
        origin = f"--vary {item}"
        if not key or not values:
            raise SpecError([Problem(origin, None, (), "expected KEY=V1,V2,...")])
        parts = _sweep_key(key, origin)
        space[key] = {
            "values": [override_value(parts, v, origin) for v in values.split(",") if v.strip()]
        }
    for item in overrides:
        key, _, value = item.partition("=")
        origin = f"--set {item}"
        if not key or not _:
            raise SpecError([Problem(origin, None, (), "expected KEY=VALUE")])
        fixed[key] = override_value(_sweep_key(key, origin), value, origin)
    raw, _ = _raw_protocol(protocol)
    name = re.sub(r"[^A-Za-z0-9_.-]", "", f"sweep_{raw.get('name', protocol.stem)}")
    folder = Path(folder or f"outputs/studies/{name}")
    study = {
        "format_version": STUDY_FORMAT_VERSION,
        "name": name,
        "protocol": str(protocol),
        "set": fixed,
        "seeds": list(seeds),
        "select_on": "test",
        "space": space,
        "search": {"kind": "grid"},
    }
    text = yaml.safe_dump(study, sort_keys=False)
    path = folder / "sweep.yaml"
    ran = (folder / LEDGER_FILE).exists()  # a sweep refused before running leaves no ledger
    if ran and path.exists() and path.read_text() != text:
        raise StudyError(f"{folder} holds another sweep ({path}); pass --folder")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return load_study(path, folder)


def _sweep_key(key: str, origin: str) -> KeyPath:
    """A ``--set``/``--vary`` key of a sweep as a key path; ``output`` is refused (a study
    writes each run to ``runs/<key>.h5`` in its folder)."""
    parts = tuple(p for p in key.strip().split(".") if p)
    if parts == ("output",):
        raise SpecError([Problem(origin, None, parts, OUTPUT_REFUSED)])
    return parts


def _raw_protocol(path: Path):
    from neurosleep.yamlfile import load_yaml

    raw, locate = load_yaml(path)
    return (raw if isinstance(raw, dict) else {}), locate
