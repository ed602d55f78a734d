"""Streaming run-file writer.

The recorder appends to chunked, resizable datasets. Blocks of spikes and report rows wait in
memory (at most :data:`PENDING_BYTES` per group) and are written, and the file flushed, at
every phase boundary and after a block once :data:`FLUSH_SECONDS` of wall time have passed
since the last flush: a run killed at any moment leaves a readable file whose root attribute
``status`` is still ``"running"``, holding everything up to at most that long before the kill.
Memory use does not grow with the run.

Examples
--------
>>> import tempfile, numpy as np
>>> path = tempfile.mkdtemp() + "/run.h5"
>>> with Recorder.create(path, attrs={"seed": 1}, n_tasks=1) as rec:
...     phase = rec.begin_phase("wake", "wake", task=0, start_time=0.0)
...     rec.append_spikes("exc", np.array([1.0, 2.5]), np.array([3, 0]))
...     rec.end_phase(stop_time=10.0)
...     rec.close("complete")
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neurosleep.errors import OutputError
from neurosleep.io import layout as L

FLUSH_SECONDS = 1.0  # most wall time between a block's data and the flush that makes it durable
PENDING_BYTES = 1 << 22  # a group's blocks are written once they hold this much
KEPT_BUFFER_BYTES = 1 << 25  # most bytes of closed recorders' buffers kept for the next ones


class Recorder:
    """Writes one run file while the run goes; see docs/run-file.md for the layout.

    Parameters
    ----------
    file : h5py.File
        Opened by :meth:`create`; the recorder owns it and closes it.
    n_tasks : int
        Width of the evaluation matrices (``/metrics/evaluations/*``).
    """

    def __init__(self, file: h5py.File, n_tasks: int) -> None:
        self.file = file
        self.n_tasks = n_tasks
        self.phase: int | None = None
        self.stage: tuple[int, str] | None = None  # (row of /stages, scalar prefix) while open
        self._stage_wall = 0.0
        self._step = 0  # next step of the open phase
        self._phase_wall = 0.0
        self._n_phases = 0
        self._flushed = time.perf_counter()
        self._streams: dict[str, dict[str, _Stream]] = {}  # group -> datasets, opened once
        self._pending_bytes: dict[str, int] = {}  # group -> bytes of its waiting rows
        self._report_time: dict[str, tuple[h5py.Dataset, float, float]] = {}  # mapping/time

    # ------------------------------------------------------------------ creation and status
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        attrs: dict[str, Any],
        n_tasks: int,
        provenance: dict[str, str] | None = None,
    ) -> Recorder:
        """Create a new run file; refuse an existing path (runs claim theirs through
        :func:`neurosleep.io.ownership.claim_output`, which decides what may be replaced)."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            file = h5py.File(path, "x", libver=L.LIBVER, rdcc_nbytes=0)  # see _streamed
        except FileExistsError:
            raise OutputError(f"{path}: exists; a run file is never written over") from None
        except OSError as exc:
            raise OutputError(f"{path}: cannot create the run file ({exc})") from None
        from neurosleep.version import __version__

        file.attrs.update(
            {
                "format": L.FORMAT,
                "format_version": L.FORMAT_VERSION,
                "neurosleep_version": __version__,
                "status": "running",
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            }
        )
        for key, value in attrs.items():
            file.attrs[key] = value
        file.create_dataset(
            "phases", shape=(0,), maxshape=(None,), dtype=L.PHASE_DTYPE, chunks=(256,)
        )
        prov = file.create_group("provenance")
        for key, text in (provenance or {}).items():
            prov.create_dataset(key, data=text, dtype=L.STRING)
        metrics = file.create_group("metrics")
        metrics.create_dataset(
            "scalars", shape=(0,), maxshape=(None,), dtype=L.SCALAR_DTYPE, chunks=(1024,)
        )
        evaluations = metrics.create_group("evaluations")
        evaluations.create_dataset("phase", shape=(0,), maxshape=(None,), dtype="i8", chunks=(256,))
        recorder = cls(file, n_tasks)
        recorder.flush()
        return recorder

    def close(self, status: str) -> None:
        """Set the final ``status`` (complete, failed, interrupted) and close the file."""
        if status not in L.STATUSES:
            raise ValueError(f"status must be one of {L.STATUSES}, not {status!r}")
        if not self.file.id.valid:
            return
        if self.stage is not None:
            self.end_stage(stop_time=float("nan"), status=status)
        if self.phase is not None:
            self.end_phase(stop_time=float("nan"), status=status)
        self.file.attrs["status"] = status
        self.file.attrs["closed"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.flush()
        self.file.close()
        # every row written: the buffers are free. Detached before any goes back, so that an
        # interrupt while giving them leaves this recorder refusing appends (_require_open)
        streams, self._streams = self._streams, {}
        for group in streams.values():
            _BUFFERS.give(stream.buffer for stream in group.values())

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.file.id.valid:
            self.close("failed" if exc_type else "complete")

    def flush(self) -> None:
        """Write every waiting block and flush the file."""
        for path in list(self._pending_bytes):
            self._write_pending(path)
        self.file.flush()
        self._flushed = time.perf_counter()

    def _queue(self, path: str, blocks: dict[str, np.ndarray]) -> None:
        """Copy blocks into the waiting rows of the datasets of group ``path`` (converted to
        their dtypes); write them once the group holds :data:`PENDING_BYTES`."""
        streams = self._streams[path]
        for name, block in blocks.items():
            if not streams[name].fits(block):
                self._write_pending(path)  # room first: the group's datasets stay aligned
                break
        size = self._pending_bytes.get(path, 0)
        for name, block in blocks.items():
            size += streams[name].put(block)
        self._pending_bytes[path] = size
        if size >= PENDING_BYTES:
            self._write_pending(path)
        self._flush_block()

    def _write_pending(self, path: str) -> None:
        if self._pending_bytes.pop(path, None) is None:
            return
        streams = self._streams[path]
        for stream in streams.values():
            stream.write()
        if path in self._report_time:  # a report: SONATA's [start, stop, dt] follows its rows
            mapping, start, dt = self._report_time[path]
            mapping[1] = start + streams["data"].dataset.shape[0] * dt

    def _require_open(self) -> None:
        """A closed recorder appends nothing (its buffers may serve another recorder now)."""
        if not self.file.id.valid:
            raise RuntimeError("the recorder is closed: nothing can be appended to its run file")

    def _open_stream(self, path: str, datasets: dict[str, h5py.Dataset]) -> None:
        """Keep the ``datasets`` (by name) of the group ``path``, which blocks are appended to."""
        self._streams[path] = {name: _Stream(ds) for name, ds in datasets.items()}

    def _flush_block(self) -> None:
        """After a block of data: flush if the last flush is :data:`FLUSH_SECONDS` old."""
        if time.perf_counter() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def set_provenance(self, key: str, text: str) -> None:
        prov = self.file["provenance"]
        if key in prov:
            del prov[key]
        prov.create_dataset(key, data=text, dtype=L.STRING)
        self.flush()

    # ------------------------------------------------------------------ phases
    def begin_phase(self, name: str, kind: str, *, task: int, start_time: float) -> int:
        """Open a phase row (``status="running"``); returns the phase index."""
        if self.phase is not None:
            raise RuntimeError(f"phase {self.phase} is still open")
        table = self.file["phases"]
        index = table.shape[0]
        table.resize((index + 1,))
        table[index] = (index, name, kind, task, start_time, np.nan, np.nan, "running")
        self.phase = index
        self._step = 0
        self._phase_wall = time.perf_counter()
        self.flush()
        return index

    def begin_stage(self, name: str, kind: str, *, cycle: int, start_time: float) -> int:
        """Open a sub-phase row of the open phase in ``/stages`` (created by the first stage);
        until :meth:`end_stage`, scalars are named ``<name><cycle + 1>/<scalar>`` and
        :attr:`sleep_path` is ``sleep/<phase>/<step>``. Returns the step."""
        if self.phase is None or self.stage is not None:
            raise RuntimeError("a stage opens inside an open phase, one at a time")
        if "stages" not in self.file:
            self.file.create_dataset(
                "stages", shape=(0,), maxshape=(None,), dtype=L.STAGE_DTYPE, chunks=(256,)
            )
        table = self.file["stages"]
        index, step = table.shape[0], self._step
        table.resize((index + 1,))
        row = (index, self.phase, step, cycle, name, kind, start_time, np.nan, np.nan, "running")
        table[index] = row
        self.stage = (index, f"{name}{cycle + 1}/")
        self._step += 1
        self._stage_wall = time.perf_counter()
        self.flush()
        return step

    def end_stage(self, stop_time: float, status: str = "complete") -> None:
        """Close the open stage row with its stop time (ms) and wall-clock duration."""
        if self.stage is None:
            raise RuntimeError("no stage is open")
        table = self.file["stages"]
        row = table[self.stage[0]]
        row["stop_time"] = stop_time
        row["wall_seconds"] = time.perf_counter() - self._stage_wall
        row["status"] = status
        table[self.stage[0]] = row
        self.stage = None
        self.flush()

    @property
    def sleep_path(self) -> str:
        """Where the open sleep phase's diagnostics go: ``sleep/<phase>``, or
        ``sleep/<phase>/<step>`` while a stage of it is open."""
        if self.stage is None:
            return f"sleep/{self.phase}"
        return f"sleep/{self.phase}/{self._step - 1}"

    def end_phase(self, stop_time: float, status: str = "complete") -> None:
        """Close the open phase row with its stop time (ms) and wall-clock duration."""
        if self.phase is None:
            raise RuntimeError("no phase is open")
        table = self.file["phases"]
        row = table[self.phase]
        row["stop_time"] = stop_time
        row["wall_seconds"] = time.perf_counter() - self._phase_wall
        row["status"] = status
        table[self.phase] = row
        self.phase = None
        self.flush()

    # ------------------------------------------------------------------ spikes (SONATA)
    def append_spikes(
        self,
        population: str,
        times_ms: np.ndarray,
        node_ids: np.ndarray,
        n_nodes: int | None = None,
    ) -> None:
        """Append a block of spikes, in time order, to ``/spikes/<population>``.

        ``n_nodes`` (the population size, silent neurons included) is stored as the group's
        attribute ``n_nodes`` with the population's first block; analysis uses it for rates
        and Neo spike trains.
        """
        path = f"spikes/{population}"
        times_ms, node_ids = np.asarray(times_ms), np.asarray(node_ids)  # converted as queued
        if times_ms.shape != node_ids.shape or times_ms.ndim != 1:
            raise ValueError("spike times and node ids must be 1-d arrays of one length")
        if path not in self._streams:
            self._require_open()
            group = self.file.get(path)
            if group is None:
                group = self.file.require_group("spikes").create_group(population)
                group.attrs.create("sorting", 2, dtype=L.SORTING)  # by_time: clock-driven order
                chunks = (L.SPIKE_CHUNK,)
                ts = _streamed(group, "timestamps", (0,), "f8", chunks)
                ts.attrs["units"] = "ms"
                ids = _streamed(group, "node_ids", (0,), "u8", chunks)
            else:
                ts, ids = group["timestamps"], group["node_ids"]
            if n_nodes is not None and "n_nodes" not in group.attrs:
                group.attrs["n_nodes"] = int(n_nodes)
            self._open_stream(path, {"timestamps": ts, "node_ids": ids})
        self._queue(path, {"timestamps": times_ms, "node_ids": node_ids})

    # ------------------------------------------------------------------ frame reports (SONATA)
    def append_report(
        self,
        name: str,
        population: str,
        rows: np.ndarray,
        *,
        times_ms: np.ndarray,
        dt_ms: float,
        units: str,
        node_ids: np.ndarray | None = None,
    ) -> None:
        """Append rows ``[time × node]`` of a sampled state variable.

        ``times_ms`` gives each row's time; ``mapping/time`` holds SONATA's
        ``[start, stop, dt]`` with ``stop = start + n_rows·dt`` (exact when the report was
        sampled without gaps; the ``time`` dataset is always exact).
        """
        rows, times_ms = np.atleast_2d(np.asarray(rows)), np.asarray(times_ms)
        if rows.shape[0] != times_ms.shape[0]:
            raise ValueError("report rows and times differ in length")
        path = f"reports/{name}/{population}"
        if path not in self._streams:
            self._require_open()
            if path in self.file:
                group = self.file[path]
                data, times, mapping = group["data"], group["time"], group["mapping/time"]
                start, _, dt_ms = mapping[()]
            else:
                start = times_ms[0]
                data, times, mapping = self._create_report(
                    path, rows, start, dt_ms, units, node_ids
                )
            self._open_stream(path, {"data": data, "time": times})
            self._report_time[path] = (mapping, float(start), float(dt_ms))
        self._queue(path, {"data": rows, "time": times_ms})

    def _create_report(self, path, rows, start, dt_ms, units, node_ids) -> tuple[h5py.Dataset, ...]:
        """The group of a new report; returns its ``data``, ``time`` and ``mapping/time``."""
        n_values = rows.shape[1]
        ids = np.arange(n_values) if node_ids is None else np.asarray(node_ids)
        group = self.file.create_group(path)
        chunk_rows = max(1, L.ROW_CHUNK_BYTES // max(1, n_values * rows.dtype.itemsize))
        data = _streamed(group, "data", (0, n_values), rows.dtype, (chunk_rows, n_values))
        data.attrs["units"] = units
        times = _streamed(group, "time", (0,), "f8", (max(chunk_rows, 1024),))
        times.attrs["units"] = "ms"
        mapping = group.create_group("mapping")
        mapping.create_dataset("node_ids", data=ids.astype("u8"))
        pointers = mapping.create_dataset(
            "index_pointers", data=np.arange(n_values + 1, dtype="u8")
        )
        mapping["index_pointer"] = pointers  # hard link: bmtk reads the singular name
        mapping.create_dataset("element_ids", data=np.zeros(n_values, dtype="u4"))
        mapping.create_dataset("element_pos", data=np.zeros(n_values, dtype="f4"))
        span = mapping.create_dataset("time", data=np.array([start, start, dt_ms], dtype="f8"))
        span.attrs["units"] = "ms"
        return data, times, span

    # ------------------------------------------------------------------ weights
    def add_weights(
        self,
        projection: str,
        values: np.ndarray,
        *,
        time_ms: float,
        units: str,
        pre: np.ndarray | None = None,
        post: np.ndarray | None = None,
    ) -> None:
        """Append a weight snapshot: a dense matrix, or a vector with ``pre``/``post`` indices."""
        values = np.asarray(values)
        group = self.file.get(f"weights/{projection}")
        if group is None:
            group = self.file.require_group("weights").create_group(projection)
            group.create_dataset(
                "values",
                shape=(0, *values.shape),
                maxshape=(None, *values.shape),
                dtype=values.dtype,
                chunks=(1, *values.shape),
            ).attrs["units"] = units
            group.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(256,))
            group["time"].attrs["units"] = "ms"
            group.create_dataset("phase", shape=(0,), maxshape=(None,), dtype="i8", chunks=(256,))
            if pre is not None:
                group.create_dataset("pre", data=np.asarray(pre, dtype="u8"))
                group.create_dataset("post", data=np.asarray(post, dtype="u8"))
        _append(group["values"], values[None])
        _append(group["time"], np.array([time_ms]))
        _append(group["phase"], np.array([-1 if self.phase is None else self.phase]))
        self.flush()

    # ------------------------------------------------------------------ metrics
    def add_evaluation(
        self, metrics: dict[str, np.ndarray], units: dict[str, str], descriptions: dict[str, str]
    ) -> int:
        """Append this test phase's row to each ``/metrics/evaluations/<metric>`` [eval × task]."""
        group = self.file["metrics/evaluations"]
        row = group["phase"].shape[0]
        _append(group["phase"], np.array([-1 if self.phase is None else self.phase]))
        for name, values in metrics.items():
            values = np.asarray(values, dtype="f8")
            if values.shape != (self.n_tasks,):
                raise ValueError(
                    f"metric {name!r} has shape {values.shape}, expected ({self.n_tasks},)"
                )
            if name not in group:
                ds = group.create_dataset(
                    name,
                    shape=(row, self.n_tasks),
                    maxshape=(None, self.n_tasks),
                    dtype="f8",
                    chunks=(256, self.n_tasks),
                    fillvalue=np.nan,
                )
                ds.attrs["units"] = units.get(name, "1")
                ds.attrs["description"] = descriptions.get(name, "")
        for name in group:
            if name != "phase":
                group[name].resize((row + 1, self.n_tasks))
                group[name][row] = np.asarray(metrics.get(name, np.full(self.n_tasks, np.nan)))
        self.flush()
        return row

    def set_continual(
        self,
        metric: str,
        matrix: np.ndarray,
        rows: list[int | None],
        values: dict[str, np.ndarray],
        *,
        units: str,
        descriptions: dict[str, str],
    ) -> None:
        """(Re)write ``/metrics/continual/<metric>/``: the accuracy matrix [T + 1, T] so far,
        the evaluation row behind each matrix row (−1: none yet) and each metric [T + 1]."""
        group = self.file.require_group(f"metrics/continual/{metric}")
        arrays = {"matrix": np.asarray(matrix, dtype="f8")} | {
            name: np.asarray(v, dtype="f8") for name, v in values.items()
        }
        arrays["evaluation"] = np.array([-1 if r is None else r for r in rows], dtype="i8")
        for name, data in arrays.items():
            if name in group:
                group[name][...] = data
                continue
            ds = group.create_dataset(name, data=data)
            ds.attrs["units"] = "1" if name == "evaluation" else units
            ds.attrs["description"] = descriptions.get(name, "")
        self.flush()

    def add_scalar(self, name: str, value: float, units: str) -> None:
        """A per-phase scalar (loss, mean rate, weight change) in ``/metrics/scalars``."""
        phase = -1 if self.phase is None else self.phase
        name = name if self.stage is None else self.stage[1] + name
        row = np.array([(phase, name, float(value), units)], dtype=L.SCALAR_DTYPE)
        _append(self.file["metrics/scalars"], row)
        self.flush()

    # ------------------------------------------------------------------ free-form diagnostics
    def write_arrays(self, path: str, arrays: dict[str, np.ndarray], units: dict[str, str]) -> None:
        """Write small per-phase arrays, e.g. ``/sleep/<phase>/`` diagnostics, with units."""
        group = self.file.require_group(path)
        for name, values in arrays.items():
            group.create_dataset(name, data=np.asarray(values)).attrs["units"] = units.get(
                name, "1"
            )
        self.flush()


def _streamed(group: h5py.Group, name: str, shape: tuple, dtype, chunks: tuple) -> h5py.Dataset:
    """A dataset that blocks are appended to (first axis unlimited). Its chunks are never
    filled with a fill value: every row is written by the append that adds it, so with the
    file's chunk cache off (:meth:`Recorder.create`) HDF5 writes each append from the
    recorder's buffer straight to the file, instead of allocating a chunk in memory, filling
    it, copying the rows in and writing it at the next flush."""
    maxshape = (None, *shape[1:])
    return group.create_dataset(
        name, shape=shape, maxshape=maxshape, dtype=dtype, chunks=chunks, fill_time="never"
    )


def _append(dataset: h5py.Dataset, block: np.ndarray) -> None:
    """Append ``block`` (rows; converted to the dataset's dtype, C order) with HDF5's own calls:
    h5py's ``resize`` and slice assignment cost ≈ 80 µs more per append (argument checks,
    selection objects), which 100 ms blocks pay many times a second."""
    rows = np.ascontiguousarray(block, dataset.dtype)
    ds = dataset.id
    start = ds.shape[0]
    ds.set_extent((start + len(rows), *rows.shape[1:]))
    space = ds.get_space()
    space.select_hyperslab((start,) + (0,) * (rows.ndim - 1), rows.shape)
    ds.write(h5py.h5s.create_simple(rows.shape), space, rows)


class _Stream:
    """An appended dataset and its rows waiting in memory: a buffer of the dataset's dtype
    holding at least :data:`PENDING_BYTES`, filled by copying each block in (its one copy,
    which converts it too) and written with one append."""

    def __init__(self, dataset: h5py.Dataset) -> None:
        self.dataset = dataset
        self.row_bytes = dataset.dtype.itemsize * int(np.prod(dataset.shape[1:]))
        shape = (-(-PENDING_BYTES // self.row_bytes), *dataset.shape[1:])
        self.buffer = _BUFFERS.take(shape, dataset.dtype)
        self.rows = 0

    def fits(self, block: np.ndarray) -> bool:
        return self.rows + len(block) <= len(self.buffer)

    def put(self, block: np.ndarray) -> int:
        """Keep ``block`` (copied: a caller may reuse its buffer); returns its bytes. A block
        larger than the buffer is appended at once (the buffer is empty then)."""
        if self.fits(block):
            self.buffer[self.rows : self.rows + len(block)] = block
            self.rows += len(block)
        else:
            _append(self.dataset, block)
        return len(block) * self.row_bytes

    def write(self) -> None:
        if self.rows:
            _append(self.dataset, self.buffer[: self.rows])
            self.rows = 0


class _BufferPool:
    """The stream buffers of closed recorders, for the next recorders of this process: a
    fresh 4 MiB buffer costs its pages' first touch as the first blocks fill it (≈1100 page
    faults per run of CUBA 4000 recording all spikes and 100 traces, ≈2.5 ms here), which a
    process writing many run files (a study's worker, a benchmark) then pays once. At most
    :data:`KEPT_BUFFER_BYTES` are kept; thread-safe."""

    def __init__(self) -> None:
        self._free: dict[tuple, list[np.ndarray]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, shape: tuple, dtype: np.dtype) -> np.ndarray:
        key = (tuple(shape), np.dtype(dtype).str)
        with self._lock:
            free = self._free.get(key)
            if free:
                buffer = free.pop()
                self._bytes -= buffer.nbytes
                return buffer
        return np.empty(shape, dtype)

    def give(self, buffers) -> None:
        with self._lock:
            for buffer in buffers:
                if self._bytes + buffer.nbytes <= KEPT_BUFFER_BYTES:
                    self._free.setdefault((buffer.shape, buffer.dtype.str), []).append(buffer)
                    self._bytes += buffer.nbytes


_BUFFERS = _BufferPool()


def environment(command_line: list[str], device: str) -> str:
    """JSON with the versions and platform that produced a run."""
    import platform
    import sys
    from importlib import metadata

    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for package in ("neurosleep", "numpy", "torch", "brian2", "h5py", "scipy", "pydantic"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return json.dumps(
        {
            "versions": versions,
            "platform": platform.platform(),
            "machine": platform.machine(),
            "device": device,
            "command_line": command_line,
            "cwd": os.getcwd(),
        },
        indent=2,
    )
