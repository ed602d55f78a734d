"""Spike statistics of one population in one time window: rates, CV of ISI, synchrony.

Two backends give the same numbers (tests/test_analysis_spikes.py checks it):

- ``numpy``: vectorised accumulators fed block by block, so a window of any length is computed
  without loading all its spikes (memory: a few arrays of ``n_nodes`` plus the binned counts of
  at most :data:`SYNCHRONY_NODES` neurons);
- ``elephant``: ``mean_firing_rate``, ``isi`` + ``cv`` and ``correlation_coefficient`` of a
  ``BinnedSpikeTrain`` on Neo spike trains (needs the ``formats`` extra and the window in memory).

Definitions: rate = spikes in [t_start, t_stop) / duration (Hz); CV of ISI = SD/mean of a neuron's
inter-spike intervals (population SD, ddof = 0, as ``scipy.stats.variation``), for neurons with
at least :data:`MIN_SPIKES_CV` spikes; synchrony = mean pairwise Pearson correlation of spike
counts in ``bin_ms`` bins over an evenly spaced sample of the population's neurons, silent
neurons left out.

Examples
--------
>>> import numpy as np
>>> stats = spike_stats(np.array([1.0, 11.0, 21.0, 31.0]), np.zeros(4, int), n_nodes=2,
...                     t_start=0.0, t_stop=100.0, backend="numpy")
>>> stats.rates_hz, float(stats.cv_isi[0])
(array([40.,  0.]), 0.0)
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass

import h5py
import numpy as np

from neurosleep.io.blocks import read_window, spike_blocks, window_count

MIN_SPIKES_CV = 3  # two or more intervals
SYNCHRONY_NODES = 200  # neurons sampled for the pairwise correlation
MAX_BINNED_CELLS = 20_000_000  # cap on nodes × bins held for synchrony (int32: 80 MB)
BACKENDS = ("auto", "numpy", "elephant")
ELEPHANT_LIMIT = 1_000_000  # spikes of a window that Elephant gets in memory; more: numpy


@dataclass(frozen=True)
class SpikeStats:
    """Statistics of one population over ``[t_start, t_stop)`` ms."""

    n_spikes: int
    t_start: float  # ms
    t_stop: float  # ms
    rates_hz: np.ndarray  # [n_nodes] Hz
    cv_isi: np.ndarray  # [n_nodes], NaN for neurons with fewer than MIN_SPIKES_CV spikes
    synchrony: float  # mean pairwise correlation coefficient, NaN with fewer than 2 active neurons
    bin_ms: float
    backend: str

    @property
    def rate_mean(self) -> float:
        return float(self.rates_hz.mean()) if self.rates_hz.size else float("nan")

    @property
    def cv_mean(self) -> float:
        valid = self.cv_isi[np.isfinite(self.cv_isi)]
        return float(valid.mean()) if valid.size else float("nan")

    def rate_percentiles(self, q: tuple[float, ...] = (5, 50, 95)) -> np.ndarray:
        """Percentiles of the per-neuron rate distribution (Hz)."""
        if not self.rates_hz.size:
            return np.full(len(q), np.nan)
        return np.percentile(self.rates_hz, q)


def synchrony_nodes(n_nodes: int, bins: int) -> np.ndarray:
    """The evenly spaced node ids whose binned counts enter the synchrony measure (at most
    :data:`SYNCHRONY_NODES`, fewer when ``nodes × bins`` would pass :data:`MAX_BINNED_CELLS`)."""
    limit = min(n_nodes, SYNCHRONY_NODES, max(2, MAX_BINNED_CELLS // max(bins, 1)))
    return np.unique(np.linspace(0, n_nodes - 1, limit).round().astype(np.int64))


def n_bins(t_start: float, t_stop: float, bin_ms: float) -> int:
    """Whole bins of ``bin_ms`` in the window (a partial last bin is left out)."""
    return max(0, int(np.floor((t_stop - t_start) / bin_ms + 1e-9)))


class SpikeAccumulator:
    """Streaming numpy statistics: feed time-ordered blocks with :meth:`add`, then :meth:`result`.

    Per-neuron ISI moments are merged across blocks (Chan et al.'s parallel variance), so a
    window is never held in memory at once.
    """

    def __init__(self, n_nodes: int, t_start: float, t_stop: float, bin_ms: float = 5.0) -> None:
        self.n_nodes, self.t_start, self.t_stop, self.bin_ms = n_nodes, t_start, t_stop, bin_ms
        self.counts = np.zeros(n_nodes, dtype=np.int64)
        self.last = np.full(n_nodes, np.nan)
        self.isi_n = np.zeros(n_nodes)
        self.isi_mean = np.zeros(n_nodes)
        self.isi_m2 = np.zeros(n_nodes)
        self.n_bins = n_bins(t_start, t_stop, bin_ms)
        nodes = synchrony_nodes(n_nodes, self.n_bins)
        self.row = np.full(n_nodes, -1, dtype=np.int64)
        self.row[nodes] = np.arange(nodes.size)
        self.binned = np.zeros((nodes.size, self.n_bins), dtype=np.int32)

    def add(self, times: np.ndarray, ids: np.ndarray) -> None:
        """Add a block of spikes (times in ms, ascending across blocks; ids < n_nodes)."""
        keep = (times >= self.t_start) & (times < self.t_stop)
        times, ids = times[keep], ids[keep].astype(np.int64)
        if not times.size:
            return
        self.counts += np.bincount(ids, minlength=self.n_nodes)
        self._add_isis(times, ids)
        rows, bins = self.row[ids], ((times - self.t_start) // self.bin_ms).astype(np.int64)
        ok = (rows >= 0) & (bins < self.n_bins)
        np.add.at(self.binned, (rows[ok], bins[ok]), 1)

    def _add_isis(self, times: np.ndarray, ids: np.ndarray) -> None:
        # stable: time order kept within a neuron; small integer keys make numpy use radix sort
        order = np.argsort(ids.astype(np.min_scalar_type(self.n_nodes)), kind="stable")
        t, i = times[order], ids[order]
        first = np.ones(t.size, dtype=bool)
        first[1:] = i[1:] != i[:-1]
        prev = np.empty_like(t)
        prev[1:] = t[:-1]
        prev[first] = self.last[i[first]]
        isi, node = t - prev, i
        valid = np.isfinite(isi)
        isi, node = isi[valid], node[valid]
        last_index = np.append(np.flatnonzero(first[1:]), t.size - 1)
        self.last[i[last_index]] = t[last_index]
        if not isi.size:
            return
        n_b = np.bincount(node, minlength=self.n_nodes).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = np.bincount(node, isi, self.n_nodes) / n_b
            m2_b = np.bincount(node, (isi - mean_b[node]) ** 2, self.n_nodes)
            n = self.isi_n + n_b
            delta = np.where(n_b > 0, mean_b - self.isi_mean, 0.0)
            self.isi_mean = np.where(n_b > 0, self.isi_mean + delta * n_b / n, self.isi_mean)
            self.isi_m2 = self.isi_m2 + np.where(
                n_b > 0, m2_b + delta**2 * self.isi_n * n_b / n, 0.0
            )
        self.isi_n = n

    def result(self) -> SpikeStats:
        duration_s = (self.t_stop - self.t_start) / 1000.0
        rates = self.counts / duration_s if duration_s > 0 else np.full(self.n_nodes, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            cv = np.sqrt(self.isi_m2 / self.isi_n) / self.isi_mean
        cv[self.counts < MIN_SPIKES_CV] = np.nan
        return SpikeStats(
            n_spikes=int(self.counts.sum()),
            t_start=self.t_start,
            t_stop=self.t_stop,
            rates_hz=rates,
            cv_isi=cv,
            synchrony=mean_correlation(self.binned),
            bin_ms=self.bin_ms,
            backend="numpy",
        )


def mean_correlation(binned: np.ndarray) -> float:
    """Mean off-diagonal Pearson correlation of the rows that are not constant."""
    active = binned[binned.std(axis=1) > 0] if binned.size else binned
    if active.shape[0] < 2:
        return float("nan")
    c = np.corrcoef(active)
    return float(c[np.triu_indices_from(c, k=1)].mean())


def elephant_available() -> bool:
    return importlib.util.find_spec("elephant") is not None


def spike_stats(
    times: np.ndarray,
    ids: np.ndarray,
    *,
    n_nodes: int,
    t_start: float,
    t_stop: float,
    bin_ms: float = 5.0,
    backend: str = "auto",
) -> SpikeStats:
    """Statistics of in-memory spikes (times in ms, time-ordered) over ``[t_start, t_stop)``."""
    if resolve_backend(backend) == "elephant":
        return elephant_stats(times, ids, n_nodes, t_start, t_stop, bin_ms)
    acc = SpikeAccumulator(n_nodes, t_start, t_stop, bin_ms)
    acc.add(np.asarray(times, dtype=float), np.asarray(ids))
    return acc.result()


def resolve_backend(backend: str) -> str:
    """``auto`` → ``elephant`` where installed, else ``numpy``; ``elephant`` must be installed."""
    if backend not in BACKENDS:
        raise ValueError(f"spike-statistics backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "auto":
        return "elephant" if elephant_available() else "numpy"
    if backend == "elephant":
        from neurosleep.io.neo import require

        require("elephant")
    return backend


def elephant_stats(
    times: np.ndarray, ids: np.ndarray, n_nodes: int, t_start: float, t_stop: float, bin_ms: float
) -> SpikeStats:
    """The same statistics computed by Elephant on Neo spike trains."""
    with warnings.catch_warnings():  # quantities deprecation noise from elephant's internals
        warnings.simplefilter("ignore")
        return _elephant_stats(times, ids, n_nodes, t_start, t_stop, bin_ms)


def _elephant_stats(times, ids, n_nodes, t_start, t_stop, bin_ms) -> SpikeStats:
    import quantities as pq
    from elephant.conversion import BinnedSpikeTrain
    from elephant.spike_train_correlation import correlation_coefficient
    from elephant.statistics import cv, isi, mean_firing_rate

    from neurosleep.io.neo import spike_train_list

    keep = (times >= t_start) & (times < t_stop)
    trains = spike_train_list(times[keep], ids[keep], n_nodes, t_start, t_stop)
    rates = np.array([float(mean_firing_rate(st).rescale("Hz")) for st in trains])
    cvs = np.array(
        [float(cv(isi(st).magnitude)) if len(st) >= MIN_SPIKES_CV else np.nan for st in trains]
    )
    bins = n_bins(t_start, t_stop, bin_ms)
    sample = [trains[k] for k in synchrony_nodes(n_nodes, bins)]
    stop = t_start + bins * bin_ms
    sample = [st.time_slice(t_start * pq.ms, stop * pq.ms) for st in sample]
    sample = [st for st in sample if len(st) and not _constant(st, t_start, bin_ms, bins)]
    synchrony = float("nan")
    if len(sample) >= 2:
        binned = BinnedSpikeTrain(
            sample, bin_size=bin_ms * pq.ms, t_start=t_start * pq.ms, t_stop=stop * pq.ms
        )
        c = correlation_coefficient(binned)
        synchrony = float(c[np.triu_indices_from(c, k=1)].mean())
    return SpikeStats(
        n_spikes=int(keep.sum()),
        t_start=t_start,
        t_stop=t_stop,
        rates_hz=rates,
        cv_isi=cvs,
        synchrony=synchrony,
        bin_ms=bin_ms,
        backend="elephant",
    )


def _constant(train, t_start: float, bin_ms: float, bins: int) -> bool:
    """True when a train's binned counts do not vary (every bin equal): its correlation is NaN."""
    counts = np.bincount(
        ((train.magnitude - t_start) // bin_ms).astype(np.int64).clip(0, bins - 1), minlength=bins
    )
    return bool(counts.min() == counts.max())


# ---------------------------------------------------------------------- run-file windows
def window_stats(
    group: h5py.Group,
    n_nodes: int,
    t_start: float,
    t_stop: float,
    *,
    bin_ms: float = 5.0,
    backend: str = "auto",
    elephant_limit: int = ELEPHANT_LIMIT,
) -> SpikeStats:
    """Statistics of a run file's spike group over a window, streamed in blocks.

    Elephant (when chosen) is used only for windows of at most ``elephant_limit`` spikes; larger
    windows are streamed through the numpy accumulator so memory stays bounded.
    """
    backend = resolve_backend(backend)
    if backend == "elephant" and window_count(group, t_start, t_stop) <= elephant_limit:
        times, ids = read_window(group, t_start, t_stop)
        return elephant_stats(times, ids, n_nodes, t_start, t_stop, bin_ms)
    acc = SpikeAccumulator(n_nodes, t_start, t_stop, bin_ms)
    for times, ids in spike_blocks(group, t_start, t_stop):
        acc.add(times, ids)
    return acc.result()
