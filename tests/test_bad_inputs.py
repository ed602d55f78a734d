"""A generated corpus of bad protocols, models and flags (issue 12, "Validation: bounded and
complete"): each case mutates a copy of a shipped protocol (or its model) in the test's tmp
folder, and both ``validate`` and ``run`` must refuse it with exit code 2 and ONE line on
stderr naming the file (or flag) and the key, no traceback, no file changed, and no hang.

Cases that could hang or exhaust memory if a bound regressed (alias bombs, FIFOs, devices,
huge files, expression and format bombs) run in a forked child with capped memory, killed after
a timeout; the rest run in-process through ``neurosleep.cli.main``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from neurosleep import cli
from tests.conftest import ROOT

TIMEOUT_S = 60  # generous: every case is refused in about a second
BIG = 200 * 2**20  # a 200 MB file (sparse: no disk used)


class Workspace:
    """A copy of a shipped protocol (``p.yaml``) and its model (``model.yaml``) in ``folder``,
    output under ``folder/out``; mutations change it before it is written."""

    def __init__(self, folder: Path, base: str) -> None:
        self.folder = folder
        self.protocol = folder / "p.yaml"
        self.model_path = folder / "model.yaml"
        self.data: dict = yaml.safe_load((ROOT / "protocols" / f"{base}.yaml").read_text())
        model_file = (ROOT / "protocols" / self.data["model"]).resolve()
        self.model: dict = yaml.safe_load(model_file.read_text())
        self.data.update(model="model.yaml", device="cpu", output="out/{name}_seed{seed}.h5")
        self.protocol_bytes: bytes | None = None  # set: written instead of self.data
        self.model_bytes: bytes | None = None
        self.target: str = str(self.protocol)  # the protocol path handed to the CLI
        self.flags: list[str] = []

    def set(self, dotted: str, value: Any, *, model: bool = False) -> None:
        node = self.model if model else self.data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    def write(self) -> None:
        protocol, model = self.protocol_bytes, self.model_bytes
        if protocol is None:
            protocol = yaml.safe_dump(self.data, sort_keys=False).encode()
        if model is None:
            model = yaml.safe_dump(self.model, sort_keys=False).encode()
        for path, content in ((self.protocol, protocol), (self.model_path, model)):
            if not path.exists():
                path.write_bytes(content)


@dataclass(frozen=True)
class Case:
    id: str
    base: str
    mutate: Callable[[Workspace], None]
    expect: tuple[str, ...]  # substrings of the one error line: the file (or flag), the key
    isolated: bool = False  # hang-prone if a bound regressed: subprocess with a timeout
    commands: tuple[str, ...] = ("validate", "run")
    skip: str | None = field(default=None, compare=False)


H, C, M, U = "hopfield_dreaming", "consolidation_sleep", "split_mnist_sra", "cuba"
CASES: list[Case] = []


def case(id, base, mutate, *expect, isolated=False, commands=("validate", "run"), skip=None):
    CASES.append(Case(id, base, mutate, expect, isolated, commands, skip))


def put(dotted: str, value: Any, model: bool = False) -> Callable[[Workspace], None]:
    return lambda w: w.set(dotted, value, model=model)


def text(extra: str) -> Callable[[Workspace], None]:
    """Append YAML text to the protocol."""

    def mutate(w: Workspace) -> None:
        w.protocol_bytes = yaml.safe_dump(w.data, sort_keys=False).encode() + extra.encode()

    return mutate


def raw(content: bytes, *, model: bool = False) -> Callable[[Workspace], None]:
    def mutate(w: Workspace) -> None:
        if model:
            w.model_bytes = content
        else:
            w.protocol_bytes = content

    return mutate


def flags(*args: str) -> Callable[[Workspace], None]:
    return lambda w: w.flags.extend(args)


def both(*mutations: Callable[[Workspace], None]) -> Callable[[Workspace], None]:
    def mutate(w: Workspace) -> None:
        for m in mutations:
            m(w)

    return mutate


def special(kind: str, *, model: bool = False) -> Callable[[Workspace], None]:
    """The protocol (or the model) is a FIFO, a folder, a huge file, /dev/zero or missing."""

    def mutate(w: Workspace) -> None:
        path = w.model_path if model else w.protocol
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "folder":
            path.mkdir()
        elif kind == "huge":
            with open(path, "wb") as handle:
                handle.truncate(BIG)
        elif kind == "zero":
            if model:
                w.data["model"] = "/dev/zero"
            else:
                w.target = "/dev/zero"
        elif kind == "missing":
            w.target = str(w.folder / "nope.yaml")

    return mutate


def sra_sleep(key: str, value: Any) -> Callable[[Workspace], None]:
    """Set a key of the SRA sleep phase inside the repeat block of split_mnist_sra."""

    def mutate(w: Workspace) -> None:
        phases = w.data["schedule"][1]["repeat"]["phases"]
        next(p["sleep"] for p in phases if "sleep" in p)[key] = value

    return mutate


def repeat(*phases: dict, count: int = 2) -> Callable[[Workspace], None]:
    """Replace the schedule by one repeat block."""
    return put("schedule", [{"repeat": {"count": count, "phases": list(phases)}}])


def repeat_tasks(*phases: dict) -> Callable[[Workspace], None]:
    return put("schedule", [{"repeat": {"over": "tasks", "phases": list(phases)}}])


def laughs(levels: int = 9) -> str:
    lines = ['x0: &x0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def protocol_yaml(base: str) -> str:
    return (ROOT / "protocols" / f"{base}.yaml").read_text().replace("../models/", "")


# ---------------------------------------------------------------- files and YAML (isolated)
case("alias-bomb", H, text(laughs()), "p.yaml:", "more than 100000 values", isolated=True)
case("alias-self", H, text("x: &a [*a]\n"), "p.yaml:", "recursive alias", isolated=True)
case("alias-merge-self", H, text("x: &a {<<: *a}\n"), "recursive alias", isolated=True)
case(
    "nest-10000-lists", H, text("x: " + "[" * 10000 + "]" * 10000 + "\n"), "p.yaml:", isolated=True
)
case(
    "nest-10000-maps",
    H,
    text("x: " + "{a: " * 10000 + "1" + "}" * 10000 + "\n"),
    "p.yaml:",
    "nested more than 64",
    isolated=True,
)
case(
    "nest-100-block",
    H,
    text("x:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(100)) + " " * 101 + "1\n"),
    "p.yaml:",
    "nested more than 64",
    isolated=True,
)
case(
    "values-200000",
    H,
    text("x: [" + ",".join(["0"] * 200_000) + "]\n"),
    "p.yaml:",
    "more than 100000 values",
    isolated=True,
)
case("nul-byte", H, text("description: a\x00b\n"), "p.yaml:", "NUL byte", isolated=True)
case(
    "control-char", H, text("description: a\x07b\n"), "p.yaml:", "control character", isolated=True
)
case(
    "latin-1",
    H,
    raw(protocol_yaml(H).encode() + "description: café\n".encode("latin-1")),
    "p.yaml:",
    "not UTF-8 text",
    isolated=True,
)
case("binary", H, raw(bytes(range(256)) * 64), "p.yaml:", "not UTF-8 text", isolated=True)
case("protocol-200MB", H, special("huge"), "p.yaml", "file too large", isolated=True)
case("protocol-1MiB+1", H, raw(b"#" * 2**20 + b"\n"), "p.yaml", "file too large", isolated=True)
case("protocol-fifo", H, special("fifo"), "p.yaml", "FIFO", isolated=True)
case("protocol-folder", H, special("folder"), "p.yaml", "directory", isolated=True)
case("protocol-dev-zero", H, special("zero"), "/dev/zero", "character device", isolated=True)
case("protocol-missing", H, special("missing"), "nope.yaml", "not found")
case(
    "model-dev-zero",
    H,
    special("zero", model=True),
    "p.yaml:",
    "model:",
    "character device",
    isolated=True,
)
case("model-fifo", H, special("fifo", model=True), "p.yaml:", "model:", "FIFO", isolated=True)
case("model-folder", H, special("folder", model=True), "model:", "directory", isolated=True)
case("model-200MB", H, special("huge", model=True), "model:", "file too large", isolated=True)
case(
    "model-alias-bomb",
    H,
    raw(b"kind: hopfield\n" + laughs().encode(), model=True),
    "model.yaml:",
    "more than 100000 values",
    isolated=True,
)
case(
    "model-nul",
    H,
    raw(b"kind: hopfield\nname: a\x00\n", model=True),
    "model.yaml:",
    "NUL byte",
    isolated=True,
)
case(
    "model-latin-1",
    H,
    raw("kind: hopfield\nname: é\n".encode("latin-1"), model=True),
    "model.yaml:",
    "not UTF-8",
    isolated=True,
)
case(
    "model-self-alias",
    C,
    raw(b"kind: snn\nname: x\npopulations: &p {a: *p}\n", model=True),
    "model.yaml:",
    "recursive alias",
    isolated=True,
)

# ---------------------------------------------------------------- YAML content
case("empty", H, raw(b""), "p.yaml", "empty")
case("only-comment", H, raw(b"# nothing\n"), "p.yaml", "empty")
case("a-list", H, raw(b"- 1\n- 2\n"), "p.yaml:", "mapping")
case("syntax", H, raw(b"name: [\n"), "p.yaml:", "not valid YAML")
case("tab-indent", H, raw(b"a:\n\t- 1\n"), "p.yaml:", "not valid YAML")
case("duplicate-key", H, text("seed: 2\n"), "p.yaml:", "seed", "duplicate key")
case("complex-key", H, text("? [a, b]\n: 1\n"), "p.yaml:", "plain names")
case("inf", H, put("data.patterns", float("inf")), "p.yaml:", "data.patterns", "finite")
case("nan", H, put("schedule.1.test.cue_noise", float("nan")), "cue_noise", "finite")
case("1e400-float", H, text("x: 1.0e+400\n"), "p.yaml:", "x", "finite")
case("model-inf", H, put("neurons", float("inf"), model=True), "model.yaml:", "neurons", "finite")

# ---------------------------------------------------------------- expression bombs (isolated)
DREAM = {"name": "dream{repeat}", "kind": "dreaming", "t": 1, "steps": 5}
case(
    "expr-power-tower",
    H,
    repeat({"sleep": dict(DREAM, t="repeat + 10**10**10")}),
    "p.yaml:",
    "sleep.t",
    "larger than",
    isolated=True,
)
case(
    "expr-max-2**100000",
    H,
    repeat({"sleep": dict(DREAM, steps="max(repeat, 2**100000)")}),
    "sleep.steps",
    "larger than",
    isolated=True,
)
case(
    "expr-top-level",
    H,
    put("schedule.2.sleep.steps", "n_tasks * 10**10**10"),
    "sleep.steps",
    "larger than",
    isolated=True,
)
case(
    "quantity-power-tower",
    C,
    put("schedule.0.test.duration", "10**10**10 ms"),
    "test.duration",
    "larger than",
    isolated=True,
)
case(
    "quantity-unit-power",
    C,
    put("schedule.0.test.duration", "3 ms**1000000000"),
    "test.duration",
    isolated=True,
)
case(
    "model-quantity-tower",
    H,
    put("update_interval", "10**10**10 ms", model=True),
    "model.yaml:",
    "update_interval",
    "larger than",
    isolated=True,
)
case(
    "repeat-count-1e9",
    H,
    repeat({"test": {}}, count=1_000_000_000),
    "repeat.count",
    "less than or equal to 10000",
    isolated=True,
)
case(
    "repeat-nested-1e8-phases",
    H,
    repeat({"repeat": {"count": 10_000, "phases": [{"test": {}}]}}, count=10_000),
    "p.yaml:",
    "more than 10000 phases",
    isolated=True,
)
case(
    "output-format-width",
    H,
    put("output", "{seed:>1000000000}.h5"),
    "output",
    "{seed:>1000000000}",
    isolated=True,
)
case(
    "phase-format-width",
    H,
    repeat_tasks({"test": {"name": "{task:>1000000000}"}}),
    "test.name",
    isolated=True,
)

# ---------------------------------------------------------------- expressions
case(
    "expr-long",
    H,
    repeat({"sleep": dict(DREAM, t="repeat" + "+1" * 150)}),
    "sleep.t",
    "longer than 200",
)
case(
    "expr-import",
    H,
    repeat({"sleep": dict(DREAM, t="__import__('os').getpid() + repeat")}),
    "sleep.t",
    "__import__",
)
case(
    "expr-attribute",
    H,
    repeat({"sleep": dict(DREAM, t="repeat.__class__")}),
    "sleep.t",
    "not allowed",
)
case(
    "expr-lambda",
    H,
    repeat({"sleep": dict(DREAM, t="(lambda: 1)() + repeat")}),
    "sleep.t",
    "not allowed",
)
case(
    "expr-div-zero",
    H,
    repeat({"sleep": dict(DREAM, t="1 / (repeat - repeat)")}),
    "sleep.t",
    "division by zero",
)
case(
    "expr-complex",
    H,
    repeat({"sleep": dict(DREAM, t="(repeat - 1) ** 0.5")}),
    "sleep.t",
    "not a real number",
)
case(
    "expr-unknown-name",
    H,
    repeat({"sleep": dict(DREAM, t="repeat + nan")}),
    "sleep.t",
    "unknown name 'nan'",
)
case(
    "expr-round-ndigits",
    H,
    repeat({"sleep": dict(DREAM, t="round(repeat, -10**9)")}),
    "sleep.t",
    "round takes 1",
)

# ---------------------------------------------------------------- values, units, dt grid
case("nan-ms", C, put("schedule.0.test.duration", "nan ms"), "test.duration", "nan")
case("inf-ms", C, put("schedule.0.test.duration", "inf ms"), "test.duration", "inf")
case("1e400-ms", C, put("schedule.0.test.duration", "1e400 ms"), "test.duration", "finite")
case(
    "negative-duration",
    C,
    put("schedule.1.wake.duration", "-1000 ms"),
    "wake.duration",
    "greater than 0",
)
case("zero-duration", C, put("schedule.0.test.duration", "0 ms"), "test.duration", "greater than 0")
case(
    "off-grid-duration",
    C,
    put("schedule.0.test.duration", "1000.05 ms"),
    "test.duration",
    "not a multiple of the model's dt",
)
case("off-grid-sleep", C, put("schedule.6.sleep.duration", "10000.01 ms"), "sleep.duration", "dt")
case("off-grid-block", C, put("record.block", "100.05 ms"), "record.block", "dt")
case("off-grid-interval", C, put("record.interval", "0.05 ms"), "record.interval", "dt")
case("off-grid-memory-step", C, put("data.memories.step", "10.01 ms"), "data.memories.step", "dt")
case("wrong-unit", C, put("schedule.0.test.duration", "5 mV"), "test.duration", "wrong unit")
case("missing-unit", C, put("schedule.0.test.duration", "1000"), "test.duration", "missing unit")
case(
    "unknown-unit",
    C,
    put("schedule.0.test.duration", "1000 fortnights_x"),
    "test.duration",
    "cannot read",
)
case("negative-rate", C, put("schedule.6.sleep.rates", {"stim": "-5 Hz"}), "sleep.rates", ">= 0 Hz")
case(
    "negative-memory-rate",
    C,
    put("data.memories.rate", "-200 Hz"),
    "data.memories.rate",
    "greater than or equal to 0",
)
case(
    "update-interval-negative",
    H,
    put("update_interval", "-5 ms", model=True),
    "model.yaml:",
    "update_interval",
    "greater than 0",
)
case(
    "update-interval-zero",
    H,
    put("update_interval", "0 ms", model=True),
    "update_interval",
    "greater than 0",
)
case("update-interval-nan", H, put("update_interval", "nan ms", model=True), "update_interval")
case(
    "update-interval-1e400",
    H,
    put("update_interval", "1e400 ms", model=True),
    "update_interval",
    "finite",
)
case("model-dt-zero", C, put("dt", "0 ms", model=True), "model.yaml:", "dt", "greater than 0")
case(
    "model-tau-negative",
    C,
    put("populations.exc.neuron.tau_m", "-20 ms", model=True),
    "tau_m",
    "greater than 0",
)
case("model-size-zero", H, put("neurons", 0, model=True), "neurons", "greater than 1")
case(
    "sra-steps-zero",
    M,
    sra_sleep("steps", 0),
    "sleep.steps",
    "greater than or equal to 1",
)
case(
    "sra-dt-negative",
    M,
    sra_sleep("dt", "-1 ms"),
    "sleep.dt",
    "greater than 0",
)
case(
    "sra-max-rate-negative",
    M,
    sra_sleep("max_rate", "-5 Hz"),
    "sleep.max_rate",
    "greater than or equal to 0",
)
case(
    "cue-noise-high",
    H,
    put("schedule.1.test.cue_noise", 0.9),
    "test.cue_noise",
    "less than or equal to 0.5",
)
case("dreaming-t-negative", H, put("schedule.2.sleep.t", -1), "sleep.t", "greater than")
case("patterns-zero", H, put("data.patterns", 0), "data.patterns", "greater than or equal")

# ---------------------------------------------------------------- seeds
case("seed-2**32", H, put("seed", 2**32), "p.yaml:", "seed", "less than 4294967296")
case("seed-negative", H, put("seed", -1), "seed", "greater than or equal to 0")
case("seed-float", H, put("seed", 1.5), "seed", "integer")
case("seed-text", H, put("seed", "one"), "seed", "integer")
case("flag-seed-2**32", H, flags("--seed", str(2**32)), "--set seed=4294967296", "seed")
case("flag-seed-negative", H, flags("--seed", "-1"), "--set seed=-1", "seed")
case("flag-seed-huge", H, flags("--set", "seed=" + "9" * 30), "seed", "less than")
case("flag-seed-text", H, flags("--seed", "x"), "--seed", "invalid int")

# ---------------------------------------------------------------- memory estimates
case("hopfield-1e6-neurons", H, put("neurons", 1_000_000, model=True), "p.yaml:", "model:", "GiB")
case("hopfield-1e9-tasks", H, put("data.tasks", 10**9), "model:", "GiB")
case("snn-1e7-networks", C, put("data.networks", 10**7), "model:", "GiB")
case("snn-huge-population", U, put("populations.exc.size", 10**9, model=True), "GiB")
case(
    "snn-huge-all-to-all",
    U,
    both(
        put("populations.exc.size", 10**6, model=True),
        put("projections.ee.connect", {"rule": "all_to_all"}, model=True),
    ),
    "model",
)
case("mlp-huge-layers", M, put("layers", [784, 10**6, 10**6, 10], model=True), "model:", "GiB")
case("mlp-zero-layer", M, put("layers", [784, 0, 10], model=True), "model.yaml:", "layers")

# ---------------------------------------------------------------- names and templates
case("name-dotdot", H, put("name", ".."), "p.yaml:", "name", "only dots")
case("name-dot", H, put("name", "."), "name", "only dots")
case("name-slash", H, put("name", "a/b"), "name", "no /")
case("name-400", H, put("name", "n" * 400), "name", "at most 100")
case("name-empty", H, put("name", ""), "name")
case("name-space", H, put("name", "a b"), "name")
case("output-attribute", H, put("output", "{name.__class__}.h5"), "output", "not allowed")
case("output-index", H, put("output", "{0}.h5"), "output", "{0}")
case("output-empty-field", H, put("output", "{}.h5"), "output", "{}")
case("output-conversion", H, put("output", "{name!r}.h5"), "output", "{name!r}")
case("output-unknown-field", H, put("output", "{run}.h5"), "output", "{run}")
case("output-item", H, put("output", "{name[0]}.h5"), "output")
case("output-unbalanced", H, put("output", "{name.h5"), "output", "template")
case("output-under-a-file", H, put("output", "p.yaml/run.h5"), "output", "not a folder")
case(
    "flag-output-attribute",
    H,
    flags("--output", "{seed.real}.h5"),
    "--set output=",
    "output",
    commands=("run",),
)
case("phase-task-outside-repeat", H, put("schedule.0.wake.name", "{task}"), "wake.name", "{task}")
case("phase-k-outside-repeat", H, put("schedule.0.wake.name", "store{k}"), "wake.name", "{k}")
case(
    "phase-attribute",
    H,
    repeat_tasks({"test": {"name": "{task.__class__}"}}),
    "test.name",
    "not allowed",
)
case("phase-positional", H, repeat_tasks({"test": {"name": "t{0}"}}), "test.name", "{0}")
case(
    "phase-duplicate",
    H,
    put("schedule.3.test.name", "after_storage"),
    "test.name",
    "duplicate phase name",
)
case(
    "phase-duplicate-in-repeat",
    H,
    repeat({"test": {"name": "same"}}),
    "test.name",
    "duplicate phase name",
)
case("phase-slash", H, put("schedule.0.wake.name", "a/b"), "wake.name", "no /")
case("phase-dotdot", H, put("schedule.0.wake.name", ".."), "wake.name", "only dots")
case("phase-400", H, put("schedule.0.wake.name", "p" * 400), "wake.name", "at most 100")

# ---------------------------------------------------------------- keys, kinds, structure
case("unknown-top-key", H, put("duraton", 3), "p.yaml:", "duraton", "unknown key")
case("unknown-phase-key", H, put("schedule.1.test.cue_nois", 0.1), "test.cue_nois", "unknown key")
case(
    "unknown-sleep-kind",
    H,
    put("schedule.2.sleep.kind", "dreamin"),
    "sleep.kind",
    "unknown sleep kind",
)
case(
    "unknown-entry",
    H,
    put("schedule.0", {"tset": {}}),
    "schedule[0].tset",
    "unknown schedule entry",
)
case(
    "two-kinds-one-entry",
    H,
    put("schedule.0", {"wake": {}, "test": {}}),
    "schedule[0]",
    "each schedule entry",
)
case("empty-schedule", H, put("schedule", []), "schedule", "at least 1")
case("format-version", H, put("format_version", 2), "format_version")
case(
    "model-kind", H, put("kind", "hopfeld", model=True), "model.yaml", "kind", "unknown model kind"
)
case("model-unknown-key", H, put("neuronz", 3, model=True), "model.yaml:", "neuronz", "unknown key")
case("model-missing-file", H, put("model", "nope.yaml"), "p.yaml:", "model", "model file not found")
case("engine-unknown", H, put("engine", "nest"), "engine")
case("engine-brian2-hopfield", H, put("engine", "brian2"), "engine", "does not run")
case("device-pattern", H, put("device", "gpu0"), "device", "pattern")
case(
    "device-cuda",
    H,
    flags("--device", "cuda"),
    '--set device="cuda"',
    "device",
    commands=("run",),  # validate checks the file, and notes the device (test_protocol.py)
    skip="CUDA present" if torch.cuda.is_available() else None,
)
case("device-cuda-99", H, put("device", "cuda:99"), "p.yaml:", "device", commands=("run",))
case("task-out-of-range", H, put("schedule.1.test.task", 5), "test.task", "task must be")
case(
    "repeat-both",
    H,
    put("schedule", [{"repeat": {"over": "tasks", "count": 2, "phases": [{"test": {}}]}}]),
    "repeat",
    "exactly one",
)
case(
    "repeat-nested-tasks",
    H,
    repeat_tasks({"repeat": {"over": "tasks", "phases": [{"test": {}}]}}),
    "repeat.over",
    "cannot be nested",
)
case(
    "repeat-count-zero",
    H,
    repeat({"test": {}}, count=0),
    "repeat.count",
    "greater than or equal to 1",
)
case(
    "task-inside-repeat-tasks",
    H,
    repeat_tasks({"test": {"task": 0}}),
    "test.task",
    "set by 'repeat",
)
case(
    "record-unknown-population",
    C,
    put("record.spikes", ["exc", "nope"]),
    "record.spikes",
    "unknown population 'nope'",
)
case(
    "record-states-unknown",
    C,
    put("record.states", [{"variable": "v", "population": "x"}]),
    "record.states[0].population",
    "unknown population",
)
case(
    "npz-path-fifo",
    M,
    both(
        put("data.dataset", "npz"),
        put("data.path", "fifo.npz"),
        lambda w: os.mkfifo(w.folder / "fifo.npz"),
    ),
    "p.yaml:",
    "data",
    "not a regular file",
    isolated=True,
)
case(
    "npz-path-folder",
    M,
    both(put("data.dataset", "npz"), put("data.path", ".")),
    "data",
    "not a regular file",
)
case(
    "npz-not-a-zip",
    M,
    both(put("data.dataset", "npz"), put("data.path", "p.yaml")),
    "data",
    "not an .npz file",
)
case(
    "npz-broken-zip",
    M,
    both(
        put("data.dataset", "npz"),
        put("data.path", "z.npz"),
        lambda w: (w.folder / "z.npz").write_bytes(b"PK\x03\x04junk"),
    ),
    "data",
    "not an .npz file",
)
case(
    "set-alias-bomb",
    H,
    flags("--set", "description={" + laughs().strip().replace("\n", ", ") + "}"),
    "--set description=",
    "more than 100000 values",
    isolated=True,
)
case("set-self-alias", H, flags("--set", "description=&a [*a]"), "recursive alias", isolated=True)
case("output-is-the-protocol", H, put("output", "p.yaml"), "output", "not a neurosleep run file")
case("output-is-a-folder", H, put("output", "."), "output", "is a directory")
case(
    "output-is-a-fifo",
    H,
    both(put("output", "f.h5"), lambda w: os.mkfifo(w.folder / "f.h5")),
    "output",
    "FIFO",
    isolated=True,
)
case(
    "output-is-a-symlink",
    H,
    both(put("output", "l.h5"), lambda w: (w.folder / "l.h5").symlink_to(w.folder / "p.yaml")),
    "output",
    "symbolic link",
)
case(
    "output-is-dev-null",
    H,
    flags("--output", "/dev/null"),
    "output",
    "character device",
    commands=("run",),
)
case(
    "output-read-only-folder",
    H,
    both(put("output", "ro/{name}.h5"), lambda w: (w.folder / "ro").mkdir(mode=0o555)),
    "output",
    "not writable",
    skip="root writes anywhere" if os.geteuid() == 0 else None,
)
case("sra-with-biases", M, put("bias", True, model=True), "sleep.kind", "bias: false")
case("sra-beta-length", M, sra_sleep("beta", [1.0]), "sleep.beta", "thresholds for")
case(
    "sra-before-any-wake",
    M,
    put("schedule", [{"sleep": {"kind": "sra", "steps": 10}}]),
    "sleep.kind",
    "no wake phase before it",
)
case(
    "downscaling-unknown-projection",
    C,
    put("schedule.6", {"sleep": {"kind": "downscaling", "factor": 0.5, "projections": ["xx"]}}),
    "sleep.projections[0]",
    "unknown projection 'xx'",
)
case(
    "rates-unknown-source",
    C,
    put("schedule.6.sleep.rates", {"nope": "5 Hz"}),
    "sleep.rates.nope",
    "is not a source",
)
case("snn-phase-engine", C, put("schedule.6.sleep.engine", "brian2"), "sleep.engine", "one engine")
case(
    "snn-block-unknown", C, put("schedule.6.sleep.block", ["C"]), "sleep.block[0]", "unknown memory"
)
case(
    "snn-block-group-range",
    C,
    put("schedule.6.sleep.block", [{"memory": "A", "groups": [5]}]),
    "sleep.block[0]",
    "has groups 0 to 4, not 5",
)
case("snn-block-bias-positive", C, put("schedule.6.sleep.block_bias", "5 mV"), "block_bias", "0")
case("snn-surrogate-unknown", C, put("schedule.6.sleep.surrogate", "space"), "sleep.surrogate")
case(
    "snn-state-form-unknown",
    C,
    put("schedule.6.sleep.modulation", {"form": {"*": "hebbian"}}),
    "modulation.form",
)
case(
    "snn-state-form-brian2",
    C,
    both(
        put("schedule.6.sleep.modulation", {"form": {"*": "symmetric"}}),
        flags("--engine", "brian2"),
    ),
    "sleep.modulation.form",
    "runs 'ee''s STDP in its own form (additive), not 'symmetric'",
)
case(
    "brian2-two-networks",
    C,
    both(put("engine", "brian2"), put("data.networks", 2)),
    "data.networks",
    "at most 1 network",
)
case(
    "unknown-state",
    C,
    put("schedule.6.sleep.state", "dreaming"),
    "sleep.state",
    "unknown state 'dreaming'",
)
case(
    "spike-twice-in-a-step",
    C,
    put(
        "sources.replay",
        {"type": "array", "size": 2, "indices": [0, 0], "times": ["1 ms", "1.01 ms"]},
        model=True,
    ),
    "model.yaml:",
    "sources.replay.times",
    "twice within one step",
)
case(
    "dreaming-block-1e9",
    H,
    both(put("schedule.2.sleep.steps", 10**9), put("schedule.2.sleep.block", 10**9)),
    "sleep.block",
    "GiB",
)
case(
    "unlearning-block-1e9",
    H,
    put(
        "schedule.2",
        {"sleep": {"name": "u", "kind": "unlearning", "dreams": 10**9, "block": 10**9}},
    ),
    "sleep.block",
    "GiB",
)
case(
    "sra-block-1e9",
    M,
    both(sra_sleep("steps", 10**9), sra_sleep("block", 10**9)),
    "sleep.block",
    "GiB",
)
case(
    "npz-path-missing",
    M,
    both(put("data.dataset", "npz"), put("data.path", "no.npz")),
    "data",
    "No such file",
)
case(
    "idx-path-file",
    M,
    both(put("data.dataset", "idx"), put("data.path", "p.yaml")),
    "data",
    "not a folder",
)

# ---------------------------------------------------------------- flags
case("threads-zero", H, flags("--threads", "0"), "--threads", ">= 1", commands=("run",))
case("threads-negative", H, flags("--threads", "-1"), "--threads", ">= 1", commands=("run",))
case("threads-text", H, flags("--threads", "many"), "--threads", commands=("run",))
case("unknown-flag", H, flags("--bogus"), "--bogus")
case("set-without-equals", H, flags("--set", "seed"), "--set seed", "KEY=VALUE")
case("set-empty-key", H, flags("--set", "=3"), "--set =3", "empty key")
case("set-bad-yaml", H, flags("--set", "seed=[1"), "--set seed=[1", "not valid YAML")
case("set-no-such-phase", H, flags("--set", "schedule.dreem.t=1"), "--set", "no phase named")
case("set-index-range", H, flags("--set", "schedule.9.test.cue_noise=0.1"), "--set", "out of range")
case("set-into-scalar", H, flags("--set", "seed.x=1"), "--set seed.x=1", "holds no keys")
case("set-nan", H, flags("--set", "data.patterns=.nan"), "--set data.patterns=.nan", "finite")
case("set-model-file-key", H, flags("--set", "model.neurons=3"), "--set", "model file")
case("flag-engine", H, flags("--engine", "nest"), '--set engine="nest"', "engine")
case("flag-device", H, flags("--device", "tpu"), '--set device="tpu"', "device")


# ---------------------------------------------------------------- the checks
def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: a hash of each regular file, the kind of anything else."""
    out = {}
    for path in sorted(folder.rglob("*")):
        kind = path.lstat().st_mode
        key = str(path.relative_to(folder))
        if os.path.isfile(path) and not path.is_symlink() and path.stat().st_size < 2**21:
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[key] = f"mode {kind:o} size {path.lstat().st_size}"
    return out


def repository_state() -> dict[str, tuple[int, int]]:
    skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
    state = {}
    for folder, names, files in os.walk(ROOT):
        names[:] = [n for n in names if n not in skip]
        for name in files:
            path = Path(folder) / name
            info = path.lstat()
            state[str(path.relative_to(ROOT))] = (info.st_mtime_ns, info.st_size)
    return state


@pytest.fixture(scope="module", autouse=True)
def imports_done():
    """Validate each base protocol once, so that forked children inherit every import and each
    case measures only its own validation."""
    with contextlib.redirect_stdout(io.StringIO()):
        for base in (H, C, M, U):
            assert cli.main(["validate", str(ROOT / "protocols" / f"{base}.yaml")]) == 0


@pytest.fixture(scope="module", autouse=True)
def repository_unchanged():
    """No case changes any file of the repository (outputs/ included)."""
    before = repository_state()
    yield
    after = repository_state()
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed, sorted(changed)[:10]


def arguments(command: str, w: Workspace) -> list[str]:
    extra = ["--quiet"] if command == "run" else []
    return [command, w.target, *w.flags, *extra]


def run_forked(argv: list[str]) -> tuple[int, str]:
    """Run the command in a forked child with its address space capped at 1 GiB above what the
    test process already maps; kill it after :data:`TIMEOUT_S`. Returns (exit code, stderr)."""
    with tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 99
            try:
                os.dup2(err.fileno(), 2)
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
                sys.stdout, sys.stderr = open(1, "w"), open(2, "w")  # noqa: SIM115
                limit = _mapped_bytes() + 2**30
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
                try:
                    code = cli.main(argv)
                except SystemExit as exc:  # argparse usage errors
                    code = exc.code
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code if isinstance(code, int) else 99)
        deadline = time.monotonic() + TIMEOUT_S
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"{argv} still running after {TIMEOUT_S} s (a hang)")
            time.sleep(0.02)
        err.seek(0)
        return os.waitstatus_to_exitcode(done[1]), err.read().decode(errors="replace")


def _mapped_bytes() -> int:
    """Virtual memory this process maps now (VmSize)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def run_in_process(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2(bad: Case, tmp_path, monkeypatch, capsys):
    if bad.skip:
        pytest.skip(bad.skip)
    monkeypatch.chdir(tmp_path)
    workspace = Workspace(tmp_path, bad.base)
    bad.mutate(workspace)
    workspace.write()
    before = snapshot(tmp_path)
    argvs = [arguments(command, workspace) for command in bad.commands]
    run_one = run_forked if bad.isolated else lambda argv: run_in_process(argv, capsys)
    results = [run_one(argv) for argv in argvs]
    for argv, (code, err) in zip(argvs, results, strict=True):
        lines = err.strip("\n").split("\n")
        assert code == 2, (argv, err)
        assert len(lines) == 1, (argv, err)
        assert "Traceback" not in err, err
        for expected in bad.expect:
            assert expected in lines[0], (argv, expected, lines[0])
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "out").exists()


def test_corpus_is_large_and_every_case_distinct():
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)
