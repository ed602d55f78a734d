"""Study reports from the ledger: a tidy table, a markdown summary and figures.

The table has one row per run (configuration, axis values, seed, split, state, wall time and
every final metric). The summary gives the objective's mean ± SEM per configuration over the
development seeds (SEM = sample SD / √n) with the controls (protocols run as written, no axis)
among them, the best configuration, and its confirmation on the held-out seeds and split beside
the base protocol and the controls, paired by seed.
"""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import numpy as np
import yaml

from neurosleep.analysis.stats import mean_sem
from neurosleep.study.ledger import Ledger, Row
from neurosleep.study.spec import StudyFile


def study_spec(ledger: Ledger) -> StudyFile:
    """The study file as it was when the study last ran (stored in the ledger)."""
    return StudyFile.model_validate(yaml.safe_load(ledger.meta("study_yaml")))


def table(rows: list[Row], axes: list[str]):
    """One row per run as a pandas DataFrame (metrics as ``"<metric> <quantity>"`` columns)."""
    import pandas as pd

    metrics = list(dict.fromkeys(m for r in rows for m in r.metrics))
    records = []
    for r in rows:
        record = {
            "key": r.key,
            "stage": r.stage,
            "configuration": r.label,
            "condition": r.condition,
        }
        record |= {axis: _plain(r.params.get(axis)) for axis in axes}
        record |= {
            "seed": r.seed,
            "split": r.split,
            "state": r.state,
            "attempts": r.attempts,
            "rerun": r.rerun,
            "attempt_s": r.attempt_s,
            "phases_s": r.phases_s,
        }
        record |= {m: r.metrics.get(m, math.nan) for m in metrics}
        record |= {"reason": r.reason or "", "path": r.path}
        records.append(record)
    return pd.DataFrame.from_records(records)


def _plain(value):
    """Axis values as one column type (text when the values mix types)."""
    return value if isinstance(value, int | float | str) or value is None else str(value)


def summary(folder: Path, ledger: Ledger) -> str:
    """The markdown summary of a study folder."""
    spec = study_spec(ledger)
    rows = ledger.rows()
    column = _column(spec, rows)
    counts = ledger.counts()
    lines = [
        f"# Study {spec.name}",
        "",
        f"{len(rows)} runs: {counts['complete']} complete, {counts['failed']} failed, "
        f"{counts['queued'] + counts['running']} not finished, {counts['rerun']} re-run "
        "(executed more than once, or a partial file moved aside).",
        (
            f"Objective: {column} ({spec.objective.goal}), selected on the {spec.select_on} split"
            if spec.objective
            else f"No objective (a sweep): {column or 'no metric'} on the {spec.select_on} split"
        )
        + f" over seeds {_seeds(spec.seeds)}; mean ± SEM over seeds (SEM = sample SD / √n).",
        "",
        "## Search",
        "",
    ]
    groups: dict[str, list[Row]] = {}
    for r in rows:
        if r.stage in ("search", "control"):
            groups.setdefault(r.label, []).append(r)
    stats = {label: mean_sem(r.metrics.get(column) for r in g) for label, g in groups.items()}
    sign = -1 if spec.objective is None or spec.objective.goal == "maximize" else 1
    order = sorted(groups, key=lambda k: (stats[k].n == 0, sign * np.nan_to_num(stats[k].mean)))
    axes = list(spec.space)
    head = ["configuration", *axes, f"{column} (n)", "phases s / run"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in order:
        g = groups[label]
        wall = mean_sem(r.phases_s for r in g if r.state == "complete")
        if g[0].stage == "control":
            cells = [f"{label} (control)", *("—" for _ in axes)]
        else:
            cells = [label, *(str(g[0].params.get(a, "base")) for a in axes)]
        cells += [f"{stats[label]} ({stats[label].n})", f"{wall.mean:.2f}" if wall.n else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    best = ledger.meta("best") or None
    lines += ["", f"Best configuration: {best or 'none (no complete run)'}"]
    confirm = [r for r in rows if r.stage == "confirm"]
    if spec.confirm and confirm:
        lines += ["", "## Confirmation", "", *_confirmation(spec, confirm, column, best)]
    failed = [r for r in rows if r.state == "failed"]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [
            f"- {r.label} seed {r.seed} ({r.split}): {r.reason} — {r.traceback}" for r in failed
        ]
    rerun = [r for r in rows if r.rerun]
    if rerun:
        lines += ["", "## Re-run (partial files moved aside, not deleted)", ""]
        lines += [
            f"- {r.label} seed {r.seed}: {r.attempts} attempts; moved aside: "
            f"{', '.join(r.aside) or 'nothing (no file written yet)'}"
            for r in rerun
        ]
    return "\n".join(lines) + "\n"


def _column(spec: StudyFile, rows: list[Row]) -> str | None:
    """The objective's column, or (no objective) the first metric the runs have."""
    if spec.objective is not None:
        return spec.objective.column
    return next((m for r in rows for m in r.metrics), None)


def _confirmation(spec: StudyFile, rows: list[Row], column: str, best: str | None) -> list[str]:
    by_label: dict[str, dict[int, float]] = {}
    for r in rows:
        if r.state == "complete":
            by_label.setdefault(r.label, {})[r.seed] = r.metrics.get(column, math.nan)
    lines = [
        f"Seeds {_seeds(spec.confirm.seeds)}, {spec.confirm.split} split.",
        "",
        f"| configuration | {column} (n) |",
        "|---|---|",
    ]
    controls = {r.label for r in rows if r.condition >= len(spec.searched)}
    for label, values in by_label.items():
        s = mean_sem(values.values())
        role = " (best)" if label == best else " (control)" if label in controls else ""
        lines.append(f"| {label}{role} | {s} ({s.n}) |")
    others = [label for label in by_label if label != best]
    if spec.confirm.against == "base" and best in by_label and set(others) <= controls:
        lines += ["", "The best configuration makes the base protocol itself (one set of runs)."]
    if best in by_label and others:
        lines.append("")
        for other in others:
            paired = by_label[other]
            d = mean_sem(v - paired[s] for s, v in by_label[best].items() if s in paired)
            lines.append(f"Paired difference best − {other}: {d} (n = {d.n} seeds).")
    return lines


def _seeds(seeds: list[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def figures(folder: Path, ledger: Ledger, out: Path) -> list[Path]:
    """Objective against each axis (mean ± SEM) and a heatmap of the mean per pair of axes."""
    from matplotlib.figure import Figure

    from neurosleep.analysis import style

    spec = study_spec(ledger)
    done = [r for r in ledger.rows() if r.state == "complete"]
    rows = [r for r in done if r.stage == "search"]
    column = _column(spec, rows)
    if column is None:
        return []
    controls: dict[str, list[float]] = {}  # each control's objective: a band across the axis
    for r in done:
        if r.stage == "control":
            controls.setdefault(r.label, []).append(r.metrics.get(column, math.nan))
    written = []
    out.mkdir(parents=True, exist_ok=True)
    with style.context():
        for axis in spec.space:
            values = sorted({_key(r.params.get(axis)) for r in rows}, key=_order)
            stats = [
                mean_sem(r.metrics.get(column) for r in rows if _key(r.params.get(axis)) == v)
                for v in values
            ]
            fig = Figure(figsize=(3.6, 2.6))
            ax = fig.add_subplot()
            x = np.arange(len(values))
            ax.errorbar(
                x,
                [s.mean for s in stats],
                yerr=[np.nan_to_num(s.sem) for s in stats],
                marker="o",
                capsize=3,
                label="search",
            )
            for i, (label, scores) in enumerate(controls.items()):
                s = mean_sem(scores)
                color = f"C{i + 1}"
                ax.axhline(s.mean, color=color, linestyle="--", label=f"{label} (control)")
                if s.n > 1:
                    ax.axhspan(s.mean - s.sem, s.mean + s.sem, color=color, alpha=0.15, lw=0)
            if controls:
                ax.legend(fontsize="x-small")
            ax.set_xticks(x, [str(v) for v in values], rotation=30, ha="right")
            ax.set_xlabel(axis)
            ax.set_ylabel(f"{column}\n(mean ± SEM over runs)")
            fig.tight_layout()
            written.append(_save(fig, out / f"objective_{_file(axis)}.png"))
        for a, b in combinations(spec.space, 2):
            va = sorted({_key(r.params.get(a)) for r in rows}, key=_order)
            vb = sorted({_key(r.params.get(b)) for r in rows}, key=_order)
            grid = np.full((len(va), len(vb)), np.nan)
            for i, x in enumerate(va):
                for j, y in enumerate(vb):
                    grid[i, j] = mean_sem(
                        r.metrics.get(column)
                        for r in rows
                        if _key(r.params.get(a)) == x and _key(r.params.get(b)) == y
                    ).mean
            fig = Figure(figsize=(3.8, 3.0))
            ax = fig.add_subplot()
            image = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis")
            ax.set_yticks(range(len(va)), [str(v) for v in va])
            ax.set_xticks(range(len(vb)), [str(v) for v in vb], rotation=30, ha="right")
            ax.set_ylabel(a)
            ax.set_xlabel(b)
            fig.colorbar(image, ax=ax, label=f"{column} (mean)")
            fig.tight_layout()
            written.append(_save(fig, out / f"heatmap_{_file(a)}__{_file(b)}.png"))
    return written


def _key(value):
    return value if isinstance(value, int | float | str) else str(value)


def _order(value):
    return (0, value, "") if isinstance(value, int | float) else (1, 0, str(value))


def _file(axis: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in axis)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    return path


def study_runs(folder: str | Path) -> list[tuple[str, str]]:
    """(run file, "<configuration> [<split>]") of every complete run of a study folder."""
    ledger = Ledger(folder, readonly=True)
    try:
        return [(r.path, f"{r.label} [{r.split}]") for r in ledger.rows("state = 'complete'")]
    finally:
        ledger.close()


def write_report(folder: str | Path) -> tuple[str, list[Path]]:
    """Write ``report/`` in the study folder (runs.csv, runs.parquet, summary.md, figures);
    return the summary text and the paths written."""
    folder = Path(folder)
    ledger = Ledger(folder, readonly=True)
    try:
        spec = study_spec(ledger)
        out = folder / "report"
        out.mkdir(exist_ok=True)
        frame = table(ledger.rows(), list(spec.space))
        frame.to_csv(out / "runs.csv", index=False)
        frame.to_parquet(out / "runs.parquet", index=False)
        text = summary(folder, ledger)
        (out / "summary.md").write_text(text)
        paths = [out / "runs.csv", out / "runs.parquet", out / "summary.md"]
        paths += figures(folder, ledger, out)
    finally:
        ledger.close()
    return text, paths
