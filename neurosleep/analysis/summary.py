"""Per-phase and per-test summary of a run file, as plain data (JSON-ready) and text/CSV.

- per phase: duration, and per spiking population the rate distribution (Hz), mean CV of ISI
  and synchrony (:mod:`neurosleep.analysis.spikes`); per projection the weight change;
- per test: each metric's row of the accuracy / retention matrix;
- final: ACC, BWT, FWT, max-based forgetting and average incremental accuracy of each metric
  (:mod:`neurosleep.analysis.metrics`) over the matrix :func:`accuracy_matrix` builds.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from neurosleep.analysis import metrics as M
from neurosleep.analysis.replay import ReplaySettings, phase_rate_and_events, replay_settings
from neurosleep.analysis.spikes import resolve_backend, window_stats
from neurosleep.io.blocks import population_size
from neurosleep.io.runfile import Evaluations, Phase, RunFile, open_run


def accuracy_matrix(
    phases: list[Phase],
    evaluations: Evaluations,
    metric: str,
    n_tasks: int,
    after_training: Literal["last", "first"] = "last",
) -> tuple[np.ndarray, list[int | None]]:
    """The matrix ``R`` [T + 1, T] with the "at start" row, and the evaluation row behind each.

    Row 0 is the last test before the first wake phase; row k is the last test after the last
    wake phase of task k−1 (0-based; a wake phase with task −1 trains every task) and before
    the first wake phase of the next task — after the task's sleep when a test follows it.
    ``after_training="first"`` takes the first such test instead for rows 1..T−1 (before sleep
    when a test precedes it); row 0 and the final row T stay. Rows with no such test are NaN.
    A run without wake phases (nothing trained, e.g. CUBA) has only its last row: the last test.
    """
    values = evaluations.metrics[metric]
    eval_phase = np.asarray(evaluations.phases)
    wakes = [(p.index, p.task) for p in phases if p.kind == "wake"]
    first_wake = min((i for i, _ in wakes), default=math.inf)
    windows: list[tuple[float | None, float | None]] = [(-math.inf, first_wake)]
    for k in range(n_tasks):
        mine = [i for i, t in wakes if t in (k, -1)]
        later = [i for i, t in wakes if t > k]
        end = max(mine, default=None)
        windows.append((end, min(later, default=math.inf)) if end is not None else (None, None))
    if not wakes:
        windows = [(None, None)] * n_tasks + [(-math.inf, math.inf)]
    R = np.full((n_tasks + 1, n_tasks), np.nan)
    rows: list[int | None] = []
    for k, (lo, hi) in enumerate(windows):
        inside = [] if lo is None else np.flatnonzero((eval_phase > lo) & (eval_phase < hi))
        pick = 0 if after_training == "first" and 0 < k < n_tasks else -1
        rows.append(int(inside[pick]) if len(inside) else None)
        if rows[-1] is not None:
            R[k] = values[rows[-1]]
    return R, rows


def weight_changes(run: RunFile, projection: str, phase: int) -> dict[str, float] | None:
    """Change of a projection's weights over a phase: last snapshot taken in the phase against
    the last one before it. ``None`` when the phase took no snapshot."""
    group = run.file[f"weights/{projection}"]
    snapshot_phase = group["phase"][:]
    inside = np.flatnonzero(snapshot_phase == phase)
    before = np.flatnonzero((snapshot_phase < phase) & (snapshot_phase >= -1))
    before = before[before < inside[0]] if inside.size else before
    if not inside.size or not before.size:
        return None
    w0 = group["values"][int(before[-1])].astype(float)
    w1 = group["values"][int(inside[-1])].astype(float)
    norm = float(np.linalg.norm(w0))
    return {
        "mean_abs_change": float(np.abs(w1 - w0).mean()),
        "relative_change": float(np.linalg.norm(w1 - w0) / norm) if norm > 0 else math.nan,
        "mean_after": float(w1.mean()),
        "units": str(group["values"].attrs["units"]),
    }


def diagnostics(run: RunFile, phase: int) -> dict[str, dict[str, Any]]:
    """A phase's scalars: ``/metrics/scalars`` rows and the scalar datasets of ``/sleep/<phase>``
    (arrays are left to ``RunFile.arrays``)."""
    out = {name: {"value": v, "units": u} for p, name, v, u in run.scalars() if p == phase}
    group = run.file.get(f"sleep/{phase}")
    for name, ds in (group or {}).items():  # a staged phase's stages: groups, left out here
        if isinstance(ds, h5py.Dataset) and ds.shape == () and ds.dtype.kind in "iuf":
            out.setdefault(name, {"value": float(ds[()]), "units": str(ds.attrs.get("units", "1"))})
    return out


def phase_summary(
    run: RunFile,
    phase: Phase,
    sizes: dict[str, int],
    backend: str,
    bin_ms: float,
    replay: ReplaySettings,
) -> dict[str, Any]:
    duration = phase.stop_time - phase.start_time
    row: dict[str, Any] = {
        "index": phase.index,
        "name": phase.name,
        "kind": phase.kind,
        "task": phase.task,
        "start_ms": phase.start_time,
        "stop_ms": phase.stop_time,
        "duration_ms": duration,
        "wall_s": phase.wall_seconds,
        "status": phase.status,
        "populations": {},
        "weights": {},
    }
    if duration > 0:
        for pop, n in sizes.items():
            s = window_stats(
                run.file[f"spikes/{pop}"],
                n,
                phase.start_time,
                phase.stop_time,
                bin_ms=bin_ms,
                backend=backend,
            )
            p5, p50, p95 = s.rate_percentiles()
            row["populations"][pop] = {
                "neurons": n,
                "spikes": s.n_spikes,
                "rate_mean_hz": s.rate_mean,
                "rate_p5_hz": float(p5),
                "rate_median_hz": float(p50),
                "rate_p95_hz": float(p95),
                "cv_isi_mean": s.cv_mean,
                "synchrony": s.synchrony,
                "backend": s.backend,
            }
            if phase.kind == "sleep":
                _, events = phase_rate_and_events(run, pop, phase, replay)
                row["populations"][pop]["replay_events"] = len(events)
    for projection in run.projections():
        change = weight_changes(run, projection, phase.index)
        if change is not None:
            row["weights"][projection] = change
    return row


def summarize(
    run: RunFile | str | Path,
    *,
    spikes: bool = True,
    populations: list[str] | None = None,
    backend: str = "auto",
    bin_ms: float = 5.0,
) -> dict[str, Any]:
    """Everything ``neurosleep summary`` prints, as JSON-ready plain data.

    ``run`` is an open :class:`RunFile` or a run file's path. ``populations`` limits the spike
    statistics (default: every recorded population); an unknown name raises
    :class:`~neurosleep.errors.RunFileError` listing the recorded ones.
    """
    if not isinstance(run, RunFile):
        with open_run(run) as opened:
            return summarize(
                opened, spikes=spikes, populations=populations, backend=backend, bin_ms=bin_ms
            )
    attrs = run.attrs
    phases = run.phases()
    evaluations = run.evaluations()
    widths = [values.shape[1] for values in evaluations.metrics.values()]
    n_tasks = int(attrs.get("n_tasks", widths[0] if widths else 1))
    backend = resolve_backend(backend) if spikes else "none"
    chosen = populations or run.populations()
    for pop in chosen:
        run.spike_count(pop)  # raises RunFileError for an unknown population
    sizes = {pop: population_size(run, pop) for pop in chosen} if spikes else {}
    names = {p.index: p.name for p in phases}
    replay = replay_settings(run)
    tests = [
        {
            "evaluation": row,
            "phase": int(phase),
            "name": names.get(int(phase), str(phase)),
            "metrics": {m: evaluations.metrics[m][row].tolist() for m in evaluations.metrics},
        }
        for row, phase in enumerate(evaluations.phases)
    ]
    scenario = attrs.get("scenario")
    final = {}
    for metric in evaluations.metrics:
        R, rows = accuracy_matrix(phases, evaluations, metric, n_tasks)
        final[metric] = {
            **M.all_metrics(R),
            "units": evaluations.units[metric],
            "matrix": R.tolist(),
            "matrix_evaluations": rows,
            "final_per_task": R[-1].tolist(),
        }
        if scenario == "class":  # class-IL: an untrained head scores 0 on unseen classes
            final[metric]["FWT"] = math.nan
        R_first, rows_first = accuracy_matrix(phases, evaluations, metric, n_tasks, "first")
        if rows_first != rows:  # a test between training and sleep: the pre-sleep diagonal
            final[metric] |= {
                "BWT_before_sleep": M.bwt(R_first),
                "forgetting_before_sleep": M.forgetting(R_first),
                "matrix_before_sleep": R_first.tolist(),
                "matrix_before_sleep_evaluations": rows_first,
            }
    return {
        "path": str(run.path),
        "name": attrs.get("name") or protocol_name(run),
        "status": attrs.get("status"),
        "seed": attrs.get("seed"),
        "engine": attrs.get("engine"),
        "model_kind": attrs.get("model_kind"),
        "n_tasks": n_tasks,
        "task_names": task_names(run, n_tasks),
        "scenario": scenario,
        "stats_backend": backend,
        "synchrony_bin_ms": bin_ms,
        "replay": {"bin_ms": replay.bin_ms, "threshold_sd": replay.threshold_sd},
        "phases": [
            phase_summary(run, p, sizes, backend, bin_ms, replay)
            | {"scalars": diagnostics(run, p.index)}
            for p in phases
        ],
        "tests": tests,
        "final": final,
    }


def task_names(run: RunFile, n_tasks: int) -> list[str]:
    """Names of the tasks (memories "A", "B"; class pairs "0/1"): the run file's ``task_names``
    attribute (a JSON list), else "task 1".."task T"."""
    value = run.file.attrs.get("task_names")
    try:  # a JSON list; files of the first days hold an array of strings instead
        names = json.loads(value) if isinstance(value, str | bytes) else list(value)
    except (TypeError, ValueError):  # absent or unreadable: numbered tasks
        names = None
    if isinstance(names, list) and len(names) == n_tasks:
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return [f"task {k + 1}" for k in range(n_tasks)]


def protocol_name(run: RunFile) -> str:
    """The ``name`` of the stored protocol (for files without a ``name`` attribute), else the
    file name's stem."""
    name = run.stored_protocol().get("name")
    return str(name) if name else run.path.stem


# ---------------------------------------------------------------------- text and CSV
def _f(value: Any, fmt: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, fmt) if isinstance(value, float) else str(value)


def format_text(s: dict[str, Any]) -> str:
    """The plain-text summary."""
    lines = [
        f"{s['path']}: {s['name']} (seed {s['seed']}, engine {s['engine']}, status {s['status']})",
        "",
        "phases:",
        f"  {'idx':>3} {'kind':5} {'name':20} {'task':>4} {'duration (ms)':>14} {'wall (s)':>9}",
    ]
    for p in s["phases"]:
        task = "-" if p["task"] < 0 else str(p["task"])
        lines.append(
            f"  {p['index']:3d} {p['kind']:5} {p['name']:20} {task:>4} "
            f"{_f(p['duration_ms'], '.1f'):>14} {_f(p['wall_s'], '.2f'):>9}"
        )
    activity = [(p, pop, v) for p in s["phases"] for pop, v in p["populations"].items()]
    if activity:
        lines += [
            "",
            f"spiking activity (rates in Hz over neurons; CV of ISI; synchrony = mean pairwise "
            f"correlation of {s['synchrony_bin_ms']:g} ms spike counts; events = replay bursts "
            f"in sleep, network 0's population rate in {s['replay']['bin_ms']:g} ms bins > mean "
            f"+ {s['replay']['threshold_sd']:g} SD; computed by {s['stats_backend']}):",
            f"  {'idx':>3} {'phase':16} {'population':12} {'spikes':>9} {'mean':>7} {'p5':>7} "
            f"{'median':>7} {'p95':>7} {'CV ISI':>7} {'synchrony':>9} {'events':>6}",
        ]
        for p, pop, v in activity:
            lines.append(
                f"  {p['index']:3d} {p['name']:16} {pop:12} {v['spikes']:9d} "
                f"{_f(v['rate_mean_hz']):>7} {_f(v['rate_p5_hz']):>7} "
                f"{_f(v['rate_median_hz']):>7} {_f(v['rate_p95_hz']):>7} "
                f"{_f(v['cv_isi_mean']):>7} {_f(v['synchrony']):>9} "
                f"{_f(v.get('replay_events')):>6}"
            )
    changes = [(p, proj, v) for p in s["phases"] for proj, v in p["weights"].items()]
    if changes:
        lines += [
            "",
            "weight change over each phase (mean |Δw|; relative = ‖Δw‖ / ‖w before‖):",
            f"  {'idx':>3} {'phase':16} {'projection':14} {'mean |Δw|':>12} {'relative':>9} "
            f"{'mean w after':>13}",
        ]
        for p, proj, v in changes:
            lines.append(
                f"  {p['index']:3d} {p['name']:16} {proj:14} "
                f"{_f(v['mean_abs_change']) + _units(v['units']):>12} "
                f"{_f(v['relative_change']):>9} {_f(v['mean_after']):>13}"
            )
    scalars = [(p, name, v) for p in s["phases"] for name, v in p["scalars"].items()]
    if scalars:
        lines += ["", "per-phase scalars and sleep diagnostics:"]
        for p, name, v in scalars:
            lines.append(
                f"  {p['index']:3d} {p['name']:16} {name:32} {_f(v['value'], '.4g'):>10}"
                f"{_units(v['units'])}"
            )
    if s["tests"]:
        lines += ["", "tests (one value per task; the rows of the accuracy / retention matrix):"]
        if len(s.get("task_names", [])) > 1:
            names = " ".join(f"{n[:6]:>6}" for n in s["task_names"])
            lines.append(f"  {'':3} {'':16} {'tasks':22} {names}")
        for t in s["tests"]:
            for metric, values in t["metrics"].items():
                cells = " ".join(f"{_f(v, '.3f'):>6}" for v in values)
                lines.append(f"  {t['phase']:3d} {t['name']:16} {metric:22} {cells}")
    if s["final"]:
        class_il = s.get("scenario") == "class"
        fwt_note = "; FWT '-' in class-IL, where unseen classes score 0" if class_il else ""
        lines += [
            "",
            "final (ACC = mean of the last row; BWT normalised by T-1, and forgetting (max-based, "
            "Chaudhry 2018), against R[j, j] = the last test after training task j, i.e. after "
            "its sleep where a test follows the sleep; AIA = average incremental accuracy"
            f"{fwt_note}):",
            f"  {'metric':24} {'ACC':>7} {'BWT':>7} {'FWT':>7} {'forgetting':>10} {'AIA':>7}",
        ]
        for metric, v in s["final"].items():
            lines.append(
                f"  {metric:24} {_f(v['ACC'], '.4f'):>7} {_f(v['BWT'], '.4f'):>7} "
                f"{_f(v['FWT'], '.4f'):>7} {_f(v['forgetting'], '.4f'):>10} "
                f"{_f(v['AIA'], '.4f'):>7}"
            )
        before = {m: v for m, v in s["final"].items() if "BWT_before_sleep" in v}
        if before:
            lines += ["  against R[j, j] = the first test after training task j (before sleep):"]
            for metric, v in before.items():
                lines.append(
                    f"  {metric:24} {'':>7} {_f(v['BWT_before_sleep'], '.4f'):>7} {'':>7} "
                    f"{_f(v['forgetting_before_sleep'], '.4f'):>10}"
                )
        names = s.get("task_names", [])
        if names and len(names) > 1:
            lines += ["  final value per task (the last row of R):"]
            for metric, v in s["final"].items():
                cells = "  ".join(
                    f"{n} {_f(x, '.3f')}" for n, x in zip(names, v["final_per_task"], strict=True)
                )
                lines.append(f"  {metric:24} {cells}")
    return "\n".join(lines)


CSV_COLUMNS = ("run", "section", "phase", "phase_name", "item", "quantity", "value", "units")


def csv_rows(s: dict[str, Any]) -> list[tuple]:
    """The summary in long ("tidy") form: one value per row, :data:`CSV_COLUMNS`."""
    run, rows = s["path"], []
    for p in s["phases"]:
        rows.append(
            (run, "phase", p["index"], p["name"], p["kind"], "duration", p["duration_ms"], "ms")
        )
        for pop, v in p["populations"].items():
            for key, units in (
                ("spikes", "1"),
                ("rate_mean_hz", "Hz"),
                ("rate_p5_hz", "Hz"),
                ("rate_median_hz", "Hz"),
                ("rate_p95_hz", "Hz"),
                ("cv_isi_mean", "1"),
                ("synchrony", "1"),
                ("replay_events", "1"),
            ):
                if key in v:
                    rows.append((run, "activity", p["index"], p["name"], pop, key, v[key], units))
        for proj, v in p["weights"].items():
            for key in ("mean_abs_change", "relative_change", "mean_after"):
                units = "1" if key == "relative_change" else v["units"]
                rows.append((run, "weights", p["index"], p["name"], proj, key, v[key], units))
        for name, v in p["scalars"].items():
            rows.append(
                (run, "scalar", p["index"], p["name"], name, "value", v["value"], v["units"])
            )
    for t in s["tests"]:
        for metric, values in t["metrics"].items():
            for task, value in enumerate(values):
                rows.append((run, "test", t["phase"], t["name"], metric, f"task{task}", value, ""))
    for metric, v in s["final"].items():
        for key in ("ACC", "BWT", "FWT", "forgetting", "AIA"):
            rows.append((run, "final", "", "", metric, key, v[key], v["units"]))
    return rows


def format_csv(summaries: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in summaries:
        writer.writerows(csv_rows(s))
    return out.getvalue()


def _units(units: str) -> str:
    return "" if units in ("", "1") else f" {units}"
