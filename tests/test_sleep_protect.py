"""Synaptic tagging in sleep (``protect``): per-synapse floors (``Engine.set_floors``) on both
engines, and the spontaneous sleep's ``protect`` key end to end."""

from __future__ import annotations

import numpy as np
import pytest

from neurosleep.engines import Recording, make_engine
from neurosleep.errors import SpecError
from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from tests.snn_helpers import MemorySink, small_network

# depression-led STDP on the driven projection: left alone, most of its synapses fall
RULES = {
    "absolute": {"rule": "stdp", "form": "additive", "w_min": "0 mV", "w_max": "20 mV",
                 "a_plus": 0.03, "a_minus": 0.06},
    "relative": {"rule": "stdp", "form": "additive", "bounds": "relative", "w_min": 0.1,
                 "w_max": 3, "a_plus": 0.03, "a_minus": 0.06},
}  # fmt: skip
ENGINES = {"brian2": {}, "torch": {"fused": False}, "torch_fused": {"fused": True}}


def trajectory(engine_name: str, rule: dict) -> dict[str, np.ndarray]:
    """30 ms free, then floors at the current weight of every other synapse for 40 ms, then
    the rule's own bounds for 30 ms (the given input spikes end at 95 ms); the weights every
    10 ms [steps, synapses]."""
    spec = small_network([rule])
    name = engine_name.split("_")[0]
    engine = make_engine(name, spec, seeds=[3], **ENGINES[engine_name])

    def run(ms: int) -> list[np.ndarray]:
        out = []
        for _ in range(ms // 10):
            engine.run(10.0, Recording(spikes=("cur",)), MemorySink())
            out.append(engine.get_weights("in_cur")[0])
        return out

    free = run(30)
    start = free[-1]
    tagged = np.arange(len(start)) % 2 == 0
    engine.set_floors("in_cur", [np.where(tagged, start, -np.inf)])
    floored = run(40)
    engine.set_floors("in_cur", None)
    after = run(30)
    return {"start": start, "tagged": tagged, "floored": np.stack(floored),
            "after": np.stack(after), "all": np.stack(free + floored + after)}  # fmt: skip


@pytest.mark.brian2
@pytest.mark.torch
@pytest.mark.parametrize("bounds", sorted(RULES))
def test_floors_spare_the_tagged_synapses_alike_on_both_engines(bounds):
    runs = {name: trajectory(name, RULES[bounds]) for name in ENGINES}
    ref = runs["brian2"]
    for name in ("torch", "torch_fused"):
        np.testing.assert_allclose(runs[name]["all"], ref["all"], rtol=1e-6, atol=1e-9)
    start, tagged, floored = ref["start"], ref["tagged"], ref["floored"]
    # under the floors a tagged synapse never falls below its weight at the start …
    assert np.all(floored[:, tagged] >= start[tagged] - 1e-12)
    # … (several sit on the floor: depression was stopped there) while untagged ones fall
    assert np.isclose(floored[-1, tagged], start[tagged]).sum() >= 3
    assert (floored[-1, ~tagged] < start[~tagged] - 0.5).sum() >= 3
    # the floors removed, the tagged synapses are depressed again
    assert (ref["after"][-1, tagged] < floored[-1, tagged] - 0.5).sum() >= 3


def short_joint(*overrides: str) -> list[str]:
    """The joint sleep protocol, one network, tests 300 ms, the other phases 1 s."""
    phases = {"before": 100, "learn_A": 1000, "after_A": 300, "learn_B": 1000, "learn_S2": 1000,
              "after_B": 300, "sleep": 1000, "final": 300}  # fmt: skip
    durations = [f"schedule.{name}.duration={ms} ms" for name, ms in phases.items()]
    return ["data.networks=1", *durations, *overrides]


@pytest.mark.torch
def test_a_tagging_sleep_keeps_what_learning_b_potentiated(root, tmp_path):
    protocol = root / "protocols" / "consolidation_joint_sleep.yaml"
    sets = short_joint('schedule.sleep.protect={"since": "learn_B"}')
    run(load_protocol(protocol, sets), output=tmp_path / "tag.h5", progress=False)
    with open_run(tmp_path / "tag.h5") as f:
        index = {p.name: p.index for p in f.phases()}
        ee = f.weights("ee")
        scalars = {name: value for phase, name, value, _ in f.scalars() if phase == index["sleep"]}
    snap = {int(p): v for p, v in zip(ee.phases, ee.values, strict=True)}
    w0, w, after = (snap[index[name]] for name in ("learn_A", "learn_S2", "sleep"))
    tagged = w > w0  # learn_B and learn_S2 raised them (tests change no weight)
    assert 0.05 < tagged.mean() < 0.95
    assert np.all(after[tagged] >= w[tagged])  # exact: the floor is the weight itself
    assert (after[~tagged] < w[~tagged] - 0.1).sum() >= 10  # the others can be depressed
    assert scalars["ee_tagged"] == pytest.approx(tagged.mean(), abs=1e-12)


@pytest.mark.parametrize(
    "override, key, message",
    [
        ('{"since": "learn_C"}', "protect.since", "not a wake phase before"),
        ('{"since": "after_A"}', "protect.since", "not a wake phase before"),
        ('{"since": "learn_B", "margin": -1}', "protect.margin", "greater than or equal to 0"),
    ],
)
def test_protect_names_an_earlier_wake_phase(root, override, key, message):
    protocol = root / "protocols" / "consolidation_joint_sleep.yaml"
    with pytest.raises(SpecError, match=message) as error:
        load_protocol(protocol, short_joint(f"schedule.sleep.protect={override}"))
    assert key in str(error.value)
