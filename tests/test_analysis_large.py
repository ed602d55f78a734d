"""A run with 4 M spikes: summary and plots stay far below the size of the spike data."""

import tracemalloc

import numpy as np
import pytest

from neurosleep.analysis import plots
from neurosleep.analysis.summary import summarize
from neurosleep.io import Recorder, open_run

N_SPIKES, N_NODES, PHASE_MS = 4_000_000, 2000, 20_000.0
DATA_BYTES = N_SPIKES * 16  # float64 times + uint64 node ids: 64 MB


@pytest.fixture(scope="module")
def large_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("large") / "large.h5"
    rng = np.random.default_rng(0)
    per_phase, block = N_SPIKES // 2, 500_000
    with Recorder.create(path, attrs={}, n_tasks=1) as rec:
        for k, kind in enumerate(("wake", "sleep")):
            start = k * PHASE_MS
            rec.begin_phase(kind, kind, task=0, start_time=start)
            for b in range(0, per_phase, block):
                u = np.sort(rng.uniform(b / per_phase, (b + block) / per_phase, block))
                rec.append_spikes(
                    "exc", start + u * PHASE_MS, rng.integers(0, N_NODES, block), n_nodes=N_NODES
                )
            rec.end_phase(stop_time=start + PHASE_MS)
    return path


def peak_bytes(function):
    tracemalloc.start()
    try:
        result = function()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_summary_streams_blocks(large_run):
    with open_run(large_run) as run:
        s, peak = peak_bytes(lambda: summarize(run, backend="numpy"))
    assert peak < DATA_BYTES / 2
    for phase in s["phases"]:
        exc = phase["populations"]["exc"]
        assert exc["spikes"] == N_SPIKES // 2
        assert exc["rate_mean_hz"] == pytest.approx(N_SPIKES / 2 / N_NODES / (PHASE_MS / 1000))
        assert exc["cv_isi_mean"] == pytest.approx(1.0, abs=0.02)  # Poisson trains
        assert abs(exc["synchrony"]) < 0.01


@pytest.mark.parametrize("kind", ["raster", "rates", "replay"])
def test_plots_decimate(large_run, kind):
    with open_run(large_run) as run:
        fig, peak = peak_bytes(lambda: plots.PLOTS[kind](run))
    assert fig is not None and peak < DATA_BYTES / 3
    if kind == "raster":
        points = sum(len(c.get_offsets()) for ax in fig.axes for c in ax.collections)
        assert points <= plots.MAX_RASTER_POINTS
