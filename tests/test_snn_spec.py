"""The snn model spec: the shipped CUBA file loads; bad files fail naming file, line and key."""

from __future__ import annotations

import numpy as np
import pytest

from neurosleep.engines.base import build
from neurosleep.errors import SpecError
from neurosleep.spec import load_model
from neurosleep.spec.snn import SNNSpec

GOOD = """\
kind: snn
name: t
populations:
  exc: {size: 20, neuron: {tau_m: 20 ms, synapses: current}}
  cond: {size: 5, neuron: {synapses: conductance}}
sources:
  drive: {type: poisson, size: 5, rate: 5 Hz}
projections:
  a:
    pre: drive
    post: exc
    connect: {rule: fixed_probability, p: 0.5}
    weight: {normal: [1 mV, 0.2 mV], min: 0 mV, max: 2 mV}
    delay: 0 ms
    plasticity:
      - {rule: stdp, form: multiplicative, w_max: 2 mV}
      - {rule: scaling, target: 5 Hz, eta: 0.1 1/s, w_max: 2 mV}
  b: {pre: exc, post: cond, connect: {rule: all_to_all}, weight: 0.05, delay: {uniform: [0ms, 2ms]}}
modulation:
  sleep: {scale: {exc.leak: 0.8, a.gain: 1.5, drive.rate: 0.1}, plasticity: {"*": 0.75}}
"""


def write(tmp_path, text):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


def test_cuba_model_loads_with_units(root):
    spec, _ = load_model(root / "models" / "cuba.yaml")
    assert isinstance(spec, SNNSpec)
    assert spec.dt == pytest.approx(0.1)
    assert spec.populations["exc"].neuron.v_rest == pytest.approx(-49.0)
    assert spec.populations["inh"].sign == "inhibitory"
    net = build(spec, seed=1)
    n_syn = sum(len(s.pre) for s in net.synapses.values())
    assert 0.019 * 4000**2 < n_syn < 0.021 * 4000**2  # p = 0.02
    v0 = net.initial["exc"]["v"]
    assert v0.min() >= -60 and v0.max() <= -50 and v0.std() > 2


def test_good_spec_and_distributions(tmp_path):
    spec, _ = load_model(write(tmp_path, GOOD))
    net = build(spec, seed=3)
    a = net.synapses["a"]
    assert a.weight.min() >= 0 and abs(a.weight.mean() - 1.0) < 0.15
    b = net.synapses["b"]
    assert b.delay.min() >= 0 and b.delay.max() <= 20 and b.delay.std() > 2  # steps of 0.1 ms
    assert len(net.synapses["b"].pre) == 20 * 5
    assert spec.weight_unit("b") == "1"
    again = build(spec, seed=3)
    np.testing.assert_array_equal(again.synapses["a"].post, a.post)


@pytest.mark.parametrize(
    "old, new, line, key, message",
    [
        ("rule: stdp,", "rule: stpd,", 16, "projections.a.plasticity[0]", "does not match"),
        ("rate: 5 Hz", "rate: 5", 7, "sources.drive.rate", "missing unit"),
        ("post: exc\n", "post: exx\n", 11, "projections.a.post", "unknown population 'exx'"),
        ("p: 0.5", "p: -0.5", 12, "projections.a.connect.p", "greater than or equal to 0"),
        ("weight: 0.05", "weight: 0.05 mV", 18, "projections.b.weight", "wrong unit"),
        ("exc.leak", "exc.lek", 20, "modulation.sleep.scale.exc.lek", "unknown parameter"),
        (
            "exc.leak: 0.8",
            "exc.adaptation_tau: 0",
            20,
            "modulation.sleep.scale.exc.adaptation_tau",
            "a time constant's scale factor must be > 0 (adaptation_tau)",
        ),
        (
            "w_max: 2 mV}\n      - {rule: scaling",
            "w_max: 2 ms}\n      - {rule: scaling",
            16,
            "projections.a.plasticity[0].w_max",
            "wrong unit",
        ),
        (
            "max: 2 mV}",
            "max: 2.5 mV}",
            13,
            "projections.a.weight",
            "initial weights can lie in [0, 2.5] mV, outside the bounds [0, 2] mV of plasticity[0]",
        ),
        (
            "- {rule: stdp, form: multiplicative, w_max: 2 mV}",
            "- {rule: stdp, bounds: relative, w_min: 1.5, w_max: 2}",
            16,
            "projections.a.plasticity[0]",
            "bounds: relative needs w_min <= 1 <= w_max",
        ),
        (
            "delay: {uniform: [0ms, 2ms]}",
            "delay: {normal: [1 ms, 1 ms]}",
            18,
            "projections.b.delay",
            "delays must be >= 0",
        ),
        (
            "delay: 0 ms",
            "delay: {uniform: [0 ms, 2 ms]}",
            14,
            "projections.a.delay",
            "a plastic projection takes no delay (0 ms)",
        ),
    ],
)
def test_bad_specs_name_file_line_and_key(tmp_path, old, new, line, key, message):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(SpecError) as info:
        load_model(path)
    text = str(info.value)
    assert f"{path}:{line}:" in text
    assert key in text
    assert message in text
