"""Population rates and replay events (bursts of population activity), one detector for all.

An event is a run of consecutive bins whose population rate exceeds ``mean + threshold·SD`` of
the sleep phase's rate (a common criterion for sharp-wave/ripple-like reactivation bursts),
the rate being that of network 0 (node ids below one network's size) in bins of ``bin_ms``.
The spiking experiment counts events this way while it runs (``/sleep/<phase>/replay_events``,
printed by ``info``), and ``summary`` and ``plot`` count them from the run file with the same
function, the run's settings (:func:`replay_settings`) and the same spikes: one number.

Examples
--------
>>> import numpy as np
>>> rate = np.array([1.0, 1, 1, 1, 30, 32, 1, 1, 1, 1, 1, 1])
>>> detect_events(rate, t_start=0.0, bin_ms=5.0, threshold_sd=2.0)
[ReplayEvent(start_ms=20.0, stop_ms=30.0, peak_hz=32.0)]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from neurosleep.errors import RunFileError
from neurosleep.io.blocks import population_size, spike_blocks
from neurosleep.io.runfile import Phase, RunFile

REPLAY_BIN_MS = 5.0  # default bin of the population rate (``data.memories.replay_bin``)
REPLAY_THRESHOLD_SD = 3.0  # default threshold (``data.memories.replay_threshold_sd``)


@dataclass(frozen=True)
class ReplayEvent:
    """A burst: ``[start_ms, stop_ms)`` and its peak population rate (Hz)."""

    start_ms: float
    stop_ms: float
    peak_hz: float


@dataclass(frozen=True)
class ReplaySettings:
    """How a run's events are detected: bin (ms), threshold (SD), networks in its batch."""

    bin_ms: float = REPLAY_BIN_MS
    threshold_sd: float = REPLAY_THRESHOLD_SD
    networks: int = 1


def population_rate(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    size: int,
    t_start: float,
    t_stop: float,
    bin_ms: float,
) -> np.ndarray:
    """Mean rate per neuron (Hz) of network 0 (node ids below ``size``) in bins of ``bin_ms``
    over ``[t_start, t_stop)`` (the last partial bin left out), from blocks of (times in ms,
    node ids) — spikes held in memory, or streamed from a run file by :func:`spike_blocks`."""
    bins = int((t_stop - t_start) // bin_ms)
    counts = np.zeros(bins, dtype=np.int64)
    for times, ids in blocks:
        mine = (np.asarray(ids) < size) & (np.asarray(times) >= t_start)
        index = ((np.asarray(times)[mine] - t_start) // bin_ms).astype(np.int64)
        counts += np.bincount(index[index < bins], minlength=bins)
    return counts / (size * bin_ms * 1e-3)


def detect_events(
    rate_hz: np.ndarray,
    *,
    t_start: float,
    bin_ms: float,
    threshold_sd: float = REPLAY_THRESHOLD_SD,
) -> list[ReplayEvent]:
    """Runs of bins above ``mean + threshold_sd·SD`` of ``rate_hz``."""
    if rate_hz.size < 2 or rate_hz.std() == 0:
        return []
    above = rate_hz > float(rate_hz.mean()) + threshold_sd * float(rate_hz.std())
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [
        ReplayEvent(
            float(t_start + a * bin_ms), float(t_start + b * bin_ms), float(rate_hz[a:b].max())
        )
        for a, b in zip(starts, stops, strict=True)
    ]


def replay_settings(run: RunFile) -> ReplaySettings:
    """The run's detector settings, from its stored protocol: ``data.memories.replay_bin`` and
    ``replay_threshold_sd``, ``data.networks``; the defaults where it gives none."""
    from neurosleep.units import to_unit

    data = run.stored_protocol().get("data")
    data = data if isinstance(data, dict) else {}
    memories = data.get("memories") if isinstance(data.get("memories"), dict) else {}
    bin_ms = memories.get("replay_bin", REPLAY_BIN_MS)
    try:
        settings = ReplaySettings(
            bin_ms=bin_ms if isinstance(bin_ms, (int, float)) else to_unit(bin_ms, "ms"),
            threshold_sd=float(memories.get("replay_threshold_sd", REPLAY_THRESHOLD_SD)),
            networks=int(data.get("networks", 1)),
        )
    except (ValueError, TypeError):
        settings = None
    if settings is None or not (settings.bin_ms > 0 and settings.networks >= 1):
        raise RunFileError(
            f"{run.path}: /provenance/protocol: data.networks or data.memories.replay_bin / "
            "replay_threshold_sd is not a valid value (damaged)"
        )
    return settings


def phase_rate_and_events(
    run: RunFile, population: str, phase: Phase, settings: ReplaySettings
) -> tuple[np.ndarray, list[ReplayEvent]]:
    """A recorded population's rate (network 0) over a phase and its events, from the file."""
    size = population_size(run, population) // max(settings.networks, 1)
    group = run.file[f"spikes/{population}"]
    blocks = spike_blocks(group, phase.start_time, phase.stop_time)
    rate = population_rate(blocks, size, phase.start_time, phase.stop_time, settings.bin_ms)
    events = detect_events(
        rate, t_start=phase.start_time, bin_ms=settings.bin_ms, threshold_sd=settings.threshold_sd
    )
    return rate, events


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
