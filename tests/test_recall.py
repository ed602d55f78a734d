"""Recall measures, synaptic footprint and replay matching on hand-built spike and weight data."""

from __future__ import annotations

import numpy as np
import pytest

from neurosleep.analysis.recall import (
    completion,
    first_spikes,
    footprint,
    full_recall,
    group_latencies,
    memory_synapses,
    rankdata,
    recall_failure,
    responded,
    sequence_order,
    sequence_recall,
)
from neurosleep.analysis.replay import detect_events, match_event, replay_rates

GROUPS = [np.arange(k * 4, k * 4 + 4) for k in range(5)]  # 5 groups of 4 neurons: 0..19


def sweep(order, t0=0.0, lag=3.0, jitter=0.5, rng=None):
    """Every neuron of the groups fires once, group by group in ``order``."""
    rng = rng or np.random.default_rng(0)
    times, ids = [], []
    for rank, g in enumerate(order):
        times.append(t0 + rank * lag + rng.uniform(0, jitter, GROUPS[g].size))
        ids.append(GROUPS[g])
    return np.concatenate(times), np.concatenate(ids)


def test_first_spikes_and_completion():
    times = np.array([5.0, 2.0, 7.0, 30.0, 1.0])
    ids = np.array([1, 1, 3, 2, 0])
    np.testing.assert_array_equal(
        first_spikes(times, ids, 4, 1.5, 20.0), [np.nan, 2.0, np.nan, 7.0]
    )
    members = np.array([0, 1, 2, 3])
    # cued 0; of 1, 2, 3 only 1 and 3 fire before 20 ms
    assert completion(times, ids, members, np.array([0]), 0.0, 20.0) == pytest.approx(2 / 3)
    assert completion(times, ids, members, np.array([0]), 0.0, 40.0) == 1.0
    assert completion(times, ids, members, np.array([0]), 50.0, 60.0) == 0.0
    assert np.isnan(completion(times, ids, members, members, 0.0, 20.0))


def test_sequence_order_forward_reverse_partial():
    forward = sweep([0, 1, 2, 3, 4])
    reverse = sweep([4, 3, 2, 1, 0])
    assert sequence_order(group_latencies(*forward, GROUPS, 0, 100)) == pytest.approx(1.0)
    assert sequence_order(group_latencies(*reverse, GROUPS, 0, 100)) == pytest.approx(-1.0)
    # only the first three groups fire, in order: silent groups are left out
    times, ids = sweep([0, 1, 2])
    lat = group_latencies(times, ids, GROUPS, 0, 100)
    assert np.isnan(lat[3:]).all()
    assert sequence_order(lat) == pytest.approx(1.0)
    # cued with group 0: groups 1, 2 fire in order (2 of the 4 non-cued groups)
    assert sequence_recall(lat, cued=1) == pytest.approx(0.5)
    assert sequence_recall(group_latencies(*forward, GROUPS, 0, 100), cued=1) == pytest.approx(1)
    # the cue alone, or the cue plus one other group, scores 0 (no order among the rest)
    assert sequence_recall(group_latencies(*sweep([0, 3]), GROUPS, 0, 100), cued=1) == 0.0
    # one swap lowers it; nothing firing gives 0
    swapped = sequence_order(group_latencies(*sweep([0, 2, 1, 3, 4]), GROUPS, 0, 100))
    assert swapped == pytest.approx(0.9)
    assert sequence_order(np.full(5, np.nan)) == 0.0


def test_order_score_is_pearson_of_positions_against_latency_ranks():
    """Not Spearman's ρ: with a silent group between active ones an in-order sweep scores
    below 1 (positions 1, 3, 4 against ranks 1, 2, 3)."""
    lat = group_latencies(*sweep([0, 1, 3, 4]), GROUPS, 0, 100)
    assert sequence_order(lat[1:]) == pytest.approx(np.corrcoef([0, 2, 3], [1, 2, 3])[0, 1])
    assert sequence_order(lat[1:]) == pytest.approx(0.982, abs=1e-3)


def test_no_response_is_told_apart_from_partial_recall():
    """The graded score gives 0 both to "nothing beyond the cue fired" and to "the cue and the
    next group fired"; ``responded`` tells them apart, ``full_recall`` needs every group in
    order."""
    nothing = group_latencies(*sweep([0]), GROUPS, 0, 100)
    next_one = group_latencies(*sweep([0, 1]), GROUPS, 0, 100)
    assert sequence_recall(nothing, cued=1) == sequence_recall(next_one, cued=1) == 0.0
    assert responded(nothing, cued=1) == 0.0 and responded(next_one, cued=1) == 1.0
    forward = group_latencies(*sweep([0, 1, 2, 3, 4]), GROUPS, 0, 100)
    assert full_recall(forward, cued=1) == 1.0
    assert full_recall(group_latencies(*sweep([0, 1, 2, 3]), GROUPS, 0, 100), cued=1) == 0.0
    assert full_recall(group_latencies(*sweep([0, 2, 1, 3, 4]), GROUPS, 0, 100), cued=1) == 0.0
    # the cued group counts for the order too: the rest in order before the cue is no success
    assert full_recall(group_latencies(*sweep([1, 2, 3, 4, 0]), GROUPS, 0, 100), cued=1) == 0.0
    assert np.isnan(full_recall(forward[:1], cued=1)) and np.isnan(responded(forward[:1], 1))


def test_recall_failure_names_the_first_criterion_that_fails():
    """Exactly the trials ``full_recall`` scores 1 are "full"; the others name the first silent
    group, else the first consecutive pair tied or out of order (a burst in which every group
    is already active at the cue's onset fails on the cued group's pair)."""

    def lat(order, lag=3.0):
        return group_latencies(*sweep(order, lag=lag), GROUPS, 0, 100)

    assert recall_failure(lat([0, 1, 2, 3, 4]), cued=1) == ("full", -1)
    assert recall_failure(lat([0, 1, 2, 4]), cued=1) == ("silent", 3)
    assert recall_failure(lat([1, 2, 3, 4]), cued=1) == ("silent", 0)
    assert recall_failure(lat([0, 2, 1, 3, 4]), cued=1) == ("order", 1)
    assert recall_failure(lat([4, 3, 2, 1, 0]), cued=1) == ("order", 0)
    assert recall_failure(np.array([5.0, 1.0, 1.0, 1.0, 1.5]), cued=1) == ("order", 0)
    assert recall_failure(np.array([1.0, 1.0, 2.0, 3.0, 4.0]), cued=1) == ("tie", 0)
    rng = np.random.default_rng(3)
    for _ in range(200):  # random latencies with silent groups and ties: the same verdicts
        x = rng.integers(0, 6, 5).astype(float)
        x[rng.random(5) < 0.1] = np.nan
        assert (recall_failure(x, cued=1)[0] == "full") == (full_recall(x, cued=1) == 1.0)
    with pytest.raises(ValueError, match="no non-cued group"):
        recall_failure(np.array([1.0]), cued=1)


def test_group_latency_is_the_median_first_spike():
    times = np.array([1.0, 2.0, 9.0, 50.0, 4.0])
    ids = np.array([0, 1, 2, 3, 0])  # neuron 0 fires twice: its first spike counts
    lat = group_latencies(times, ids, [np.array([0, 1, 2, 3])], 0.0, 20.0)
    assert lat[0] == pytest.approx(2.0)  # median of 1, 2, 9 (3 silent before 20 ms)


def test_footprint_within_between_and_over_snapshots():
    a = [np.array([0, 1, 2])]
    b = [np.array([2, 3, 4])]  # shares neuron 2 with A
    pre, post = np.divmod(np.arange(36), 6)
    keep = pre != post
    pre, post = pre[keep], post[keep]
    in_a = np.isin(pre, a[0]) & np.isin(post, a[0])
    in_b = np.isin(pre, b[0]) & np.isin(post, b[0])
    w0 = np.where(in_a, 2.0, 0.0) + np.where(in_b, 1.0, 0.0)  # A-B shared pair none: 2-2 no autapse
    w1 = w0 * 0.5
    fp = footprint(np.stack([w0, w1]), pre, post, {"A": a, "B": b})
    np.testing.assert_allclose(fp["A"], [2.0, 1.0])
    np.testing.assert_allclose(fp["B"], [1.0, 0.5])
    np.testing.assert_allclose(fp["A<->B"], [0.0, 0.0])  # e.g. 0->3, 4->1
    assert fp["other"][0] == 0.0  # neuron 5's synapses
    # a sequence's synapses run from group k to group k+1 only
    seq = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5])]
    mask = memory_synapses(pre, post, seq)
    assert set(zip(pre[mask], post[mask], strict=True)) == {
        (0, 2),
        (0, 3),
        (1, 2),
        (1, 3),
        (2, 4),
        (2, 5),
        (3, 4),
        (3, 5),
    }
    backward = memory_synapses(pre, post, seq[::-1])
    assert not (mask & backward).any()


def synthetic_sleep(rng):
    """Background at ~1 Hz on 40 neurons + 6 bursts with known content and order."""
    n, duration = 40, 3000.0
    count = rng.poisson(n * duration / 1000.0)
    times, ids = [rng.uniform(0, duration, count)], [rng.integers(0, n, count)]
    plan = [  # (start ms, memory, order)
        (300, "A", [0, 1, 2, 3, 4]),
        (800, "B", [4, 3, 2, 1, 0]),
        (1300, "A", [0, 1, 2, 3, 4]),
        (1800, "C", None),
        (2300, "B", [4, 3, 2, 1, 0]),
        (2700, "A", [0, 1, 2, 3, 4]),
    ]
    for start, _memory, order in plan:
        if order is None:  # assembly C: neurons 20..29 all at once
            times.append(start + rng.uniform(0, 3, 10))
            ids.append(np.arange(20, 30))
        else:
            t, i = sweep(order, t0=start, rng=rng)
            times.append(t)
            ids.append(i)
    times, ids = np.concatenate(times), np.concatenate(ids)
    order = np.argsort(times)
    return times[order], ids[order], plan, duration


def test_replay_detection_finds_bursts_their_content_and_order():
    rng = np.random.default_rng(4)
    times, ids, plan, duration = synthetic_sleep(rng)
    bin_ms = 5.0
    counts = np.bincount((times // bin_ms).astype(int), minlength=int(duration / bin_ms))
    rate = counts / (40 * bin_ms / 1000.0)
    events = detect_events(rate, t_start=0.0, bin_ms=bin_ms, threshold_sd=3.0)
    assert len(events) == len(plan)
    for event, (start, _, _) in zip(events, plan, strict=True):
        assert start - bin_ms <= event.start_ms <= start + bin_ms
    memories = {"A": GROUPS, "B": GROUPS[::-1], "C": [np.arange(20, 30)]}
    matches = [match_event(times, ids, e.start_ms, e.stop_ms + 10.0, memories) for e in events]
    assert [m.memory for m in matches] == [p[1] for p in plan]
    assert [m.direction for m in matches] == ["forward"] * 3 + ["none"] + ["forward"] * 2
    assert matches[0].order["A"] == pytest.approx(1.0) and matches[0].order["B"] == pytest.approx(
        -1.0
    )
    assert matches[3].content["C"] == 1.0 and matches[3].content["A"] < 0.3
    rates = replay_rates(matches, list(memories), duration)
    assert rates["A"] == pytest.approx(1.0) and rates["B"] == pytest.approx(2 / 3)
    assert rates["C"] == pytest.approx(1 / 3) and rates["A_reverse"] == 0.0
    # with only A stored, B's bursts are reverse replays of A
    only_a = [match_event(times, ids, e.start_ms, e.stop_ms + 10.0, {"A": GROUPS}) for e in events]
    directions = [m.direction for m in only_a if m.memory]
    assert directions == ["forward", "reverse", "forward", "reverse", "forward"]


def test_background_is_not_a_replay():
    rng = np.random.default_rng(1)
    times = np.sort(rng.uniform(0, 1000, 40))
    ids = rng.integers(0, 40, 40)
    match = match_event(times, ids, 100.0, 120.0, {"A": GROUPS})
    assert match.memory is None and match.direction == "none"


def test_rankdata_equals_scipy_with_ties():
    """The recall scores' ranks (numpy, no scipy.stats import) are scipy's average ranks."""
    from scipy.stats import rankdata as scipy_rankdata

    rng = np.random.default_rng(0)
    for size in (1, 2, 7, 40):
        for x in (rng.integers(0, 4, size).astype(float), rng.random(size)):
            np.testing.assert_array_equal(rankdata(x), scipy_rankdata(x))
    np.testing.assert_array_equal(rankdata([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])
