"""Why cued trials of a consolidation run fail full recall: per test phase and memory, the
fraction of trials in which every group fired in stored order, and for the others the first
criterion that failed (``neurosleep.analysis.recall.recall_failure``: a silent group, or two
consecutive groups tied or out of order), the fraction of trials in which a non-cued group
fired within 3 ms of the cue's onset (activity already going on, not evoked by the cue),
each group's median latency and spikes per firing neuron; ``--raster`` prints single trials
of one network as text rasters.

Needs a run file with the memory population's spikes (``--set 'record.spikes=[exc]'`` of
``consolidation_table.py``). It rebuilds each trial's window and cued memory as the test ran them
(``pause``, then ``window + gap`` per trial, in ``cue_order``) and checks that its full-recall
fractions equal the run's own ``/recall/<phase>/full_recall`` for every network:

    python benchmarks/recall_trials.py outputs/dev5/consolidation_no_sleep_torch_dev5_dep03.h5 \
        --phase after_B --raster B:2
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter
from typing import NamedTuple

import numpy as np

from neurosleep.analysis.recall import full_recall, group_latencies, recall_failure
from neurosleep.experiments.snn import Memories, cue_order
from neurosleep.io.runfile import Phase, RunFile, open_run

# a non-cued group firing this soon after the cue's onset was active before the cue could act
# (the cued group's own first spikes come 5-10 ms after onset): "ongoing" activity
ONGOING = 3.0  # ms


class Trial(NamedTuple):
    """One cued trial of one network: the memory cued, its window's start (ms) and the spikes
    of the memory population in ``[onset, onset + window)`` (times ms, neuron ids)."""

    memory: int
    network: int
    onset: float
    times: np.ndarray
    ids: np.ndarray


def trials(
    rf: RunFile, phase: Phase, m: Memories, seed: int, dt: float, size: int, networks: int
) -> list[Trial]:
    """Every cued trial of a test phase (``dt`` ms; ``size`` neurons of the memory population
    per network), for each of the batch's ``networks``."""
    width = m.window + m.gap
    tasks = list(range(len(m.stored))) if phase.task < 0 else [phase.task]
    count = round((phase.stop_time - phase.start_time - m.pause) / width)
    per_memory = (count // 2 if m.baseline else count) // len(tasks)
    start = round(phase.start_time / dt)
    order = cue_order(tasks, per_memory, (seed, start) if m.shuffle else None)
    spikes = rf.spikes(m.population)
    out = []
    for n, (task, _) in enumerate(order):
        onset = phase.start_time + m.pause + n * width
        lo, hi = np.searchsorted(spikes.times, [onset, onset + m.window])
        t, i = spikes.times[lo:hi], spikes.node_ids[lo:hi].astype(np.int64)
        for b in range(networks):
            mine = i // size == b
            out.append(Trial(task, b, onset, t[mine], i[mine] - b * size))
    return out


def raster(trial: Trial, groups: list[np.ndarray], window: float, bin_ms: float = 2.0) -> str:
    """Text raster of one trial: a row per group, a character per ``bin_ms`` (spikes of the
    group in the bin: ``.`` none, 1–9, ``#`` more)."""
    edges = trial.onset + np.arange(0.0, window + bin_ms / 2, bin_ms)
    rows = []
    for k, g in enumerate(groups):
        counts, _ = np.histogram(trial.times[np.isin(trial.ids, g)], edges)
        cells = "".join("." if c == 0 else str(c) if c < 10 else "#" for c in counts)
        rows.append(f"    group {k} |{cells}|")
    return "\n".join(rows)


def row(name: str, mine: list[Trial], groups: list[np.ndarray], m: Memories) -> str:
    """One memory's table row over its trials ``mine`` (every network)."""
    lat = np.array([latencies(r, groups, m) for r in mine])
    kinds = Counter(recall_failure(x, m.cue_groups) for x in lat)
    failed = ", ".join(
        f"{kind} {k}{'' if kind == 'silent' else f'–{k + 1}'} {c / len(mine):.2f}"
        for (kind, k), c in kinds.most_common()
        if kind != "full"
    )
    rest = np.concatenate(groups[m.cue_groups :])
    ongoing = np.mean([np.any(r.times[np.isin(r.ids, rest)] < r.onset + ONGOING) for r in mine])
    with warnings.catch_warnings():  # a group silent in every trial: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(lat - np.array([r.onset for r in mine])[:, None], axis=0)
    per_neuron = [
        np.mean([np.isin(r.ids, g).sum() / max(1, np.unique(r.ids[np.isin(r.ids, g)]).size)
                 for r in mine])
        for g in groups
    ]  # fmt: skip
    return (
        f"| {name} | {len(mine)} | {kinds[('full', -1)] / len(mine):.2f} | {ongoing:.2f} "
        f"| {failed or '–'} | {' '.join(f'{x:.1f}' for x in median)} "
        f"| {' '.join(f'{x:.1f}' for x in per_neuron)} |"
    )


def latencies(r: Trial, groups: list[np.ndarray], m: Memories) -> np.ndarray:
    """The groups' latencies (ms from the run's start) in the trial's window."""
    return group_latencies(r.times, r.ids, groups, r.onset, r.onset + m.window)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_file")
    parser.add_argument("--phase", nargs="*", help="test phases (default: every test phase)")
    parser.add_argument("--raster", default="", help="MEMORY:N — text rasters of N trials")
    parser.add_argument("--network", type=int, default=0, help="the network of --raster")
    args = parser.parse_args()
    with open_run(args.run_file) as rf:
        protocol, model = rf.stored_protocol(), rf.stored_model()
        m = Memories.model_validate(protocol["data"]["memories"])
        if m.population not in rf.populations():
            raise SystemExit(f"{args.run_file}: no /spikes/{m.population} (record.spikes)")
        size = int(model["populations"][m.population]["size"])
        networks = int(protocol["data"].get("networks", 1))
        names = [memory.name for memory in m.stored]
        groups = [memory.indices() for memory in m.stored]
        tests = [p for p in rf.phases() if p.kind == "test"]
        for phase in [p for p in tests if not args.phase or p.name in args.phase]:
            runs = trials(rf, phase, m, int(protocol["seed"]), float(model["dt"]), size, networks)
            stored = rf.arrays(f"recall/{phase.index}")["full_recall"]
            print(f"\n{phase.name} (phase {phase.index}): {len(runs)} trials")
            print(
                "| memory | trials | full | ongoing | failed: first criterion (fraction of "
                "trials) | median latency per group (ms) | spikes per firing neuron per group |"
            )
            print("|---|---|---|---|---|---|---|")
            full = np.full(stored.shape, np.nan)
            for j, name in enumerate(names):
                mine = [r for r in runs if r.memory == j]
                if mine:
                    print(row(name, mine, groups[j], m))
                for b in range(networks):
                    scores = [full_recall(latencies(r, groups[j], m), m.cue_groups)
                              for r in mine if r.network == b]  # fmt: skip
                    full[b, j] = np.mean(scores) if scores else np.nan
            same = np.allclose(full, stored, equal_nan=True)
            print(f"full recall per network equals /recall/{phase.index}/full_recall: {same}")
            if args.raster:
                name, _, count = args.raster.partition(":")
                j = names.index(name)
                shown = [r for r in runs if r.memory == j and r.network == args.network]
                for r in shown[: int(count or 1)]:
                    lat = latencies(r, groups[j], m)
                    print(
                        f"  {name}, network {args.network}, onset {r.onset:g} ms: latencies "
                        f"{' '.join(f'{x - r.onset:.1f}' for x in lat)} ms, "
                        f"{recall_failure(lat, m.cue_groups)}"
                    )
                    print(raster(r, groups[j], m.window))


if __name__ == "__main__":
    main()
