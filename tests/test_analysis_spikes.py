"""Spike statistics: known answers, block streaming, and numpy against Elephant."""

import numpy as np
import pytest

from neurosleep.analysis import spikes as S
from neurosleep.io import open_run
from neurosleep.io.blocks import population_size, spike_blocks
from tests.test_analysis_runs import BURSTS_MS, N, make_run


def test_regular_and_poisson_trains():
    # neuron 0: regular 50 Hz (CV 0); neuron 1: Poisson 20 Hz (CV ≈ 1); neuron 2: silent
    rng = np.random.default_rng(0)
    regular = np.arange(0.0, 10_000.0, 20.0)
    poisson = np.cumsum(rng.exponential(50.0, 400))
    poisson = poisson[poisson < 10_000.0]
    times = np.concatenate([regular, poisson])
    ids = np.concatenate([np.zeros(regular.size, int), np.ones(poisson.size, int)])
    order = np.argsort(times, kind="stable")
    stats = S.spike_stats(
        times[order], ids[order], n_nodes=3, t_start=0.0, t_stop=10_000.0, backend="numpy"
    )
    assert stats.rates_hz[0] == pytest.approx(50.0)
    assert stats.rates_hz[1] == pytest.approx(poisson.size / 10.0)
    assert stats.rates_hz[2] == 0.0
    assert stats.cv_isi[0] == pytest.approx(0.0, abs=1e-9)
    assert stats.cv_isi[1] == pytest.approx(1.0, abs=0.12)
    assert np.isnan(stats.cv_isi[2])
    # a regular train is constant in 20 ms bins... but not in 5 ms bins; independent trains: ≈ 0
    assert abs(stats.synchrony) < 0.05


def test_streaming_blocks_equal_one_block(tmp_path):
    path = make_run(tmp_path / "run.h5")
    with open_run(path) as run:
        group = run.file["spikes/exc"]
        spikes = run.spikes("exc")
        whole = S.spike_stats(
            spikes.times,
            spikes.node_ids,
            n_nodes=N["exc"],
            t_start=0.0,
            t_stop=600.0,
            backend="numpy",
        )
        acc = S.SpikeAccumulator(N["exc"], 0.0, 600.0)
        for times, ids in spike_blocks(group, 0.0, 600.0, block=97):
            acc.add(times, ids)
        streamed = acc.result()
    np.testing.assert_array_equal(whole.rates_hz, streamed.rates_hz)
    np.testing.assert_allclose(whole.cv_isi, streamed.cv_isi, rtol=1e-12)
    assert whole.synchrony == pytest.approx(streamed.synchrony, rel=1e-12)


def test_bursts_raise_synchrony(tmp_path):
    path = make_run(tmp_path / "run.h5")
    with open_run(path) as run:
        group, n = run.file["spikes/exc"], population_size(run, "exc")
        wake = S.window_stats(group, n, 0.0, 200.0, backend="numpy")
        sleep = S.window_stats(group, n, 200.0, 400.0, backend="numpy")
    assert abs(wake.synchrony) < 0.05
    assert sleep.synchrony > 0.2
    # 10 Hz Poisson plus one spike per neuron per burst during sleep
    assert wake.rate_mean == pytest.approx(10.0, rel=0.15)
    assert sleep.rate_mean == pytest.approx(10.0 + len(BURSTS_MS) / 0.2, rel=0.1)


@pytest.mark.formats
@pytest.mark.parametrize("window", [(0.0, 200.0), (200.0, 400.0), (0.0, 600.0)])
def test_numpy_and_elephant_agree(tmp_path, window):
    pytest.importorskip("elephant", reason="the formats extra (elephant) is not installed")
    path = make_run(tmp_path / "run.h5")
    with open_run(path) as run:
        group, n = run.file["spikes/exc"], population_size(run, "exc")
        ours = S.window_stats(group, n, *window, backend="numpy")
        theirs = S.window_stats(group, n, *window, backend="elephant")
    assert (ours.backend, theirs.backend) == ("numpy", "elephant")
    assert ours.n_spikes == theirs.n_spikes > 0
    np.testing.assert_allclose(ours.rates_hz, theirs.rates_hz, rtol=1e-12)
    np.testing.assert_allclose(ours.cv_isi, theirs.cv_isi, rtol=1e-9, equal_nan=True)
    assert ours.synchrony == pytest.approx(theirs.synchrony, rel=1e-9)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        S.resolve_backend("brian")


def test_replay_events_found_at_the_bursts(tmp_path):
    from neurosleep.analysis.replay import detect_events, population_rate

    path = make_run(tmp_path / "run.h5")
    with open_run(path) as run:
        group = run.file["spikes/exc"]
        rate = population_rate(spike_blocks(group, 200.0, 400.0), N["exc"], 200.0, 400.0, 5.0)
        wake = population_rate(spike_blocks(group, 0.0, 200.0), N["exc"], 0.0, 200.0, 5.0)
    assert rate.shape == (40,)
    events = detect_events(rate, t_start=200.0, bin_ms=5.0)
    assert len(events) == len(BURSTS_MS)
    for event, centre in zip(events, BURSTS_MS, strict=True):
        assert event.start_ms <= centre + 1.0 < event.stop_ms  # bursts last 2 ms from the centre
        assert event.peak_hz >= 100.0  # ≥ 40 of the 80 burst spikes share a 5 ms bin
    assert wake.mean() == pytest.approx(10.0, rel=0.2)


def test_population_size_counts_silent_neurons(tmp_path):
    from neurosleep.io import Recorder

    with Recorder.create(tmp_path / "r.h5", attrs={}, n_tasks=1) as rec:
        rec.append_spikes("a", np.array([1.0, 2.0]), np.array([0, 3]), n_nodes=10)
        rec.append_spikes("b", np.array([1.0, 2.0]), np.array([0, 3]))  # size not recorded
    with open_run(tmp_path / "r.h5") as run:
        assert population_size(run, "a") == 10  # neurons 4..9 never fired
        assert population_size(run, "b") == 4  # inferred: largest node id + 1
        stats = S.window_stats(run.file["spikes/a"], 10, 0.0, 1000.0, backend="numpy")
    assert stats.rate_mean == pytest.approx(2 / 10 / 1.0)  # 2 spikes, 10 neurons, 1 s
