"""The torch engine's step over fixed tensors (``graphs=True``, captured as a CUDA graph on
CUDA): on the CPU the same step runs uncaptured, and must give the tensor loop's spikes,
sampled states and weights bit for bit, with no wait for the device inside a block (a
capture would fail on one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurosleep.engines import Recording, make_engine
from neurosleep.spec.snn import Modulation
from tests.snn_helpers import MemorySink, small_network
from tests.test_engine_sync import SYNCING, CountOperators

pytestmark = pytest.mark.torch

RULES = [
    {"rule": "stdp", "form": "additive", "w_max": "15 mV", "a_plus": 0.02, "a_minus": 0.021},
    {"rule": "scaling", "eta": "2 1/s", "target": "5 Hz", "w_max": "15 mV", "interval": "1 ms"},
]
STATES = [None, Modulation(plasticity={"*": 3.0}, depression={"*": 0.5}), None]
RECORDING = Recording(
    spikes=("cur", "cond", "noise"),
    states={
        ("v", "cur"): np.arange(6),
        ("g_e", "cond"): np.arange(5),
        ("a", "cur"): np.array([0, 3]),
    },
    interval=0.3,
    block=7.0,
)


def run_phases(device: str = "cpu", spike_cap: int | None = None, **options):
    """Three phases (the second a brain state with other plasticity gains) of a plastic
    network with delays and Poisson input, two networks; returns (sink, weights)."""
    engine = make_engine("torch", small_network(RULES, noise=True), seeds=[4, 5], device=device,
                         fused=False, **options)  # fmt: skip
    if spike_cap:
        engine.spike_cap = spike_cap
    sink = MemorySink()
    for state in STATES:
        engine.set_modulation(state)
        engine.run(20.0, RECORDING, sink)
    return sink, engine.get_weights("in_cur")


def assert_same_runs(a, b) -> None:
    (sink_a, weights_a), (sink_b, weights_b) = a, b
    for population in RECORDING.spikes:
        for x, y in zip(*(sink.spike_array(population) for sink in (sink_a, sink_b)), strict=True):
            np.testing.assert_array_equal(x, y)
    for key in RECORDING.states:
        for x, y in zip(sink_a.trace(*key), sink_b.trace(*key), strict=True):
            np.testing.assert_array_equal(x, y)
    for x, y in zip(weights_a, weights_b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("spike_cap", [None, 1], ids=["room", "reruns"])
def test_step_graph_gives_the_tensor_loops_run(spike_cap):
    """Spikes, samples of v, g_e and a, and weights equal the tensor loop's to the bit, across
    blocks, phases with other plasticity gains (a new modulation drops the step graphs) and,
    with room for one spike per step, blocks run again with more room (a new step graph)."""
    reference = run_phases()
    sink, weights = graph = run_phases(spike_cap=spike_cap, graphs=True)
    assert_same_runs(reference, graph)
    assert len(sink.spike_array("cur")[0]) > 20, "the network must spike"
    start = make_engine("torch", small_network(RULES, noise=True), seeds=[4, 5])
    assert np.abs(weights[0] - start.get_weights("in_cur")[0]).max() > 0.01, "weights must move"


def test_no_device_wait_inside_a_block_of_step_graphs():
    """The step's operators never wait for the device: one wait per block (its overflow flag),
    as in the tensor loop, and no Python scalar is copied in per step; 200 steps ran."""
    engine = make_engine("torch", small_network(RULES, noise=True), seeds=[4, 5], fused=False,
                         graphs=True)  # fmt: skip
    engine.spike_cap = engine.batch * engine.width
    with CountOperators() as counter:
        engine.run(20.0, Recording(spikes=("cur", "cond"), block=10.0), MemorySink())
    assert sum(counter.calls[name] for name in SYNCING) == 2
    assert counter.calls["aten.nonzero_static"] == 2 * 200
    # a Python scalar made a tensor inside the step is a host copy on CUDA, which a capture refuses
    assert counter.calls["aten.lift_fresh"] < 200 // 4


def test_step_graphs_are_kept_across_runs_and_dropped_when_what_they_capture_changes(
    monkeypatch,
):
    """An experiment runs the engine block by block: a step graph serves every block of its
    spike room until the modulation, a bias or the floors change (what a capture bakes in)."""
    from neurosleep.engines import torch as torch_engine

    built = []

    class Counted(torch_engine.StepGraph):
        def __init__(self, *args) -> None:
            super().__init__(*args)
            built.append(self)

    monkeypatch.setattr(torch_engine, "StepGraph", Counted)
    engine = make_engine("torch", small_network(RULES, noise=True), seeds=[4, 5], fused=False,
                         graphs=True)  # fmt: skip
    recording = Recording(spikes=("cur",), block=2.0)
    for _ in range(10):  # 10 runs of one block each, as experiments/snn.py makes them
        engine.run(2.0, recording, MemorySink())
    assert len(built) == len(engine._graphs) < 10, [g.cap for g in built]
    for change in (
        lambda: engine.set_modulation(Modulation(plasticity={"*": 2.0})),
        lambda: engine.set_bias("cur", np.full(6, -1.0)),
        lambda: engine.set_floors("in_cur", None),
    ):
        change()
        assert engine._graphs == {}
        before = len(built)
        engine.run(2.0, recording, MemorySink())
        assert len(built) == before + 1


def test_graphs_are_a_form_of_the_tensor_loop():
    with pytest.raises(ValueError, match="needs fused=False"):
        make_engine("torch", small_network(RULES), seeds=[1], fused=True, graphs=True)
    assert not make_engine("torch", small_network(RULES), seeds=[1], graphs=True).fused


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_captured_step_on_cuda_gives_the_cpus_run():
    """On CUDA each step graph is captured once and replayed: the CPU's spikes, and its
    samples and weights within float64 rounding (CUDA's atomic adds sum in another order; the
    tolerance of test_torch_on_cuda_matches_cpu)."""
    (sink, weights), (cpu_sink, cpu_weights) = run_phases("cuda", graphs=True), run_phases()
    for population in RECORDING.spikes:
        for x, y in zip(*(s.spike_array(population) for s in (sink, cpu_sink)), strict=True):
            np.testing.assert_array_equal(x, y)
    for key in RECORDING.states:
        np.testing.assert_allclose(sink.trace(*key)[1], cpu_sink.trace(*key)[1], rtol=1e-9,
                                   atol=1e-12)  # fmt: skip
    for x, y in zip(weights, cpu_weights, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9)
