"""One conformance suite that every registered engine passes (closed forms, controls, recording)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import neurosleep.engines  # noqa: F401  (registers the engines)
from neurosleep.engines import ENGINES, Recording, make_engine
from neurosleep.spec.snn import Modulation, SNNSpec
from tests.snn_helpers import MemorySink, small_network

pytestmark = [pytest.mark.brian2, pytest.mark.torch]

LIF = {
    "tau_m": "20 ms",
    "v_rest": "-49 mV",
    "v_threshold": "-50 mV",
    "v_reset": "-60 mV",
    "refractory": "5 ms",
    "tau_e": "5 ms",
}


def pacemaker(extra: dict | None = None) -> SNNSpec:
    """One neuron with v_rest above threshold; a silent-ish source with one given spike."""
    spec = {
        "kind": "snn",
        "name": "pace",
        "dt": "0.1 ms",
        "populations": {
            "cell": {"size": 1, "neuron": LIF, "initial": {"v": "-60 mV"}},
            "quiet": {"size": 1, "neuron": {**LIF, "v_rest": "-70 mV"}, "initial": {"v": "-70 mV"}},
        },
        "sources": {
            "kick": {"type": "array", "size": 1, "indices": [0], "times": ["1 ms"]},
            "noise": {"type": "poisson", "size": 500, "rate": "200 Hz"},
        },
        "projections": {
            "kick_quiet": {
                "pre": "kick",
                "post": "quiet",
                "connect": {"rule": "all_to_all"},
                "weight": "2 mV",
                "delay": "0.7 ms",
            },
        },
        "modulation": {
            "slow": {"scale": {"cell.leak": 0.5, "kick_quiet.gain": 2.0, "noise.rate": 0.0}},
        },
    }
    spec.update(extra or {})
    return SNNSpec.model_validate(spec)


def period_ms(tau_m: float, dt: float = 0.1) -> float:
    """Closed-form ISI of the pacemaker on the engines' grid (ref steps + crossing steps - 1)."""
    steps = 50 + math.ceil(tau_m / dt * math.log(11.0)) - 1
    return steps * dt


@pytest.fixture(params=ENGINES.names())
def engine_name(request) -> str:
    return request.param


def isis(engine, duration=300.0) -> np.ndarray:
    sink = MemorySink()
    engine.run(duration, Recording(spikes=("cell",), block=duration), sink)
    return np.diff(sink.spike_array("cell")[0])


def test_lif_period_matches_closed_form(engine_name):
    engine = make_engine(engine_name, pacemaker(), seeds=[0])
    intervals = isis(engine)
    assert len(intervals) >= 4
    np.testing.assert_allclose(intervals, period_ms(20.0), atol=1e-6)


def test_modulation_scales_and_restores(engine_name):
    spec = pacemaker()
    engine = make_engine(engine_name, spec, seeds=[0])
    engine.set_modulation(spec.modulation["slow"])
    sink = MemorySink()
    rec = Recording(spikes=("cell", "noise"), states={("g_e", "quiet"): np.arange(1)}, interval=0.1)
    engine.run(400.0, rec, sink)
    slow = np.diff(sink.spike_array("cell")[0])
    np.testing.assert_allclose(slow[1:], period_ms(40.0), atol=1e-6)  # leak x0.5: tau_m 40 ms
    assert len(sink.spike_array("noise")[0]) == 0  # rate x0
    times, g = sink.trace("g_e", "quiet")
    assert g.max() == pytest.approx(4.0, rel=1e-12)  # gain x2 on a 2 mV synapse
    engine.set_modulation(None)
    np.testing.assert_allclose(isis(engine)[1:], period_ms(20.0), atol=1e-6)


def test_adaptation_time_constant_scales_with_the_state(engine_name):
    """``<population>.adaptation_tau`` multiplies the adaptation's decay time constant while a
    state lasts (100 ms → 25 ms at ×0.25): between the pacemaker's spikes ``a`` decays by
    exp(−dt/τ) per step; restored without the state."""
    adapting = {**LIF, "adaptation": {"tau": "100 ms", "increment": "1 mV"}}
    quiet = {"size": 1, "neuron": {**LIF, "v_rest": "-70 mV"}, "initial": {"v": "-70 mV"}}
    spec = pacemaker({
        "populations": {"cell": {"size": 1, "neuron": adapting, "initial": {"v": "-60 mV"}},
                        "quiet": quiet},
        "modulation": {"fast": {"scale": {"cell.adaptation_tau": 0.25}}},
    })  # fmt: skip

    def decay(modulation: Modulation | None) -> np.ndarray:
        engine = make_engine(engine_name, spec, seeds=[0])
        engine.set_modulation(modulation)
        sink = MemorySink()
        engine.run(120.0, Recording(states={("a", "cell"): np.arange(1)}, interval=0.1), sink)
        _, a = sink.trace("a", "cell")
        a = a[:, 0]
        ratio = a[1:] / np.where(a[:-1] > 0, a[:-1], np.nan)
        return ratio[(ratio < 1) & (a[:-1] > 0)]  # steps without a spike

    np.testing.assert_allclose(decay(spec.modulation["fast"]), np.exp(-0.1 / 25.0), rtol=1e-9)
    np.testing.assert_allclose(decay(None), np.exp(-0.1 / 100.0), rtol=1e-9)


def test_bias_shifts_single_neurons_resting_potential_until_removed(engine_name):
    """+21 mV on the quiet cell (rest −70 → −49 mV) makes it the pacemaker; −20 mV on the
    pacemaker (−49 → −69 mV) silences it; None gives the cell back its own rest."""
    engine = make_engine(engine_name, pacemaker(), seeds=[0])
    engine.set_bias("quiet", np.array([21.0]))
    engine.set_bias("cell", np.array([-20.0]))
    sink = MemorySink()
    engine.run(300.0, Recording(spikes=("cell", "quiet"), block=300.0), sink)
    assert len(sink.spike_array("cell")[0]) == 0
    np.testing.assert_allclose(np.diff(sink.spike_array("quiet")[0]), period_ms(20.0), atol=1e-6)
    engine.set_bias("cell", None)
    np.testing.assert_allclose(isis(engine)[1:], period_ms(20.0), atol=1e-6)


def test_synaptic_trace_decays_exponentially_after_the_delay(engine_name):
    engine = make_engine(engine_name, pacemaker(), seeds=[0])
    sink = MemorySink()
    engine.run(
        30.0, Recording(states={("g_e", "quiet"): np.arange(1)}, interval=0.1, block=10.0), sink
    )
    times, g = sink.trace("g_e", "quiet")
    g = g[:, 0]
    arrival = 1.0 + 0.7  # spike at 1 ms, delay 0.7 ms; sampled at the start of the next step
    assert np.all(g[times < arrival + 0.05] == 0)
    later = times > arrival + 0.05
    expected = 2.0 * np.exp(-(times[later] - arrival - 0.1) / 5.0)
    np.testing.assert_allclose(g[later], expected, rtol=1e-9)


def test_poisson_source_rate(engine_name):
    engine = make_engine(engine_name, pacemaker(), seeds=[5])
    sink = MemorySink()
    engine.run(200.0, Recording(spikes=("noise",), block=50.0), sink)
    count = len(sink.spike_array("noise")[0])
    expected = 500 * 200 * 0.2
    assert abs(count - expected) < 4 * math.sqrt(expected)


def test_weights_round_trip_and_block_size_does_not_change_results(engine_name):
    spec = small_network()
    runs = []
    for block in (7.0, 50.0):
        engine = make_engine(engine_name, spec, seeds=[2])
        w = engine.get_weights("in_cur")[0]
        engine.set_weights("in_cur", [w * 1.1])
        np.testing.assert_allclose(engine.get_weights("in_cur")[0], w * 1.1)
        sink = MemorySink()
        engine.run(50.0, Recording(spikes=("cur", "cond"), block=block), sink)
        assert engine.t_ms == pytest.approx(50.0)
        runs.append(sink.spike_array("cur"))
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_allclose(runs[0][0], runs[1][0])
    assert len(runs[0][0]) > 5


# two rules with different upper bounds: one can leave a weight above the other's bound
LEARNING = {
    "stdp+scaling": [
        {"rule": "stdp", "form": "additive", "w_max": "15 mV", "a_plus": 0.05, "a_minus": 0.04},
        {"rule": "scaling", "w_max": "13 mV", "target": "5 Hz", "eta": "5 1/s", "interval": "2 ms"},
    ],
    "symmetric+oja": [
        {"rule": "stdp", "form": "symmetric", "w_max": "15 mV", "a_plus": 0.05, "a_minus": 0.01},
        {"rule": "oja", "w_max": "13 mV", "eta": "5 1/s", "interval": "1 ms"},
    ],
}


# every engine, and the torch engine's tensor loop (the one CUDA runs) besides its CPU kernel
VARIANTS = [(name, {}) for name in ENGINES.names()] + [("torch", {"fused": False})]


@pytest.mark.parametrize("rules", LEARNING)
@pytest.mark.parametrize(
    "engine_name, options", VARIANTS, ids=[n + ("_unfused" if o else "") for n, o in VARIANTS]
)
def test_plasticity_off_leaves_every_plastic_weight_bit_identical(engine_name, options, rules):
    """A test phase (plasticity x0) changes no weight, even one outside a rule's bounds."""
    spec = small_network(LEARNING[rules], noise=True)
    plastic = [name for name, proj in spec.projections.items() if proj.plasticity]
    engine = make_engine(engine_name, spec, seeds=[1], **options)
    start = {name: engine.get_weights(name)[0] for name in plastic}
    engine.run(30.0)  # learning
    w = engine.get_weights("in_cur")[0]
    w[:2] = [20.0, -1.0]  # set from outside, beyond both rules' bounds [0, 13] and [0, 15] mV
    engine.set_weights("in_cur", [w])
    before = {name: engine.get_weights(name)[0] for name in plastic}
    assert any(not np.array_equal(start[n], before[n]) for n in plastic)  # it did learn
    engine.set_modulation(Modulation(plasticity={"*": 0.0}))
    sink = MemorySink()
    engine.run(50.0, Recording(spikes=("cur", "drive"), block=25.0), sink)
    assert len(sink.spike_array("cur")[0]) > 10 and len(sink.spike_array("drive")[0]) > 10
    for name in plastic:
        np.testing.assert_array_equal(engine.get_weights(name)[0], before[name])
    engine.set_modulation(None)
    engine.run(20.0)
    assert not np.array_equal(engine.get_weights("in_cur")[0], before["in_cur"])


def test_durations_must_be_multiples_of_dt(engine_name):
    engine = make_engine(engine_name, pacemaker(), seeds=[0])
    with pytest.raises(ValueError, match="multiple of dt"):
        engine.run(1.05)


def test_unknown_engine_is_refused():
    with pytest.raises(KeyError, match="unknown engine 'nest'"):
        make_engine("nest", pacemaker(), seeds=[0])
