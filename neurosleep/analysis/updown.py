"""Up and Down states of a population rate: the slow alternation of NREM sleep.

In NREM sleep cortical populations alternate between Up states (most neurons depolarised and
firing) and Down states (near silence), at about 0.5–1 Hz in vivo (Steriade et al. 1993); in the
spiking model the bursts come from spike-frequency adaptation. :func:`up_down_states` splits a
binned population rate at a threshold and reports the durations of the complete states (those
bounded by two transitions: the first and last are cut by the window) and the alternation
frequency, one over the mean Up plus mean Down duration. A REM-like asynchronous state has no
such alternation: flickers around the threshold, which ``min_ms`` absorbs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurosleep.analysis.replay import population_rate, replay_settings
from neurosleep.io.blocks import population_size, spike_blocks
from neurosleep.io.runfile import RunFile


@dataclass(frozen=True)
class UpDown:
    """``up_ms``, ``down_ms``: durations (ms) of the complete Up and Down states, in order;
    ``frequency_hz``: 1000 / (mean Up + mean Down duration) (NaN without one of each);
    ``threshold_hz``: the rate that separates them."""

    up_ms: np.ndarray
    down_ms: np.ndarray
    frequency_hz: float
    threshold_hz: float

    @property
    def up_fraction(self) -> float:
        """Mean Up over mean Up plus mean Down duration (the duty cycle; NaN without one of
        each)."""
        if not (self.up_ms.size and self.down_ms.size):
            return float("nan")
        return float(self.up_ms.mean() / (self.up_ms.mean() + self.down_ms.mean()))


def up_down_states(
    rate_hz: np.ndarray,
    bin_ms: float,
    *,
    threshold_hz: float | None = None,
    min_ms: float = 0.0,
) -> UpDown:
    """Up/Down states of a population rate [bins] (Hz) in bins of ``bin_ms``.

    A bin is Up when its rate exceeds ``threshold_hz`` (default: the trace's mean rate). A state
    shorter than ``min_ms`` (ms) joins the state before it (a flicker of a few bins is not a
    state), applied from the start of the trace.
    """
    rate = np.asarray(rate_hz, dtype=float)
    if rate.ndim != 1 or bin_ms <= 0:
        raise ValueError("rate_hz must be one trace [bins] and bin_ms > 0")
    threshold = float(rate.mean()) if threshold_hz is None else float(threshold_hz)
    states, lengths = _runs(rate > threshold)
    if min_ms > 0 and states.size:
        kept_states, kept_lengths = [states[0]], [lengths[0]]
        for state, length in zip(states[1:], lengths[1:], strict=True):
            if length * bin_ms < min_ms or state == kept_states[-1]:
                kept_lengths[-1] += length  # a flicker joins the state before it
            else:
                kept_states.append(state)
                kept_lengths.append(length)
        states, lengths = np.array(kept_states), np.array(kept_lengths)
    inner_states, inner_ms = states[1:-1], lengths[1:-1] * bin_ms
    up, down = inner_ms[inner_states], inner_ms[~inner_states]
    frequency = 1000.0 / (up.mean() + down.mean()) if up.size and down.size else float("nan")
    return UpDown(up_ms=up, down_ms=down, frequency_hz=float(frequency), threshold_hz=threshold)


def _runs(up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(state of each run of equal values, its length in bins)."""
    if not up.size:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(up.astype(np.int8))) + 1))
    lengths = np.diff(np.concatenate((starts, [up.size])))
    return up[starts], lengths


def sleep_up_down(
    run: RunFile, population: str, *, bin_ms: float = 10.0, min_ms: float = 50.0
) -> list[tuple[str, UpDown]]:
    """Up/Down states of network 0's ``population`` rate in each sleep phase of a run file —
    in each stage run of a staged phase, named ``<phase>.<stage><cycle + 1>`` — with one
    threshold per phase: the phase's mean rate (a REM stage of a staged phase is split at the
    same rate as its NREM stages)."""
    settings = replay_settings(run)
    size = population_size(run, population) // max(settings.networks, 1)
    group = run.file[f"spikes/{population}"]
    stages = run.stages()
    out = []
    for phase in run.phases():
        if phase.kind != "sleep" or not phase.stop_time > phase.start_time:
            continue
        whole = population_rate(
            spike_blocks(group, phase.start_time, phase.stop_time),
            size,
            phase.start_time,
            phase.stop_time,
            bin_ms,
        )
        mine = [s for s in stages if s.phase == phase.index]
        windows = [(f"{phase.name}.{s.name}{s.cycle + 1}", s) for s in mine] or [
            (phase.name, phase)
        ]
        for name, w in windows:
            first = int(round((w.start_time - phase.start_time) / bin_ms))
            last = int(round((w.stop_time - phase.start_time) / bin_ms))
            states = up_down_states(
                whole[first:last], bin_ms, threshold_hz=float(whole.mean()), min_ms=min_ms
            )
            out.append((name, states))
    return out
