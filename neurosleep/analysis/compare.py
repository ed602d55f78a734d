"""Comparing runs: group by protocol, engine or seed, aggregate over the rest (mean ± SEM).

SEM is the sample standard deviation (ddof = 1) over runs divided by √n; it is undefined (shown
as "-") for a group of one run. Each group's final metrics come from
:func:`neurosleep.analysis.summary.summarize` (without spike statistics).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from neurosleep.analysis.summary import summarize
from neurosleep.errors import RunFileError
from neurosleep.io.runfile import open_run

QUANTITIES = ("ACC", "BWT", "FWT", "forgetting")


@dataclass(frozen=True)
class RunResult:
    """What a comparison needs from one run file."""

    path: str
    name: str
    engine: str
    seed: int | None
    status: str
    final: dict[str, dict[str, float]]  # metric → quantity → value
    curve: dict[str, list[float]]  # metric → task-mean after each test phase
    test_names: list[str]


GROUP_KEYS: dict[str, Callable[[RunResult], Any]] = {
    "protocol": lambda r: r.name,
    "engine": lambda r: r.engine,
    "seed": lambda r: r.seed,
}


def load(path: str | Path) -> RunResult:
    """Read one run's final metrics and per-test curves; raises :class:`RunFileError`."""
    with open_run(path) as run:
        s = summarize(run, spikes=False)
    names = [t["name"] for t in s["tests"]]
    curve = {
        metric: [float(np.nanmean(t["metrics"][metric])) for t in s["tests"]]
        for metric in s["final"]
    }
    return RunResult(
        path=str(path),
        name=str(s["name"] or Path(path).stem),
        engine=str(s["engine"]),
        seed=s["seed"],
        status=str(s["status"]),
        final={m: {q: float(v[q]) for q in QUANTITIES} for m, v in s["final"].items()},
        curve=curve,
        test_names=names,
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

    def mean_sem(self, metric: str, quantity: str) -> tuple[float, float, int]:
        """Mean and SEM over the runs with a finite value, and how many they are."""
        v = self.values(metric, quantity)
        v = v[np.isfinite(v)]
        if not v.size:
            return math.nan, math.nan, 0
        sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
        return float(v.mean()), sem, int(v.size)


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


def columns(groups: list[Group]) -> list[tuple[str, str]]:
    """(metric, quantity) pairs with at least one finite value (BWT is undefined for one task)."""
    metrics = dict.fromkeys(m for g in groups for r in g.runs for m in r.final)
    return [
        (m, q)
        for m in metrics
        for q in QUANTITIES
        if any(np.isfinite(g.values(m, q)).any() for g in groups)
    ]


def _cell(mean: float, sem: float, latex: bool = False) -> str:
    if math.isnan(mean):
        return "-"
    if math.isnan(sem):
        return f"${mean:.3f}$" if latex else f"{mean:.3f}"
    return f"${mean:.3f} \\pm {sem:.3f}$" if latex else f"{mean:.3f} ± {sem:.3f}"


def table(groups: list[Group], by: list[str], fmt: str = "markdown") -> str:
    """The comparison table: one row per group, mean ± SEM (n) per metric and quantity."""
    cols = columns(groups)
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


def figure(groups: list[Group]) -> Figure:
    """Final ACC per condition (bars, mean ± SEM), and per metric the task-mean after each test
    phase (mean ± SEM over the group's runs)."""
    import matplotlib

    from neurosleep.analysis.plots import STYLE

    metrics = list(dict.fromkeys(m for g in groups for r in g.runs for m in r.final))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6.5, 2.4 * (1 + math.ceil(len(metrics) / 2))))
        grid = fig.add_gridspec(1 + math.ceil(len(metrics) / 2), 2)
        ax_bar = fig.add_subplot(grid[0, :])
        curves = [fig.add_subplot(grid[1 + k // 2, k % 2]) for k in range(len(metrics))]
        width = 0.8 / max(len(groups), 1)
        for i, g in enumerate(groups):
            stats = [g.mean_sem(m, "ACC") for m in metrics]
            x = np.arange(len(metrics)) + (i - (len(groups) - 1) / 2) * width
            means, sems = [s[0] for s in stats], [np.nan_to_num(s[1]) for s in stats]
            ax_bar.bar(x, means, width, yerr=sems, capsize=2, label=f"{g.label} (n={len(g.runs)})")
            for ax, metric in zip(curves, metrics, strict=True):
                _curve(ax, g, metric)
        ax_bar.set_xticks(np.arange(len(metrics)), metrics)
        ax_bar.set_ylabel("final ACC (mean ± SEM)")
        ax_bar.legend(loc="upper right")
        for ax, metric in zip(curves, metrics, strict=True):
            ax.set_xlabel("test phase (index)")
            ax.set_ylabel(f"{metric}\n(mean over tasks)")
            ax.legend(fontsize=6)
        fig.tight_layout()
    return fig


def _curve(ax, group: Group, metric: str) -> None:
    curves = [r.curve[metric] for r in group.runs if metric in r.curve]
    length = min((len(c) for c in curves), default=0)
    if not length:
        return
    c = np.array([c[:length] for c in curves])
    sem = c.std(axis=0, ddof=1) / math.sqrt(len(c)) if len(c) > 1 else np.zeros(length)
    ax.errorbar(
        np.arange(1, length + 1),
        c.mean(axis=0),
        yerr=sem,
        marker="o",
        ms=3,
        lw=1,
        capsize=2,
        label=f"{group.label}: " + ", ".join(group.runs[0].test_names[:length]),
    )
    ax.set_xticks(np.arange(1, length + 1))


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
