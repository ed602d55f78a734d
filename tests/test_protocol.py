"""Protocol validation: every bad input names file, line and key, and says what was expected."""

from __future__ import annotations

import re
import textwrap

import pytest
import torch
import yaml

from neurosleep.cli import main
from neurosleep.errors import SpecError
from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from tests.conftest import ROOT

GOOD = """\
format_version: 1
name: hop
seed: 1
model: {MODEL}
engine: torch
device: cpu
data:
  patterns: 10
  tasks: 3
schedule:
  - repeat:
      over: tasks
      phases:
        - wake: {name: "store{task}"}
        - sleep: {name: "dream{k}", kind: dreaming, t: "2*k", steps: "10 + 5*task"}
        - test: {}
output: out.h5
"""


@pytest.fixture
def good(root):
    return GOOD.replace("{MODEL}", str(root / "models" / "hopfield.yaml"))


def problems(write_protocol, text, overrides=()):
    with pytest.raises(SpecError) as info:
        load_protocol(write_protocol(text), list(overrides))
    return info.value.problems, str(info.value)


def test_good_protocol_expands_repeat_with_expressions(write_protocol, good):
    protocol = load_protocol(write_protocol(good))
    assert [p.name for p in protocol.phases[:3]] == ["store0", "dream1", "test2"]
    sleeps = [p for p in protocol.phases if p.kind == "sleep"]
    assert [(s.task, s.params.t, s.params.steps) for s in sleeps] == [
        (0, 2, 10),
        (1, 4, 15),
        (2, 6, 20),
    ]
    assert [p.index for p in protocol.phases] == list(range(9))
    assert protocol.n_tasks == 3


@pytest.mark.parametrize(
    "old, new, line, key, message",
    [
        ("seed: 1", "seed: 1\nduraton: 3", 4, "duraton", "unknown key"),
        ("seed: 1", "seed: -1", 3, "seed", "greater than or equal to 0"),
        ("seed: 1", "seed: one", 3, "seed", "valid integer"),
        ("format_version: 1", "format_version: 7", 1, "format_version", "Input should be 1"),
        ("name: hop\n", "", 1, "name", "required key is missing"),
        ("engine: torch", "engine: brian2", 5, "engine", "does not run 'hopfield' models"),
        ("device: cpu", "device: gpu0", 6, "device", "should match pattern"),
        ("  patterns: 10", "  patterns: 0", 8, "data.patterns", "greater than or equal to 1"),
        ("  patterns: 10", "  patterns: 10\n  patern: 3", 9, "data.patern", "unknown key"),
        (
            "kind: dreaming",
            "kind: dreamin",
            15,
            "schedule[0].repeat.phases[1].sleep.kind",
            "unknown sleep kind 'dreamin'; for 'hopfield' models: dreaming, unlearning",
        ),
        ('t: "2*k"', 't: "2*kk"', 15, "schedule[0].repeat.phases[1].sleep.t", "valid number"),
        ("over: tasks", "over: task", 12, "schedule[0].repeat.over", "Input should be 'tasks'"),
        (
            "- test: {}",
            "- tset: {}",
            16,
            "schedule[0].repeat.phases[2].tset",
            "unknown schedule entry 'tset'",
        ),
        (
            "- test: {}",
            "- test: {cue_noise: 0.9}",
            16,
            "schedule[0].repeat.phases[2].test.cue_noise",
            "less than or equal to 0.5",
        ),
        ("output: out.h5", "output: 'out_{run}.h5'", 17, "output", "only {name} and {seed}"),
    ],
)
def test_bad_protocol_names_line_key_and_expectation(
    write_protocol, good, old, new, line, key, message
):
    assert old in good
    found, text = problems(write_protocol, good.replace(old, new, 1))
    assert len(found) == 1, text
    problem = found[0]
    assert problem.origin.endswith("p.yaml")
    assert problem.line == line, text
    assert str(problem).split(": ")[1] == key, text
    assert message in problem.message, text


def test_unit_errors_name_the_key(write_protocol):
    bad_model = textwrap.dedent(
        """\
        format_version: 1
        kind: hopfield
        name: h
        neurons: 50
        update_interval: 2
        """
    )
    path = write_protocol(bad_model, "model.yaml")
    text = GOOD.replace("{MODEL}", str(path))
    found, message = problems(write_protocol, text)
    assert found[0].origin.endswith("model.yaml") and found[0].line == 5
    assert "update_interval: missing unit: expected a quantity in ms" in message
    path.write_text(bad_model.replace("update_interval: 2", "update_interval: '2 mV'"))
    found, message = problems(write_protocol, text)
    assert "wrong unit in '2 mV': expected a quantity convertible to ms" in message


def test_all_problems_reported_together(write_protocol, good):
    text = good.replace("seed: 1", "seed: x").replace("device: cpu", "devize: cpu")
    found, _ = problems(write_protocol, text)
    assert {str(p).split(": ")[1] for p in found} == {"seed", "devize"}


def test_yaml_syntax_and_duplicate_keys(write_protocol, good):
    found, _ = problems(write_protocol, good.replace("seed: 1", "seed: 1\nseed: 2"))
    assert (found[0].line, found[0].message) == (4, "duplicate key")
    found, _ = problems(write_protocol, good.replace("data:", "data: [", 1))
    assert found[0].message.startswith("not valid YAML") and found[0].line is not None


def test_missing_model_file(write_protocol, good):
    found, _ = problems(write_protocol, good.replace("hopfield.yaml", "nope.yaml"))
    assert found[0].line == 4 and "model file not found" in found[0].message


def test_overrides_apply_and_are_validated(write_protocol, good):
    path = write_protocol(good)
    protocol = load_protocol(
        path, ["seed=5", "data.patterns=20", "schedule.0.repeat.phases.1.sleep.steps=7"]
    )
    assert protocol.seed == 5 and protocol.data.patterns == 20
    assert {p.params.steps for p in protocol.phases if p.kind == "sleep"} == {7}
    assert protocol.resolved["seed"] == 5
    with pytest.raises(SpecError) as info:
        load_protocol(path, ["data.patterns=-3"])
    assert str(info.value).startswith("--set data.patterns=-3: data.patterns: ")
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        load_protocol(path, ["seed"])


def test_override_by_phase_name(write_protocol, hopfield_protocol):
    path = write_protocol(hopfield_protocol)
    protocol = load_protocol(path, ["schedule.dream.t=100", "schedule.before.cue_noise=0.1"])
    assert protocol.phases[2].params.t == 100 and protocol.phases[1].params.cue_noise == 0.1
    with pytest.raises(SpecError, match="no phase named 'dreem' here"):
        load_protocol(path, ["schedule.dreem.t=1"])


def test_expressions_are_not_python(write_protocol, good):
    found, _ = problems(
        write_protocol, good.replace('t: "2*k"', "t: \"__import__('os').getpid() + k\"")
    )
    assert "t" == found[0].key[-1]


# shipped protocols that use what only the torch engine does, and Brian2's refusal
TORCH_ONLY = {
    "consolidation_sleep_symmetric_stdp": r"sleep.modulation.form: the brian2 engine runs 'ee''s",
    "consolidation_soft_sleep": r"sleep.modulation.form: the brian2 engine runs 'ee''s",
    "consolidation_soft_nightmares": r"sleep.modulation.form: the brian2 engine runs 'ee''s",
}


def test_validate_checks_the_file_and_notes_a_device_this_machine_lacks(
    capsys, monkeypatch, tmp_path
):
    """``neurosleep validate`` checks the file, not this machine: a protocol for CUDA is valid
    here, with a note on stderr; ``run`` refuses it, naming the device key, and writes nothing."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA
    monkeypatch.chdir(tmp_path)  # the protocol's relative output would land here
    path = str(ROOT / "protocols" / "consolidation_large.yaml")
    assert main(["validate", path]) == 0
    captured = capsys.readouterr()
    assert "valid" in captured.out and "on cuda" in captured.out
    assert captured.err.startswith("note: not on this machine: device 'cuda' asked for")
    assert main(["run", path]) == 2
    refused = capsys.readouterr().err
    assert re.search(r"consolidation_large\.yaml:\d+: device: device 'cuda'", refused), refused
    assert "--device cpu" in refused
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("path", sorted((ROOT / "protocols").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_protocols_validate(path):
    """Every shipped protocol (model included) validates and expands, on both engines where
    its model kind runs on both and it asks for nothing torch-only (elsewhere Brian2 is
    refused with the key named). A protocol
    that asks for CUDA is refused, naming the device key, where torch sees no CUDA device."""
    overrides = []
    if yaml.safe_load(path.read_text()).get("device", "cpu") != "cpu":
        if not torch.cuda.is_available():
            with pytest.raises(SpecError, match=r"device: device 'cuda.*sees no CUDA device"):
                load_protocol(path)
            overrides = ["device=cpu"]
    protocol = load_protocol(path, overrides)
    assert protocol.phases and protocol.experiment.model_kind == protocol.model.kind
    if path.stem in TORCH_ONLY:
        with pytest.raises(SpecError, match=TORCH_ONLY[path.stem]):
            load_protocol(path, ["engine=brian2", *overrides])
    elif "brian2" in protocol.experiment.engines:
        on_brian2 = load_protocol(path, ["engine=brian2", *overrides])
        assert on_brian2.engine == "brian2" and len(on_brian2.phases) == len(protocol.phases)
    else:
        with pytest.raises(SpecError, match="engine=brian2: engine: engine 'brian2' does not"):
            load_protocol(path, ["engine=brian2", *overrides])


@pytest.mark.brian2
def test_brian2_runs_a_states_form_only_when_it_is_the_rules_own(tmp_path):
    """The Brian2 engine compiles each STDP rule in its own form: a state's ``form`` naming
    that form (for the projection or ``"*"``) validates, and runs (numpy target, 20 ms of wake
    and of sleep); another form is refused at validation, the key and both forms named."""
    from neurosleep.runner import run

    path = ROOT / "protocols" / "consolidation_sleep.yaml"
    short = [
        "engine=brian2",
        "data.target=numpy",
        "record.spikes=none",
        'schedule=[{"wake": {"name": "learn_A", "task": 0, "duration": "20 ms"}},'
        ' {"sleep": {"name": "sleep", "kind": "spontaneous", "duration": "20 ms"}}]',
    ]
    assert load_protocol(path, [*short, 'schedule.sleep.modulation.form={"*": additive}'])
    protocol = load_protocol(path, [*short, "schedule.sleep.modulation.form={ee: additive}"])
    with open_run(run(protocol, output=tmp_path / "run.h5").path) as rf:
        assert rf.status == "complete" and [p.kind for p in rf.phases()] == ["wake", "sleep"]
    for form in ({"ee": "symmetric"}, {"*": "multiplicative"}):
        with pytest.raises(SpecError) as refused:
            load_protocol(path, [*short, f"schedule.sleep.modulation.form={form}"])
        asked = next(iter(form.values()))
        assert (
            "sleep.modulation.form: the brian2 engine runs 'ee''s STDP in its own form "
            f"(additive), not {asked!r}; another form needs the torch engine"
        ) in str(refused.value)
