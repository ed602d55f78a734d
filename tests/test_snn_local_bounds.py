"""González et al.'s structure: plasticity bounds relative to each synapse's initial weight, and
distance-limited (local, ring) connectivity — spec, both engines, their agreement."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from neurosleep.engines import Recording, make_engine
from neurosleep.engines.base import build
from neurosleep.spec.snn import SNNSpec
from tests.snn_helpers import MemorySink, small_network

RELATIVE = [
    {
        "rule": "stdp",
        "form": "additive",
        "bounds": "relative",
        "w_min": 0.7,
        "w_max": 1.15,
        "a_plus": 0.04,
        "a_minus": 0.042,
    },
    {
        "rule": "stdp",
        "form": "multiplicative",
        "bounds": "relative",
        "w_min": 0.2,
        "w_max": 2,
        "a_plus": 0.05,
        "a_minus": 0.08,
    },
]


def line(radius: float, ring: bool, p: float = 1.0, size: int = 12, pre: int | None = None):
    spec = {
        "kind": "snn",
        "name": "line",
        "populations": {"exc": {"size": size}},
        "sources": {"src": {"type": "poisson", "size": pre or size, "rate": "0 Hz"}},
        "projections": {
            "ee": {
                "pre": "exc",
                "post": "exc",
                "connect": {
                    "rule": "local",
                    "radius": radius,
                    "ring": ring,
                    "p": p,
                    "autapses": False,
                },
                "weight": "1 mV",
            },
            "in": {
                "pre": "src",
                "post": "exc",
                "connect": {"rule": "local", "radius": radius, "ring": ring},
                "weight": "1 mV",
            },
        },
    }
    return SNNSpec.model_validate(spec)


def pairs(net, name):
    syn = net.synapses[name]
    return {(int(j), int(i)) for j, i in zip(syn.pre, syn.post, strict=True)}


def test_local_ring_connects_the_neighbours_within_the_radius():
    syn = build(line(2, ring=True), seed=0).synapses["ee"]
    expected = {(j, (j + d) % 12) for j in range(12) for d in (-2, -1, 1, 2)}
    assert pairs(build(line(2, ring=True), seed=0), "ee") == expected
    order = np.lexsort((syn.post, syn.pre))
    np.testing.assert_array_equal(order, np.arange(len(order)))  # sorted by (pre, post)


def test_local_line_has_no_wrap_and_a_smaller_pre_is_spread_over_post():
    net = build(line(2, ring=False, pre=4), seed=0)
    assert pairs(net, "ee") == {(j, i) for j in range(12) for i in range(12) if 0 < abs(i - j) <= 2}
    # pre neuron j of 4 sits at 3 j on the 12 post positions
    assert pairs(net, "in") == {(j, i) for j in range(4) for i in range(12) if abs(i - 3 * j) <= 2}


def test_local_probability_keeps_a_fraction_of_the_neighbours():
    net = build(line(10, ring=True, p=0.5, size=400), seed=1)
    n = len(net.synapses["ee"].pre)
    assert abs(n / (400 * 20) - 0.5) < 0.03
    assert pairs(net, "ee") <= {(j, (j + d) % 400) for j in range(400) for d in range(-10, 11)}


def test_relative_bounds_take_factors_not_weights():
    rule = {"rule": "stdp", "bounds": "relative", "w_min": "1 mV", "w_max": 2}
    with pytest.raises(ValidationError, match="factor of the initial weight"):
        small_network([rule])
    spec = small_network([RELATIVE[0]])
    initial = build(spec, seed=3).synapses["in_cur"].weight
    low, high = spec.projections["in_cur"].plasticity[0].limits("mV", initial)
    np.testing.assert_allclose(low, 0.7 * initial)
    np.testing.assert_allclose(high, 1.15 * initial)


@pytest.mark.brian2
@pytest.mark.torch
@pytest.mark.parametrize("rule", RELATIVE, ids=["additive", "multiplicative"])
def test_relative_bounds_weight_trajectories_agree_across_engines(rule):
    spec = small_network([rule])
    initial = build(spec, seed=3).synapses["in_cur"].weight
    trajectories = {}
    for name in ("brian2", "torch"):
        engine = make_engine(name, spec, seeds=[3])
        weights = []
        for _ in range(10):
            engine.run(10.0, Recording(spikes=("cur",)), MemorySink())
            weights.append(engine.get_weights("in_cur")[0])
        trajectories[name] = np.stack(weights)
    wb, wt = trajectories["brian2"], trajectories["torch"]
    np.testing.assert_allclose(wt, wb, rtol=1e-6, atol=1e-9)
    low, high = rule["w_min"] * initial, rule["w_max"] * initial
    assert np.all(wt >= low - 1e-12) and np.all(wt <= high + 1e-12)
    assert np.abs(wt[-1] - initial).max() > 0.1, "the weights must move"
    if rule["form"] == "additive":  # hard bounds: some synapses reach their own
        at_bound = (np.isclose(wt, low) | np.isclose(wt, high)).any(axis=0)
        assert at_bound.sum() >= 3, "some synapses must reach their own bounds"


@pytest.mark.parametrize("name, size", [("assemblies", 200), ("assemblies_large", 2000)])
def test_shipped_models_are_local_with_relative_bounds(root, name, size):
    from neurosleep.spec import load_model

    spec, _ = load_model(root / "models" / f"{name}.yaml")
    syn = build(spec, seed=11).synapses["ee"]
    distance = np.abs(syn.pre - syn.post)
    radius = spec.projections["ee"].connect.radius
    assert np.all(np.minimum(distance, size - distance) <= radius) and np.all(distance > 0)
    indegree = np.bincount(syn.post, minlength=size)
    assert abs(indegree.mean() - 0.6 * 80) < 2  # 2 radius x p: as many inputs in both sizes
    rule = spec.projections["ee"].plasticity[0]
    low, high = rule.limits("mV", syn.weight)
    np.testing.assert_allclose(high, rule.w_max * syn.weight)
    assert rule.bounds == "relative" and np.all(low < syn.weight)
