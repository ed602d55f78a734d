"""Comparing runs: group by protocol, engine or seed, aggregate over the rest (mean ± SEM).

SEM is the sample standard deviation (ddof = 1) over runs divided by √n; it is undefined (shown
as "-") for a group of one run. Each group's final metrics come from
:func:`neurosleep.analysis.summary.summarize` (without spike statistics): ACC, BWT, FWT,
forgetting, their pre-sleep variants where a test precedes sleep, and the final value of each
task by name (quantity ``final A``, ``final 0/1``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurosleep.analysis.stats import MeanSEM, mean_sem
from neurosleep.analysis.summary import summarize
from neurosleep.errors import RunFileError
from neurosleep.io.runfile import open_run

if TYPE_CHECKING:  # matplotlib (and the house style) only where a figure is drawn: a study's
    # workers read each run's metrics with :func:`load` and never draw
    from matplotlib.figure import Figure

QUANTITIES = ("ACC", "BWT", "FWT", "forgetting", "BWT_before_sleep", "forgetting_before_sleep")
DEFAULT_QUANTITIES = ("ACC", "BWT")  # what the table shows unless --quantity says otherwise
PER_TASK = "tasks"  # the --quantity that selects the final value of every task


@dataclass(frozen=True)
class RunResult:
    """What a comparison needs from one run file."""

    path: str
    name: str
    engine: str
    seed: int | None
    status: str
    final: dict[str, dict[str, float]]  # metric → quantity → value
    curve: dict[str, list[list[float]]]  # metric → [test phase][task] values
    test_names: list[str]
    task_names: list[str]
    units: dict[str, str]  # metric → units


GROUP_KEYS: dict[str, Callable[[RunResult], Any]] = {
    "protocol": lambda r: r.name,
    "engine": lambda r: r.engine,
    "seed": lambda r: r.seed,
}


def load(path: str | Path) -> RunResult:
    """Read one run's final metrics and per-test curves; raises :class:`RunFileError`."""
    with open_run(path) as run, run.reading():
        s = summarize(run, spikes=False)
    names = [t["name"] for t in s["tests"]]
    curve = {metric: [list(t["metrics"][metric]) for t in s["tests"]] for metric in s["final"]}
    final = {}
    for metric, v in s["final"].items():
        final[metric] = {q: float(v[q]) for q in QUANTITIES if q in v}
        for task, value in zip(s["task_names"], v["final_per_task"], strict=True):
            final[metric][f"final {task}"] = float(value)
    return RunResult(
        path=str(path),
        name=str(s["name"] or Path(path).stem),
        engine=str(s["engine"]),
        seed=s["seed"],
        status=str(s["status"]),
        final=final,
        curve=curve,
        test_names=names,
        task_names=list(s["task_names"]),
        units={m: str(v["units"]) for m, v in s["final"].items()},
    )


@dataclass
class Group:
    """Runs sharing a condition; statistics over them."""

    key: tuple
    runs: list[RunResult] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " / ".join(str(k) for k in self.key)

    def values(self, metric: str, quantity: str) -> np.ndarray:
        return np.array([r.final.get(metric, {}).get(quantity, np.nan) for r in self.runs])

    def mean_sem(self, metric: str, quantity: str) -> MeanSEM:
        """Mean and SEM over the runs with a finite value, and how many they are."""
        return mean_sem(self.values(metric, quantity))


def group_runs(runs: Iterable[RunResult], by: Iterable[str]) -> list[Group]:
    """Groups in order of first appearance; ``by`` names keys of :data:`GROUP_KEYS`."""
    by = list(by)
    unknown = [b for b in by if b not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"cannot group by {unknown[0]!r}; choose from {', '.join(GROUP_KEYS)}")
    groups: dict[tuple, Group] = {}
    for run in runs:
        key = tuple(GROUP_KEYS[b](run) for b in by)
        groups.setdefault(key, Group(key)).runs.append(run)
    return list(groups.values())


def columns(
    groups: list[Group],
    metrics: Iterable[str] | None = None,
    quantities: Iterable[str] = DEFAULT_QUANTITIES,
) -> list[tuple[str, str]]:
    """(metric, quantity) pairs with at least one finite value (BWT is undefined for one task,
    FWT in class-IL). ``metrics`` keeps those metrics (unknown names raise ``ValueError`` naming
    the known ones); ``quantities`` names :data:`QUANTITIES` or ``tasks`` (the final value of
    each task)."""
    known = list(dict.fromkeys(m for g in groups for r in g.runs for m in r.final))
    chosen = list(metrics) if metrics else known
    unknown = [m for m in chosen if m not in known]
    if unknown:
        raise ValueError(f"no metric {unknown[0]!r} in these runs; they have: {', '.join(known)}")
    wanted = list(quantities)
    bad = [q for q in wanted if q not in (*QUANTITIES, PER_TASK)]
    if bad:
        raise ValueError(f"unknown quantity {bad[0]!r}; choose from {', '.join(QUANTITIES)}, tasks")
    out = []
    for m in chosen:
        for q in wanted:
            names = [q]
            if q == PER_TASK:
                tasks = (n for g in groups for r in g.runs for n in r.task_names)
                names = [f"final {n}" for n in dict.fromkeys(tasks)]
            out += [(m, n) for n in names if any(np.isfinite(g.values(m, n)).any() for g in groups)]
    return out


def _cell(mean: float, sem: float, latex: bool = False) -> str:
    if math.isnan(mean):
        return "-"
    if math.isnan(sem):
        return f"${mean:.3f}$" if latex else f"{mean:.3f}"
    return f"${mean:.3f} \\pm {sem:.3f}$" if latex else f"{mean:.3f} ± {sem:.3f}"


def table(
    groups: list[Group],
    by: list[str],
    fmt: str = "markdown",
    metrics: Iterable[str] | None = None,
    quantities: Iterable[str] = DEFAULT_QUANTITIES,
) -> str:
    """The comparison table: one row per group, mean ± SEM (n) per metric and quantity
    (:func:`columns` chooses them)."""
    cols = columns(groups, metrics, quantities)
    head = [*by, "n"] + [f"{m} {q}" for m, q in cols]
    rows = []
    for g in groups:
        stats = [g.mean_sem(m, q) for m, q in cols]
        rows.append((g, stats))
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*by, "n"] + [f"{m} {q} {s}" for m, q in cols for s in ("mean", "sem")])
        for g, stats in rows:
            writer.writerow(
                [*g.key, len(g.runs)] + [x for mean, sem, _ in stats for x in (mean, sem)]
            )
        return out.getvalue()
    if fmt == "latex":
        escape = lambda text: str(text).replace("_", r"\_")  # noqa: E731
        lines = [
            r"\begin{tabular}{" + "l" * len(by) + "r" * (len(head) - len(by)) + "}",
            r"\hline",
            " & ".join(escape(h) for h in head) + r" \\",
            r"\hline",
        ]
        for g, stats in rows:
            cells = [escape(k) for k in g.key] + [str(len(g.runs))]
            cells += [_cell(mean, sem, latex=True) for mean, sem, _ in stats]
            lines.append(" & ".join(cells) + r" \\")
        return "\n".join([*lines, r"\hline", r"\end{tabular}"])
    if fmt != "markdown":
        raise ValueError(f"table format must be markdown, csv or latex, not {fmt!r}")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for g, stats in rows:
        cells = [str(k) for k in g.key] + [str(len(g.runs))]
        cells += [_cell(mean, sem) for mean, sem, _ in stats]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(groups: list[Group], metrics: Iterable[str] | None = None) -> Figure:
    """Per metric: the final value of each task (memory) per condition (bars, mean ± SEM over
    the group's runs; no error bar for one run), and each task's value after every test phase,
    the test phases named on the x-axis. House style (:mod:`neurosleep.analysis.style`)."""
    from matplotlib.figure import Figure

    from neurosleep.analysis import style

    chosen = [m for m, _ in columns(groups, metrics, ("ACC",))] or list(metrics or [])
    with style.context():
        fig = Figure(figsize=(style.TWO_COLUMN_IN, 0.6 + 2.3 * len(chosen)), layout="constrained")
        axes = fig.subplots(len(chosen), 2, squeeze=False, gridspec_kw={"width_ratios": [1, 1.4]})
        for (ax_bar, ax_curve), metric in zip(axes, chosen, strict=True):
            _final_bars(ax_bar, groups, metric)
            _curves(ax_curve, groups, metric)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncol=min(len(labels), 4))
    return fig


def _bounds(groups: list[Group], metric: str) -> tuple[float, float] | None:
    from neurosleep.analysis import style

    values = [v for g in groups for r in g.runs for row in r.curve.get(metric, []) for v in row]
    return style.value_range(metric, np.asarray(values, dtype=float))


def _final_bars(ax, groups: list[Group], metric: str) -> None:
    from neurosleep.analysis import style

    tasks = names_of_tasks(groups)
    width = 0.8 / max(len(groups), 1)
    for i, g in enumerate(groups):
        stats = [g.mean_sem(metric, f"final {t}") for t in tasks]
        x = np.arange(len(tasks)) + (i - (len(groups) - 1) / 2) * width
        means = [s[0] for s in stats]
        sems = [s[1] for s in stats]
        errors = None if all(math.isnan(e) for e in sems) else np.nan_to_num(sems)
        ax.bar(
            x,
            means,
            width,
            yerr=errors,
            capsize=2 if errors is not None else 0,
            color=style.color(i),
            label=f"{g.label} (n = {len(g.runs)})",
        )
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_xlabel("task" if not _memories(tasks) else "memory")
    ax.set_ylabel(style.metric_label(metric, groups[0].runs[0].units.get(metric, "1"), "final "))
    ax.set_ylim(*(_bounds(groups, metric) or ax.get_ylim()))


def names_of_tasks(groups: list[Group]) -> list[str]:
    return list(dict.fromkeys(n for g in groups for r in g.runs for n in r.task_names))


def _memories(tasks: list[str]) -> bool:
    return all(not t.startswith("task ") for t in tasks)


def _curves(ax, groups: list[Group], metric: str) -> None:
    """Each task's value after every test phase; colour = condition, line style = task."""
    from neurosleep.analysis import style

    names: list[str] = []
    for i, g in enumerate(groups):
        runs = [r for r in g.runs if metric in r.curve]
        length = min((len(r.curve[metric]) for r in runs), default=0)
        if not length:
            continue
        c = np.array([r.curve[metric][:length] for r in runs], dtype=float)  # run × test × task
        mean = c.mean(axis=0)
        sem = c.std(axis=0, ddof=1) / math.sqrt(len(c)) if len(c) > 1 else None
        x = np.arange(length)
        tasks = runs[0].task_names[: c.shape[2]]
        per_task = len(tasks) <= style.MAX_LINES_PER_CONDITION
        series = range(len(tasks)) if per_task else [None]
        for k in series:
            y = mean[:, k] if k is not None else np.nanmean(mean, axis=1)
            err = None if sem is None or k is None else sem[:, k]
            ax.errorbar(
                x,
                y,
                yerr=err,
                color=style.color(i),
                ls=style.line_style(k or 0),
                marker=style.marker(k or 0),
                ms=3,
                lw=1,
                capsize=2 if err is not None else 0,
            )
        if length > len(names):
            names = runs[0].test_names[:length]
        if per_task and i == 0:
            for k, task in enumerate(tasks):
                ax.plot(
                    [], [], color="0.3", ls=style.line_style(k), marker=style.marker(k), label=task
                )
    ax.set_xticks(np.arange(len(names)), names, **style.slanted(len(names)))
    ax.set_xlabel("test phase")
    ax.set_ylabel(style.metric_label(metric, groups[0].runs[0].units.get(metric, "1")))
    ax.set_ylim(*(_bounds(groups, metric) or ax.get_ylim()))
    style.legend_outside(ax, title="memory" if _memories(names_of_tasks(groups)) else "task")


def split_complete(
    paths: Iterable[str | Path], include_incomplete: bool = False
) -> tuple[list[RunResult], list[tuple[str, str]]]:
    """Load runs; those not ``complete`` (and unreadable files) are returned separately as
    (path, reason) unless ``include_incomplete`` keeps incomplete-but-readable ones."""
    kept, left_out = [], []
    for path in paths:
        try:
            run = load(path)
        except RunFileError as exc:
            left_out.append((str(path), str(exc)))
            continue
        if run.status != "complete" and not include_incomplete:
            left_out.append((str(path), f"status {run.status}"))
        else:
            kept.append(run)
    return kept, left_out
