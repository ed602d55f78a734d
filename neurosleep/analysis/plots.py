"""Figures of one run file, one function per kind in :data:`PLOTS`.

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

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from neurosleep.analysis.replay import ROBUST_THRESHOLD, detect_events, population_rate
from neurosleep.analysis.summary import accuracy_matrix
from neurosleep.errors import UserError
from neurosleep.io.blocks import population_size, run_stop, spike_blocks, window_count
from neurosleep.io.runfile import RunFile

MAX_RASTER_POINTS = 100_000
MAX_RASTER_NEURONS = 400
MAX_RATE_BINS = 2_000
MAX_TRACE_ROWS = 5_000
MAX_HEATMAP = 400
WIDTH_IN = 6.5  # a paper's text width
PHASE_COLORS = {"wake": "#f6e8b1", "sleep": "#c9daf8", "test": "#e0e0e0"}
STYLE = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7}


def _subplots(rows: int = 1, cols: int = 1, *, figsize: tuple[float, float], **kwargs):
    """A figure without pyplot (no global state, no GUI backend) and its axes."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, **kwargs)


def time_scale(run: RunFile) -> tuple[float, str]:
    """Divide ms by this to plot: seconds for runs longer than 2 s."""
    return (1000.0, "s") if run_stop(run) > 2000.0 else (1.0, "ms")


def shade_phases(ax, run: RunFile, scale: float, label: bool = True) -> None:
    """Shade wake/sleep/test phases and write their names along the top of the axes."""
    for p in run.phases():
        stop = p.stop_time if math.isfinite(p.stop_time) else run_stop(run)
        if stop <= p.start_time:
            continue
        ax.axvspan(
            p.start_time / scale, stop / scale, color=PHASE_COLORS.get(p.kind), lw=0, zorder=0
        )
        if label:
            ax.text(
                (p.start_time + stop) / 2 / scale,
                1.01,
                p.name,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=6,
                clip_on=False,
            )


def _populations(run: RunFile, populations: Iterable[str] | None) -> list[str]:
    chosen = list(populations) if populations else run.populations()
    for pop in chosen:
        run.spike_count(pop)  # raises RunFileError naming the recorded populations
    return chosen


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
        ax.set_ylabel(f"{pop}\nneuron index")
        ax.set_title(note, fontsize=6, loc="right")
        ax.set_ylim(-0.5, n - 0.5)
    axes[-1, 0].set_xlabel(f"time ({unit})")
    return fig


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
        rate = population_rate(
            run.file[f"spikes/{pop}"], population_size(run, pop), 0.0, stop, bin_ms
        )
        centres = (np.arange(rate.size) + 0.5) * bin_ms / scale
        ax.plot(centres, rate, lw=0.8, label=pop)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel(f"population rate (Hz, {bin_ms:.3g} ms bins)")
    ax.legend(loc="upper right")
    return fig


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
        ax.set_ylabel(f"{name} of {pop}\n({group['data'].attrs['units']})")
        ax.legend(loc="upper right", ncol=nodes, fontsize=5)
    axes[-1, 0].set_xlabel(f"time ({unit})")
    return fig


def _snapshots(count: int, most: int = 6) -> np.ndarray:
    return np.unique(np.linspace(0, count - 1, min(count, most)).round().astype(int))


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
        ax.set_xlabel(f"{proj} weight ({values.attrs['units']})")
        ax.set_ylabel("synapses")
        ax.legend(fontsize=5, title="snapshot: after phase", title_fontsize=5)
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


def _grid(count: int, height: float):
    """A figure with ``count`` panels, at most three per row."""
    cols = min(count, 3)
    rows = math.ceil(count / cols)
    fig, axes = _subplots(rows, cols, figsize=(WIDTH_IN, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


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
        ax.set_title(f"{proj}: last − first snapshot", fontsize=7)
        ax.set_xlabel("post index" if "pre" in run.file[f"weights/{proj}"] else "input / column")
        ax.set_ylabel("pre index" if "pre" in run.file[f"weights/{proj}"] else "output / row")
        fig.colorbar(image, ax=ax, label=f"Δw ({values.attrs['units']})")
    return fig


def accuracy(run: RunFile, populations: Iterable[str] | None = None) -> Figure | None:
    evaluations = run.evaluations()
    if not len(evaluations.phases):
        return None
    phases = run.phases()
    names = {p.index: p.name for p in phases}
    metrics = list(evaluations.metrics)
    n_tasks = next(iter(evaluations.metrics.values())).shape[1]
    fig, axes = _subplots(
        len(metrics),
        2,
        figsize=(WIDTH_IN, 0.4 + 2.6 * len(metrics)),
        squeeze=False,
        gridspec_kw={"width_ratios": [1, 1.6]},
    )
    for (ax_m, ax_c), metric in zip(axes, metrics, strict=True):
        R, _ = accuracy_matrix(phases, evaluations, metric, n_tasks)
        finite = R[np.isfinite(R)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        if evaluations.units[metric] == "1":  # fractions: a fixed 0–1 scale
            low, high = min(low, 0.0), max(high, 1.0)
        image = ax_m.imshow(R, cmap="viridis", aspect="auto", vmin=low, vmax=high)
        for (i, j), v in np.ndenumerate(R):
            if np.isfinite(v):
                ax_m.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="0.5")
        ax_m.set_yticks(
            range(n_tasks + 1), ["at start"] + [f"after task {k}" for k in range(n_tasks)]
        )
        ax_m.set_xticks(range(n_tasks), [f"task {k}" for k in range(n_tasks)])
        ax_m.set_title(f"{metric} matrix R", fontsize=7)
        fig.colorbar(image, ax=ax_m, label=f"{metric} ({evaluations.units[metric]})")
        values = evaluations.metrics[metric]
        x = np.arange(len(evaluations.phases))
        for task in range(n_tasks):
            ax_c.plot(x, values[:, task], marker="o", ms=3, lw=1, label=f"task {task}")
        ax_c.set_xticks(
            x, [names.get(int(p), str(p)) for p in evaluations.phases], rotation=30, ha="right"
        )
        ax_c.set_ylabel(f"{metric} ({evaluations.units[metric]})")
        ax_c.set_xlabel("test phase")
        if n_tasks <= 10:
            ax_c.legend(fontsize=6)
    return fig


def replay(
    run: RunFile,
    populations: Iterable[str] | None = None,
    bin_ms: float = 5.0,
    threshold_sd: float = ROBUST_THRESHOLD,
) -> Figure | None:
    sleeps = [p for p in run.phases() if p.kind == "sleep" and p.stop_time > p.start_time]
    pops = [p for p in _populations(run, populations) if run.spike_count(p)]
    pops = [
        p
        for p in pops
        if any(window_count(run.file[f"spikes/{p}"], s.start_time, s.stop_time) for s in sleeps)
    ]
    if not sleeps or not pops:
        return None
    fig, axes = _subplots(
        len(sleeps), 1, figsize=(WIDTH_IN, 0.6 + 2.0 * len(sleeps)), squeeze=False
    )
    for ax, phase in zip(axes[:, 0], sleeps, strict=True):
        counts = []
        for pop in pops:
            rate = population_rate(
                run.file[f"spikes/{pop}"],
                population_size(run, pop),
                phase.start_time,
                phase.stop_time,
                bin_ms,
            )
            t = phase.start_time + (np.arange(rate.size) + 0.5) * bin_ms
            (line,) = ax.plot(t, rate, lw=0.8, label=pop)
            events = detect_events(
                rate,
                t_start=phase.start_time,
                bin_ms=bin_ms,
                threshold_sd=threshold_sd,
                robust=True,
            )
            counts.append(f"{pop} {len(events)}")
            for e in events:
                ax.axvspan(e.start_ms, e.stop_ms, color=line.get_color(), alpha=0.25, lw=0)
        ax.set_title(
            f"sleep phase {phase.index} '{phase.name}': events {', '.join(counts)} "
            f"(rate > median + {threshold_sd:g} robust SD, {bin_ms:g} ms bins)",
            fontsize=7,
        )
        ax.set_ylabel("population rate (Hz)")
        ax.set_xlabel("time (ms)")
        ax.legend(loc="upper right")
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
    """Write every figure the run has data for as ``<out_dir>/<kind>.png`` (and ``.svg``)."""
    kinds = list(kinds) if kinds else list(PLOTS)
    unknown = [k for k in kinds if k not in PLOTS]
    if unknown:
        raise UserError(f"unknown plot kind {unknown[0]!r}; known: {', '.join(PLOTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context(STYLE):
        for kind in kinds:
            fig = PLOTS[kind](run, populations)
            if fig is None:
                continue
            fig.tight_layout()
            for suffix in (".png", ".svg") if svg else (".png",):
                path = out / f"{kind}{suffix}"
                fig.savefig(path, dpi=dpi)
                written.append(path)
    return written
