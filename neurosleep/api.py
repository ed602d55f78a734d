"""The Python API: run protocols, read run files as pandas tables and xarray arrays.

:func:`run` runs a protocol (a file, or a shipped protocol's name) and returns a :class:`Run`;
:func:`open` returns the :class:`Run` of an existing run file; :func:`compare` tabulates many.
A :class:`Run` opens its file for each call and closes it again, so a notebook holds no HDF5
handle between cells. Times are in ms; every table carries its units. docs/api.md is the guide.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurosleep.errors import RunFileError
from neurosleep.io.runfile import RunFile, Spikes, open_run

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr


def run(
    protocol: str | Path,
    *,
    overwrite: bool = False,
    progress: bool | str = "auto",
    **overrides: Any,
) -> Run:
    """Run a protocol and return its :class:`Run`.

    ``protocol`` is a protocol file or the name of a shipped protocol (``"hopfield_dreaming"``).
    ``overrides`` set protocol keys as ``neurosleep run --set`` does: ``seed=2``,
    ``output="outputs/x.h5"``; a dotted key is written with ``__`` (``schedule__dream__t=100``
    sets ``schedule.dream.t``) or passed as ``**{"schedule.dream.t": 100}``. A relative output
    path is relative to the current directory. ``progress``: ``auto`` (bars only when stderr is
    a terminal), ``always``, ``never``. Raises :class:`~neurosleep.errors.SpecError` for a bad
    protocol, :class:`~neurosleep.errors.OutputError` for an existing run file without
    ``overwrite=True``, and
    :class:`neurosleep.runner.RunFailed` if the run fails (its file then holds the traceback).
    """
    from neurosleep.examples import protocol_path
    from neurosleep.protocol import load_protocol
    from neurosleep.runner import run as run_protocol

    texts = [f"{key.replace('__', '.')}={_yaml_value(v)}" for key, v in overrides.items()]
    loaded = load_protocol(protocol_path(protocol), texts)
    result = run_protocol(loaded, overwrite=overwrite, progress=progress)
    return Run(result.path, headline=result.headline)


def open(path: str | Path) -> Run:  # noqa: A001 - neurosleep.open mirrors builtins.open
    """The :class:`Run` of an existing run file; raises :class:`~neurosleep.errors.RunFileError`
    naming the path and what is wrong if it is not a readable neurosleep run file."""
    with open_run(path):
        pass
    return Run(path)


def compare(paths: Iterable[str | Path], by: Sequence[str] = ("protocol",)) -> pd.DataFrame:
    """Final metrics of many runs, grouped (``protocol``, ``engine``, ``seed``): one row per
    group, metric and quantity (ACC, BWT, FWT, forgetting, their before-sleep variants, the
    final value of each task, as ``neurosleep compare`` knows them) with the mean, the SEM over
    runs (sample SD / √n; NaN for one run) and n. Quantities no run defines are left out, and so
    are runs that did not complete (with a warning); a file that is not a run file raises
    :class:`~neurosleep.errors.RunFileError`."""
    import pandas as pd

    from neurosleep.analysis.compare import group_runs, load

    runs = []
    for result in map(load, paths):  # raises RunFileError naming an unreadable file
        if result.status == "complete":
            runs.append(result)
        else:
            warnings.warn(f"left out {result.path}: status {result.status}", stacklevel=2)
    rows = []
    for group in group_runs(runs, by):
        metrics = dict.fromkeys(m for r in group.runs for m in r.final)
        for metric in metrics:
            for quantity in dict.fromkeys(q for r in group.runs for q in r.final.get(metric, {})):
                mean, sem, n = group.mean_sem(metric, quantity)
                if n:
                    rows.append((*group.key, metric, quantity, mean, sem, n))
    return pd.DataFrame(rows, columns=[*by, "metric", "quantity", "mean", "sem", "n"])


class Run:
    """One run file. Each method reads what it needs and closes the file again.

    Attributes: ``path``; ``headline`` (the result line a run printed; ``None`` for a file
    opened with :func:`open`).
    """

    def __init__(self, path: str | Path, headline: str | None = None) -> None:
        self.path = Path(path)
        self.headline = headline

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _open(self) -> RunFile:
        return open_run(self.path)

    # ------------------------------------------------------------------ what it is
    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes: name, seed, engine, device, status, format_version, created, ..."""
        with self._open() as f:
            return f.attrs

    @property
    def status(self) -> str:
        """``complete``, ``running`` (still going, or killed), ``failed`` or ``interrupted``."""
        return str(self.attrs["status"])

    def protocol(self) -> str:
        """The fully resolved protocol the run executed (YAML text)."""
        with self._open() as f:
            return f.provenance("protocol") or ""

    def phases(self) -> pd.DataFrame:
        """One row per phase: index, name, kind, task (−1: none), start_ms, stop_ms, wall_s,
        status."""
        import pandas as pd

        with self._open() as f:
            phases = f.phases()
        return pd.DataFrame(
            [astuple(p) for p in phases],  # Phase's fields, in order
            columns=["index", "name", "kind", "task", "start_ms", "stop_ms", "wall_s", "status"],
        )

    # ------------------------------------------------------------------ tables
    def evaluations(self) -> pd.DataFrame:
        """Every test result, tidy: phase (name), phase_index, task (0-based), metric, value,
        unit. One row per test phase × task × metric; tasks a test did not evaluate are left
        out."""
        import pandas as pd

        with self._open() as f:
            names = {p.index: p.name for p in f.phases()}
            ev = f.evaluations()
        rows = [
            (names.get(int(i), str(i)), int(i), task, metric, float(value), ev.units[metric])
            for metric, values in ev.metrics.items()
            for i, row in zip(ev.phases, values, strict=True)
            for task, value in enumerate(row)
            if np.isfinite(value)
        ]
        return _tidy(pd.DataFrame(rows, columns=TIDY))

    def metrics(self) -> pd.DataFrame:
        """Per-phase scalars (loss, rates, weight change, sleep diagnostics), tidy: phase,
        phase_index, task (the phase's task, −1: none), metric, value, unit."""
        import pandas as pd

        with self._open() as f:
            phases = {p.index: (p.name, p.task) for p in f.phases()}
            scalars = f.scalars()
        rows = []
        for i, name, value, unit in scalars:
            phase, task = phases.get(i, ("", -1))  # -1: recorded before the first phase
            rows.append((phase, i, task, name, value, unit))
        return _tidy(pd.DataFrame(rows, columns=TIDY))

    def final(self) -> pd.DataFrame:
        """Final continual-learning metrics per evaluated metric: metric, quantity (ACC, BWT,
        FWT, forgetting, AIA), value, unit (docs/analysis.md defines them). Quantities that are
        undefined for this run (BWT of a single task) are left out."""
        import pandas as pd

        s = self.summary(spikes=False)
        rows = [
            (metric, quantity, float(value), values["units"])
            for metric, values in s["final"].items()
            for quantity, value in values.items()
            if isinstance(value, float | int) and np.isfinite(value)
        ]
        return pd.DataFrame(rows, columns=["metric", "quantity", "value", "unit"])

    def accuracy_matrix(self, metric: str | None = None) -> pd.DataFrame:
        """The accuracy / retention matrix R of ``metric`` (default: the first evaluated one).

        Rows: ``start`` (before any training), then ``after task k``; columns: tasks 0..T−1
        (0-based, as everywhere in the API). NaN where no test was run. ``df.attrs`` holds
        ``metric`` and ``unit``.
        """
        import pandas as pd

        from neurosleep.analysis.summary import accuracy_matrix

        with self._open() as f:
            phases, ev = f.phases(), f.evaluations()
            n_tasks = f.attrs.get("n_tasks")
        if not ev.metrics:
            raise RunFileError(f"{self.path}: the run recorded no test results")
        metric = metric or next(iter(ev.metrics))
        if metric not in ev.metrics:
            raise RunFileError(
                f"{self.path}: no evaluated metric {metric!r} (recorded: {', '.join(ev.metrics)})"
            )
        n_tasks = int(n_tasks if n_tasks is not None else ev.metrics[metric].shape[1])
        R, _ = accuracy_matrix(phases, ev, metric, n_tasks)
        frame = pd.DataFrame(
            R,
            index=pd.Index(["start"] + [f"after task {k}" for k in range(n_tasks)], name="row"),
            columns=pd.Index(range(n_tasks), name="task"),
        )
        frame.attrs.update(metric=metric, unit=ev.units[metric])
        return frame

    def summary(self, **options: Any) -> dict[str, Any]:
        """What ``neurosleep summary`` prints, as plain data; ``options`` as
        :func:`neurosleep.analysis.summary.summarize` takes them."""
        from neurosleep.analysis.summary import summarize

        with self._open() as f:
            return summarize(f, **options)

    # ------------------------------------------------------------------ arrays
    def spikes(
        self,
        population: str,
        window: tuple[float, float] | None = None,
        *,
        neo: bool = False,
    ) -> Spikes | Any:
        """Spikes of ``population`` in ``window`` = (start, stop) ms, stop excluded (default:
        all): a :class:`~neurosleep.io.runfile.Spikes` with ``times`` (ms) and ``node_ids``
        arrays, or with ``neo=True`` one Neo ``SpikeTrain`` per neuron (``formats`` extra)."""
        from neurosleep.io.blocks import read_window
        from neurosleep.io.neo import spiketrains

        with self._open() as f:
            if neo:
                start, stop = window if window is not None else (None, None)
                return spiketrains(f, population, start, stop)
            if window is None:
                return f.spikes(population)
            times, ids = read_window(f._group("spikes", population, "population"), *window)
            return Spikes(times=times, node_ids=ids)

    def weights(self, projection: str, phase: str | int | None = None) -> xr.DataArray:
        """Weight snapshots of ``projection`` as an xarray ``DataArray`` (``attrs['units']``).

        ``phase`` (name or index): the last snapshot taken in that phase, dims (post, pre) for a
        dense matrix or (synapse,) with ``pre``/``post`` coordinates for a sparse projection;
        ``None``: every snapshot, with a leading ``snapshot`` dim and its ``time`` (ms) and
        ``phase`` coordinates (phase −1, name "": taken before the first phase).
        """
        import xarray as xr

        with self._open() as f:
            w = f.weights(projection)
            phase_names = {p.index: p.name for p in f.phases()}
        shape = w.values.shape[1:]
        if w.pre is not None:
            dims: tuple[str, ...] = ("synapse",)
            coords: dict[str, Any] = {"pre": ("synapse", w.pre), "post": ("synapse", w.post)}
        else:
            axes = tuple(f"axis_{k}" for k in range(len(shape)))
            dims = ("post", "pre") if len(shape) == 2 else axes
            coords = {}
        attrs = {"units": w.units, "projection": projection, "run": str(self.path)}
        if phase is None:
            return xr.DataArray(
                w.values,
                dims=("snapshot", *dims),
                coords=coords
                | {
                    "time": ("snapshot", w.times, {"units": "ms"}),
                    "phase": ("snapshot", w.phases),
                    "phase_name": ("snapshot", [phase_names.get(int(i), "") for i in w.phases]),
                },
                attrs=attrs,
                name=projection,
            )
        index = self._phase_index(phase, phase_names)
        taken = np.flatnonzero(w.phases == index)
        if not taken.size:
            known = ", ".join(phase_names.get(i, str(i)) for i in dict.fromkeys(w.phases.tolist()))
            raise RunFileError(
                f"{self.path}: no snapshot of {projection!r} in phase {phase!r} "
                f"(snapshots in: {known})"
            )
        k = int(taken[-1])
        attrs |= {"time_ms": float(w.times[k]), "phase": phase_names[index]}
        return xr.DataArray(w.values[k], dims=dims, coords=coords, attrs=attrs, name=projection)

    def report(self, name: str, population: str) -> xr.DataArray:
        """A sampled state variable as an xarray ``DataArray`` [time × node]: ``time`` in ms,
        ``node_id`` coordinates, the variable's unit in ``attrs['units']``."""
        import xarray as xr

        with self._open() as f:
            r = f.report(name, population)
        return xr.DataArray(
            r.data,
            dims=("time", "node"),
            coords={"time": ("time", r.times, {"units": "ms"}), "node_id": ("node", r.node_ids)},
            attrs={"units": r.units, "report": name, "population": population},
            name=name,
        )

    def _phase_index(self, phase: str | int, names: dict[int, str]) -> int:
        if isinstance(phase, int | np.integer):
            if int(phase) in names:
                return int(phase)
        else:
            matches = [i for i, n in names.items() if n == phase]
            if matches:
                return matches[-1]
        raise RunFileError(
            f"{self.path}: no phase {phase!r} (phases: "
            + ", ".join(f"{i} {n}" for i, n in names.items())
            + ")"
        )


#: columns of the tidy tables
TIDY = ["phase", "phase_index", "task", "metric", "value", "unit"]


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({"phase_index": "int64", "task": "int64", "value": "float64"})


def _yaml_value(value: Any) -> str:
    """A Python value as ``--set`` reads it (YAML; JSON is YAML)."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, np.generic):
        value = value.item()
    return json.dumps(value)
