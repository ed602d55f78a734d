"""Recall of stored spiking memories: pattern completion, sequence order, synaptic footprint.

A memory is an ordered list of neuron groups of one population (an assembly is one group; a
sequence is several groups activated in order). All functions are pure and take spike arrays
(``times`` in ms, ``ids`` neuron indices) or weight arrays as stored in run files.

Examples
--------
>>> import numpy as np
>>> groups = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5])]
>>> times = np.array([1.0, 1.2, 6.0, 6.5, 11.0])
>>> ids = np.array([0, 1, 2, 3, 4])
>>> group_latencies(times, ids, groups, 0.0, 50.0)
array([ 1.1 ,  6.25, 11.  ])
>>> sequence_order(group_latencies(times, ids, groups, 0.0, 50.0))
1.0
>>> round(sequence_recall(np.array([1.0, np.nan, 9.0, 5.0]), cued=1), 3)  # 2 of 3 fire, reversed
-0.667
>>> full_recall(np.array([1.0, 4.0, 9.0]), cued=1), full_recall(np.array([1.0, 9.0, 4.0]), cued=1)
(1.0, 0.0)
>>> recall_failure(np.array([1.0, 9.0, 4.0]), 1), recall_failure(np.array([1.0, np.nan, 4.0]), 1)
(('order', 1), ('silent', 1))
>>> responded(np.array([1.0, np.nan, np.nan]), cued=1)
0.0
>>> completion(times, ids, np.arange(6), np.array([0, 1]), 0.0, 50.0)
0.75
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank (``scipy.stats.rankdata``'s default, without
    importing scipy.stats, which takes longer than a short run)."""
    x = np.asarray(x)
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]
    return ranks


def _window(times: np.ndarray, ids: np.ndarray, t0: float, t1: float):
    inside = (times >= t0) & (times < t1)
    return np.asarray(times)[inside], np.asarray(ids)[inside]


def first_spikes(times: np.ndarray, ids: np.ndarray, n: int, t0: float, t1: float) -> np.ndarray:
    """First spike time (ms) of each of neurons ``0..n-1`` in ``[t0, t1)``; NaN for silent
    ones (spikes of other neurons are ignored)."""
    t, i = _window(times, ids, t0, t1)
    keep = i < n
    t, i = t[keep], i[keep]
    first = np.full(n, np.inf)
    np.minimum.at(first, i.astype(np.int64), t)
    first[np.isinf(first)] = np.nan
    return first


def completion(
    times: np.ndarray,
    ids: np.ndarray,
    members: np.ndarray,
    cued: np.ndarray,
    t0: float,
    t1: float,
) -> float:
    """Pattern completion: fraction of a memory's non-cued neurons that fire in ``[t0, t1)``."""
    rest = np.setdiff1d(members, cued)
    if rest.size == 0:
        return float("nan")
    _, i = _window(times, ids, t0, t1)
    return float(np.isin(rest, i).mean())


def group_latencies(
    times: np.ndarray, ids: np.ndarray, groups: Sequence[np.ndarray], t0: float, t1: float
) -> np.ndarray:
    """Median first-spike time (ms) of each group's firing neurons; NaN for a silent group."""
    n = int(max((g.max() for g in groups if g.size), default=-1)) + 1
    first = first_spikes(times, ids, n, t0, t1)
    out = np.full(len(groups), np.nan)
    for k, g in enumerate(groups):
        fired = np.sort(first[g])  # NaN (silent) last
        n = fired.size - int(np.isnan(fired).sum())
        if n:  # np.median of the fired: the middle one, or the mean of the middle two
            mid = n // 2
            out[k] = fired[mid] if n % 2 else (fired[mid - 1] + fired[mid]) / 2
    return out


def sequence_order(latencies: np.ndarray) -> float:
    """Order score of the active groups: the Pearson correlation of their stored positions
    with the ranks of their latencies (1: in order, −1: reversed); silent groups (NaN) are left
    out; fewer than two active give 0. Not Spearman's ρ: the positions are not re-ranked, so
    when a silent group sits between active ones (positions 0, 2, 3) an in-order sweep scores
    slightly below 1 (0.98); with contiguous active groups it equals Spearman's ρ."""
    lat = np.asarray(latencies, dtype=float)
    active = ~np.isnan(lat)
    if active.sum() < 2:
        return 0.0
    ranks = rankdata(lat[active])
    if np.std(ranks) == 0:
        return 0.0
    return float(np.corrcoef(np.flatnonzero(active), ranks)[0, 1])


def sequence_recall(latencies: np.ndarray, cued: int) -> float:
    """Graded recall of a sequence cued with its first ``cued`` groups: the order score of the
    non-cued groups (:func:`sequence_order`) × the fraction of them that fired. 1: the whole
    rest of the sequence fires in order; 0: nothing fires, a single non-cued group fires, or
    they fire in random order; < 0: reversed. The cued groups are left out, so that a cue alone
    scores 0 whatever the background. A 0 does not tell "nothing fired" from partial recall:
    :func:`responded` does."""
    rest = np.asarray(latencies, dtype=float)[cued:]
    if rest.size == 0:
        return float("nan")
    return sequence_order(rest) * float(np.mean(~np.isnan(rest)))


def responded(latencies: np.ndarray, cued: int) -> float:
    """1.0 when at least one non-cued group fired, else 0.0 (NaN without non-cued groups)."""
    rest = np.asarray(latencies, dtype=float)[cued:]
    if rest.size == 0:
        return float("nan")
    return float((~np.isnan(rest)).any())


def full_recall(latencies: np.ndarray, cued: int) -> float:
    """Per-trial success: 1.0 when every group fired and their latencies rise strictly in
    stored order (the cued groups included), else 0.0 (NaN without non-cued groups)."""
    lat = np.asarray(latencies, dtype=float)
    if lat[cued:].size == 0:
        return float("nan")
    return float(not np.isnan(lat).any() and bool(np.all(np.diff(lat) > 0)))


def recall_failure(latencies: np.ndarray, cued: int) -> tuple[str, int]:
    """Why a trial is not a full recall (:func:`full_recall`), as ``(kind, group)``:
    ``("full", -1)`` when it is one; ``("silent", k)``: group ``k``, the first silent one, did
    not fire; with every group fired, ``("tie", k)``: groups ``k`` and ``k + 1`` have the same
    latency, ``("order", k)``: group ``k + 1`` fired before group ``k`` (the first such ``k``).
    A memory without non-cued groups is an error."""
    lat = np.asarray(latencies, dtype=float)
    if lat[cued:].size == 0:
        raise ValueError(f"no non-cued group: {lat.size} groups, {cued} cued")
    silent = np.flatnonzero(np.isnan(lat))
    if silent.size:
        return "silent", int(silent[0])
    step = np.diff(lat)
    bad = np.flatnonzero(step <= 0)
    if not bad.size:
        return "full", -1
    k = int(bad[0])
    return ("tie" if step[k] == 0 else "order"), k


# ---------------------------------------------------------------------- synaptic footprint
def memory_synapses(pre: np.ndarray, post: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """Mask [S] of a memory's synapses: within the group for an assembly (one group), from
    group k to group k+1 for a sequence."""
    if len(groups) == 1:
        return np.isin(pre, groups[0]) & np.isin(post, groups[0])
    mask = np.zeros(len(pre), dtype=bool)
    for a, b in zip(groups[:-1], groups[1:], strict=True):
        mask |= np.isin(pre, a) & np.isin(post, b)
    return mask


def footprint(
    weights: np.ndarray,
    pre: np.ndarray,
    post: np.ndarray,
    memories: dict[str, Sequence[np.ndarray]],
) -> dict[str, np.ndarray]:
    """Mean weight of each memory's synapses per snapshot, and of the synapses between memories.

    Parameters
    ----------
    weights : array [snapshots, S] (or [S])
    pre, post : int arrays [S]
    memories : name -> ordered groups of neuron indices

    Returns
    -------
    dict
        ``name`` -> [snapshots] mean weight over the memory's synapses (see
        :func:`memory_synapses`); ``"A<->B"`` for each pair -> mean weight of synapses from a
        neuron of one memory to a neuron of the other that belong to neither memory; ``"other"``
        -> every remaining synapse.
    """
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    masks = {name: memory_synapses(pre, post, groups) for name, groups in memories.items()}
    neurons = {name: np.concatenate(list(groups)) for name, groups in memories.items()}
    used = np.zeros(len(pre), dtype=bool)
    for m in masks.values():
        used |= m

    def mean(mask: np.ndarray) -> np.ndarray:
        return w[:, mask].mean(axis=1) if mask.any() else np.full(len(w), np.nan)

    out = {name: mean(m) for name, m in masks.items()}
    names = list(memories)
    for k, a in enumerate(names):
        for b in names[k + 1 :]:
            between = (np.isin(pre, neurons[a]) & np.isin(post, neurons[b])) | (
                np.isin(pre, neurons[b]) & np.isin(post, neurons[a])
            )
            out[f"{a}<->{b}"] = mean(between & ~used)
    out["other"] = mean(~used)
    return out
