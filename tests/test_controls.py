"""The sleep controls' mechanisms (docs/consolidation.md, "Controls"): the offline STDP of the
rate-matched surrogate against the engine's own, the shuffles, a state's STDP form, blocked
memories. The controls' effects on recall are regression-tested in
tests/test_headline_claims.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from neurosleep.engines import Recording, make_engine
from neurosleep.engines.base import rule_bounds, rule_gain, stdp_form
from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from neurosleep.sleep.surrogate import SHUFFLES, apply_stdp
from neurosleep.spec import load_model
from neurosleep.spec.snn import Modulation
from neurosleep.spec.states import PhaseState, compose
from tests.snn_helpers import MemorySink

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.torch


def sleep_spikes(form: str | None, fused: bool = True):
    """Two assemblies networks (seeds 11, 12) after 600 ms in the model's sleep state (STDP
    on, in ``form`` if given): the spec, the engine, the sleep state and the exc spikes."""
    spec, _ = load_model(ROOT / "models" / "assemblies.yaml")
    inline = Modulation(form={"ee": form}) if form else None
    state = compose(spec, "sleep", PhaseState(modulation=inline), 1.0)
    engine = make_engine("torch", spec, seeds=[11, 12], fused=fused)
    engine.set_modulation(state)
    sink = MemorySink()
    engine.run(600.0, Recording(spikes=("exc",), block=200.0), sink)
    return spec, engine, state, sink.spike_array("exc")


@pytest.mark.parametrize("form", [None, "symmetric"])
def test_offline_stdp_on_the_sleeps_own_spikes_gives_the_engines_weights(form):
    """apply_stdp on the unshuffled raster of a sleep that began with zero traces reproduces
    the engine's E->E weights of both networks (to 1e-9 mV), in the rule's own form and in a
    state's form; the sleep moved the weights by far more than that."""
    spec, engine, state, (times, ids) = sleep_spikes(form)
    (rule,) = spec.projections["ee"].plasticity
    size = spec.size("exc")
    assert len(times) > 500  # the sleep is active
    for b, (after, net) in enumerate(zip(engine.get_weights("ee"), engine.networks, strict=True)):
        syn = net.synapses["ee"]
        mine = ids // size == b
        raster = (np.rint(times[mine] / spec.dt).astype(np.int64), ids[mine] - b * size)
        offline = apply_stdp(
            syn.weight,
            syn.pre,
            syn.post,
            rule_bounds(spec, "ee", rule, syn.weight),
            rule,
            stdp_form(state, "ee", rule.form),
            rule_gain(state, "plasticity", "ee"),
            rule_gain(state, "depression", "ee"),
            raster,
            raster,
            spec.dt,
        )
        assert np.abs(after - syn.weight).max() > 0.1
        np.testing.assert_allclose(offline, after, rtol=0, atol=1e-9)


def test_a_states_stdp_form_runs_the_same_in_the_fused_and_the_tensor_loop():
    """symmetric STDP in a state: identical spikes and weights from both torch loops, and
    different weights from the rule's own (additive) form."""
    fused = sleep_spikes("symmetric", fused=True)
    tensor = sleep_spikes("symmetric", fused=False)
    own = sleep_spikes(None, fused=True)
    for a, b in zip(fused[3], tensor[3], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(fused[1].get_weights("ee")[0], tensor[1].get_weights("ee")[0])
    assert np.abs(fused[1].get_weights("ee")[0] - own[1].get_weights("ee")[0]).max() > 0.1


def test_shuffles_keep_what_they_promise():
    """time: each neuron's spike count, at distinct steps within the phase; neurons: the
    spike steps (population rate per step) and the set of spike trains, relabelled."""
    rng = np.random.default_rng(0)
    steps = rng.integers(0, 1000, 3000)
    ids = rng.integers(0, 50, 3000)
    keep = np.unique(np.stack([steps, ids]), axis=1)
    steps, ids = keep[0], keep[1]
    new_steps, new_ids = SHUFFLES.get("time")(steps, ids, 1000, 50, np.random.default_rng(1))
    np.testing.assert_array_equal(
        np.bincount(new_ids, minlength=50), np.bincount(ids, minlength=50)
    )
    assert new_steps.min() >= 0 and new_steps.max() < 1000
    assert len(np.unique(np.stack([new_steps, new_ids]), axis=1).T) == len(steps)
    assert not np.array_equal(np.sort(new_steps), np.sort(steps))
    same_steps, relabelled = SHUFFLES.get("neurons")(steps, ids, 1000, 50, np.random.default_rng(1))
    np.testing.assert_array_equal(same_steps, steps)
    assert sorted(np.bincount(relabelled, minlength=50)) == sorted(np.bincount(ids, minlength=50))
    assert (relabelled != ids).mean() > 0.9
    with pytest.raises(KeyError, match="unknown surrogate shuffle 'space'"):
        SHUFFLES.get("space")


def short_sleep(tmp_path, **sleep) -> Path:
    """The shipped sleep protocol cut to 1 s of A, 1 s of B, 1 s of sleep with ``sleep``'s
    keys, tests of A of 550 ms (5 trials); 2 networks (seeds 11, 12)."""
    data = yaml.safe_load((ROOT / "protocols" / "consolidation_sleep.yaml").read_text())
    data["model"] = str(ROOT / "models" / "assemblies.yaml")
    data |= {"seed": 11, "output": str(tmp_path / "run.h5")}
    data["data"]["networks"] = 2
    data["record"] = {"spikes": "none", "weights": "plastic"}
    test = {"task": 0, "duration": "550 ms"}
    data["schedule"] = [
        {"wake": {"name": "learn_A", "task": 0, "duration": "1000 ms"}},
        {"wake": {"name": "learn_B", "task": 1, "duration": "1000 ms"}},
        {"test": {"name": "after_B", **test}},
        {"sleep": {"name": "sleep", "kind": "spontaneous", "duration": "1000 ms", **sleep}},
        {"test": {"name": "final", **test}},
    ]
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(data))
    return run(load_protocol(path), progress=False).path


def test_blocked_memory_is_silent_in_sleep_and_recalled_after(tmp_path, one_torch_thread):
    """block: [A] silences A's neurons (0 Hz) for the sleep only: the weights among A's
    neurons stay as learnt (no pre or post spike), and A's cue recruits its neurons after
    (measured completion 0.33 and 0.35; 0 while the −40 mV bias stays)."""
    path = short_sleep(tmp_path, block=["A"])
    with open_run(path) as rf:
        sleep = rf.arrays(f"sleep/{next(p.index for p in rf.phases() if p.kind == 'sleep')}")
        assert sleep["rate_blocked"] == 0.0
        assert sleep["rate_exc"] > 0.0  # the bystanders are not silent
        w = rf.weights("ee")
        inside = (w.pre < 100) & (w.post < 100)
        np.testing.assert_array_equal(w.values[-1][inside], w.values[-2][inside])
        final = rf.arrays(f"recall/{int(rf.evaluations().phases[-1])}")
        assert final["completion"][:, 0].min() > 0.2


def test_blocked_groups_are_silent_in_sleep_and_the_rest_plastic(tmp_path, one_torch_thread):
    """block: [{memory: A, groups: [0, 1]}] silences A's first two groups (neurons 0-39) for
    the sleep (measured 0.0125 Hz, one spike in the two networks' 80 blocked neurons, against
    2.5 Hz over exc): the weights among them stay as learnt (network 0), while those among A's
    last two groups (60-99), whose neurons fire, change (by up to 2.4 mV)."""
    path = short_sleep(tmp_path, block=[{"memory": "A", "groups": [0, 1]}])
    with open_run(path) as rf:
        sleep = rf.arrays(f"sleep/{next(p.index for p in rf.phases() if p.kind == 'sleep')}")
        assert sleep["rate_blocked"] < 0.05 < 1.0 < sleep["rate_exc"]
        w = rf.weights("ee")
        first = (w.pre < 40) & (w.post < 40)
        last = (w.pre >= 60) & (w.pre < 100) & (w.post >= 60) & (w.post < 100)
        np.testing.assert_array_equal(w.values[-1][first], w.values[-2][first])
        assert np.abs(w.values[-1][last] - w.values[-2][last]).max() > 0.1


def test_surrogate_replaces_the_sleeps_weight_change(tmp_path, one_torch_thread, monkeypatch):
    """A time-shuffled surrogate gives other weights than the sleep itself, from the same
    activity (same rates, same replay counts). The sleep keeps in memory only the spikes read
    after it: the memory population's (replay diagnostics) and, for the surrogate, both sides
    of the plastic projection (E->E: exc again), never inh's."""
    from neurosleep.experiments.snn import RecorderSink

    kept: dict[str, set[str]] = {}
    handed = RecorderSink.spikes

    def spikes(self, population, times_ms, node_ids):
        handed(self, population, times_ms, node_ids)
        kept[surrogate] |= set(self.keep)

    monkeypatch.setattr(RecorderSink, "spikes", spikes)
    runs = {}
    for surrogate in ("none", "time"):
        kept[surrogate] = set()
        out = tmp_path / surrogate
        out.mkdir()
        with open_run(short_sleep(out, surrogate=surrogate)) as rf:
            sleep = next(p for p in rf.phases() if p.kind == "sleep")
            runs[surrogate] = (rf.weights("ee").values[-1], rf.arrays(f"sleep/{sleep.index}"))
    (w_sleep, d_sleep), (w_surrogate, d_surrogate) = runs["none"], runs["time"]
    assert d_sleep["rate_exc"] == d_surrogate["rate_exc"]
    np.testing.assert_array_equal(
        d_sleep["network_replay_count"], d_surrogate["network_replay_count"]
    )
    assert np.abs(w_sleep - w_surrogate).max() > 0.1
    assert kept == {"none": {"exc"}, "time": {"exc"}}
