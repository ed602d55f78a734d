"""The Brian2 SRA network against the torch implementation: same input spikes, same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurosleep.engines.sra_brian2 import sra_sleep_brian2
from neurosleep.sleep.sra import sra_sleep
from tests.test_ann import WAKE, digits_protocol, one_thread, run_dict  # noqa: F401
from tests.test_sra import ALPHAS, RULE, THRESHOLDS, blocks, small_net

pytestmark = [pytest.mark.brian2, pytest.mark.torch]


def test_brian2_network_equals_torch_on_identical_input_spikes():
    w0 = small_net(seed=7)
    spikes = blocks(250, seed=8)
    seen: dict[int, list] = {}
    ours, counts = sra_sleep(w0, ALPHAS, THRESHOLDS, iter(spikes), **RULE)
    theirs, counts_b2 = sra_sleep_brian2(
        w0,
        ALPHAS,
        THRESHOLDS,
        iter(spikes),
        **RULE,
        on_spikes=lambda layer, steps, ids: seen.setdefault(layer, []).append((steps, ids)),
    )
    assert torch.equal(counts, counts_b2) and (counts > 20).all()
    for a, b, before in zip(ours, theirs, w0, strict=True):
        assert (a - before).abs().max() > 1e-3
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    steps = torch.cat([s for s, _ in seen[1]])
    assert steps.min() >= 0 and steps.max() < 250 and steps.numel() == counts[0]


def test_sleep_phase_on_brian2_gives_the_torch_accuracies(write_protocol, tmp_path):
    sleep = {
        "sleep": {
            "kind": "sra",
            "steps": 150,
            "window": 4,
            "beta": [0.5, 0.5],
            "alpha_scale": 2.0,
            "dtype": "float64",
        }
    }
    model = {
        "kind": "mlp",
        "name": "tiny",
        "layers": [64, 32, 10],
        "bias": False,
        "output": "relu",
        "init": "uniform",
        "init_scale": 0.1,
    }
    schedule = [
        {"wake": dict(WAKE, epochs=3, task=0)},
        sleep,
        {"test": {"name": "after"}},
        {"wake": dict(WAKE, epochs=3, task=1)},
        sleep,
        {"test": {"name": "after2"}},
    ]
    torch_run = run_dict(write_protocol, digits_protocol(tmp_path, schedule, model=model, name="t"))
    brian_run = run_dict(
        write_protocol,
        digits_protocol(tmp_path, schedule, model=model, name="b") | {"engine": "brian2"},
    )
    np.testing.assert_allclose(brian_run, torch_run, atol=1e-12)
    assert np.nanmax(torch_run[-1]) > 0.5
