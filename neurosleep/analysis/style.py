"""The house style of every figure: sizes for one and two journal columns, text ≥ 8 pt, the
Okabe-Ito colour-blind-safe palette, labels with units, legends off the data, fixed ranges for
bounded metrics, and saving as PDF and PNG.

Examples
--------
>>> from neurosleep.analysis import style
>>> style.metric_label("completion", "1"), style.metric_label("rate_exc", "Hz")
('completion', 'rate exc (Hz)')
>>> style.value_range("accuracy", np.array([0.50, 0.506]))
(0.0, 1.0)
>>> style.value_range("intrusion", np.array([0.0, 0.03]))
(0.0, 0.05)
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import matplotlib
import numpy as np
from cycler import cycler
from matplotlib.figure import Figure

ONE_COLUMN_IN = 3.5  # figure width for one journal column (inches)
TWO_COLUMN_IN = 7.0  # figure width for the full text width (inches)
FONT_PT = 8  # the smallest text anywhere in a figure
# Okabe & Ito (2008), "Color universal design": distinguishable with every colour-vision type
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
MAX_LINES_PER_CONDITION = 4  # more tasks than this: curves show the mean over tasks
PHASE_COLORS = {"wake": "#F0E442", "sleep": "#56B4E9", "test": "#BBBBBB"}  # shading, alpha 0.3
PHASE_ALPHA = 0.3
DIMENSIONLESS = ("1", "")

RC = {
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT + 1,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": FONT_PT,
    "ytick.labelsize": FONT_PT,
    "legend.fontsize": FONT_PT,
    "legend.title_fontsize": FONT_PT,
    "figure.titlesize": FONT_PT + 1,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=OKABE_ITO),
    "image.cmap": "viridis",
    "pdf.fonttype": 42,  # TrueType in the PDF: text stays text (editable, searchable)
    "svg.fonttype": "none",
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
}

# Bounded metrics and their ranges (by name; "rate_*" and "cv_isi_*" have none).
BOUNDS: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "completion": (0.0, 1.0),
    "intrusion": (0.0, 1.0),
    "sequence": (-1.0, 1.0),
    "full_recall": (0.0, 1.0),
    "no_response": (0.0, 1.0),
    "spontaneous_sequence": (-1.0, 1.0),
    "spontaneous_full_recall": (0.0, 1.0),
    "spontaneous_no_response": (0.0, 1.0),
    "overlap": (-1.0, 1.0),
    "fixed_point_fraction": (0.0, 1.0),
}
ZOOM_BELOW = 0.1  # values within this fraction of the range: zoom to a rounded upper limit


@contextlib.contextmanager
def context() -> Iterator[None]:
    """matplotlib settings of the house style, for building and saving figures."""
    with matplotlib.rc_context(RC):
        yield


F = TypeVar("F", bound=Callable)


def styled(function: F) -> F:
    """Run a figure-making function under :func:`context`, so that its text and colours are
    the house style's whoever calls it."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with context():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def color(k: int) -> str:
    return OKABE_ITO[k % len(OKABE_ITO)]


def line_style(k: int) -> str:
    return LINE_STYLES[k % len(LINE_STYLES)]


def marker(k: int) -> str:
    return MARKERS[k % len(MARKERS)]


def pretty(name: str) -> str:
    """``fixed_point_fraction`` → ``fixed point fraction``."""
    return name.replace("_", " ")


def with_units(text: str, units: str) -> str:
    """An axis label: ``text (units)``, or ``text`` alone for a dimensionless quantity."""
    return text if units in DIMENSIONLESS else f"{text} ({units})"


def metric_label(metric: str, units: str, prefix: str = "") -> str:
    return with_units(prefix + pretty(metric), units)


def nice_ceiling(value: float) -> float:
    """The next of 1, 2, 5 × 10^k at or above ``value`` (> 0)."""
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * 10**exponent >= value * (1 - 1e-12):
            return float(step * 10**exponent)
    return float(10 ** (exponent + 1))


def value_range(metric: str, values: np.ndarray) -> tuple[float, float] | None:
    """A fixed axis / colour range for a bounded metric (``None``: autoscale).

    The metric's full range, so that a change of 0.006 looks as small as it is; when every
    value lies within the lowest tenth of the range (an intrusion of ≤ 0.03 on 0–1), the range
    from the lower bound to a rounded upper limit instead, so that the values stay readable.
    """
    if metric not in BOUNDS:
        return None
    low, high = BOUNDS[metric]
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size and finite.min() >= low and finite.max() - low <= ZOOM_BELOW * (high - low):
        top = finite.max() - low
        return low, low + (nice_ceiling(top * 1.2) if top > 0 else ZOOM_BELOW * (high - low))
    return low, high


def new_figure(width: str = "two", height_in: float = 2.5) -> Figure:
    """A figure one (``one``) or two (``two``) journal columns wide, without pyplot."""
    widths = {"one": ONE_COLUMN_IN, "two": TWO_COLUMN_IN}
    return Figure(figsize=(widths[width], height_in), layout="constrained")


def slanted(count: int) -> dict:
    """Keyword arguments for ``set_xticks`` labels: 30° up to 6 labels, vertical beyond (the
    boxes of labels slanted less would overlap)."""
    return {"rotation": 30, "ha": "right"} if count <= 6 else {"rotation": 90, "ha": "center"}


def legend_outside(ax, **kwargs) -> None:
    """A legend to the right of the axes, never over the data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def save(fig: Figure, stem: str | Path, dpi: int = 300, svg: bool = False) -> list[Path]:
    """Write ``stem.pdf`` and ``stem.png`` (and ``stem.svg``); returns the paths."""
    stem = Path(stem)
    written = []
    with context():
        for suffix in (".pdf", ".png", ".svg") if svg else (".pdf", ".png"):
            path = stem.with_suffix(suffix)
            fig.savefig(path, dpi=dpi)
            written.append(path)
    return written
