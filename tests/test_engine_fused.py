"""The torch engine's fused CPU kernel gives the tensor loop's results: the same spikes and
weights, and the same states to the last bit except where conductance synapses call ``exp``
(torch's vectorised exp and numba's differ in the last bit: a few units of the last place are
allowed there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurosleep.engines import Recording, make_engine
from neurosleep.spec.snn import Modulation, SNNSpec
from tests.snn_helpers import MemorySink, small_network

pytestmark = pytest.mark.torch

STDP = {"rule": "stdp", "form": "additive", "w_max": "15 mV", "a_plus": 0.02, "a_minus": 0.021}


def run(spec, fused: bool, duration: float, recording: Recording, seeds=(3,), dtype="float64"):
    engine = make_engine("torch", spec, seeds=list(seeds), dtype=dtype, fused=fused)
    sink = MemorySink()
    engine.run(duration, recording, sink)
    return engine, sink


def assert_same(spec, duration, recording, **kwargs):
    (tensor, a), (fused, b) = (run(spec, f, duration, recording, **kwargs) for f in (False, True))
    fired = 0
    for pop in recording.spikes:
        ta, ia = a.spike_array(pop)
        tb, ib = b.spike_array(pop)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ta, tb)
        fired += len(ta)
    assert fired > 20, "the network must fire for the comparison to mean anything"
    for key in recording.states:
        times_a, rows_a = a.trace(*key)
        times_b, rows_b = b.trace(*key)
        np.testing.assert_array_equal(times_a, times_b)
        close(rows_a, rows_b, key[1], kwargs.get("dtype", "float64"))
    for proj in spec.projections:
        for wa, wb in zip(tensor.get_weights(proj), fused.get_weights(proj), strict=True):
            np.testing.assert_array_equal(wa, wb)
    for var in ("v", "g_e", "g_i", "a"):
        for pop in spec.populations:
            close(
                tensor.get_state(var, pop),
                fused.get_state(var, pop),
                pop,
                kwargs.get("dtype", "float64"),
            )
    return tensor, fused


def close(a, b, pop: str, dtype: str) -> None:
    if pop == "cond":
        np.testing.assert_allclose(a, b, rtol=4 * np.finfo(dtype).eps, atol=0)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("variables", [("v", "g_e", "a"), ("v", "a")], ids=["with g", "no g"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_current_conductance_adaptation_delays_sources(dtype, variables):
    """Both synapse kinds, adaptation, refractoriness, delays, given and Poisson input; states
    sampled with and without a conductance (without, the kernel keeps a step's receive pending
    across a sample)."""
    spec = small_network(noise=True)
    states = {(var, pop): np.arange(spec.size(pop)) for var in variables for pop in ("cur", "cond")}
    rec = Recording(
        spikes=("cur", "cond", "drive", "noise"), states=states, interval=0.3, block=7.3
    )
    assert_same(spec, 100.0, rec, seeds=(3, 4), dtype=dtype)


RATE = {"w_max": "15 mV", "tau_rate": "20 ms"}
RULES = {
    "stdp additive": [STDP],
    "stdp multiplicative": [{**STDP, "form": "multiplicative", "w_min": "2 mV", "a_plus": 0.05}],
    "stdp symmetric": [{**STDP, "form": "symmetric", "a_minus": 0.001}],
    "stdp relative bounds": [
        {**STDP, "bounds": "relative", "w_min": 0.5, "w_max": 1.5, "a_plus": 0.05}
    ],
    "oja": [{"rule": "oja", "eta": "5 1/s", "interval": "0.5 ms", **RATE}],
    "scaling": [{"rule": "scaling", "eta": "2 1/s", "target": "5 Hz", **RATE}],
    "scaling relative + stdp": [
        {
            "rule": "scaling",
            "eta": "2 1/s",
            "target": "5 Hz",
            "interval": "1 ms",
            "bounds": "relative",
            "w_min": 0.2,
            "w_max": 3,
            "tau_rate": "50 ms",
        },
        {**STDP, "form": "multiplicative"},
    ],  # fmt: skip
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rules", RULES.values(), ids=RULES.keys())
def test_plasticity_rules_inside_the_kernel(rules, dtype):
    """Every rule of the spec runs inside the compiled step: the same spikes, and the same
    weights bit for bit, as the tensor loop (two networks, Poisson input); in float32 too,
    where both evaluate the weight updates in float64 and round once."""
    spec = small_network(rules, noise=True)
    recording = Recording(spikes=("cur", "cond"))
    tensor, fused = assert_same(spec, 100.0, recording, seeds=(4, 5), dtype=dtype)
    w0 = make_engine("torch", spec, seeds=[4, 5], dtype=dtype).get_weights("in_cur")
    for b in range(2):
        assert np.abs(fused.get_weights("in_cur")[b] - w0[b]).max() > 0.01, "weights must move"


def test_plasticity_gains_of_a_phase_and_threads():
    """A brain state's plasticity and depression gains (and a phase with plasticity off), with
    the networks of the batch on two threads: still the tensor loop's spikes and weights."""
    spec = small_network([{**STDP, "form": "symmetric"}], noise=True)
    states = [
        Modulation(plasticity={"*": 3.0}, depression={"*": 0.5}),
        Modulation(plasticity={"*": 0.0}),
        None,
    ]
    engines, sinks = [], []
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for fused in (False, True):
            engine = make_engine("torch", spec, seeds=[4, 5, 6], fused=fused)
            sink = MemorySink()
            for state in states:
                engine.set_modulation(state)
                engine.run(40.0, Recording(spikes=("cur", "cond"), block=13.0), sink)
            engines.append(engine)
            sinks.append(sink)
    finally:
        torch.set_num_threads(previous)
    for pop in ("cur", "cond"):
        for a, b in zip(*(sink.spike_array(pop) for sink in sinks), strict=True):
            np.testing.assert_array_equal(a, b)
    for wa, wb in zip(*(e.get_weights("in_cur") for e in engines), strict=True):
        np.testing.assert_array_equal(wa, wb)


def busy_network() -> SNNSpec:
    """A strongly driven population: ≈120 spiking source rows per step."""
    return SNNSpec.model_validate(
        {
            "kind": "snn",
            "name": "busy",
            "dt": "0.1 ms",
            "populations": {
                "pop": {
                    "size": 50,
                    "neuron": {
                        "tau_m": "10 ms",
                        "v_rest": "-65 mV",
                        "v_threshold": "-55 mV",
                        "v_reset": "-70 mV",
                        "refractory": "1 ms",
                        "synapses": "current",
                        "tau_e": "3 ms",
                        "tau_i": "6 ms",
                    },
                }
            },
            "sources": {"noise": {"type": "poisson", "size": 2000, "rate": "500 Hz"}},
            "projections": {
                "drive": {
                    "pre": "noise",
                    "post": "pop",
                    "connect": {"rule": "fixed_probability", "p": 0.05},
                    "weight": "0.5 mV",
                    "delay": {"uniform": ["0 ms", "2 ms"]},
                }
            },
            "modulation": {
                "up": {"scale": {"drive.gain": 1.5, "pop.leak": 1.3, "noise.rate": 1.2}}
            },
        }
    )


@pytest.mark.parametrize("threads", [1, 2])
def test_modulation_gains_and_spike_buffer_overflow(threads):
    """A phase's delivery gains, leak and rate factors, and more spikes in one block than the
    kernel's spike buffer holds (each network stops early and the engine calls it again);
    with two threads the networks run concurrently and the spikes still come in step order."""
    spec = busy_network()
    sinks, engines = [], []
    for fused in (False, True):
        engine = make_engine("torch", spec, seeds=[2, 3, 4], fused=fused)
        engine.set_modulation(spec.modulation["up"])
        sink = MemorySink()
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            engine.run(100.0, Recording(spikes=("pop", "noise"), block=100.0), sink)
        finally:
            torch.set_num_threads(previous)
        sinks.append(sink)
        engines.append(engine)
    assert len(sinks[1].spike_array("noise")[0]) > 3 * 16 * 2050, "the buffers must overflow"
    for pop in ("pop", "noise"):  # the same spikes, handed over in the same order
        for a, b in zip(*(sink.spike_blocks[pop] for sink in sinks), strict=True):
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
    assert len(sinks[1].spike_array("pop")[0]) > 300
    for var in ("v", "g_e"):
        np.testing.assert_array_equal(
            engines[0].get_state(var, "pop"), engines[1].get_state(var, "pop")
        )


def small_cuba(root, delay: str | None) -> SNNSpec:
    """Plastic CUBA (models/cuba_stdp.yaml) with 200 neurons: current synapses without
    adaptation (the kernel's merged pass); ``delay`` on the inhibitory projections, else none
    (the kernel then empties only the input cells that spikes filled)."""
    import yaml

    data = yaml.safe_load((root / "models" / "cuba_stdp.yaml").read_text())
    data["populations"]["exc"]["size"], data["populations"]["inh"]["size"] = 160, 40
    for name, proj in data["projections"].items():
        proj["connect"]["p"] = 0.2
        if delay and name in ("ie", "ii"):
            proj["delay"] = delay
    return SNNSpec.model_validate(data)


@pytest.mark.parametrize("delay", [None, "0.3 ms"], ids=["no delays", "delays"])
def test_merged_pass_input_cells_and_bias(root, delay):
    """The pass that receives, integrates and fires in one loop (current synapses, no
    adaptation) and empties the input cells after it, without delays only those that the
    spikes filled: the tensor loop's spikes, weights and states, with the conductances
    sampled (a pending receive done before the sample), with a bias on some neurons (c0 per
    neuron) and after it is removed (one number per population again)."""
    spec = small_cuba(root, delay)
    states = {(var, "exc"): np.arange(0, 160, 7) for var in ("v", "g_e", "g_i")}
    recording = Recording(spikes=("exc", "inh"), states=states, interval=0.3, block=13.0)
    bias = np.where(np.arange(160) % 3 == 0, 0.5, -0.25)  # mV
    engines, sinks = [], []
    for fused in (False, True):
        engine = make_engine("torch", spec, seeds=[1, 2], fused=fused)
        sink = MemorySink()
        for values in (None, bias, None):
            engine.set_bias("exc", values)
            engine.run(40.0, recording, sink)
        engines.append(engine)
        sinks.append(sink)
    if delay is None:
        assert np.all(engines[1].kernel_params.uniform == 1)
    fired = 0
    for pop in ("exc", "inh"):
        (ta, ia), (tb, ib) = (sink.spike_array(pop) for sink in sinks)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ta, tb)
        fired += len(ta)
    assert fired > 200
    for key in states:
        np.testing.assert_array_equal(sinks[0].trace(*key)[1], sinks[1].trace(*key)[1])
    for wa, wb in zip(*(e.get_weights("ee") for e in engines), strict=True):
        np.testing.assert_array_equal(wa, wb)
    w0 = make_engine("torch", spec, seeds=[1, 2]).get_weights("ee")
    assert np.abs(engines[1].get_weights("ee")[0] - w0[0]).max() > 0.01, "weights must move"
    for var in ("v", "g_e", "g_i"):
        np.testing.assert_array_equal(
            engines[0].get_state(var, "exc"), engines[1].get_state(var, "exc")
        )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_streamed_arrays_lie_apart_within_a_page(root, dtype):
    """The arrays that the kernel's pass streams at the same index start at different offsets
    within a 4 KiB page (no load waits on an unrelated store to an address 4 KiB away), also
    for a batch whose g_e and g_i halves of the input buffer would otherwise lie a multiple of
    4 KiB apart (64 networks of 200 neurons: 102 400 bytes); the g_i cells after that gap still
    take the same input as the tensor loop's."""
    spec = small_cuba(root, None)
    engines = [make_engine("torch", spec, seeds=range(1, 65), dtype=dtype, fused=f) for f in (0, 1)]
    engine = engines[1]
    item = engine.buffer.element_size()
    assert engine.batch * engine.n * 8 % 4096 == 0
    starts = [x.data_ptr() for x in engine.state]
    starts += [engine.buffer.data_ptr(), engine.buffer.data_ptr() + engine.inhibitory * item]
    for i, x in enumerate(starts):
        for y in starts[i + 1 :]:
            apart = (x - y) % 4096
            assert min(apart, 4096 - apart) >= 512, (x % 4096, y % 4096)
    assert engine.inhibitory * item % 4096 == 1024
    recording = Recording(spikes=("exc", "inh"))
    sinks = [MemorySink() for _ in engines]
    for e, sink in zip(engines, sinks, strict=True):
        e.run(20.0, recording, sink)
    for pop in ("exc", "inh"):
        (ta, ia), (tb, ib) = (sink.spike_array(pop) for sink in sinks)
        assert len(ta) > 100
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(*(e.get_state("v", "exc") for e in engines))


def test_fused_refuses_a_gpu_device():
    with pytest.raises(ValueError, match="CPU only"):
        make_engine("torch", small_network(), seeds=[1], device="cuda", fused=True)


def test_a_block_runs_its_tensor_operations_on_one_thread_and_networks_on_torchs(monkeypatch):
    """On torch's 2 threads the fused loop draws its sources with one intra-op thread (OpenMP's
    waiting threads spin on a busy machine) and still advances the 3 networks on 2 pool threads;
    torch's count is 2 again after every block; spikes equal to a run on one thread."""
    import neurosleep.engines.torch as engine_torch

    spec = small_network([STDP], noise=True)
    seen: dict[str, list[int]] = {"draws": [], "pool": [], "after": []}
    draw = engine_torch.TorchEngine._source_block
    pool = engine_torch.ThreadPoolExecutor

    def source_block(self, steps):
        seen["draws"].append(torch.get_num_threads())
        return draw(self, steps)

    def executor(threads):
        seen["pool"].append(threads)
        return pool(threads)

    class After(MemorySink):
        def spikes(self, population, times_ms, node_ids):
            seen["after"].append(torch.get_num_threads())
            super().spikes(population, times_ms, node_ids)

    monkeypatch.setattr(engine_torch.TorchEngine, "_source_block", source_block)
    monkeypatch.setattr(engine_torch, "ThreadPoolExecutor", executor)
    previous = torch.get_num_threads()
    sinks = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            engine = make_engine("torch", spec, seeds=[4, 5, 6], fused=True)
            sinks.append(After())
            engine.run(40.0, Recording(spikes=("cur",), block=13.0), sinks[-1])
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(previous)
    assert set(seen["draws"]) == {1} and len(seen["draws"]) == 8  # 4 blocks, 2 runs
    assert seen["pool"] == [2] * 4 and set(seen["after"][:4]) == {2}
    for a, b in zip(*(sink.spike_array("cur") for sink in sinks), strict=True):
        np.testing.assert_array_equal(a, b)


def test_float32_plastic_network_is_float64s_in_distribution(root):
    """Float32 is its own trajectory: the plastic CUBA model's spikes part from float64's within
    the run (its weights then differ as much as they change), but the rate and the mean weight
    change stay float64's (docs/performance.md)."""
    from neurosleep.spec import load_model

    spec, _ = load_model(root / "models" / "cuba_stdp.yaml")
    found = {}
    for dtype in ("float64", "float32"):
        engine = make_engine("torch", spec, seeds=[1, 2], dtype=dtype)
        before = np.concatenate(engine.get_weights("ee"))
        sink = MemorySink()
        engine.run(300.0, Recording(spikes=("exc",)), sink)
        change = np.abs(np.concatenate(engine.get_weights("ee")) - before).mean()
        found[dtype] = (len(sink.spike_array("exc")[0]), change)
    (spikes64, change64), (spikes32, change32) = found["float64"], found["float32"]
    assert spikes64 > 10_000 and change64 > 0.003  # mV
    assert abs(spikes32 / spikes64 - 1) < 0.03
    assert abs(change32 / change64 - 1) < 0.15


@pytest.mark.parametrize("batch", [1, 3])
def test_spike_split_equals_the_numpy_expressions(batch):
    """The hand-over's compiled split gives, per population, the times and node ids of the
    straightforward numpy expressions (a source's rows and an unrecorded population's left out,
    steps without spikes included)."""
    from neurosleep.engines.torch_spikes import split_spikes

    rng = np.random.default_rng(batch)
    width, step0, dt = 50, 1234, 0.1
    starts, sizes = np.array([0, 30], dtype=np.int64), np.array([20, 8], dtype=np.int64)
    counts = rng.poisson(3.0, 400).astype(np.int64)
    counts[:5] = 0
    rows = np.concatenate([np.sort(rng.choice(batch * width, c, replace=False)) for c in counts])
    times, ids, bounds = split_spikes(rows, counts, step0, dt, width, batch, starts, sizes)
    step_time = np.repeat((step0 + np.arange(len(counts))) * dt, counts)
    network, column = np.divmod(rows, width)
    assert bounds[0] == 0 and bounds[-1] == len(times) == len(ids)
    for p, (start, size) in enumerate(zip(starts, sizes, strict=True)):
        mine = (column >= start) & (column < start + size)
        assert mine.sum() > 100
        part = slice(bounds[p], bounds[p + 1])
        np.testing.assert_array_equal(times[part], step_time[mine])
        np.testing.assert_array_equal(ids[part], column[mine] - start + network[mine] * size)
    empty = split_spikes(rows[:0], counts[:5], step0, dt, width, batch, starts, sizes)
    assert [len(x) for x in empty] == [0, 0, 3]
