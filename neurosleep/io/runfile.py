"""Reading run files: :func:`open_run` returns a :class:`RunFile` with numpy arrays.

Times are in ms, as the files store them; each array's unit is also in its HDF5 ``units``
attribute. A file left by a killed run (``status == "running"``) reads like any other, up to its
last flushed block.

Examples
--------
>>> run = open_run("outputs/hopfield_dreaming_seed1.h5")          # doctest: +SKIP
>>> run.status, [p.name for p in run.phases()]                   # doctest: +SKIP
('complete', ['store', 'after_storage', 'dream', 'after_sleep'])
>>> run.evaluations().metrics["overlap"]                          # doctest: +SKIP
array([[0.50583333],
       [1.        ]])
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neurosleep.errors import RunFileError, SpecError
from neurosleep.io.checks import check_layout
from neurosleep.io.layout import FORMAT, FORMAT_VERSION
from neurosleep.yamlfile import load_yaml_text


@dataclass(frozen=True)
class Phase:
    """One row of ``/phases``; times in ms, ``task`` 0-based (−1: none)."""

    index: int
    name: str
    kind: str
    task: int
    start_time: float
    stop_time: float
    wall_seconds: float
    status: str


@dataclass(frozen=True)
class Stage:
    """One row of ``/stages``: a sub-phase of the staged sleep phase ``phase`` (its ``step``-th,
    0-based, in ``cycle``); times in ms."""

    index: int
    phase: int
    step: int
    cycle: int
    name: str
    kind: str
    start_time: float
    stop_time: float
    wall_seconds: float
    status: str


@dataclass(frozen=True)
class Spikes:
    """SONATA spikes of one population: ``times`` [n] in ms, ``node_ids`` [n]."""

    times: np.ndarray
    node_ids: np.ndarray


@dataclass(frozen=True)
class Report:
    """A sampled state variable: ``data`` [time × node] in ``units``, ``times`` [time] in ms."""

    times: np.ndarray
    data: np.ndarray
    node_ids: np.ndarray
    units: str


@dataclass(frozen=True)
class Weights:
    """Weight snapshots: ``values`` [snapshot × ...] in ``units``, taken at ``times`` (ms)."""

    times: np.ndarray
    phases: np.ndarray
    values: np.ndarray
    units: str
    pre: np.ndarray | None
    post: np.ndarray | None


@dataclass(frozen=True)
class Evaluations:
    """Test results: ``metrics[name]`` is [evaluation × task]; ``phases`` [evaluation]."""

    phases: np.ndarray
    metrics: dict[str, np.ndarray]
    units: dict[str, str]
    descriptions: dict[str, str]


def open_run(path: str | Path) -> RunFile:
    """Open a run file read-only; raise :class:`RunFileError` naming what is wrong."""
    return RunFile(path)


class RunFile:
    """Read access to one run file. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            mode = self.path.stat().st_mode
        except OSError as exc:
            raise RunFileError(f"{self.path}: {exc.strerror.lower()}") from None
        if not stat.S_ISREG(mode):  # a FIFO would block the open forever
            raise RunFileError(f"{self.path}: not a regular file")
        try:
            # locking=False: a run still being written can be inspected while it runs
            self.file = h5py.File(self.path, "r", locking=False)
        except OSError as exc:
            raise RunFileError(hdf5_problem(self.path, exc, "not a readable HDF5 file")) from None
        try:
            self._check()
        except BaseException:
            self.file.close()
            raise

    def _check(self) -> None:
        with read_errors(self.path):
            fmt = self.file.attrs.get("format")
            if fmt != FORMAT:
                raise RunFileError(
                    f"{self.path}: not a neurosleep run file (format attribute {fmt!r})"
                )
            version = self.file.attrs.get("format_version")
            if getattr(version, "dtype", None) is None or version.dtype.kind not in "iu":
                raise RunFileError(
                    f"{self.path}: root attribute format_version is {version!r}, expected an "
                    "integer (damaged, or not a neurosleep run file)"
                )
            if int(version) > FORMAT_VERSION:
                raise RunFileError(
                    f"{self.path}: written in run-file format {int(version)}, newer than this "
                    f"neurosleep reads ({FORMAT_VERSION}); upgrade neurosleep"
                )
            check_layout(self.file, str(self.path))

    def __enter__(self) -> RunFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    # ------------------------------------------------------------------ attributes, provenance
    @property
    def attrs(self) -> dict[str, Any]:
        return {key: _plain(value) for key, value in self.file.attrs.items()}

    @property
    def status(self) -> str:
        return str(self.file.attrs["status"])

    def provenance(self, key: str) -> str | None:
        """``protocol`` / ``model`` (YAML), ``environment`` (JSON), ``traceback`` if failed."""
        ds = self.file.get(f"provenance/{key}")
        return None if ds is None else ds.asstr()[()]

    def stored_protocol(self) -> dict[str, Any]:
        """``/provenance/protocol`` parsed (with the bounded YAML loader) as a mapping; ``{}``
        when absent. A damaged text raises :class:`RunFileError`."""
        text = self.provenance("protocol")
        if not text:
            return {}
        try:
            data, _ = load_yaml_text(text, "/provenance/protocol")
        except SpecError as exc:
            reason = exc.problems[0].message if exc.problems else str(exc)
            raise RunFileError(f"{self.path}: /provenance/protocol: {reason} (damaged)") from None
        return data if isinstance(data, dict) else {}

    def stored_model(self) -> dict[str, Any]:
        """``/provenance/model`` (JSON) as a mapping; ``{}`` when absent or not JSON text of a
        mapping (older files stored YAML). Damaged JSON raises :class:`RunFileError`."""
        text = self.provenance("model") or ""
        if not text.lstrip().startswith("{"):
            return {}
        try:
            model = json.loads(text)
        except ValueError:
            raise RunFileError(
                f"{self.path}: /provenance/model is not valid JSON (damaged)"
            ) from None
        return model if isinstance(model, dict) else {}

    def environment(self) -> dict[str, Any]:
        try:
            environment = json.loads(self.provenance("environment") or "{}")
        except ValueError:
            raise RunFileError(f"{self.path}: /provenance/environment is not JSON") from None
        return environment if isinstance(environment, dict) else {}

    # ------------------------------------------------------------------ phases
    def phases(self) -> list[Phase]:
        rows = self.file["phases"][:]
        return [
            Phase(
                index=int(r["index"]),
                name=_text(r["name"]),
                kind=_text(r["kind"]),
                task=int(r["task"]),
                start_time=float(r["start_time"]),
                stop_time=float(r["stop_time"]),
                wall_seconds=float(r["wall_seconds"]),
                status=_text(r["status"]),
            )
            for r in rows
        ]

    def wall_seconds(self) -> float:
        """The wall time (s) the run's phases took: the sum of their ``wall_seconds``."""
        return float(self.file["phases"]["wall_seconds"].sum())

    def stages(self) -> list[Stage]:
        """Sub-phases of staged sleep phases (``[]`` for a run without them)."""
        if "stages" not in self.file:
            return []
        return [
            Stage(
                *(int(r[n]) for n in ("index", "phase", "step", "cycle")),
                *(_text(r[n]) for n in ("name", "kind")),
                *(float(r[n]) for n in ("start_time", "stop_time", "wall_seconds")),
                _text(r["status"]),
            )
            for r in self.file["stages"][:]
        ]

    # ------------------------------------------------------------------ spikes
    def populations(self) -> list[str]:
        return sorted(self.file.get("spikes", {}))

    def spikes(self, population: str) -> Spikes:
        group = self._group("spikes", population, "population")
        return Spikes(times=group["timestamps"][:], node_ids=group["node_ids"][:])

    def spike_count(self, population: str) -> int:
        return int(self._group("spikes", population, "population")["timestamps"].shape[0])

    # ------------------------------------------------------------------ reports
    def reports(self) -> list[tuple[str, str]]:
        """(report name, population) pairs."""
        reports = self.file.get("reports", {})
        return sorted((name, pop) for name in reports for pop in reports[name])

    def report(self, name: str, population: str) -> Report:
        group = self._group("reports", f"{name}/{population}", "report")
        return Report(
            times=group["time"][:],
            data=group["data"][:],
            node_ids=group["mapping/node_ids"][:],
            units=str(group["data"].attrs["units"]),
        )

    # ------------------------------------------------------------------ weights
    def projections(self) -> list[str]:
        return sorted(self.file.get("weights", {}))

    def weights(self, projection: str) -> Weights:
        group = self._group("weights", projection, "projection")
        return Weights(
            times=group["time"][:],
            phases=group["phase"][:],
            values=group["values"][:],
            units=str(group["values"].attrs["units"]),
            pre=group["pre"][:] if "pre" in group else None,
            post=group["post"][:] if "post" in group else None,
        )

    # ------------------------------------------------------------------ metrics
    def evaluations(self) -> Evaluations:
        group = self.file["metrics/evaluations"]
        names = [n for n in group if n != "phase"]
        return Evaluations(
            phases=group["phase"][:],
            metrics={n: group[n][:] for n in names},
            units={n: str(group[n].attrs["units"]) for n in names},
            descriptions={n: str(group[n].attrs.get("description", "")) for n in names},
        )

    def scalars(self) -> list[tuple[int, str, float, str]]:
        """(phase, name, value, units) rows of ``/metrics/scalars``."""
        return [
            (int(r["phase"]), _text(r["name"]), float(r["value"]), _text(r["units"]))
            for r in self.file["metrics/scalars"][:]
        ]

    def arrays(self, path: str) -> dict[str, np.ndarray]:
        """All datasets directly under a group, e.g. ``arrays("sleep/2")``."""
        group = self.file.get(path)
        if not isinstance(group, h5py.Group):
            raise RunFileError(f"{self.path}: no group /{path}")
        return {k: v[()] for k, v in group.items() if isinstance(v, h5py.Dataset)}

    def reading(self) -> AbstractContextManager[None]:
        """``with run.reading():`` HDF5 read failures become a :class:`RunFileError` naming
        this file (a file damaged inside its data, or caught mid-write)."""
        return read_errors(self.path)

    def _group(self, kind: str, name: str, what: str) -> h5py.Group:
        group = self.file.get(f"{kind}/{name}")
        if group is None:
            known = ", ".join(sorted(self.file.get(kind, {}))) or "none"
            raise RunFileError(f"{self.path}: no {what} {name!r} in /{kind} (recorded: {known})")
        return group


@contextmanager
def read_errors(path: Path) -> Iterator[None]:
    """Turn an HDF5 read failure (an ``OSError`` without ``errno``: h5py's own) or an HDF5
    file-locking refusal into a one-line :class:`RunFileError` naming ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.errno is not None and not _locking(exc):
            raise  # a file-system error, e.g. writing an output: not this run file's
        raise RunFileError(hdf5_problem(path, exc, "could not be read")) from None


def hdf5_problem(path: Path, exc: OSError, what: str) -> str:
    """One line for an h5py error on ``path``: the locking case says what to do."""
    if _locking(exc):
        return (
            f"{path}: HDF5 file locking refused access: another program has this file open "
            "(close it, or set HDF5_USE_FILE_LOCKING=FALSE if that program only reads it)"
        )
    message = " ".join(str(exc).split())
    return f"{path}: {what} ({message}; damaged, truncated, or still being written)"


def _locking(exc: OSError) -> bool:
    return "unable to lock file" in str(exc)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return _text(value) if isinstance(value, bytes) else value
