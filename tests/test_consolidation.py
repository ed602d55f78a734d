"""Spiking consolidation: the assemblies model on both engines, and a short protocol showing
that learning the reversed sequence B damages the recall of sequence A (fixed seed)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from neurosleep.analysis.recall import footprint
from neurosleep.commands.info import describe
from neurosleep.engines.base import Recording, make_engine
from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from neurosleep.spec.snn import Modulation, SNNSpec
from tests.snn_helpers import MemorySink, small_network

GROUPS = [np.arange(k * 20, k * 20 + 20) for k in range(5)]
MEMORIES = {"A": GROUPS, "B": GROUPS[::-1]}


def model_dict(root) -> dict:
    return yaml.safe_load((root / "models" / "assemblies.yaml").read_text())


def deterministic_model(root, repeats: int = 3) -> SNNSpec:
    """The shipped model with the noise off and sequence A given as fixed input spikes, once
    every 100 ms, ``repeats`` times."""
    spec = model_dict(root)
    times, ids = [], []
    for repeat in range(repeats):
        for k, group in enumerate(GROUPS):
            for offset in (1.0, 3.0, 5.0):
                times += [f"{100 * repeat + 10 * k + offset} ms"] * group.size
                ids += group.tolist()
    spec["sources"]["stim"] = {"type": "array", "size": 200, "indices": ids, "times": times}
    spec["sources"]["noise"]["rate"] = "0 Hz"
    spec["sources"]["noise_i"]["rate"] = "0 Hz"
    spec.pop("format_version")
    return SNNSpec.model_validate(spec)


@pytest.mark.slow
@pytest.mark.brian2
@pytest.mark.torch
def test_same_drive_gives_the_same_spikes_and_weights_on_both_engines(root):
    spec = deterministic_model(root)
    results = {}
    for engine in ("torch", "brian2"):
        options = {"target": "numpy"} if engine == "brian2" else {}
        sim = make_engine(engine, spec, seeds=[5], **options)
        sink = MemorySink()
        sim.run(300.0, Recording(spikes=("exc", "inh"), block=100.0), sink)
        results[engine] = (
            sink.spike_array("exc"),
            sink.spike_array("inh"),
            sim.get_weights("ee")[0],
        )
    (te, ie), (ti, ii), w_torch = results["torch"]
    (be, bi), (bt, bii), w_brian = results["brian2"]
    assert len(te) > 600  # the drive makes every group fire, and the chain recruits inh
    np.testing.assert_array_equal(ie, bi)
    np.testing.assert_allclose(te, be, atol=1e-9)
    np.testing.assert_array_equal(ii, bii)
    np.testing.assert_allclose(ti, bt, atol=1e-9)
    np.testing.assert_allclose(w_torch, w_brian, rtol=1e-9, atol=1e-9)
    pre_post = make_engine("torch", spec, seeds=[5]).networks[0].synapses["ee"]
    fp = footprint(np.stack([pre_post.weight, w_torch]), pre_post.pre, pre_post.post, MEMORIES)
    assert fp["A"][1] > 1.5 * fp["A"][0]  # forward synapses of the presented sequence grow
    assert fp["B"][1] < fp["B"][0]  # and the backward ones shrink


@pytest.mark.slow
@pytest.mark.brian2
@pytest.mark.torch
def test_brain_states_switch_alike_on_both_engines(root):
    """The model's states (wake: E->E x0.5 and adaptation x0; test: all x1, adaptation on;
    sleep: leak x2, E->E x1.3, I->E x2, STDP x3 with depression x0.7), switched in one run as a
    protocol does, give the same spikes and weights on both engines under the same drive, the
    adaptation carried over from one state into the next."""
    spec = deterministic_model(root, repeats=3)
    results = {}
    for engine in ("torch", "brian2"):
        options = {"target": "numpy"} if engine == "brian2" else {}
        sim = make_engine(engine, spec, seeds=[5], **options)
        results[engine] = []
        for state in ("wake", "test", "sleep"):
            sim.set_modulation(spec.modulation[state])
            sink = MemorySink()
            sim.run(100.0, Recording(spikes=("exc",), block=100.0), sink)
            results[engine].append((*sink.spike_array("exc"), sim.get_weights("ee")[0]))
    counts = [len(times) for times, _, _ in results["torch"]]
    assert counts[0] < counts[1] < counts[2]  # E->E x0.5 < x1 < x1.3 with I->E x2 and leak x2
    for (tt, it, wt), (tb, ib, wb) in zip(results["torch"], results["brian2"], strict=True):
        np.testing.assert_array_equal(it, ib)
        np.testing.assert_allclose(tt, tb, atol=1e-9)
        np.testing.assert_allclose(wt, wb, rtol=1e-9, atol=1e-9)


@pytest.mark.torch
def test_sleep_adaptation_is_off_awake_and_bursts_asleep(root):
    """The shipped model's adaptation current is off while learning: under the wake state the
    network spikes exactly as without adaptation; under the sleep state (and in tests) the
    current builds up and the network fires less than without it."""
    shipped = model_dict(root)
    shipped.pop("format_version")
    plain = copy.deepcopy(shipped)  # same key order: the same random draws build the network
    plain["populations"]["exc"]["neuron"].pop("adaptation")
    runs = {}
    for name, data in (("shipped", shipped), ("plain", plain)):
        spec = SNNSpec.model_validate(data)
        for state in ("wake", "sleep"):
            sim = make_engine("torch", spec, seeds=[7])
            sim.set_modulation(spec.modulation[state])
            sink = MemorySink()
            sim.run(500.0, Recording(spikes=("exc",)), sink)
            runs[name, state] = sink.spike_array("exc")
    np.testing.assert_array_equal(runs["shipped", "wake"][1], runs["plain", "wake"][1])
    np.testing.assert_array_equal(runs["shipped", "wake"][0], runs["plain", "wake"][0])
    assert 0 < len(runs["shipped", "sleep"][0]) < len(runs["plain", "sleep"][0])


@pytest.mark.brian2
@pytest.mark.torch
@pytest.mark.parametrize("form", ["additive", "multiplicative", "symmetric"])
def test_state_depression_factor_is_the_same_on_both_engines(form):
    """A brain state's ``depression`` factor scales STDP's a_minus alike in both engines."""
    rule = {"rule": "stdp", "form": form, "w_max": "15 mV", "a_plus": 0.02, "a_minus": 0.021}
    if form == "symmetric":
        rule["a_minus"] = 0.002
    spec = small_network([rule])
    weights = {}
    for engine, factor in (("torch", 0.3), ("brian2", 0.3), ("torch", 1.0)):
        sim = make_engine(engine, spec, seeds=[3])
        sim.set_modulation(Modulation(depression={"in_cur": factor}))
        sim.run(100.0, Recording(spikes=("cur",)), MemorySink())
        weights[engine, factor] = sim.get_weights("in_cur")[0]
    np.testing.assert_allclose(weights["torch", 0.3], weights["brian2", 0.3], rtol=1e-6, atol=1e-9)
    # less depression leaves the weights higher than the spec's balance does
    assert (weights["torch", 0.3] - weights["torch", 1.0]).mean() > 0.01


def test_depression_gains_are_validated_and_the_balance_model_uses_them(root):
    spec = model_dict(root)
    spec.pop("format_version")
    spec["modulation"]["sleep"]["depression"] = {"eee": 2.0}
    with pytest.raises(ValueError, match="unknown projection 'eee'"):
        SNNSpec.model_validate(spec)
    spec["modulation"]["sleep"]["depression"] = {"*": -1.0}
    with pytest.raises(ValueError, match="depression gains must be >= 0"):
        SNNSpec.model_validate(spec)
    balance = yaml.safe_load((root / "models" / "assemblies_balance.yaml").read_text())
    balance.pop("format_version")
    spec = SNNSpec.model_validate(balance)
    rule = spec.projections["ee"].plasticity[0]
    # González et al.: depression half of potentiation awake, equal to it in sleep
    assert rule.a_minus == pytest.approx(rule.a_plus / 2)
    assert spec.modulation["sleep"].depression["*"] * rule.a_minus == pytest.approx(rule.a_plus)
    for name in ("consolidation_balance_no_sleep", "consolidation_balance_sleep"):
        protocol = load_protocol(root / "protocols" / f"{name}.yaml")
        assert protocol.model.projections["ee"].plasticity[0].a_minus == rule.a_minus


def test_the_joint_configuration_is_the_shipped_one_with_its_stated_changes(root):
    """models/assemblies_joint.yaml and protocols/consolidation_joint_*.yaml (docs/results.md,
    "The joint configuration on held-out seeds 101–120") differ from the shipped files only in
    the recall state, the sleep's STDP gain, B's neurons (the third round's fixed 15 of 20,
    ``default_rng(0)``) and the sleep's block of S2 (and their names and descriptions)."""
    shipped = model_dict(root)
    joint = yaml.safe_load((root / "models" / "assemblies_joint.yaml").read_text())
    assert joint["modulation"].pop("test") == {
        "scale": {"exc.adaptation": 24.0, "exc.adaptation_tau": 1 / 6, "ie.gain": 0.5}
    }
    assert joint["modulation"]["sleep"].pop("plasticity") == {"*": 2.0}
    shipped["modulation"].pop("test"), shipped["modulation"]["sleep"].pop("plasticity")
    for key in ("name", "description"):
        assert joint.pop(key) != shipped.pop(key)
    assert joint == shipped
    rng = np.random.default_rng(0)
    subsets = [sorted(int(x) for x in rng.choice(np.arange(s, s + 20), 15, replace=False))
               for s in range(0, 100, 20)][::-1]  # fmt: skip
    for name in ("no_sleep", "sleep"):
        mine = yaml.safe_load((root / "protocols" / f"consolidation_joint_{name}.yaml").read_text())
        base = yaml.safe_load((root / "protocols" / f"consolidation_{name}.yaml").read_text())
        stored = mine["data"]["memories"]["stored"]
        assert stored[1] == {"name": "B", "groups": subsets}
        stored[1] = base["data"]["memories"]["stored"][1]
        if name == "sleep":
            assert mine["schedule"][-2]["sleep"].pop("block") == ["S2"]
        for key in ("name", "model", "description"):
            assert mine.pop(key) != base.pop(key)
        assert mine == base, name
        assert load_protocol(root / "protocols" / f"consolidation_joint_{name}.yaml").phases


def short_protocol(root, write_protocol, tmp_path, engine: str, networks: int) -> dict:
    text = yaml.safe_load((root / "protocols" / "consolidation_sleep.yaml").read_text())
    text |= {
        "model": model_dict(root),
        "engine": engine,
        "output": str(tmp_path / f"{engine}.h5"),
        "record": {"spikes": ["exc"], "weights": "plastic", "block": "500 ms"},
        "schedule": [
            {"wake": {"name": "learn_A", "task": 0, "duration": "3000 ms"}},
            {"test": {"name": "after_A", "duration": "1000 ms"}},
            {"wake": {"name": "learn_B", "task": 1, "duration": "3000 ms"}},
            {"test": {"name": "after_B", "duration": "1000 ms"}},
            {"sleep": {"name": "nap", "kind": "spontaneous", "duration": "1000 ms"}},
        ],
    }
    text["model"].pop("format_version")
    text["data"]["networks"] = networks
    return text


@pytest.mark.slow
@pytest.mark.torch
def test_learning_b_damages_a_and_is_recorded(root, write_protocol, tmp_path):
    path = write_protocol(short_protocol(root, write_protocol, tmp_path, "torch", 2))
    result = run(load_protocol(path), progress=False)
    with open_run(result.path) as rf:
        ev = rf.evaluations()
        seq = ev.metrics["sequence"]  # [test phase, memory]
        after_a, after_b = seq
        assert after_a[0] > 0.5  # A learned: the cue of its first group replays it in order
        assert after_a[1] < 0.2  # B not learned yet
        assert after_b[0] < after_a[0] - 0.3  # learning the reversed sequence damages A
        assert after_b[1] > 0.4  # and stores B
        per_network = rf.arrays(f"recall/{int(ev.phases[1])}")["sequence"]
        assert per_network.shape == (2, 3) and np.all(per_network[:, 0] < after_a[0])
        assert np.all(ev.metrics["intrusion"] < 0.1)  # the cue does not ignite the network
        w = rf.weights("ee")
        fp = footprint(w.values, w.pre, w.post, MEMORIES)
        assert fp["A"][0] > 4 * fp["A"][1] / 3  # A's synapses lose a quarter or more to B
        assert fp["B"][1] > 4 * fp["B"][0]
        # the potentiation-led sleep state starts rebuilding A's synapses within 1 s
        assert fp["A"][2] > 1.1 * fp["A"][1] and fp["B"][2] > 0.9 * fp["B"][1]
        nap = rf.arrays(f"sleep/{rf.phases()[-1].index}")
        assert nap["replay_events"] >= 1 and "replay_rate_A_forward" in nap
        assert "replay events" in describe(rf)
        # wake phases record each population's mean rate and CV of ISI
        scalars = {(phase, name): value for phase, name, value, _ in rf.scalars()}
        learn_a = rf.phases()[0].index
        # 3 s of A: each memory neuron fires about 2 spikes per 10 ms group step every 110 ms
        assert 2.0 < scalars[learn_a, "rate_exc"] < 40.0
        assert 0.0 < scalars[learn_a, "cv_isi_exc"] < 3.0
        assert (learn_a, "rate_inh") in scalars


@pytest.mark.torch
def test_info_and_summary_count_the_same_replay_events(root, write_protocol, tmp_path, capsys):
    """One detector: the events the run counted (``info``) are those ``summary`` and the replay
    plot find in the run file (network 0 of 2, the run's bin and threshold)."""
    from neurosleep.analysis.plots import replay
    from neurosleep.analysis.summary import summarize
    from neurosleep.cli import main

    content = short_protocol(root, write_protocol, tmp_path, "torch", 2)
    content["schedule"] = [
        {"wake": {"name": "learn_A", "task": 0, "duration": "500 ms"}},
        {"sleep": {"name": "nap", "kind": "spontaneous", "duration": "1500 ms"}},
    ]
    content["data"]["memories"] |= {"replay_bin": "4 ms", "replay_threshold_sd": 2.5}
    path = run(load_protocol(write_protocol(content)), progress=False).path
    with open_run(path) as rf:
        nap = rf.phases()[-1]
        stored = int(rf.arrays(f"sleep/{nap.index}")["replay_events"])
        assert stored >= 3  # the comparison means something
        counted = summarize(rf, populations=["exc"], backend="numpy")["phases"][-1]
        assert counted["populations"]["exc"]["replay_events"] == stored
        title = replay(rf, ["exc"]).axes[0].get_title(loc="left")
        assert title.endswith(f"replay events exc {stored}")
    assert main(["info", str(path)]) == 0
    info = capsys.readouterr().out
    assert f"phase {nap.index}: {stored} replay events" in info
    assert main(["summary", str(path), "--stats", "numpy"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert next(r for r in rows if r[1:3] == ["nap", "exc"])[-1] == str(stored)
