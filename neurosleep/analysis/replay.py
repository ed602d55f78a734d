"""Population rates streamed from run files, and replay events: bursts of population activity.

An event is a run of consecutive bins whose population rate exceeds ``mean + threshold·SD`` of
the window's rate (a common criterion for sharp-wave/ripple-like reactivation bursts), or with
``robust=True`` ``median + threshold·σ``, σ = 1.4826 × median absolute deviation (the SD where
that is 0, as in very sparse activity): one large burst, such as the transient at the start of
sleep, then does not hide the smaller ones. ``summary`` and ``plot`` use the robust criterion
with :data:`ROBUST_THRESHOLD`.

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

ROBUST_THRESHOLD = 5.0  # robust σ above the median: summary and plot


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
    rate_hz: np.ndarray,
    *,
    t_start: float,
    bin_ms: float,
    threshold_sd: float = 3.0,
    robust: bool = False,
) -> list[ReplayEvent]:
    """Runs of bins above ``mean + threshold_sd·SD`` of ``rate_hz`` (robust: median and
    1.4826·MAD instead)."""
    if rate_hz.size < 2 or rate_hz.std() == 0:
        return []
    if robust:
        centre = float(np.median(rate_hz))
        scale = 1.4826 * float(np.median(np.abs(rate_hz - centre))) or float(rate_hz.std())
    else:
        centre, scale = float(rate_hz.mean()), float(rate_hz.std())
    above = rate_hz > centre + threshold_sd * scale
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [
        ReplayEvent(
            float(t_start + a * bin_ms), float(t_start + b * bin_ms), float(rate_hz[a:b].max())
        )
        for a, b in zip(starts, stops, strict=True)
    ]


# ---------------------------------------------------------------------- content and order
@dataclass(frozen=True)
class EventMatch:
    """Which stored memory a burst reactivates, and in which order.

    ``content[m]``: fraction of memory ``m``'s neurons that fire in the event; ``order[m]``:
    rank correlation of its groups' first-spike times with the stored order (NaN for a
    one-group assembly); ``memory``: the best match (None below ``min_content``);
    ``direction``: ``"forward"``, ``"reverse"`` or ``"none"`` (assemblies, or no clear order).
    """

    start_ms: float
    stop_ms: float
    memory: str | None
    direction: str
    content: dict[str, float]
    order: dict[str, float]


def match_event(
    times: np.ndarray,
    ids: np.ndarray,
    start_ms: float,
    stop_ms: float,
    memories: dict[str, list[np.ndarray]],
    *,
    min_content: float = 0.3,
    min_order: float = 0.5,
) -> EventMatch:
    """Template-match one event against memories (ordered neuron groups of one population).

    The best memory has the largest content; among memories of equal content (a sequence and
    its reverse over the same neurons) the one whose stored order the event follows best.
    """
    from neurosleep.analysis.recall import group_latencies, sequence_order

    inside = (times >= start_ms) & (times < stop_ms)
    active = np.unique(np.asarray(ids)[inside])
    content, order = {}, {}
    for name, groups in memories.items():
        members = np.concatenate(list(groups))
        content[name] = float(np.isin(members, active).mean())
        order[name] = (
            sequence_order(group_latencies(times, ids, groups, start_ms, stop_ms))
            if len(groups) > 1
            else float("nan")
        )
    ranked = sorted(
        memories,
        key=lambda m: (round(content[m], 9), -np.inf if np.isnan(order[m]) else order[m]),
    )
    best = ranked[-1] if ranked and content[ranked[-1]] >= min_content else None
    direction = "none"
    if best is not None and not np.isnan(order[best]):
        if order[best] >= min_order:
            direction = "forward"
        elif order[best] <= -min_order:
            direction = "reverse"
    return EventMatch(float(start_ms), float(stop_ms), best, direction, content, order)


def replay_rates(
    matches: list[EventMatch], memories: list[str], duration_ms: float
) -> dict[str, float]:
    """Events per second per memory (``<memory>``, ``<memory>_forward``, ``<memory>_reverse``)
    over a sleep phase of ``duration_ms``."""
    seconds = max(duration_ms, 1e-12) / 1000.0
    out = {}
    for name in memories:
        mine = [m for m in matches if m.memory == name]
        out[name] = len(mine) / seconds
        for direction in ("forward", "reverse"):
            out[f"{name}_{direction}"] = sum(m.direction == direction for m in mine) / seconds
    return out
