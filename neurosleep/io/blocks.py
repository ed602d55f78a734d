"""Reading large run-file datasets in bounded blocks: spike windows, population sizes.

Spikes are stored in time order (SONATA ``sorting = by_time``), so a time window is found by
bisection on disk and read block by block; nothing here loads a whole spike dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import h5py
import numpy as np

from neurosleep.errors import RunFileError
from neurosleep.io.checks import MAX_NODES

if TYPE_CHECKING:
    from neurosleep.io.runfile import RunFile

BLOCK = 262_144  # elements read per block (2 MiB of float64)


def search(dataset: h5py.Dataset, value: float) -> int:
    """First index whose value is ≥ ``value`` in an ascending 1-d dataset (bisection on disk)."""
    lo, hi = 0, dataset.shape[0]
    while hi - lo > BLOCK:
        mid = (lo + hi) // 2
        if dataset[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo + int(np.searchsorted(dataset[lo:hi], value, side="left"))


def spike_blocks(
    group: h5py.Group, t_start: float = -np.inf, t_stop: float = np.inf, block: int = BLOCK
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (times ms, node ids as int64) blocks of a spike group within ``[t_start, t_stop)``."""
    timestamps, node_ids = group["timestamps"], group["node_ids"]
    lo, hi = search(timestamps, t_start), search(timestamps, t_stop)
    for start in range(lo, hi, block):
        stop = min(start + block, hi)
        yield timestamps[start:stop], node_ids[start:stop].astype(np.int64)


def window_count(group: h5py.Group, t_start: float, t_stop: float) -> int:
    """Number of spikes in ``[t_start, t_stop)``."""
    return search(group["timestamps"], t_stop) - search(group["timestamps"], t_start)


def read_window(group: h5py.Group, t_start: float, t_stop: float) -> tuple[np.ndarray, np.ndarray]:
    """All spikes of a window in memory (callers check :func:`window_count` first)."""
    blocks = list(spike_blocks(group, t_start, t_stop))
    if not blocks:
        return np.empty(0), np.empty(0, np.int64)
    return np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])


def population_size(run: RunFile, population: str) -> int:
    """Neurons in a population: the spike group's ``n_nodes`` attribute when recorded, else the
    largest node id seen in its spikes or in a report of that population, plus one."""
    group = run.file.get(f"spikes/{population}")
    if group is not None and "n_nodes" in group.attrs:
        return int(group.attrs["n_nodes"])
    largest = -1
    if group is not None:
        ids = group["node_ids"]
        for start in range(0, ids.shape[0], BLOCK):
            largest = max(largest, int(ids[start : start + BLOCK].max()))
    for name, pop in run.reports():
        if pop == population:
            ids = run.file[f"reports/{name}/{pop}/mapping/node_ids"][:]
            largest = max(largest, int(ids.max()) if ids.size else -1)
    if largest >= MAX_NODES:
        raise RunFileError(
            f"{run.path}: /spikes/{population}: node id {largest} is beyond any network "
            f"(at most {MAX_NODES} neurons; damaged)"
        )
    return largest + 1


def run_stop(run: RunFile) -> float:
    """End of the recorded time (ms): the latest finite phase stop time, report time or spike
    time (a spike at that time is moved inside the right-open window by one ulp)."""
    ends = [p.stop_time for p in run.phases() if np.isfinite(p.stop_time)]
    for population in run.populations():
        ts = run.file[f"spikes/{population}/timestamps"]
        if ts.shape[0]:
            ends.append(float(np.nextafter(ts[-1], np.inf)))
    for name, population in run.reports():
        time = run.file[f"reports/{name}/{population}/time"]
        if time.shape[0]:
            ends.append(float(np.nextafter(time[-1], np.inf)))
    return max(ends, default=0.0)
