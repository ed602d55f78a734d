"""The recorder's waiting rows: blocks copied into per-dataset buffers, written as the group
fills, larger blocks appended whole; what is read back equals what was appended."""

import h5py
import numpy as np

from neurosleep.io import recorder as rec_module
from neurosleep.io.recorder import Recorder


def test_blocks_round_trip_through_the_buffers(tmp_path, monkeypatch):
    # buffers of 32 rows of a 1-d float64/uint64 dataset, 11 rows of a 3-column report
    monkeypatch.setattr(rec_module, "PENDING_BYTES", 256)
    rng = np.random.default_rng(3)
    sizes = [0, 5, 31, 1, 40, 100, 7, 64, 2]  # empty, filling, overflowing, larger than a buffer
    times = [np.sort(rng.uniform(0, 10, n)) for n in sizes]
    ids = [rng.integers(0, 50, n) for n in sizes]  # int64: converted to uint64 as queued
    rows = [rng.normal(size=(max(n, 1), 3)) for n in sizes]
    path = tmp_path / "run.h5"
    with Recorder.create(path, attrs={}, n_tasks=1) as rec:
        for t, i, r in zip(times, ids, rows, strict=True):
            rec.append_spikes("exc", t, i, n_nodes=50)
            rec.append_report("v", "exc", r, times_ms=np.arange(len(r)) * 0.5, dt_ms=0.5,
                              units="mV")  # fmt: skip
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["spikes/exc/timestamps"][:], np.concatenate(times))
        assert f["spikes/exc/node_ids"].dtype == np.uint64
        assert f["spikes/exc/node_ids"].shape == (sum(sizes),)
        assert np.array_equal(f["reports/v/exc/data"][:], np.concatenate(rows))
        n_rows = sum(len(r) for r in rows)
        assert np.array_equal(f["reports/v/exc/mapping/time"][:], [0.0, 0.5 * n_rows, 0.5])


def test_ids_are_copied_when_queued(tmp_path):
    path = tmp_path / "run.h5"
    ids = np.array([3, 1, 2])
    with Recorder.create(path, attrs={}, n_tasks=1) as rec:
        rec.append_spikes("exc", np.array([1.0, 2.0, 3.0]), ids)
        ids[:] = 9  # before the recorder writes anything
    with h5py.File(path, "r") as f:
        assert f["spikes/exc/node_ids"][:].tolist() == [3, 1, 2]
