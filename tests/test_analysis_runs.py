"""Small run files written by the real Recorder, shared by the analysis and export tests.

``make_run`` writes a two-task run with two spiking populations, a membrane report, a sparse
and a dense projection, a sleep phase with synchronous bursts (replay events), an accuracy
matrix with the "at start" row, per-phase scalars and sleep diagnostics.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neurosleep.io import Recorder, open_run

N = {"exc": 80, "inh": 20}
RATE_HZ = {"exc": 10.0, "inh": 30.0}
BURSTS_MS = (260.0, 300.0, 340.0)  # synchronous events during sleep (200–400 ms)
ACCURACY = np.array(
    [[0.50, 0.50], [0.90, 0.50], [0.92, 0.52], [0.70, 0.95]]
)  # at start, after task 0, after sleep, after task 1
PROTOCOL = "format_version: 1\nname: {name}\nseed: {seed}\n"
MODEL = {  # what the SONATA export reads: population sizes, projection endpoints
    "kind": "snn",
    "populations": {pop: {"size": n} for pop, n in N.items()},
    "sources": {},
    "projections": {"exc_exc": {"pre": "exc", "post": "exc"}},
}
SCHEDULE = [  # name, kind, task, start, stop (ms), evaluation row or None
    ("before", "test", -1, 0.0, 0.0, 0),
    ("learn", "wake", 0, 0.0, 200.0, None),
    ("test_1", "test", 0, 200.0, 200.0, 1),
    ("dream", "sleep", 0, 200.0, 400.0, None),
    ("test_sleep", "test", 0, 400.0, 400.0, 2),
    ("learn", "wake", 1, 400.0, 600.0, None),
    ("test_2", "test", 1, 600.0, 600.0, 3),
]


def poisson(rng, n, rate_hz, start, stop):
    """Poisson spikes of n neurons in [start, stop) ms, time-ordered."""
    count = rng.poisson(n * rate_hz * (stop - start) / 1000.0)
    times = np.sort(rng.uniform(start, stop, count))
    return times, rng.integers(0, n, count)


def phase_spikes(rng, pop, kind, start, stop):
    times, ids = poisson(rng, N[pop], RATE_HZ[pop], start, stop)
    centres = [c for c in BURSTS_MS if start <= c and c + 2.0 < stop] if kind == "sleep" else []
    if centres:  # every neuron fires once within 2 ms of each burst centre
        burst_t = np.concatenate([c + rng.uniform(0, 2.0, N[pop]) for c in centres])
        burst_i = np.tile(np.arange(N[pop]), len(centres))
        times, ids = np.concatenate([times, burst_t]), np.concatenate([ids, burst_i])
        order = np.argsort(times, kind="stable")
        times, ids = times[order], ids[order]
    return times, ids


def make_run(
    path: Path,
    *,
    seed: int = 1,
    name: str = "demo",
    engine: str = "brian2",
    status: str = "complete",
    accuracy: np.ndarray = ACCURACY,
    block_ms: float = 50.0,
) -> Path:
    """Write a run file; ``status="running"`` leaves it as a killed run would."""
    rng = np.random.default_rng(seed)
    rec = Recorder.create(
        path,
        attrs={"seed": seed, "engine": engine, "device": "cpu"},
        n_tasks=2,
        provenance={
            "protocol": PROTOCOL.format(name=name, seed=seed),
            "model": json.dumps(MODEL),
        },
    )
    pre, post = rng.integers(0, N["exc"], 200), rng.integers(0, N["exc"], 200)
    w_sparse, w_dense = rng.uniform(0, 1, 200), rng.normal(0, 0.1, (10, 8))
    rec.add_weights("exc_exc", w_sparse, time_ms=0.0, units="nS", pre=pre, post=post)
    rec.add_weights("fc1", w_dense, time_ms=0.0, units="1")
    for phase_name, kind, task, start, stop, row in SCHEDULE:
        rec.begin_phase(phase_name, kind, task=task, start_time=start)
        for t0 in np.arange(start, stop, block_ms):  # blocks, as an engine streams them
            t1 = min(t0 + block_ms, stop)
            for pop in N:
                rec.append_spikes(pop, *phase_spikes(rng, pop, kind, t0, t1), n_nodes=N[pop])
            times = np.arange(t0, t1, 1.0)
            v = -65.0 + 5.0 * rng.standard_normal((times.size, 5))
            rec.append_report("v", "exc", v, times_ms=times, dt_ms=1.0, units="mV")
        if kind == "test":
            rec.add_evaluation(
                {"accuracy": accuracy[row]}, {"accuracy": "1"}, {"accuracy": "test accuracy"}
            )
        else:
            w_sparse = np.clip(w_sparse + rng.normal(0, 0.05, 200), 0, None)
            w_dense = w_dense + rng.normal(0, 0.02, (10, 8))
            rec.add_weights("exc_exc", w_sparse, time_ms=stop, units="nS", pre=pre, post=post)
            rec.add_weights("fc1", w_dense, time_ms=stop, units="1")
            rec.add_scalar("loss", 1.0 / (1 + len(phase_name)), "1")
        if kind == "sleep":
            rec.write_arrays(
                f"sleep/{rec.phase}", {"spike_count": np.array([120, 40])}, {"spike_count": "1"}
            )
        rec.end_phase(stop_time=stop)
    if status == "running":
        rec.file.close()  # killed: status stays "running"
    else:
        rec.close(status)
    return path


def test_make_run_reads_back(tmp_path):
    path = make_run(tmp_path / "run.h5")
    with open_run(path) as run:
        assert run.status == "complete"
        assert [p.kind for p in run.phases()] == [s[1] for s in SCHEDULE]
        np.testing.assert_allclose(run.evaluations().metrics["accuracy"], ACCURACY)
        spikes = run.spikes("exc")
        assert np.all(np.diff(spikes.times) >= 0)
        assert run.weights("exc_exc").values.shape == (4, 200)
