"""Up/Down states of a population rate against closed forms on synthetic traces."""

from __future__ import annotations

import numpy as np
import pytest

from neurosleep.analysis.updown import up_down_states


@pytest.mark.parametrize(("up_bins", "down_bins", "offset"), [(8, 32, 0), (5, 15, 7), (20, 20, 3)])
def test_square_wave_gives_its_durations_and_frequency(up_bins, down_bins, offset):
    period, bin_ms, cycles = up_bins + down_bins, 10.0, 12
    wave = np.tile(np.r_[np.full(up_bins, 40.0), np.full(down_bins, 1.0)], cycles)
    rate = np.roll(wave, offset)
    states = up_down_states(rate, bin_ms)
    # complete states only: the trace's first and last runs are cut by its ends
    assert states.up_ms.tolist() == [up_bins * bin_ms] * len(states.up_ms)
    assert states.down_ms.tolist() == [down_bins * bin_ms] * len(states.down_ms)
    assert len(states.up_ms) + len(states.down_ms) >= 2 * cycles - 3
    assert states.frequency_hz == pytest.approx(1000.0 / (period * bin_ms), rel=1e-12)
    assert states.threshold_hz == pytest.approx(rate.mean())
    assert states.up_fraction == pytest.approx(up_bins / period)


def test_flickers_shorter_than_min_ms_join_the_state_before():
    rng = np.random.default_rng(0)
    wave = np.tile(np.r_[np.full(10, 30.0), np.full(40, 2.0)], 10)  # 100 ms Up, 400 ms Down
    noisy = wave.copy()
    flicker = rng.choice(np.flatnonzero(wave < 10), size=15, replace=False)
    noisy[flicker] = 30.0  # one-bin spikes of activity inside Down states
    raw = up_down_states(noisy, 10.0, threshold_hz=10.0)
    assert len(raw.up_ms) > 9  # the flickers count as Up states
    clean = up_down_states(noisy, 10.0, threshold_hz=10.0, min_ms=30.0)
    assert clean.frequency_hz == pytest.approx(2.0, rel=0.02)  # 1 / 500 ms
    # 10 cycles starting Up: 9 complete Up and 9 complete Down states; a flicker next to an Up
    # state (at most 2 bins away) lengthens it, every other one vanishes into its Down state
    assert (len(clean.up_ms), len(clean.down_ms)) == (9, 9)
    assert clean.up_ms.min() == 100.0 and clean.up_ms.max() <= 140.0
    assert np.all(np.abs(clean.up_ms + clean.down_ms - 500.0) <= 30.0)


def test_asynchronous_rate_has_no_slow_alternation():
    rng = np.random.default_rng(1)
    flat = 15.0 + rng.normal(0, 1.0, size=1000)  # 10 s of asynchronous activity
    states = up_down_states(flat, 10.0, threshold_hz=30.0)
    assert states.up_ms.size == 0 and np.isnan(states.frequency_hz)
    with pytest.raises(ValueError, match="one trace"):
        up_down_states(np.zeros((2, 3)), 10.0)
