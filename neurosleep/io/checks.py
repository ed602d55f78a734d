"""What the reader checks when it opens a run file, so analysis never meets a damaged layout.

:func:`check_layout` walks the groups and datasets that analysis reads (names, kinds, ranks,
dtypes, units attributes, and that parallel datasets have one length) — metadata only, no data
is read. Each problem is a :class:`~neurosleep.errors.RunFileError` naming the file and the HDF5
path: ``run.h5: /spikes/exc/node_ids missing (damaged, or not a neurosleep run file)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import h5py
import numpy as np

from neurosleep.errors import RunFileError
from neurosleep.io.layout import PHASE_DTYPE, SCALAR_DTYPE, STAGE_DTYPE, STATUSES

MAX_NODES = 10**8  # a population size (n_nodes) above this is taken as damage, not a network
MAX_TASKS = 10_000  # likewise for the number of tasks (n_tasks)
UNWRITTEN_CHUNKS = 4  # chunks a killed writer may have declared but not written
MAX_TIME_MS = 1e10  # simulated time (115 days): later times are damage (bins are allocated by time)
DAMAGED = "damaged, or not a neurosleep run file"


class Checker:
    """Checks one open file; ``where`` names it in messages."""

    def __init__(self, file: h5py.File, where: str) -> None:
        self.file = file
        self.where = where

    def fail(self, what: str) -> RunFileError:
        return RunFileError(f"{self.where}: {what} ({DAMAGED})")

    def get(self, path: str, kind: type, ndim: int | None = None, dtype: str = "") -> h5py.HLObject:
        """The object at ``path``: a group, or a dataset of rank ``ndim`` and dtype kind(s)."""
        try:
            obj = self.file.get(path)
        except (KeyError, OSError, RuntimeError, ValueError) as exc:
            raise self.fail(f"/{path} cannot be read ({exc})") from None
        if obj is None:
            raise self.fail(f"/{path} missing")
        if not isinstance(obj, kind):
            what = "group" if kind is h5py.Group else "dataset"
            raise self.fail(f"/{path} is not a {what}")
        if ndim is not None and obj.ndim != ndim:
            raise self.fail(f"/{path} has {obj.ndim} dimensions, expected {ndim}")
        if dtype and obj.dtype.kind not in dtype:
            raise self.fail(f"/{path} has dtype {obj.dtype}, expected {_KINDS[dtype]}")
        return obj

    def dataset(self, path: str, ndim: int | None = None, dtype: str = "") -> h5py.Dataset:
        return self.get(path, h5py.Dataset, ndim, dtype)

    def group(self, path: str) -> h5py.Group:
        return self.get(path, h5py.Group)

    def members(self, path: str) -> Iterator[tuple[str, str]]:
        """(name, full path) of the members of an optional group."""
        if path not in self.file:
            return
        for name in self.group(path):
            yield name, f"{path}/{name}"

    def table(self, path: str, dtype) -> None:
        names = self.dataset(path, 1).dtype.names or ()
        missing = [n for n in dtype.names if n not in names]
        if missing:
            raise self.fail(f"/{path} lacks the column(s) {', '.join(missing)}")

    def units(self, path: str) -> None:
        if "units" not in self.file[path].attrs:
            raise self.fail(f"/{path} has no units attribute")

    def same_length(self, group: str, *names: str, axis_of: dict[str, int] | None = None) -> int:
        """Datasets ``group/<name>`` have one length (their first axis, or ``axis_of[name]``)."""
        lengths = {}
        for name in names:
            shape = self.file[f"{group}/{name}"].shape
            lengths[name] = shape[(axis_of or {}).get(name, 0)]
        if len(set(lengths.values())) > 1:
            told = ", ".join(f"{n} {k}" for n, k in lengths.items())
            raise RunFileError(
                f"{self.where}: /{group}: lengths differ ({told}); the file is damaged, or was "
                "read while its run wrote it (try again)"
            )
        return next(iter(lengths.values()))


_KINDS = {"f": "float", "iu": "integer", "iuf": "numeric", "OSU": "text"}


def check_layout(file: h5py.File, where: str) -> None:
    """Raise :class:`RunFileError` for the first problem of an open run file's layout."""
    c = Checker(file, where)
    status = file.attrs.get("status")
    status = status.decode() if isinstance(status, bytes) else status
    if status not in STATUSES:
        raise c.fail(f"root attribute status is {status!r}, expected one of {', '.join(STATUSES)}")
    n_tasks = _root_attrs(c)
    c.table("phases", PHASE_DTYPE)
    _phase_times(c)
    for _, path in c.members("provenance"):
        c.dataset(path, 0, "OSU")
    c.table("metrics/scalars", SCALAR_DTYPE)
    if "stages" in file:
        c.table("stages", STAGE_DTYPE)
    _evaluations(c, n_tasks)
    for _, path in c.members("metrics/continual"):
        c.dataset(f"{path}/matrix", 2, "iuf")
        c.units(f"{path}/matrix")
        for name, member in c.members(path):
            if name != "matrix":
                c.dataset(member, 1, "iuf")
        c.same_length(path, *c.group(path))
    for _, path in c.members("spikes"):
        _spikes(c, path)
    for _, name in c.members("reports"):
        for _, path in c.members(name):
            _report(c, path)
    for _, path in c.members("weights"):
        _weights(c, path)
    for name, path in c.members("sleep"):
        _sleep(c, name, path)


def _root_attrs(c: Checker) -> int | None:
    """``n_tasks`` (an integer in 1..MAX_TASKS, when present) and ``task_names`` (a JSON list
    of n_tasks names, or an array of strings as the first versions wrote it, when present);
    returns ``n_tasks``."""
    n_tasks = c.file.attrs.get("n_tasks")
    if n_tasks is not None:
        if not _integer(n_tasks) or not 1 <= int(n_tasks) <= MAX_TASKS:
            raise c.fail(f"root attribute n_tasks is {n_tasks!r}, expected 1..{MAX_TASKS}")
        n_tasks = int(n_tasks)
    names = c.file.attrs.get("task_names")
    if names is not None:
        try:
            names = json.loads(names) if isinstance(names, str | bytes) else list(names)
        except (TypeError, ValueError):
            names = None
        if not isinstance(names, list) or (n_tasks is not None and len(names) != n_tasks):
            raise c.fail("root attribute task_names is not a JSON list with one name per task")
    return n_tasks


def _phase_times(c: Checker) -> None:
    """Start and stop times (ms) of every phase: finite, 0 ≤ start ≤ stop ≤ MAX_TIME_MS (stop is
    NaN while a phase runs, or after a kill)."""
    table = c.file["phases"]
    _stored(c, "phases")
    start, stop = table.fields("start_time")[:], table.fields("stop_time")[:]
    open_ = np.isnan(stop)
    bad = ~np.isfinite(start) | (start < 0) | (start > MAX_TIME_MS)
    bad |= ~open_ & (~np.isfinite(stop) | (stop < start) | (stop > MAX_TIME_MS))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise c.fail(
            f"/phases row {row}: start {start[row]} ms, stop {stop[row]} ms (expected "
            f"0 <= start <= stop <= {MAX_TIME_MS:g} ms)"
        )


def _time_range(c: Checker, path: str) -> None:
    """First and last entry of a time-ordered dataset (ms): finite, within 0..MAX_TIME_MS."""
    times = c.file[path]
    if times.shape[0] == 0:
        return
    ends = np.array([times[0], times[-1]], dtype=float)
    if not (np.all(np.isfinite(ends)) and ends[0] >= 0 and ends[1] <= MAX_TIME_MS):
        raise c.fail(f"/{path} runs from {ends[0]} to {ends[1]} ms (expected 0..{MAX_TIME_MS:g})")


def _stored(c: Checker, path: str) -> None:
    """A chunked dataset holds (nearly) the bytes its shape declares: a damaged shape would
    make a reader loop over, or allocate, data that is not there. A killed writer may leave its
    last few chunks unwritten."""
    ds = c.file[path]
    if ds.chunks is None or ds.dtype.kind == "O":
        return
    chunk = int(np.prod(ds.chunks)) * ds.dtype.itemsize
    missing = ds.size * ds.dtype.itemsize - ds.id.get_storage_size()
    if missing > UNWRITTEN_CHUNKS * chunk:
        raise c.fail(f"/{path} declares {ds.shape} entries but stores far fewer")


def _integer(value: object) -> bool:
    dtype = getattr(value, "dtype", None)
    return dtype is not None and dtype.kind in "iu" and getattr(value, "ndim", 0) == 0


def _evaluations(c: Checker, n_tasks: int | None) -> None:
    group = "metrics/evaluations"
    c.dataset(f"{group}/phase", 1, "iu")
    for name, path in c.members(group):
        if name != "phase":
            metric = c.dataset(path, 2, "iuf")
            c.units(path)
            c.same_length(group, "phase", name)
            if n_tasks is not None and metric.shape[1] != n_tasks:
                raise c.fail(f"/{path} has {metric.shape[1]} task columns, n_tasks is {n_tasks}")


def _spikes(c: Checker, path: str) -> None:
    c.group(path)
    c.dataset(f"{path}/timestamps", 1, "f")
    c.dataset(f"{path}/node_ids", 1, "iu")
    c.same_length(path, "timestamps", "node_ids")
    _stored(c, f"{path}/timestamps")
    _stored(c, f"{path}/node_ids")
    _time_range(c, f"{path}/timestamps")
    n_nodes = c.file[path].attrs.get("n_nodes")
    if n_nodes is not None and not (_integer(n_nodes) and 0 <= int(n_nodes) <= MAX_NODES):
        raise c.fail(f"/{path} attribute n_nodes is {n_nodes!r}, expected 0..{MAX_NODES}")


def _report(c: Checker, path: str) -> None:
    c.dataset(f"{path}/data", 2, "iuf")
    c.units(f"{path}/data")
    c.dataset(f"{path}/time", 1, "f")
    c.same_length(path, "data", "time")
    _stored(c, f"{path}/data")
    _stored(c, f"{path}/time")
    _time_range(c, f"{path}/time")
    c.dataset(f"{path}/mapping/time", 1, "f")
    if c.file[f"{path}/mapping/time"].shape != (3,):
        raise c.fail(f"/{path}/mapping/time is not [start, stop, dt]")
    for name in ("node_ids", "index_pointers", "element_ids", "element_pos"):
        c.dataset(f"{path}/mapping/{name}", 1)
    columns = c.file[f"{path}/data"].shape[1]
    mapping = f"{path}/mapping"
    if c.file[f"{mapping}/node_ids"].shape[0] != columns:
        raise c.fail(f"/{mapping}/node_ids does not match the {columns} columns of data")
    if c.file[f"{mapping}/index_pointers"].shape[0] != columns + 1:
        raise c.fail(f"/{mapping}/index_pointers does not have {columns + 1} entries")


def _weights(c: Checker, path: str) -> None:
    values = c.dataset(f"{path}/values", None, "iuf")
    if values.ndim < 2:
        raise c.fail(f"/{path}/values has {values.ndim} dimensions, expected [snapshot × ...]")
    c.units(f"{path}/values")
    c.dataset(f"{path}/time", 1, "f")
    c.dataset(f"{path}/phase", 1, "iu")
    c.same_length(path, "values", "time", "phase")
    _stored(c, f"{path}/values")
    sparse = [name for name in ("pre", "post") if name in c.file[path]]
    if sparse:
        if len(sparse) == 1:
            missing = "post" if sparse == ["pre"] else "pre"
            raise c.fail(f"/{path}/{missing} missing")
        c.dataset(f"{path}/pre", 1, "iu")
        c.dataset(f"{path}/post", 1, "iu")
        if values.ndim != 2:
            raise c.fail(f"/{path}/values is not [snapshot × synapse] (it has pre and post)")
        c.same_length(path, "values", "pre", "post", axis_of={"values": 1})


def _sleep(c: Checker, name: str, path: str) -> None:
    if not name.isdigit():
        raise c.fail(f"/{path}: a sleep group is named by its phase index")
    group = c.group(path)
    for name, full in c.members(path):
        if isinstance(group[name], h5py.Group):  # a stage's diagnostics: sleep/<phase>/<step>
            _sleep(c, name, full)
        else:
            c.dataset(full)
    if "replay_events" in group:
        memories = c.dataset(f"{path}/replay_memories", 1, "OSU")
        for memory in memories.asstr()[()]:
            for suffix in ("", "_forward", "_reverse"):
                c.dataset(f"{path}/replay_rate_{memory}{suffix}", 0, "iuf")
