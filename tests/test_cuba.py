"""CUBA and a plastic snn protocol, run through the runner on both engines, read back."""

from __future__ import annotations

import numpy as np
import pytest

from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run

pytestmark = [pytest.mark.brian2, pytest.mark.torch]


def run_cuba(root, tmp_path, engine, duration="300 ms"):
    protocol = load_protocol(
        root / "protocols" / "cuba.yaml",
        [
            f"engine={engine}",
            f"schedule.cuba.duration={duration}",
            "record.block=100 ms",
            f"output={tmp_path}/cuba_{engine}.h5",
        ],
    )
    return run(protocol, progress=False).path


@pytest.mark.slow
def test_cuba_protocol_on_both_engines_gives_the_same_run(root, tmp_path):
    files = {engine: run_cuba(root, tmp_path, engine) for engine in ("torch", "brian2")}
    spikes = {}
    for engine, path in files.items():
        with open_run(path) as rf:
            assert rf.status == "complete" and rf.attrs["engine"] == engine
            spikes[engine] = rf.spikes("exc")
            rate = rf.spike_count("exc") / 3200 / 0.3
            assert 4.5 < rate < 7.0
            report = rf.report("v", "exc")
            assert report.data.shape == (300, 100) and report.units == "mV"
            assert -80.0 < report.data.min() and report.data.max() <= -50.0  # sampled pre-spike
            ev = rf.evaluations()
            assert ev.metrics["rate_exc"][0, 0] == pytest.approx(rate, rel=1e-9)
            assert 0.3 < ev.metrics["cv_isi_exc"][0, 0] < 1.0
    # same seed -> same network and same deterministic dynamics on both engines
    np.testing.assert_array_equal(spikes["torch"].node_ids, spikes["brian2"].node_ids)
    np.testing.assert_allclose(spikes["torch"].times, spikes["brian2"].times, atol=1e-9)


PLASTIC = {
    "format_version": 1,
    "name": "assembly",
    "seed": 3,
    "model": {
        "kind": "snn",
        "name": "assembly",
        "populations": {
            "exc": {
                "size": 40,
                "neuron": {
                    "v_rest": "-65 mV",
                    "v_threshold": "-55 mV",
                    "v_reset": "-65 mV",
                    "refractory": "2 ms",
                },
            },
        },
        "sources": {
            "cue": {
                "type": "pattern",
                "size": 40,
                "patterns": {"count": 4, "active": 0.25},
                "rate_on": "80 Hz",
                "rate_off": "1 Hz",
                "presentation": "50 ms",
            },
            "noise": {"type": "poisson", "size": 20, "rate": "10 Hz"},
        },
        "projections": {
            "in": {
                "pre": "cue",
                "post": "exc",
                "connect": {"rule": "one_to_one"},
                "weight": "12 mV",
            },
            "noise_exc": {
                "pre": "noise",
                "post": "exc",
                "connect": {"rule": "fixed_probability", "p": 0.3},
                "weight": "10 mV",
            },
            "rec": {
                "pre": "exc",
                "post": "exc",
                "connect": {"rule": "all_to_all", "autapses": False},
                "weight": "0.5 mV",
                "plasticity": [{"rule": "stdp", "w_max": "3 mV", "a_plus": 0.05}],
            },
        },
        "modulation": {
            "sleep": {"scale": {"noise.rate": 4.0, "exc.leak": 0.8}, "plasticity": {"*": 0.75}}
        },
    },
    "engine": "torch",
    "data": {"tasks": 2},
    "record": {
        "spikes": ["exc"],
        "states": [{"variable": "v", "population": "exc", "count": 5}],
        "interval": "1 ms",
        "block": "50 ms",
    },
    "schedule": [
        {
            "repeat": {
                "over": "tasks",
                "phases": [
                    {"wake": {"duration": "400 ms"}},
                    {"test": {"duration": "200 ms"}},
                ],
            }
        },
        {"sleep": {"name": "nap", "kind": "spontaneous", "duration": "300 ms"}},
        {"sleep": {"name": "shrink", "kind": "downscaling", "factor": 0.9}},
        {"test": {"name": "final", "duration": "200 ms"}},
    ],
}


@pytest.mark.parametrize("engine", ["torch", pytest.param("brian2", marks=pytest.mark.slow)])
def test_plastic_protocol_wake_sleep_test(write_protocol, tmp_path, engine):
    path = write_protocol(PLASTIC | {"engine": engine, "output": str(tmp_path / "a.h5")})
    result = run(load_protocol(path), progress=False)
    with open_run(result.path) as rf:
        phases = rf.phases()
        assert [p.kind for p in phases] == [
            "wake",
            "test",
            "wake",
            "test",
            "sleep",
            "sleep",
            "test",
        ]
        assert phases[-1].stop_time == pytest.approx(2 * 600 + 300 + 2 * 200)  # final: both tasks
        w = rf.weights("rec")
        assert w.values.shape == (4, 40 * 39) and w.units == "mV"
        assert np.abs(w.values[0] - 0.5).max() > 0.05  # wake STDP moved weights
        np.testing.assert_allclose(w.values[3], w.values[2] * 0.9)  # downscaling
        assert w.values.min() >= 0 and w.values.max() <= 3.0
        ev = rf.evaluations()
        rates = ev.metrics["rate_exc"]
        assert rates.shape == (3, 2)
        assert np.isnan(rates[0, 1]) and np.all(rates[2] > 0.2)
        nap = rf.arrays(f"sleep/{phases[4].index}")
        assert nap["rate_exc"] > 1.0, nap
        assert nap["rec_change_rms"] > 0, nap
        spikes = rf.spikes("exc")
        assert np.all(np.diff(spikes.times) >= 0)
        assert rf.report("v", "exc").data.shape == (1900, 5)
