"""Export a run file to NWB (pynwb; the ``formats`` extra).

- ``/units``: one unit per neuron of every spiking population, ``spike_times`` in seconds, one
  ``obs_intervals`` entry (the recorded time: Neo's NWB reader needs exactly one), and the
  columns ``population`` and ``node_id``;
- ``/acquisition/<report>_<population>``: a ``TimeSeries`` per report (time-first data in its
  units; ``starting_time`` + ``rate`` when evenly sampled, else timestamps; s);
- ``/intervals/epochs``: one epoch per phase, tagged ``<kind>:<name>``, with the columns
  ``phase_index``, ``phase_name``, ``kind`` and ``task``;
- processing module ``weights``: a ``TimeSeries`` of snapshots per projection (and a table of its
  ``pre``/``post`` indices when sparse); processing module ``metrics``: the evaluations table
  (one row per test phase, one [task] array column per metric) and the per-phase scalars.

NWB is an export, not the live format: the whole file is written at the end, and a population's
spikes are grouped per neuron in memory.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from neurosleep.io.blocks import population_size, read_window, run_stop
from neurosleep.io.neo import require
from neurosleep.io.runfile import RunFile


def export_nwb(run: RunFile, path: str | Path) -> Path:
    """Write ``run`` as an NWB file at ``path`` (overwritten) and return the path."""
    pynwb = require("pynwb")
    from hdmf.common import DynamicTable, VectorData

    attrs = run.attrs
    created = _dt.datetime.fromisoformat(str(attrs.get("created", "1970-01-01T00:00:00+00:00")))
    nwb = pynwb.NWBFile(
        session_description=f"neurosleep run {attrs.get('name', run.path.stem)}",
        identifier=f"{run.path.stem}-{attrs.get('created', '')}",
        session_start_time=created,
        source_script=run.provenance("protocol") or "",
        source_script_file_name=f"{attrs.get('name', 'protocol')}.yaml",
        notes=f"seed {attrs.get('seed')}, engine {attrs.get('engine')}, status {run.status}",
    )
    stop_ms = run_stop(run)
    _units(nwb, run, stop_ms)
    _reports(nwb, run, pynwb)
    _epochs(nwb, run, stop_ms)
    _weights(nwb, run, pynwb, DynamicTable, VectorData)
    _metrics(nwb, run, DynamicTable, VectorData)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def _units(nwb, run: RunFile, stop_ms: float) -> None:
    if not run.populations():
        return
    nwb.add_unit_column("population", "spiking population of the neuron")
    nwb.add_unit_column("node_id", "index of the neuron within its population")
    for population in run.populations():
        times, ids = read_window(run.file[f"spikes/{population}"], -np.inf, np.inf)
        order = np.argsort(ids, kind="stable")
        times, ids = times[order] / 1000.0, ids[order]
        n = population_size(run, population)
        bounds = np.searchsorted(ids, np.arange(n + 1))
        for k in range(n):
            nwb.add_unit(
                spike_times=times[bounds[k] : bounds[k + 1]],
                obs_intervals=[[0.0, stop_ms / 1000.0]],
                population=population,
                node_id=k,
            )


def _reports(nwb, run: RunFile, pynwb) -> None:
    for name, population in run.reports():
        report = run.report(name, population)
        nwb.add_acquisition(
            pynwb.TimeSeries(
                name=f"{name}_{population}",
                data=report.data,
                unit=report.units,
                **_timing(report.times),
                description=f"report {name!r} of population {population!r}; columns are node "
                f"ids {report.node_ids[:10].tolist()}{'...' if report.node_ids.size > 10 else ''}",
            )
        )


def _timing(times_ms: np.ndarray) -> dict[str, object]:
    """``starting_time`` + ``rate`` for evenly sampled times (Neo reads an AnalogSignal), else
    ``timestamps`` (an IrregularlySampledSignal); seconds and Hz."""
    if times_ms.size >= 2:
        dt = (times_ms[-1] - times_ms[0]) / (times_ms.size - 1)
        even = np.allclose(times_ms, times_ms[0] + dt * np.arange(times_ms.size), atol=1e-6 * dt)
        if even and dt > 0:
            return {"starting_time": float(times_ms[0]) / 1000.0, "rate": 1000.0 / dt}
    return {"timestamps": times_ms / 1000.0}


def _epochs(nwb, run: RunFile, stop_ms: float) -> None:
    phases = run.phases()
    if not phases:
        return
    for column, description in (
        ("phase_index", "index of the phase in the schedule"),
        ("phase_name", "name of the phase"),
        ("kind", "wake, sleep or test"),
        ("task", "0-based task index, -1 for none"),
    ):
        nwb.add_epoch_column(column, description)
    for p in phases:
        stop = p.stop_time if np.isfinite(p.stop_time) else stop_ms
        nwb.add_epoch(
            start_time=p.start_time / 1000.0,
            stop_time=stop / 1000.0,
            tags=[f"{p.kind}:{p.name}"],  # one tag: Neo reads tags as one label
            phase_index=p.index,
            phase_name=p.name,
            kind=p.kind,
            task=p.task,
        )


def _weights(nwb, run: RunFile, pynwb, DynamicTable, VectorData) -> None:
    if not run.projections():
        return
    module = nwb.create_processing_module("weights", "weight snapshots per projection")
    for projection in run.projections():
        w = run.weights(projection)
        module.add(
            pynwb.TimeSeries(
                name=projection,
                data=w.values,
                unit=w.units,
                timestamps=w.times / 1000.0,
                description=f"snapshots of {projection}; phase index of each: {w.phases.tolist()}",
            )
        )
        if w.pre is not None:
            module.add(
                DynamicTable(
                    name=f"{projection}_synapses",
                    description=f"pre- and post-synaptic node ids of the columns of {projection}",
                    columns=[
                        VectorData(name="pre", description="pre-synaptic node id", data=w.pre),
                        VectorData(name="post", description="post-synaptic node id", data=w.post),
                    ],
                )
            )


def _metrics(nwb, run: RunFile, DynamicTable, VectorData) -> None:
    evaluations = run.evaluations()
    scalars = run.scalars()
    if not len(evaluations.phases) and not scalars:
        return
    module = nwb.create_processing_module("metrics", "test results and per-phase scalars")
    if len(evaluations.phases):
        columns = [
            VectorData(name="phase", description="phase index of the test", data=evaluations.phases)
        ]
        for metric, values in evaluations.metrics.items():
            text = f"{evaluations.descriptions[metric]} ({evaluations.units[metric]}), per task"
            columns.append(VectorData(name=metric, description=text, data=values))
        module.add(
            DynamicTable(
                name="evaluations", description="accuracy / retention per task", columns=columns
            )
        )
    if scalars:
        phase, name, value, units = (list(c) for c in zip(*scalars, strict=True))
        module.add(
            DynamicTable(
                name="scalars",
                description="per-phase scalars",
                columns=[
                    VectorData(name="phase", description="phase index", data=phase),
                    VectorData(name="quantity", description="what the value is", data=name),
                    VectorData(name="value", description="value", data=value),
                    VectorData(name="units", description="units", data=units),
                ],
            )
        )
