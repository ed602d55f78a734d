"""Export a run file to NWB (pynwb; the ``formats`` extra).

- ``/general``: ``experimenter``, ``institution``, ``lab``, ``keywords``,
  ``experiment_description``, ``related_publications`` and the ``Subject`` from the protocol's
  ``metadata`` (docs/protocols.md); without them the subject is the simulated network itself
  (species NCBI "synthetic construct", born at the run's start) and the experiment description
  is the protocol's ``description``;
- ``/units``: one unit per neuron of every spiking population, ``spike_times`` in seconds, one
  ``obs_intervals`` entry (the recorded time: Neo's NWB reader needs exactly one), the columns
  ``population`` and ``node_id``, and ``_name`` = ``<population>:<node id>``, the column Neo's
  reader turns into ``SpikeTrain.name`` (:func:`neurosleep.io.neo.read_nwb` annotates from it);
  ``resolution`` is the model's time step (else the smallest gap between recorded spike times);
- ``/acquisition/<report>_<population>``: a ``TimeSeries`` per report (time-first data in its
  units; ``starting_time`` + ``rate`` when evenly sampled, else timestamps; s);
- ``/intervals/epochs``: one epoch per phase, tagged ``<kind>:<name>``, with the columns
  ``phase_index``, ``phase_name``, ``kind`` and ``task``;
- ``/intervals/sleep_stages`` (only for a run with staged sleep, ``/stages``): one interval per
  stage run, tagged ``<stage><cycle + 1>`` (``nrem2``), with the columns ``phase_index``,
  ``step``, ``cycle``, ``stage``, ``algorithm`` and ``status``;
- processing module ``weights``: a table of snapshots per projection, one row per snapshot
  (``time`` in s, ``phase``, ``values`` [synapses] or the dense shape), not a ``TimeSeries``:
  a few snapshots of many synapses are not a signal sampled in time (and nwbinspector would flag
  the orientation); a table of ``pre``/``post`` indices when sparse; processing module
  ``metrics``: the evaluations table (one row per test phase, one [task] array column per
  metric) and the per-phase scalars.

NWB is an export, not the live format: the whole file is written at the end, and a population's
spikes are grouped per neuron in memory.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from neurosleep.errors import RunFileError
from neurosleep.io.blocks import BLOCK, population_size, read_window, run_stop
from neurosleep.io.neo import require
from neurosleep.io.runfile import RunFile


def export_nwb(run: RunFile, path: str | Path) -> Path:
    """Write ``run`` as an NWB file at ``path`` (overwritten) and return the path."""
    pynwb = require("pynwb")
    from hdmf.common import DynamicTable, VectorData

    attrs = run.attrs
    protocol = run.stored_protocol()
    model = run.stored_model()
    name = str(attrs.get("name", protocol.get("name", run.path.stem)))
    try:
        created = _dt.datetime.fromisoformat(str(attrs.get("created", "1970-01-01T00:00:00+00:00")))
    except ValueError:
        raise RunFileError(f"{run.path}: root attribute created is not an ISO 8601 time") from None
    meta = protocol.get("metadata") or {}
    if not isinstance(meta, dict) or not isinstance(meta.get("subject") or {}, dict):
        raise RunFileError(f"{run.path}: /provenance/protocol: metadata is not a mapping (damaged)")
    try:
        nwb = _header(pynwb, run, protocol, meta, model, name, created)
    except (TypeError, ValueError) as exc:  # pynwb's checks of the stored metadata's types
        reason = " ".join(str(exc).split())
        raise RunFileError(
            f"{run.path}: /provenance/protocol: metadata does not fit NWB ({reason})"
        ) from None
    stop_ms = run_stop(run)
    _units(nwb, run, stop_ms, model)
    _reports(nwb, run, pynwb)
    _epochs(nwb, run, stop_ms)
    _sleep_stages(nwb, run, stop_ms)
    _weights(nwb, run, DynamicTable, VectorData)
    _metrics(nwb, run, DynamicTable, VectorData)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def _header(pynwb, run: RunFile, protocol: dict, meta: dict, model: dict, name: str, created):
    """The NWB file with its session header: provenance and the protocol's ``metadata``."""
    attrs = run.attrs
    return pynwb.NWBFile(
        session_description=protocol.get("description") or f"neurosleep run {name}",
        identifier=f"{run.path.stem}-{attrs.get('created', '')}",
        session_start_time=created,
        source_script=run.provenance("protocol") or "",
        source_script_file_name=f"{name}.yaml",
        notes=f"seed {attrs.get('seed')}, engine {attrs.get('engine')}, status {run.status}",
        experimenter=meta.get("experimenter") or None,
        institution=meta.get("institution"),
        lab=meta.get("lab"),
        keywords=meta.get("keywords") or None,
        experiment_description=meta.get("experiment_description")
        or protocol.get("description")
        or f"neurosleep protocol {name}",
        related_publications=meta.get("related_publications") or None,
        subject=_subject(pynwb, meta.get("subject") or {}, name, attrs, model, created),
    )


SYNTHETIC = "http://purl.obolibrary.org/obo/NCBITaxon_32630"  # NCBI "synthetic construct"


def _subject(pynwb, given: dict, name: str, attrs: dict, model: dict, created) -> object:
    """The protocol's ``metadata.subject``; what it leaves out describes the simulated network."""
    fields = {k: v for k, v in given.items() if v is not None}
    fields.setdefault("subject_id", f"{name}-seed{attrs.get('seed')}")
    fields.setdefault("sex", "U")
    fields.setdefault("species", SYNTHETIC)
    fields.setdefault(
        "description",
        f"simulated network: model {model.get('name', '?')!r} ({model.get('kind', '?')}), "
        f"engine {attrs.get('engine')}, seed {attrs.get('seed')}",
    )
    if "age" not in fields:
        fields["date_of_birth"] = created  # the network exists from the run's start
    return pynwb.file.Subject(**fields)


def _units(nwb, run: RunFile, stop_ms: float, model: dict) -> None:
    if not run.populations():
        return
    nwb.units = _units_table(run, model)
    nwb.add_unit_column("population", "spiking population of the neuron")
    nwb.add_unit_column("node_id", "index of the neuron within its population")
    nwb.add_unit_column("_name", "<population>:<node_id>; Neo's NWB reader reads it as the name")
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
                _name=f"{population}:{k}",
            )


def _units_table(run: RunFile, model: dict):
    from pynwb.misc import Units

    return Units(
        name="units",
        description="spikes of every neuron of each recorded population (simulated)",
        resolution=spike_resolution_ms(run, model) / 1000.0,
    )


def spike_resolution_ms(run: RunFile, model: dict) -> float:
    """Spike-time resolution in ms: the model's time step (``dt``), else the smallest positive
    gap between distinct recorded spike times (first block of each population)."""
    if "dt" in model:
        return float(model["dt"])
    gaps = []
    for population in run.populations():
        ts = run.file[f"spikes/{population}/timestamps"][:BLOCK]
        steps = np.diff(np.unique(ts))  # unique: sorted, so every gap is positive
        if steps.size:
            gaps.append(float(steps.min()))
    return min(gaps, default=1.0)


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


def _sleep_stages(nwb, run: RunFile, stop_ms: float) -> None:
    stages = run.stages()
    if not stages:
        return
    from pynwb.epoch import TimeIntervals

    table = TimeIntervals(
        name="sleep_stages", description="sub-phases of staged sleep phases (/stages)"
    )
    for column, description in (
        ("phase_index", "index of the staged sleep phase in the schedule"),
        ("step", "0-based position within that phase: cycle x stages + stage"),
        ("cycle", "0-based cycle"),
        ("stage", "name of the stage"),
        ("algorithm", "sleep algorithm of the stage"),
        ("status", "running, complete, failed or interrupted"),
    ):
        table.add_column(column, description)
    for st in stages:
        stop = st.stop_time if np.isfinite(st.stop_time) else stop_ms
        table.add_interval(
            start_time=st.start_time / 1000.0,
            stop_time=stop / 1000.0,
            tags=[f"{st.name}{st.cycle + 1}"],
            phase_index=st.phase,
            step=st.step,
            cycle=st.cycle,
            stage=st.name,
            algorithm=st.kind,
            status=st.status,
        )
    nwb.add_time_intervals(table)


def _weights(nwb, run: RunFile, DynamicTable, VectorData) -> None:
    if not run.projections():
        return
    module = nwb.create_processing_module("weights", "weight snapshots per projection")
    for projection in run.projections():
        w = run.weights(projection)
        shape = "synapses" if w.pre is not None else " × ".join(map(str, w.values.shape[1:]))
        module.add(
            DynamicTable(
                name=projection,
                description=f"weight snapshots of {projection}, one row per snapshot",
                columns=[
                    VectorData(
                        name="time", description="time of the snapshot (s)", data=w.times / 1000.0
                    ),
                    VectorData(
                        name="phase", description="index of the phase that took it", data=w.phases
                    ),
                    VectorData(
                        name="values", description=f"weights ({w.units}) [{shape}]", data=w.values
                    ),
                ],
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
