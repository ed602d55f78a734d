"""Brian2 and torch simulate the same network: traces, spike times, weights, statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from neurosleep.engines import Recording, make_engine
from neurosleep.spec import load_model
from neurosleep.spec.snn import SNNSpec
from tests.snn_helpers import MemorySink, small_network

pytestmark = [pytest.mark.brian2, pytest.mark.torch]


def run_both(spec, duration, recording, seed=3, chunks=1):
    out = {}
    for name in ("brian2", "torch"):
        engine = make_engine(name, spec, seeds=[seed])
        sink = MemorySink()
        weights = []
        for _ in range(chunks):
            engine.run(duration / chunks, recording, sink)
            weights.append({p: engine.get_weights(p)[0] for p in spec.projections})
        out[name] = (sink, weights)
    return out


def test_deterministic_traces_and_spike_times_agree():
    spec = small_network()
    everyone = {
        ("v", "cur"): np.arange(6),
        ("v", "cond"): np.arange(5),
        ("g_e", "cond"): np.arange(5),
    }
    rec = Recording(spikes=("cur", "cond", "drive"), states=everyone, interval=0.1, block=50.0)
    out = run_both(spec, 100.0, rec)
    (b2, _), (th, _) = out["brian2"], out["torch"]
    for pop in ("cur", "cond"):
        tb, ib = b2.spike_array(pop)
        tt, it = th.spike_array(pop)
        assert len(tb) > 10, "the test network must fire"
        np.testing.assert_array_equal(ib, it)
        np.testing.assert_allclose(tb, tt, rtol=0, atol=1e-9)
    for key in everyone:
        times_b, vb = b2.trace(*key)
        times_t, vt = th.trace(*key)
        np.testing.assert_allclose(times_b, times_t, atol=1e-9)
        assert vb.shape == vt.shape == (1000, len(everyone[key]))
        np.testing.assert_allclose(vt, vb, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "rule",
    [
        {"rule": "stdp", "form": "additive", "w_max": "15 mV", "a_plus": 0.02, "a_minus": 0.021},
        {"rule": "stdp", "form": "multiplicative", "w_max": "15 mV", "a_plus": 0.05},
        {"rule": "stdp", "form": "symmetric", "w_max": "15 mV", "a_minus": 0.001},
        {"rule": "oja", "w_max": "15 mV", "eta": "5 1/s", "tau_rate": "20 ms"},
        {
            "rule": "scaling",
            "w_max": "15 mV",
            "eta": "2 1/s",
            "target": "5 Hz",
            "interval": "1 ms",
            "tau_rate": "50 ms",
        },
    ],
    ids=["additive", "multiplicative", "symmetric", "oja", "scaling"],
)
def test_plasticity_weight_trajectories_agree(rule):
    spec = small_network([rule])
    out = run_both(spec, 100.0, Recording(spikes=("cur",)), chunks=10)
    wb = np.stack([w["in_cur"] for w in out["brian2"][1]])
    wt = np.stack([w["in_cur"] for w in out["torch"][1]])
    assert np.abs(wb[-1] - wb[0]).max() > 0.01, (
        "the weights must move for the test to mean anything"
    )
    np.testing.assert_allclose(wt, wb, rtol=1e-6, atol=1e-9)


def test_batch_equals_separate_runs():
    spec = small_network([{"rule": "stdp", "w_max": "15 mV"}], noise=True)
    seeds = [4, 5, 6]
    rec = Recording(spikes=("cur", "cond"), states={("v", "cur"): np.arange(6)}, interval=0.5)
    batch = make_engine("torch", spec, seeds=seeds)
    sink = MemorySink()
    batch.run(60.0, rec, sink)
    for b, seed in enumerate(seeds):
        alone = make_engine("torch", spec, seeds=[seed])
        one = MemorySink()
        alone.run(60.0, rec, one)
        t1, i1 = one.spike_array("cur")
        tb, ib = sink.spike_array("cur")
        mine = (ib >= 6 * b) & (ib < 6 * (b + 1))
        assert len(t1) > 5
        np.testing.assert_array_equal(ib[mine] - 6 * b, i1)
        np.testing.assert_allclose(tb[mine], t1)
        _, v_batch = sink.trace("v", "cur")
        _, v_alone = one.trace("v", "cur")
        np.testing.assert_allclose(v_batch[:, 6 * b : 6 * (b + 1)], v_alone, rtol=1e-12)
        np.testing.assert_allclose(batch.get_weights("in_cur")[b], alone.get_weights("in_cur")[0])


def cuba_statistics(engine_name, seed, duration=300.0):
    spec, _ = load_model("models/cuba.yaml")
    engine = make_engine(engine_name, spec, seeds=[seed])
    sink = MemorySink()
    engine.run(duration, Recording(spikes=("exc", "inh"), block=duration), sink)
    counts, cvs = [], []
    for pop, size in (("exc", 3200), ("inh", 800)):
        times, ids = sink.spike_array(pop)
        counts.append(np.bincount(ids.astype(int), minlength=size))
        order = np.lexsort((times, ids))
        t, i = times[order], ids[order]
        isi = np.diff(t)[np.diff(i) == 0]
        owner = i[1:][np.diff(i) == 0]
        for n in np.unique(owner):
            x = isi[owner == n]
            if len(x) >= 3:
                cvs.append(x.std() / x.mean())
    rates = np.concatenate(counts) / (duration * 1e-3)
    return rates, np.asarray(cvs)


@pytest.mark.slow
def test_cuba_statistics_agree_across_engines_over_seeds():
    """Different seeds per engine: mean rate, CV of ISI and rate distributions, two-sample."""
    per_engine = {}
    for name, seeds in (("brian2", (11, 12, 13)), ("torch", (21, 22, 23))):
        per_engine[name] = [cuba_statistics(name, s) for s in seeds]
    means = {n: np.array([r.mean() for r, _ in runs]) for n, runs in per_engine.items()}
    cvs = {n: np.array([c.mean() for _, c in runs]) for n, runs in per_engine.items()}
    for name in means:
        assert np.all((means[name] > 4.5) & (means[name] < 7.0)), (name, means[name])
    # seed-level two-sample test on the mean rate and CV (Welch), and on the pooled rates (KS)
    assert stats.ttest_ind(means["brian2"], means["torch"], equal_var=False).pvalue > 0.01
    assert stats.ttest_ind(cvs["brian2"], cvs["torch"], equal_var=False).pvalue > 0.01
    pooled = {n: np.concatenate([r for r, _ in runs]) for n, runs in per_engine.items()}
    assert stats.ks_2samp(pooled["brian2"], pooled["torch"]).statistic < 0.05
    assert abs(means["brian2"].mean() - means["torch"].mean()) < 0.6


@pytest.mark.parametrize("leak", [2.0, 1.0], ids=["tau_m=tau_i after leak x2", "tau_m=tau_e"])
def test_equal_membrane_and_synaptic_time_constants(leak):
    """tau_m equal to tau_i (after a sleep-like leak x2) or to tau_e: Brian2's symbolic exact
    solution is singular there; the engines still agree (torch uses the limit dt/tau·e^-dt/tau)."""
    neuron = {
        "tau_m": "20 ms" if leak == 2.0 else "5 ms",
        "v_rest": "-65 mV",
        "v_threshold": "-55 mV",
        "v_reset": "-70 mV",
        "refractory": "1 ms",
        "synapses": "current",
        "tau_e": "5 ms",
        "tau_i": "10 ms",
    }
    spec = SNNSpec.model_validate(
        {
            "kind": "snn",
            "name": "singular",
            "dt": "0.1 ms",
            "populations": {"p": {"size": 3, "neuron": neuron}},
            "sources": {
                "d": {
                    "type": "array",
                    "size": 2,
                    "indices": [0, 1, 0, 1, 0],
                    "times": ["1 ms", "2 ms", "10 ms", "12 ms", "14 ms"],
                }
            },
            "projections": {
                "e": {"pre": "d", "post": "p", "connect": {"rule": "all_to_all"}, "weight": "4 mV"},
                "i": {
                    "pre": "d",
                    "post": "p",
                    "connect": {"rule": "fixed_probability", "p": 0.5},
                    "weight": "-2 mV",
                },
            },
            "modulation": {"sleep": {"scale": {"p.leak": leak}}},
        }
    )
    rec = Recording(states={("v", "p"): np.arange(3)}, interval=0.1, block=30.0)
    traces = {}
    for name in ("brian2", "torch"):
        engine = make_engine(name, spec, seeds=[1])
        engine.set_modulation(spec.modulation["sleep"])
        sink = MemorySink()
        engine.run(30.0, rec, sink)
        traces[name] = sink.trace("v", "p")[1]
    assert np.isfinite(traces["brian2"]).all()
    assert np.ptp(traces["torch"]) > 1.0, "the input must move v"
    np.testing.assert_allclose(traces["brian2"], traces["torch"], rtol=1e-6, atol=1e-9)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_on_cuda_matches_cpu():
    spec = small_network([{"rule": "stdp", "w_max": "15 mV"}], noise=True)
    rec = Recording(spikes=("cur", "cond"), states={("v", "cur"): np.arange(6)}, interval=0.1)
    runs = {}
    for device in ("cpu", "cuda"):
        engine = make_engine("torch", spec, seeds=[7], device=device)
        sink = MemorySink()
        engine.run(50.0, rec, sink)
        runs[device] = (sink, engine.get_weights("in_cur")[0])
    np.testing.assert_allclose(
        runs["cuda"][0].trace("v", "cur")[1], runs["cpu"][0].trace("v", "cur")[1], rtol=1e-9
    )
    np.testing.assert_allclose(runs["cuda"][1], runs["cpu"][1], rtol=1e-9)
