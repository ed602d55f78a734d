"""Continual-learning metrics as pure functions of the accuracy matrix.

Every function takes ``R`` of shape ``(T + 1, T)``: row 0 is the "at start" row b̄ (accuracy of
the untrained model on each task), row ``i`` (1 ≤ i ≤ T) is the accuracy on every task after
training on task ``i``. In the formulas below tasks are 1-based as in the literature
(Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018), so ``R[i, j]`` is the array element
``R[i, j - 1]``. Accuracies are fractions or percent; the results are in the same unit.

Definitions (docs/analysis.md; Lopez-Paz & Ranzato, NeurIPS 2017, for ACC, BWT, FWT; Chaudhry et
al., ECCV 2018, for forgetting and intransigence; Rebuffi et al., CVPR 2017, for the average
incremental accuracy):

- ACC  = (1/T) Σ_{j=1..T} R[T, j]
- BWT  = (1/(T−1)) Σ_{j=1..T−1} (R[T, j] − R[j, j])          (negative = forgetting; not GEM's 1/T)
- FWT  = (1/(T−1)) Σ_{j=2..T} (R[j−1, j] − b̄_j)
- forgetting at k = mean_{j<k} (max_{1≤l<k} R[l, j] − R[k, j])   (Chaudhry's max-based
  forgetting, not Avalanche's −BWT)
- intransigence at k = a*_k − R[k, k]
- average incremental accuracy = (1/T) Σ_k (1/k) Σ_{j≤k} R[k, j]

Metrics that need two tasks (BWT, FWT, forgetting) are NaN when T = 1; NaN entries in ``R``
(a task not tested) propagate.

:func:`after_each_task` gives every metric after each task k, as the metric of the leading
matrix ``R[:k + 1, :k]`` (tasks 1..k): the runner writes it to ``/metrics/continual`` after every
test phase (docs/run-file.md).

Examples
--------
>>> import numpy as np
>>> R = np.array([[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]])
>>> round(acc(R), 3), round(bwt(R), 3), round(fwt(R), 3)
(0.7, -0.3, 0.1)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def check_matrix(R: np.ndarray) -> np.ndarray:
    """Return ``R`` as a float array after checking its shape is ``(T + 1, T)`` with T ≥ 1."""
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[1] < 1 or R.shape[0] != R.shape[1] + 1:
        raise ValueError(
            f"accuracy matrix must have shape (T + 1, T) with the 'at start' row first, "
            f"got {R.shape}"
        )
    return R


def acc(R: np.ndarray) -> float:
    """Final average accuracy: mean of the last row."""
    R = check_matrix(R)
    return float(R[-1].mean())


def bwt(R: np.ndarray) -> float:
    """Backward transfer: mean over tasks 1..T−1 of final minus just-trained accuracy."""
    R = check_matrix(R)
    T = R.shape[1]
    if T < 2:
        return float("nan")
    j = np.arange(1, T)  # 1-based tasks 1..T−1
    return float((R[T, j - 1] - R[j, j - 1]).mean())


def fwt(R: np.ndarray) -> float:
    """Forward transfer: mean over tasks 2..T of accuracy before training on it minus b̄."""
    R = check_matrix(R)
    T = R.shape[1]
    if T < 2:
        return float("nan")
    j = np.arange(2, T + 1)
    return float((R[j - 1, j - 1] - R[0, j - 1]).mean())


def forgetting_per_task(R: np.ndarray, k: int | None = None) -> np.ndarray:
    """Max-based forgetting of each task j < k at task k (1-based; default k = T): shape [k−1]."""
    R = check_matrix(R)
    k = R.shape[1] if k is None else k
    if not 1 <= k <= R.shape[1]:
        raise ValueError(f"k must be within 1..{R.shape[1]}, got {k}")
    if k < 2:
        return np.empty(0)
    best = R[1:k, : k - 1].max(axis=0)  # max over l = 1..k−1, for tasks j = 1..k−1
    return best - R[k, : k - 1]


def forgetting(R: np.ndarray, k: int | None = None) -> float:
    """Average max-based forgetting at task k (default T) over tasks j < k; NaN when k = 1."""
    per_task = forgetting_per_task(R, k)
    return float(per_task.mean()) if per_task.size else float("nan")


def intransigence(R: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """Intransigence a*_k − R[k, k] for every k; ``joint`` [T] holds a*_k (joint training)."""
    R = check_matrix(R)
    joint = np.asarray(joint, dtype=float)
    if joint.shape != (R.shape[1],):
        raise ValueError(f"joint accuracies must have shape ({R.shape[1]},), got {joint.shape}")
    k = np.arange(1, R.shape[1] + 1)
    return joint - R[k, k - 1]


def average_incremental_accuracy(R: np.ndarray) -> float:
    """(1/T) Σ_k (1/k) Σ_{j≤k} R[k, j]: the mean over k of the accuracy on tasks seen so far."""
    R = check_matrix(R)
    T = R.shape[1]
    seen = np.tril(np.ones((T, T), dtype=bool))
    per_k = np.where(seen, R[1:], 0.0).sum(axis=1) / np.arange(1, T + 1)
    return float(per_k.mean())


@dataclass(frozen=True)
class MatrixMetric:
    """A scalar metric of the accuracy matrix, with the label tables print."""

    name: str
    function: Callable[[np.ndarray], float]
    description: str


MATRIX_METRICS: tuple[MatrixMetric, ...] = (
    MatrixMetric("ACC", acc, "final average accuracy"),
    MatrixMetric("BWT", bwt, "backward transfer, 1/(T-1) normalised (negative = forgetting)"),
    MatrixMetric("FWT", fwt, "forward transfer against the 'at start' row"),
    MatrixMetric("forgetting", forgetting, "max-based forgetting at T (Chaudhry et al. 2018)"),
    MatrixMetric("AIA", average_incremental_accuracy, "average incremental accuracy"),
)


def all_metrics(R: np.ndarray) -> dict[str, float]:
    """Every scalar metric of :data:`MATRIX_METRICS`, by name."""
    R = check_matrix(R)
    return {m.name: m.function(R) for m in MATRIX_METRICS}


@dataclass(frozen=True)
class ContinualOptions:
    """Which continual-learning metrics a run writes after each test phase.

    ``metric`` names the evaluation (per-task accuracy) the matrix is built from; ``fwt`` is
    False in class-incremental learning, where forward transfer is not meaningful; ``reference``
    [T] holds a*_k (accuracy on task k of a model trained jointly on tasks 1..k) for
    intransigence, or None.
    """

    metric: str = "accuracy"
    fwt: bool = False
    reference: tuple[float, ...] | None = None


INTRANSIGENCE = "intransigence at k: a*_k − R[k, k] against the given joint reference"


def after_each_task(R: np.ndarray, options: ContinualOptions) -> dict[str, np.ndarray]:
    """Each metric after each task: ``values[name][k]`` is the metric of ``R[:k + 1, :k]``.

    Returns arrays of shape [T + 1] aligned with the rows of ``R`` (row 0, "at start", is NaN;
    a row not yet measured gives NaN): ACC, BWT, forgetting, AIA, then FWT if
    ``options.fwt`` and intransigence if ``options.reference`` is given.
    """
    R = check_matrix(R)
    T = R.shape[1]
    chosen = [m for m in MATRIX_METRICS if m.name != "FWT" or options.fwt]
    values = {m.name: np.full(T + 1, np.nan) for m in chosen}
    reference = None if options.reference is None else np.asarray(options.reference, float)
    if reference is not None:
        if reference.shape != (T,):
            raise ValueError(f"reference must have {T} values (a*_k per task), got {reference}")
        values["intransigence"] = np.full(T + 1, np.nan)
    for k in range(1, T + 1):
        leading = R[: k + 1, :k]
        for m in chosen:
            values[m.name][k] = m.function(leading)
        if reference is not None:
            values["intransigence"][k] = intransigence(leading, reference[:k])[-1]
    return values


def descriptions() -> dict[str, str]:
    """The description of each metric :func:`after_each_task` can return, by name."""
    return {m.name: m.description for m in MATRIX_METRICS} | {"intransigence": INTRANSIGENCE}
