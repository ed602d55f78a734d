"""The torch engine's tensor loop (its path on CUDA) never waits for the device inside a
block: no ``.item()`` (``aten._local_scalar_dense``) and no ``nonzero`` per step, only one read
of the block's spikes at its end. Checked on the CPU with a dispatch mode that counts the
operators the loop calls."""

from __future__ import annotations

from collections import Counter

import pytest
from torch.utils._python_dispatch import TorchDispatchMode

from neurosleep.engines import Recording, make_engine
from tests.snn_helpers import MemorySink, small_network

pytestmark = pytest.mark.torch

SYNCING = ("aten._local_scalar_dense", "aten.nonzero", "aten.item", "aten.is_nonzero")
RULES = [
    {"rule": "stdp", "form": "additive", "w_max": "15 mV", "a_plus": 0.02, "a_minus": 0.021},
    {"rule": "scaling", "eta": "2 1/s", "target": "5 Hz", "w_max": "15 mV", "interval": "1 ms"},
]


class CountOperators(TorchDispatchMode):
    """Counts every aten operator called inside the ``with`` block, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("spike_cap", [None, 1])
def test_no_device_wait_per_step(spike_cap):
    """Three blocks of 100 steps of a plastic network with Poisson input: the operators that
    wait for the device run once per block attempt, never per step; with room for only one
    spike per step a block that had more runs again (one more wait) and the spikes are still
    every one the network fired."""
    spec = small_network(RULES, noise=True)
    engine = make_engine("torch", spec, seeds=[4, 5], fused=False)
    reference = make_engine("torch", spec, seeds=[4, 5], fused=False)
    if spike_cap:
        engine.spike_cap = spike_cap
    recording = Recording(spikes=("cur", "cond", "noise"), block=10.0)
    sink, expected = MemorySink(), MemorySink()
    reference.spike_cap = reference.batch * reference.width  # never overflows
    reference.run(30.0, recording, expected)
    with CountOperators() as counter:
        engine.run(30.0, recording, sink)
    waits = sum(counter.calls[name] for name in SYNCING)
    assert counter.calls["aten.nonzero"] == 0
    # a Python scalar made a tensor (``x[i] = 0.0``) is a host copy on CUDA: per block, not per step
    assert counter.calls["aten.lift_fresh"] < 300 // 4
    assert counter.calls["aten.nonzero_static"] >= 2 * 300, "the loop must have run its steps"
    if spike_cap is None:
        assert waits == 3  # one per block
    else:
        assert 3 < waits < 30 and engine.spike_cap > 1  # reruns, and the room grew
    for pop in ("cur", "cond", "noise"):
        for a, b in zip(sink.spike_array(pop), expected.spike_array(pop), strict=True):
            assert len(a) > 5
            assert (a == b).all()
    for a, b in zip(engine.get_weights("in_cur"), reference.get_weights("in_cur"), strict=True):
        assert (a == b).all()
