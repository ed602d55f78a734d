"""The Brian2 SRA network against the torch implementation: same input spikes, same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurosleep.engines.sra_brian2 import sra_sleep_brian2
from neurosleep.sleep.sra import SRAParams, sra, sra_sleep
from tests.conftest import TINY_MLP
from tests.test_ann import WAKE, digits_protocol, run_dict
from tests.test_sra import ALPHAS, RULE, THRESHOLDS, blocks, small_net

pytestmark = [pytest.mark.brian2, pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]


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
    model = dict(TINY_MLP)
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


def test_engines_agree_over_seeds_through_the_sleep_entry_point():
    """sra.run on both engines, seeds 1–5: the same input spikes (one generator state), the same
    spike counts and weights within 1e-12 (float64) after 200 steps, on a 64-40-30-10 network
    that fires in every layer."""
    params = SRAParams(
        steps=200, window=4, block=50, beta=THRESHOLDS, alpha_scale=50.0, dtype="float64", **RULE
    )
    changed = []
    for seed in range(1, 6):
        w0 = small_net(seed=seed)
        inputs = torch.rand(30, 64, generator=torch.Generator().manual_seed(100 + seed))
        maxima = [1.0, 1.0, 1.0]
        results = {}
        for engine in ("torch", "brian2"):
            g = torch.Generator().manual_seed(seed)
            results[engine] = sra(w0, inputs, maxima, (8, 8), params, g, engine=engine)
        (w_torch, d_torch), (w_brian, d_brian) = results["torch"], results["brian2"]
        np.testing.assert_array_equal(d_torch["spike_count"], d_brian["spike_count"])
        assert (d_torch["spike_count"] > 5).all()
        for a, b in zip(w_torch, w_brian, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        changed.append(max(float((a - b).abs().max()) for a, b in zip(w_torch, w0, strict=True)))
    assert min(changed) > 1e-3  # sleep moved the weights of every seed
