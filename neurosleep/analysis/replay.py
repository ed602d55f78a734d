"""Population rates streamed from run files, and replay events: bursts of population activity.

An event is a run of consecutive bins whose population rate exceeds ``mean + threshold·SD`` of
the window's rate (a common criterion for sharp-wave/ripple-like reactivation bursts).

Examples
--------
>>> import numpy as np
>>> rate = np.array([1.0, 1, 1, 1, 30, 32, 1, 1, 1, 1, 1, 1])
>>> detect_events(rate, t_start=0.0, bin_ms=5.0, threshold_sd=2.0)
[ReplayEvent(start_ms=20.0, stop_ms=30.0, peak_hz=32.0)]
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from neurosleep.io.blocks import spike_blocks


@dataclass(frozen=True)
class ReplayEvent:
    """A burst: ``[start_ms, stop_ms)`` and its peak population rate (Hz)."""

    start_ms: float
    stop_ms: float
    peak_hz: float


def population_rate(
    group: h5py.Group, n_nodes: int, t_start: float, t_stop: float, bin_ms: float
) -> np.ndarray:
    """Mean rate per neuron (Hz) in bins of ``bin_ms`` over ``[t_start, t_stop)``, streamed in
    blocks (the last partial bin is left out)."""
    bins = int(np.floor((t_stop - t_start) / bin_ms + 1e-9))
    counts = np.zeros(bins, dtype=np.int64)
    for times, _ in spike_blocks(group, t_start, t_start + bins * bin_ms):
        index = ((times - t_start) // bin_ms).astype(np.int64)
        counts += np.bincount(index[index < bins], minlength=bins)
    return counts / (max(n_nodes, 1) * bin_ms / 1000.0)


def detect_events(
    rate_hz: np.ndarray, *, t_start: float, bin_ms: float, threshold_sd: float = 3.0
) -> list[ReplayEvent]:
    """Runs of bins above ``mean + threshold_sd·SD`` of ``rate_hz``."""
    if rate_hz.size < 2 or rate_hz.std() == 0:
        return []
    above = rate_hz > rate_hz.mean() + threshold_sd * rate_hz.std()
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [
        ReplayEvent(
            float(t_start + a * bin_ms), float(t_start + b * bin_ms), float(rate_hz[a:b].max())
        )
        for a, b in zip(starts, stops, strict=True)
    ]
