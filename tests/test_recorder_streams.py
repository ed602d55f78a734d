"""The recorder's waiting rows: blocks copied into per-dataset buffers, written as the group
fills, larger blocks appended whole; what is read back equals what was appended."""

import h5py
import numpy as np
import pytest

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


def test_a_closed_recorders_buffers_serve_the_next_one_alone(tmp_path, monkeypatch):
    # the next recorder of the process takes the closed one's buffers; neither file holds
    # the other's rows, and the closed recorder cannot write into a buffer it gave back
    monkeypatch.setattr(rec_module, "PENDING_BYTES", 256)
    monkeypatch.setattr(rec_module, "_BUFFERS", rec_module._BufferPool())
    first, second = tmp_path / "first.h5", tmp_path / "second.h5"
    rec = Recorder.create(first, attrs={}, n_tasks=1)
    rec.append_spikes("exc", np.arange(20.0), np.arange(20))
    kept = rec._streams["spikes/exc"]["timestamps"].buffer
    rec.close("complete")
    with Recorder.create(second, attrs={}, n_tasks=1) as other:
        other.append_spikes("exc", np.array([0.5, 1.5]), np.array([7, 8]))
        assert any(s.buffer is kept for s in other._streams["spikes/exc"].values())
        with pytest.raises(RuntimeError, match="recorder is closed"):
            rec.append_spikes("exc", np.array([99.0]), np.array([99]))
        with pytest.raises(RuntimeError, match="recorder is closed"):
            rec.append_report("v", "exc", np.ones((1, 2)), times_ms=[0.0], dt_ms=1.0, units="mV")
    with h5py.File(first, "r") as f:
        assert f["spikes/exc/timestamps"][:].tolist() == list(np.arange(20.0))
    with h5py.File(second, "r") as f:
        assert f["spikes/exc/timestamps"][:].tolist() == [0.5, 1.5]
        assert f["spikes/exc/node_ids"][:].tolist() == [7, 8]


def test_a_close_interrupted_while_giving_buffers_back_leaves_nothing_shared(tmp_path, monkeypatch):
    # SIGTERM arrives as KeyboardInterrupt (runner): if it lands after the first buffer went back
    # to the pool, the closed recorder must still refuse appends instead of writing into a
    # buffer the next recorder takes
    monkeypatch.setattr(rec_module, "PENDING_BYTES", 256)
    pool = rec_module._BufferPool()
    monkeypatch.setattr(rec_module, "_BUFFERS", pool)
    real_give = pool.give

    def give_one_then_interrupt(buffers):
        real_give([next(iter(buffers))])
        raise KeyboardInterrupt

    monkeypatch.setattr(pool, "give", give_one_then_interrupt)
    rec = Recorder.create(tmp_path / "first.h5", attrs={}, n_tasks=1)
    rec.append_spikes("exc", np.arange(20.0), np.arange(20))
    with pytest.raises(KeyboardInterrupt):
        rec.close("complete")
    monkeypatch.setattr(pool, "give", real_give)
    assert pool._bytes > 0  # a buffer did go back
    with Recorder.create(tmp_path / "second.h5", attrs={}, n_tasks=1) as other:
        other.append_spikes("exc", np.array([0.5, 1.5]), np.array([7, 8]))
        with pytest.raises(RuntimeError, match="recorder is closed"):
            rec.append_spikes("exc", np.array([99.0]), np.array([99]))
    with h5py.File(tmp_path / "second.h5", "r") as f:
        assert f["spikes/exc/timestamps"][:].tolist() == [0.5, 1.5]


def test_the_pool_keeps_a_bounded_number_of_bytes(monkeypatch):
    monkeypatch.setattr(rec_module, "KEPT_BUFFER_BYTES", 1000)
    pool = rec_module._BufferPool()
    kept, dropped = np.empty(100), np.empty(100)
    pool.give([kept, dropped])  # 800 bytes each: the second is not kept
    assert pool.take((100,), np.float64) is kept
    fresh = pool.take((100,), np.float64)  # none left: a new one
    assert fresh is not kept and fresh is not dropped
    assert pool._bytes == 0
