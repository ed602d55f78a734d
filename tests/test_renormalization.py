"""Sleep ``renormalization`` (neurosleep/sleep/renormalization.py): the algorithm added as one
file; the registry finds it, the snn experiment runs it through the contract, and it restores
each neuron's total plastic input while keeping the ratios between its synapses."""

from __future__ import annotations

import numpy as np
import pytest

from neurosleep.engines.base import build
from neurosleep.io import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from neurosleep.sleep.renormalization import renormalized

pytestmark = pytest.mark.torch

SHORT = [
    "schedule.before.duration=200 ms",
    "schedule.learn_A.duration=600 ms",
    "schedule.after_A.duration=200 ms",
    "schedule.learn_B.duration=600 ms",
    "schedule.learn_S2.duration=600 ms",
    "schedule.after_B.duration=200 ms",
    "schedule.6.sleep={name: sleep, kind: renormalization}",
    "schedule.final.duration=200 ms",
]


def test_closed_form_per_neuron():
    post = np.array([0, 0, 1, 1, 1, 2])
    initial = np.array([1.0, 1.0, 2.0, 2.0, 2.0, 5.0])
    w = np.array([3.0, 1.0, 1.0, 2.0, 3.0, 0.0])  # neuron 2's only input fell to 0
    full = renormalized(w, initial, post, 4, 1.0)
    np.testing.assert_allclose(np.bincount(post, full, 4)[:2], [2.0, 6.0])
    np.testing.assert_allclose(full[:2] / w[:2], 0.5)
    np.testing.assert_allclose(full[2:5] / w[2:5], 1.0)
    assert full[5] == 0.0  # a neuron with no input left keeps none (no division by zero)
    half = renormalized(w, initial, post, 4, 0.5)
    np.testing.assert_allclose(half[:2], w[:2] * 0.75)  # halfway: factor 1 + 0.5·(0.5 − 1)


def test_renormalization_restores_each_neurons_input_after_learning(root, tmp_path):
    protocol = load_protocol(root / "protocols/consolidation_downscaling.yaml", SHORT)
    assert protocol.phases[6].algorithm == "renormalization"
    result = run(protocol, output=tmp_path / "run.h5", progress=False)
    with open_run(result.path) as r:
        weights = r.weights("ee")
        sleep_group = r.file["sleep/6"]
        change = float(sleep_group["ee_change_rms"][()])
    before = weights.values[list(weights.phases).index(4)]  # after learning B and S2
    after = weights.values[list(weights.phases).index(6)]  # after the sleep
    syn = build(protocol.model, protocol.seed).synapses["ee"]
    n = protocol.model.size("exc")
    initial_sum = np.bincount(syn.post, syn.weight, n)
    learnt_sum = np.bincount(syn.post, before, n)
    # wake moved the sums (the effect is not vacuous) ...
    assert np.abs(learnt_sum - initial_sum).max() > 0.05 * initial_sum.mean()
    assert change > 0
    # ... and the sleep applies the closed form to the run's own weights, bounds included
    low, high = 1.0e-5 * syn.weight, 6 * syn.weight  # models/assemblies.yaml, ee
    unclipped = renormalized(before, syn.weight, syn.post, n, 1.0)
    np.testing.assert_allclose(after, np.clip(unclipped, low, high), rtol=1e-12)
    # every neuron none of whose inputs met a bound gets exactly its initial total input back
    clipped = np.zeros(n, bool)
    clipped[syn.post[(unclipped < low) | (unclipped > high)]] = True
    assert (~clipped).mean() > 0.5
    np.testing.assert_allclose(np.bincount(syn.post, after, n)[~clipped], initial_sum[~clipped])
    # one factor per neuron, different from neuron to neuron (unlike downscaling): the ratios
    # between one neuron's synapses are what wake left
    factor = np.divide(after, before, out=np.ones_like(after), where=before != 0)
    kept = ~clipped[syn.post] & (before != 0)
    high_f, low_f = np.full(n, -np.inf), np.full(n, np.inf)
    np.maximum.at(high_f, syn.post[kept], factor[kept])
    np.minimum.at(low_f, syn.post[kept], factor[kept])
    has = np.isfinite(low_f)
    np.testing.assert_allclose(high_f[has], low_f[has], rtol=1e-9)
    assert np.ptp(low_f[has]) > 0.01
