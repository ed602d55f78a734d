"""Figures a paper can use, checked on their text: every label and tick drawn at ≥ 8 pt, no two
text boxes overlapping (renderer bounding boxes), units where a quantity has them (never
"(1)"), tasks by name, time in one unit per figure; saved as PDF and PNG."""

import itertools
import json

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from neurosleep.analysis import plots, style
from neurosleep.analysis.compare import figure, group_runs, split_complete
from neurosleep.cli import main
from neurosleep.io import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from tests.conftest import small_hopfield
from tests.test_analysis_runs import make_run


def drawn_texts(fig) -> list[tuple[Text, object]]:
    """(text, its bounding box in pixels) of every non-empty text the renderer draws (a tick
    label outside its axis's view limits exists but is not drawn)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            margin = 1e-9 * (high - low)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - margin <= tick.get_loc() <= high + margin:
                    hidden.update({id(tick.label1), id(tick.label2)})
    out = []
    for text in fig.findobj(Text):
        if id(text) in hidden or not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            out.append((text, box))
    return out


def text_problems(fig) -> list[str]:
    texts = drawn_texts(fig)
    problems = [
        f"{t.get_text()!r} at {t.get_fontsize():.1f} pt"
        for t, _ in texts
        if t.get_fontsize() < style.FONT_PT - 1e-9
    ]
    problems += [
        f"dimensionless shown as (1): {t.get_text()!r}" for t, _ in texts if "(1)" in t.get_text()
    ]
    for (a, box_a), (b, box_b) in itertools.combinations(texts, 2):
        shrunk_a, shrunk_b = box_a.padded(-1.0), box_b.padded(-1.0)
        if shrunk_a.overlaps(shrunk_b):
            problems.append(f"{a.get_text()!r} overlaps {b.get_text()!r}")
    for ax in fig.axes:
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        shared = ax.get_shared_x_axes().get_siblings(ax)  # stacked panels: x label at the bottom
        xlabel = " ".join(other.get_xlabel() for other in shared)
        if not xlabel.strip() or not ax.get_ylabel().strip():
            problems.append(f"axes without a label: x {ax.get_xlabel()!r}, y {ax.get_ylabel()!r}")
    return problems


def labels(fig) -> list[str]:
    return [ax.get_xlabel() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes]


def tick_texts(ax, axis: str = "x") -> list[str]:
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_text() for t in ticks]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("fig") / "demo.h5")


@pytest.fixture(scope="module")
def hopfield(tmp_path_factory):
    import yaml

    tmp = tmp_path_factory.mktemp("hop")
    protocol = small_hopfield()
    (tmp / "p.yaml").write_text(yaml.safe_dump(protocol))
    return run(load_protocol(tmp / "p.yaml"), output=tmp / "hop.h5", progress=False).path


@pytest.mark.parametrize("kind", list(plots.PLOTS))
def test_demo_figures_text(demo, kind):
    with open_run(demo) as r:
        fig = plots.PLOTS[kind](r)
    assert text_problems(fig) == []
    units = {
        "raster": "time (ms)",
        "rates": "population rate (Hz)",
        "traces": "(mV)",
        "weights": "exc_exc weight (nS)",
        "weight_change": "Δw (nS)",
        "replay": "time (ms)",
    }
    if kind in units:
        assert any(units[kind] in text for text in labels(fig)), labels(fig)


def test_consolidation_figures_use_memory_names_and_one_time_unit(consolidation_run):
    with open_run(consolidation_run) as r:
        figures = {kind: plots.PLOTS[kind](r) for kind in plots.PLOTS}
        completion = r.evaluations().metrics["completion"]
    for kind, fig in figures.items():
        if fig is not None:
            assert text_problems(fig) == [], kind
    acc = figures["accuracy"]
    matrix = next(ax for ax in acc.axes if ax.images and ax.get_label() != "<colorbar>")
    curve = next(ax for ax in acc.axes if ax.get_ylabel() == "completion" and not ax.images)
    assert tick_texts(matrix) == ["A", "B", "S2"]
    assert tick_texts(matrix, "y") == ["at start", "after A", "after B", "after S2"]
    c = completion[-1]
    assert curve.get_title(loc="left") == f"final: A {c[0]:.2f}  B {c[1]:.2f}  S2 {c[2]:.2f}"
    assert curve.get_ylim() == (0.0, 1.0) or max(curve.get_ylim()) <= 0.2  # fixed or zoomed
    raster_unit = figures["raster"].axes[-1].get_xlabel()
    assert figures["replay"].axes[0].get_xlabel() == raster_unit  # replay beside raster: one unit


def test_hopfield_time_in_network_updates(hopfield):
    with open_run(hopfield) as r:
        traces = plots.traces(r)
        acc = plots.accuracy(r)
    assert traces.axes[-1].get_xlabel() == "time (network updates)"
    assert not any("ms" in text for text in labels(traces))
    assert text_problems(traces) == [] and text_problems(acc) == []
    assert not any(ax.images for ax in acc.axes)  # one pattern set: no 1 × 1 "matrix"
    overlap = next(ax for ax in acc.axes if ax.get_ylabel() == "overlap")
    assert overlap.get_ylim() == (-1.0, 1.0)  # bounded: its fixed range


def test_bounded_ranges():
    # a 0.006 change stays small on the full 0-1 range; ≤ 0.03 is zoomed to a readable range
    assert style.value_range("accuracy", np.array([0.5, 0.506])) == (0.0, 1.0)
    assert style.value_range("intrusion", np.array([0.0, 0.01, 0.03])) == (0.0, 0.05)
    assert style.value_range("rate_exc", np.array([3.0, 40.0])) is None


def test_compare_figure_per_memory(consolidation_run, tmp_path):
    runs, _ = split_complete([consolidation_run])
    fig = figure(group_runs(runs, ["protocol"]), ["completion"])
    assert text_problems(fig) == []
    bars, curves = fig.axes[:2]
    assert tick_texts(bars) == ["A", "B", "S2"] and bars.get_xlabel() == "memory"
    with open_run(consolidation_run) as r:
        names = {p.index: p.name for p in r.phases()}
        tests = [names[int(i)] for i in r.evaluations().phases]
    assert tick_texts(curves) == tests  # phases by name, not index
    errorbars = [c for ax in fig.axes for c in ax.containers if hasattr(c, "has_yerr")]
    assert not any(c.has_yerr for c in errorbars)  # n = 1: no error bars, no caps
    out = tmp_path / "compare.png"
    argv = ["compare", str(consolidation_run), "--metric", "completion", "--figure", str(out)]
    assert main(argv) == 0
    assert (
        out.read_bytes()[:4] == b"\x89PNG"
        and (tmp_path / "compare.pdf").read_bytes()[:4] == b"%PDF"
    )


def test_plot_writes_pdf_and_png(demo, tmp_path):
    assert main(["plot", str(demo), "--out", str(tmp_path), "--kind", "accuracy"]) == 0
    assert (tmp_path / "accuracy.pdf").read_bytes()[:4] == b"%PDF"
    assert (tmp_path / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("n_tasks", [5, 10])
def test_accuracy_matrix_of_many_tasks_keeps_its_ticks_apart(tmp_path, n_tasks):
    """Split MNIST's 5 class pairs and 10 tasks: tick labels of R do not collide."""
    from neurosleep.io import Recorder

    path = tmp_path / "many.h5"
    rng = np.random.default_rng(0)
    with Recorder.create(path, attrs={"n_tasks": n_tasks}, n_tasks=n_tasks) as rec:
        pairs = [f"{2 * k}/{2 * k + 1}" for k in range(n_tasks)]
        names = pairs if n_tasks == 5 else [f"task {k + 1}" for k in range(n_tasks)]
        rec.file.attrs["task_names"] = json.dumps(names)
        for k in range(-1, n_tasks):
            if k >= 0:
                rec.begin_phase(f"train{k + 1}", "wake", task=k, start_time=0.0)
                rec.end_phase(stop_time=0.0)
            rec.begin_phase(f"test{k + 1}", "test", task=k, start_time=0.0)
            rec.add_evaluation({"accuracy": rng.uniform(0, 1, n_tasks)}, {"accuracy": "1"}, {})
            rec.end_phase(stop_time=0.0)
    with open_run(path) as r:
        fig = plots.accuracy(r)
    assert text_problems(fig) == []
    matrix = next(ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>")
    assert len(tick_texts(matrix)) == n_tasks
