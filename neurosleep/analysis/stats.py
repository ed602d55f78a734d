"""Summary statistics over independent runs (seeds, networks): mean ± SEM.

SEM is the sample standard deviation (ddof = 1) over √n. Values that are None or not finite
(a run without the measure) are left out; ``n`` counts the values used.

>>> m = mean_sem([0.5, 0.7, None, float("nan")])
>>> m.n, round(m.mean, 3), round(m.sem, 3)
(2, 0.6, 0.1)
>>> str(mean_sem([0.5, 0.7])), str(mean_sem([0.5])), str(mean_sem([]))
('0.600 ± 0.100', '0.500', '-')
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np


class MeanSEM(NamedTuple):
    """Mean and standard error of the mean of ``n`` values (NaN: no values; ``sem`` NaN when
    ``n`` < 2)."""

    mean: float
    sem: float
    n: int

    def __str__(self) -> str:
        """``mean ± sem`` to 3 decimals; the mean alone for one value; ``-`` for none."""
        if self.n == 0:
            return "-"
        return f"{self.mean:.3f}" if self.n < 2 else f"{self.mean:.3f} ± {self.sem:.3f}"


def mean_sem(values: Iterable[float | None]) -> MeanSEM:
    """Mean ± SEM (sample SD / √n) of the finite values of ``values`` (one dimension)."""
    v = np.array([math.nan if x is None else x for x in values], dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return MeanSEM(math.nan, math.nan, 0)
    sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return MeanSEM(float(v.mean()), sem, int(v.size))
