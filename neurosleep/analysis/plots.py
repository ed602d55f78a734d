"""Figures of one run file, one function per kind in :data:`PLOTS`, in the house style of
:mod:`neurosleep.analysis.style` (two journal columns wide, text ≥ 8 pt, Okabe-Ito colours,
labels with units, legends beside the data, fixed ranges for bounded metrics, tasks by name).

Each function takes an open :class:`~neurosleep.io.runfile.RunFile` and returns a matplotlib
figure, or ``None`` when the run recorded nothing for that kind (a Hopfield run has no spikes).
Large files stay cheap: raster points are decimated to at most ``MAX_RASTER_POINTS`` (a sample of
neurons, then every k-th spike), rates are histograms streamed in blocks, reports are read with
a row stride; no plot loads all spikes at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from neurosleep.analysis import style
from neurosleep.analysis.replay import phase_rate_and_events, population_rate, replay_settings
from neurosleep.analysis.summary import accuracy_matrix, task_names
from neurosleep.errors import RunFileError, UserError
from neurosleep.io.blocks import population_size, run_stop, spike_blocks, window_count
from neurosleep.io.runfile import RunFile

MAX_RASTER_POINTS = 100_000
MAX_RASTER_NEURONS = 400
MAX_RATE_BINS = 2_000
MAX_TRACE_ROWS = 5_000
MAX_HEATMAP = 400
MAX_CELL_LABELS = 6  # tasks up to which the matrix cells carry their values
WIDTH_IN = style.TWO_COLUMN_IN


def _subplots(rows: int = 1, cols: int = 1, *, figsize: tuple[float, float], **kwargs):
    """A figure without pyplot (no global state, no GUI backend), laid out by matplotlib's
    constrained layout (no overlapping labels), and its axes."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(rows, cols, **kwargs)


def time_scale(run: RunFile) -> tuple[float, str]:
    """Divide ms by this to plot, and the axis label: network updates for a Hopfield run (its
    clock counts updates of ``update_interval`` ms), seconds for runs longer than 2 s, else ms."""
    if run.attrs.get("model_kind") == "hopfield":
        interval = run.stored_model().get("update_interval", 1.0)
        if not isinstance(interval, int | float) or not 0 < interval < math.inf:
            raise RunFileError(f"{run.path}: /provenance/model: update_interval is {interval!r}")
        return float(interval), "time (network updates)"
    return (1000.0, "time (s)") if run_stop(run) > 2000.0 else (1.0, "time (ms)")


def shade_phases(ax, run: RunFile, scale: float, label: bool = True) -> None:
    """Shade wake/sleep/test phases (labelled "wake phase" etc. for the axes' legend); with
    ``label``, name each phase above the axes where its name fits."""
    stop_all = run_stop(run)
    spans, seen = [], set()
    for p in run.phases():
        stop = p.stop_time if math.isfinite(p.stop_time) else stop_all
        if stop > p.start_time:
            spans.append((p, stop))
            ax.axvspan(
                p.start_time / scale,
                stop / scale,
                color=style.PHASE_COLORS.get(p.kind),
                alpha=style.PHASE_ALPHA,
                lw=0,
                zorder=0,
                label=f"{p.kind} phase" if label and p.kind not in seen else None,
            )
            seen.add(p.kind)
    width_in = ax.figure.get_figwidth() * ax.get_position().width
    total = max(stop_all, 1e-12)
    _mark_stages(ax, run, scale, width_in / total if label else 0.0)
    if not label:
        return
    for p, stop in spans:
        text_in = 0.6 * style.FONT_PT / 72 * (len(p.name) + 1)  # 8 pt text, ≈ 0.6 em a glyph
        if (stop - p.start_time) / total * width_in > text_in:
            ax.text(
                (p.start_time + stop) / 2 / scale,
                1.01,
                p.name,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                clip_on=False,
            )


def _mark_stages(ax, run: RunFile, scale: float, inches_per_ms: float) -> None:
    """The sub-phases of staged sleeps: a dotted line where each starts, and its name with its
    cycle (``nrem1``, ``rem1``, …) inside the axes' top where it fits (``inches_per_ms`` 0:
    lines only)."""
    stop_all = run_stop(run)
    for st in run.stages():
        stop = st.stop_time if math.isfinite(st.stop_time) else stop_all
        if stop <= st.start_time:
            continue
        ax.axvline(st.start_time / scale, color="0.35", ls=":", lw=0.6, zorder=0.5)
        name = f"{st.name}{st.cycle + 1}"
        if (stop - st.start_time) * inches_per_ms > 0.6 * style.FONT_PT / 72 * (len(name) + 1):
            ax.text(
                (st.start_time + stop) / 2 / scale,
                0.98,
                name,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                color="0.35",
            )


def _populations(run: RunFile, populations: Iterable[str] | None) -> list[str]:
    chosen = list(populations) if populations else run.populations()
    for pop in chosen:
        run.spike_count(pop)  # raises RunFileError naming the recorded populations
    return chosen


@style.styled
def raster(run: RunFile, populations: Iterable[str] | None = None) -> Figure | None:
    pops = [p for p in _populations(run, populations) if run.spike_count(p)]
    if not pops:
        return None
    scale, unit = time_scale(run)
    fig, axes = _subplots(
        len(pops), 1, figsize=(WIDTH_IN, 1.2 + 1.3 * len(pops)), sharex=True, squeeze=False
    )
    for ax, pop in zip(axes[:, 0], pops, strict=True):
        n = population_size(run, pop)
        shown = np.unique(np.linspace(0, n - 1, min(n, MAX_RASTER_NEURONS)).round().astype(int))
        keep = np.zeros(n, dtype=bool)
        keep[shown] = True
        group = run.file[f"spikes/{pop}"]
        expected = run.spike_count(pop) * shown.size / n
        stride = max(1, math.ceil(expected / (MAX_RASTER_POINTS / len(pops))))
        xs, ys = [], []
        for times, ids in spike_blocks(group):
            mask = keep[ids]
            xs.append(times[mask][::stride] / scale)
            ys.append(ids[mask][::stride])
        shade_phases(ax, run, scale, label=ax is axes[0, 0])
        ax.scatter(np.concatenate(xs), np.concatenate(ys), s=0.5, c="k", marker=".", lw=0)
        note = f"{shown.size} of {n} neurons" + (f", 1 in {stride} spikes" if stride > 1 else "")
        ax.set_ylabel(f"{pop} neuron\n({note})")
        ax.set_ylim(-0.5, n - 0.5)
    axes[-1, 0].set_xlabel(unit)
    style.legend_outside(axes[0, 0])
    return fig


@style.styled
def rates(run: RunFile, populations: Iterable[str] | None = None) -> Figure | None:
    pops = [p for p in _populations(run, populations) if run.spike_count(p)]
    if not pops:
        return None
    scale, unit = time_scale(run)
    stop = run_stop(run)
    bin_ms = max(1.0, stop / MAX_RATE_BINS)
    fig, ax = _subplots(figsize=(WIDTH_IN, 2.6))
    shade_phases(ax, run, scale)
    for pop in pops:
        blocks = spike_blocks(run.file[f"spikes/{pop}"], 0.0, stop)
        rate = population_rate(blocks, population_size(run, pop), 0.0, stop, bin_ms)
        centres = (np.arange(rate.size) + 0.5) * bin_ms / scale
        ax.plot(centres, rate, lw=0.8, label=pop)
    ax.set_xlabel(unit)
    ax.set_ylabel(f"population rate (Hz)\n{bin_ms:.3g} ms bins")
    style.legend_outside(ax)
    return fig


@style.styled
def traces(run: RunFile, populations: Iterable[str] | None = None) -> Figure | None:
    reports = [(n, p) for n, p in run.reports() if not populations or p in populations]
    if not reports:
        return None
    scale, unit = time_scale(run)
    fig, axes = _subplots(
        len(reports), 1, figsize=(WIDTH_IN, 1.2 + 1.5 * len(reports)), sharex=True, squeeze=False
    )
    for ax, (name, pop) in zip(axes[:, 0], reports, strict=True):
        group = run.file[f"reports/{name}/{pop}"]
        stride = max(1, math.ceil(group["data"].shape[0] / MAX_TRACE_ROWS))
        nodes = min(5, group["data"].shape[1])
        data = group["data"][::stride, :nodes].astype(float)
        times = group["time"][::stride] / scale
        shade_phases(ax, run, scale, label=ax is axes[0, 0])
        for k in range(nodes):
            ax.plot(times, data[:, k], lw=0.6, label=f"node {group['mapping/node_ids'][k]}")
        ax.set_ylabel(
            style.with_units(f"{style.pretty(name)}, {pop}", group["data"].attrs["units"])
        )
        style.legend_outside(ax)
    axes[-1, 0].set_xlabel(unit)
    return fig


def _snapshots(count: int, most: int = 6) -> np.ndarray:
    return np.unique(np.linspace(0, count - 1, min(count, most)).round().astype(int))


@style.styled
def weights(run: RunFile, populations: Iterable[str] | None = None) -> Figure | None:
    projections = run.projections()
    if not projections:
        return None
    fig, axes = _grid(len(projections), 2.6)
    names = {p.index: p.name for p in run.phases()}
    for ax, proj in zip(axes, projections, strict=True):
        group = run.file[f"weights/{proj}"]
        values, phase = group["values"], group["phase"][:]
        for k in _snapshots(values.shape[0]):
            w = values[int(k)].ravel().astype(float)
            label = names.get(int(phase[k]), "initial")
            ax.hist(w, bins=50, histtype="step", lw=0.8, label=f"{k}: {label}")
        ax.set_xlabel(style.with_units(f"{proj} weight", values.attrs["units"]))
        ax.set_ylabel("synapses")
        style.legend_outside(ax, title="after phase")
    return fig


def _as_matrix(run: RunFile, proj: str, delta: np.ndarray) -> np.ndarray:
    """Δw as a matrix of at most MAX_HEATMAP² cells (block means; a sparse projection is
    accumulated straight into its pre × post blocks, never as the full dense matrix)."""
    group = run.file[f"weights/{proj}"]
    if "pre" in group:
        pre, post = group["pre"][:].astype(np.int64), group["post"][:].astype(np.int64)
        fy, fx = _factors((int(pre.max()) + 1, int(post.max()) + 1))
        grid = np.zeros((int(pre.max()) // fy + 1, int(post.max()) // fx + 1))
        np.add.at(grid, (pre // fy, post // fx), delta)
        return grid / (fy * fx)
    m = delta.reshape(delta.shape[0], -1) if delta.ndim > 1 else delta[None, :]
    fy, fx = _factors(m.shape)
    if fy == fx == 1:
        return m
    pad = np.zeros((math.ceil(m.shape[0] / fy) * fy, math.ceil(m.shape[1] / fx) * fx))
    pad[: m.shape[0], : m.shape[1]] = m
    return pad.reshape(pad.shape[0] // fy, fy, pad.shape[1] // fx, fx).mean(axis=(1, 3))


def _factors(shape: tuple[int, int]) -> tuple[int, int]:
    return max(1, math.ceil(shape[0] / MAX_HEATMAP)), max(1, math.ceil(shape[1] / MAX_HEATMAP))


def _grid(count: int, height: float, most: int = 2):
    """A figure with ``count`` panels, at most ``most`` per row."""
    cols = min(count, most)
    rows = math.ceil(count / cols)
    fig, axes = _subplots(rows, cols, figsize=(WIDTH_IN, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


@style.styled
def weight_change(run: RunFile, populations: Iterable[str] | None = None) -> Figure | None:
    projections = [p for p in run.projections() if run.file[f"weights/{p}/values"].shape[0] >= 2]
    if not projections:
        return None
    fig, axes = _grid(len(projections), 3.0)
    for ax, proj in zip(axes, projections, strict=True):
        values = run.file[f"weights/{proj}/values"]
        delta = values[-1].astype(float) - values[0].astype(float)
        m = _as_matrix(run, proj, delta)
        limit = float(np.abs(m).max()) or 1.0
        image = ax.imshow(
            m, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest"
        )
        ax.set_title(f"{proj}: last − first snapshot")
        sparse = "pre" in run.file[f"weights/{proj}"]
        ax.set_xlabel("post-synaptic neuron" if sparse else "input unit (column)")
        ax.set_ylabel("pre-synaptic neuron" if sparse else "output unit (row)")
        fig.colorbar(image, ax=ax, label=style.with_units("Δw", values.attrs["units"]))
    return fig


@style.styled
def accuracy(run: RunFile, populations: Iterable[str] | None = None) -> Figure | None:
    """Per metric: the matrix R (rows "at start", "after <task>"; columns the tasks by name;
    left out for a single task) and each task's value after every test phase; the title gives
    the final value per task. Bounded metrics keep their fixed range (style.value_range)."""
    evaluations = run.evaluations()
    if not len(evaluations.phases) or not evaluations.metrics:
        return None
    phases = run.phases()
    names = {p.index: p.name for p in phases}
    metrics = list(evaluations.metrics)
    n_tasks = next(iter(evaluations.metrics.values())).shape[1]
    tasks = task_names(run, n_tasks)
    matrix = n_tasks > 1
    fig, axes = _subplots(
        len(metrics),
        2 if matrix else 1,
        figsize=(WIDTH_IN if matrix else style.ONE_COLUMN_IN + 1.2, 0.4 + 2.8 * len(metrics)),
        squeeze=False,
        gridspec_kw={"width_ratios": [1, 1.3]} if matrix else None,
    )
    for row, metric in zip(axes, metrics, strict=True):
        units = evaluations.units[metric]
        values = evaluations.metrics[metric]
        R, _ = accuracy_matrix(phases, evaluations, metric, n_tasks)
        limits = style.value_range(metric, values)
        if matrix:
            _matrix(fig, row[0], R, metric, units, tasks, limits)
        ax_c = row[-1]
        x = np.arange(len(evaluations.phases))
        many = n_tasks > style.MAX_LINES_PER_CONDITION
        for task in range(n_tasks):
            ax_c.plot(
                x,
                values[:, task],
                marker=style.marker(task) if not many else None,
                ms=3,
                lw=1,
                color=style.color(task),
                label=tasks[task],
            )
        ax_c.set_xticks(
            x, [names.get(int(p), str(p)) for p in evaluations.phases], **style.slanted(x.size)
        )
        ax_c.set_ylabel(style.metric_label(metric, units))
        ax_c.set_xlabel("test phase")
        if limits is not None:
            ax_c.set_ylim(*limits)
        final = "  ".join(f"{t} {v:.2f}" for t, v in zip(tasks, values[-1], strict=True))
        final = final if n_tasks > 1 else f"{values[-1, 0]:.2f}"
        ax_c.set_title(f"final: {final}" if n_tasks <= MAX_CELL_LABELS else "", loc="left")
        if n_tasks > 1:
            style.legend_outside(ax_c, title="task", ncols=1 + n_tasks // 8)
    return fig


def _matrix(fig, ax, R, metric: str, units: str, tasks: list[str], limits) -> None:
    n = len(tasks)
    low, high = limits or (np.nanmin(R), np.nanmax(R))
    image = ax.imshow(R, aspect="auto", vmin=low, vmax=high, interpolation="nearest")
    if n <= MAX_CELL_LABELS:
        for (i, j), v in np.ndenumerate(R):
            if np.isfinite(v):
                shade = (v - low) / ((high - low) or 1.0)
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    color="black" if shade > 0.6 else "white",
                )
    ax.set_yticks(range(n + 1), ["at start"] + [f"after {t}" for t in tasks])
    ax.set_xticks(range(n), tasks, rotation=0 if n <= 4 else 90)
    ax.set_xlabel("task")
    ax.set_ylabel("test")
    fig.colorbar(image, ax=ax, label=style.metric_label(metric, units))


@style.styled
def replay(run: RunFile, populations: Iterable[str] | None = None) -> Figure | None:
    """Network 0's population rate in each sleep phase with its replay events shaded, as
    ``info`` and ``summary`` count them (:mod:`neurosleep.analysis.replay`)."""
    sleeps = [p for p in run.phases() if p.kind == "sleep" and p.stop_time > p.start_time]
    pops = [p for p in _populations(run, populations) if run.spike_count(p)]
    pops = [
        p
        for p in pops
        if any(window_count(run.file[f"spikes/{p}"], s.start_time, s.stop_time) for s in sleeps)
    ]
    if not sleeps or not pops:
        return None
    scale, unit = time_scale(run)
    fig, axes = _subplots(
        len(sleeps), 1, figsize=(WIDTH_IN, 0.6 + 2.0 * len(sleeps)), squeeze=False
    )
    settings = replay_settings(run)
    bin_ms = settings.bin_ms
    for ax, phase in zip(axes[:, 0], sleeps, strict=True):
        counts = []
        for pop in pops:
            rate, events = phase_rate_and_events(run, pop, phase, settings)
            t = (phase.start_time + (np.arange(rate.size) + 0.5) * bin_ms) / scale
            (line,) = ax.plot(t, rate, lw=0.8, label=pop)
            counts.append(f"{pop} {len(events)}")
            for e in events:
                ax.axvspan(
                    e.start_ms / scale, e.stop_ms / scale, color=line.get_color(), alpha=0.25, lw=0
                )
        ax.set_title(f"sleep '{phase.name}': replay events {', '.join(counts)}", loc="left")
        ax.set_ylabel("population rate (Hz)")
        ax.set_xlabel(unit)
        style.legend_outside(ax, title="population")
    fig.suptitle(
        f"events: network 0's rate > mean + {settings.threshold_sd:g} SD in {bin_ms:g} ms bins",
        x=0.99,
        ha="right",
        fontsize=style.FONT_PT,
    )
    return fig


PLOTS: dict[str, Callable[..., Figure | None]] = {
    "raster": raster,
    "rates": rates,
    "traces": traces,
    "weights": weights,
    "weight_change": weight_change,
    "accuracy": accuracy,
    "replay": replay,
}


def plot_run(
    run: RunFile,
    out_dir: str | Path,
    *,
    kinds: Iterable[str] | None = None,
    populations: Iterable[str] | None = None,
    svg: bool = False,
    dpi: int = 150,
) -> list[Path]:
    """Write every figure the run has data for as ``<out_dir>/<kind>.pdf`` and ``.png``
    (``dpi`` for the PNG; and ``.svg``)."""
    kinds = list(kinds) if kinds else list(PLOTS)
    unknown = [k for k in kinds if k not in PLOTS]
    if unknown:
        raise UserError(f"unknown plot kind {unknown[0]!r}; known: {', '.join(PLOTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with style.context():
        for kind in kinds:
            fig = PLOTS[kind](run, populations)
            if fig is not None:
                written += style.save(fig, out / kind, dpi=dpi, svg=svg)
    return written
