"""The SRA sleep's input layer on the CPU, compiled (numba): the steps where nothing fires.

In a sleep of the paper's network the first hidden layer reaches its threshold at a few hundred
of 125 000 steps; at every other step the torch loop of :func:`neurosleep.engines.sra.sra_sleep`
only decays the membranes and adds the input layer's impulse (a sum of the rows of the spiking
pixels), seven torch operations whose dispatch costs far more than their arithmetic.
:func:`advance` does those steps in one call, up to the first step at which the first layer
reaches its threshold; the torch loop takes that step from there (threshold, plasticity, the
deeper layers) and calls it again.

The sum of a step's rows is torch's, bit for bit: ``torch.sum(rows, 0)`` orders the additions
of each column by its cascade (``multi_row_sum`` of ``aten/src/ATen/native/cpu/SumKernel.cpp``:
chunks of 16 rows, carried up four levels) or, in the last columns that do not fill a group of
four vectors, as four interleaved partial sums; which columns take which depends on the width
``lanes`` of torch's vectors, so :func:`torch_lanes` finds it by comparing with ``torch.sum``
on the layer's own rows and the engine uses the kernel only where one width reproduces it.
The decay and the addition are one float operation each, as torch's.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from neurosleep.imports import import_numba

numba = import_numba()

ROWS_CHECKED = (*range(1, 41), 63, 64, 65, 255, 256, 257)  # rows summed by torch_lanes' check


@numba.njit(inline="always")
def _ceil_log2(x):
    """torch's ``ceil_log2`` (1 for x ≤ 2)."""
    k = 1
    while (1 << k) < x:
        k += 1
    return k


@numba.njit(inline="always", boundscheck=False)
def _cascade(w, pre, first, stride, size, lo, hi, acc, out):
    """torch's ``multi_row_sum`` of columns ``lo`` … ``hi − 1``: ``out[c]`` = the sum of
    ``w[pre[first + stride·i], c]`` for i < size; ``acc`` [4, columns] is scratch. Rows are
    added in chunks of ``2**level_power`` into level 0, each chunk's sum carried into level 1,
    every 16 of those into level 2, and so on; the levels are added up at the end."""
    level_power = max(4, _ceil_log2(size) // 4)
    level_step = 1 << level_power
    level_mask = level_step - 1
    acc[:, lo:hi] = 0
    a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
    i = 0
    while i + level_step <= size:
        for _ in range(level_step):
            row = w[pre[first + stride * i]]
            for c in range(lo, hi):
                a0[c] += row[c]
            i += 1
        for level in range(1, 4):
            for c in range(lo, hi):
                acc[level, c] += acc[level - 1, c]
                acc[level - 1, c] = 0
            if i & (level_mask << (level * level_power)):
                break
    while i < size:
        row = w[pre[first + stride * i]]
        for c in range(lo, hi):
            a0[c] += row[c]
        i += 1
    for c in range(lo, hi):
        out[c] = ((a0[c] + a1[c]) + a2[c]) + a3[c]


@numba.njit(boundscheck=False)
def row_sum(w, pre, out, lanes, acc):
    """``out = torch.sum(w[pre], 0)`` in torch's order, for vectors of ``lanes`` elements;
    ``acc`` [8, columns] is scratch. Columns in groups of four vectors take the cascade; the
    rest four interleaved partial sums (rows k, k + 4, …), the leftover rows added to the
    first, the four then added in turn."""
    n, columns = pre.shape[0], w.shape[1]
    group = 4 * lanes if columns >= lanes else 4
    cascaded = columns - columns % group
    _cascade(w, pre, 0, 1, n, 0, cascaded, acc[:4], out)
    if cascaded == columns:
        return
    quarter = n // 4
    partial = acc[4:]
    for k in range(4):
        _cascade(w, pre, k, 4, quarter, cascaded, columns, acc[:4], partial[k])
    for i in range(4 * quarter, n):
        row = w[pre[i]]
        for c in range(cascaded, columns):
            partial[0, c] += row[c]
    for c in range(cascaded, columns):
        out[c] = ((partial[0, c] + partial[1, c]) + partial[2, c]) + partial[3, c]


@numba.njit(cache=True, nogil=True, boundscheck=False)
def advance(
    step, counts, starts, cols, membrane, decay, w_alpha, v, impulse, threshold, lanes, acc
):
    """From ``step`` on: decay every membrane (``membrane``, all layers), then, where the input
    spiked (``counts[t]`` pixels ``cols[starts[t]:]``), add the first layer's impulse (its
    ``w_alpha`` rows summed into ``impulse``) to its potentials ``v``; return the first step
    at which their largest reaches ``threshold`` (``len(counts)`` if none); ``acc``: scratch
    for :func:`row_sum`."""
    for t in range(step, counts.shape[0]):
        for i in range(membrane.shape[0]):
            membrane[i] = membrane[i] * decay
        if counts[t] == 0:
            continue
        row_sum(w_alpha, cols[starts[t] : starts[t] + counts[t]], impulse, lanes, acc)
        largest = v[0] + impulse[0]
        for i in range(v.shape[0]):
            x = v[i] + impulse[i]
            v[i] = x
            if x > largest or x != x:  # torch's max: NaN wins
                largest = x
        if not (float(largest) < threshold):
            return t
    return counts.shape[0]


def torch_lanes(w_alpha: torch.Tensor) -> int | None:
    """The vector width (elements) for which :func:`row_sum` gives ``torch.sum(w_alpha[pre],
    0)`` bit for bit, for sets of 1 … 257 rows of ``w_alpha`` [in × out] (CPU); ``None`` when
    no width does (then the torch loop runs)."""
    draw = np.random.default_rng(0)  # its own generator: the run's are not touched
    sets = [
        np.sort(draw.choice(w_alpha.shape[0], n, replace=False)).astype(np.int64)
        for n in ROWS_CHECKED
        if n <= w_alpha.shape[0]
    ]
    expected = [torch.sum(w_alpha[torch.from_numpy(pre)], 0).numpy() for pre in sets]
    w = w_alpha.numpy()
    acc = scratch(w_alpha)
    for size in (16, 32, 64, 128):  # bytes of a vector register
        lanes = size // w.itemsize
        if all(
            np.array_equal(_sums(w, pre, lanes, acc), want)
            for pre, want in zip(sets, expected, strict=True)
        ):
            return lanes
    return None


def scratch(w_alpha: torch.Tensor) -> np.ndarray:
    """The scratch array :func:`row_sum` needs for the rows of ``w_alpha``."""
    return np.zeros((8, w_alpha.shape[1]), dtype=w_alpha.numpy().dtype)


def _sums(w: np.ndarray, pre: np.ndarray, lanes: int, acc: np.ndarray) -> np.ndarray:
    """:func:`row_sum` through :func:`advance` (one step, no decay, from zero potentials, no
    threshold), the only compiled function a process loads."""
    membrane, impulse = np.zeros(w.shape[1], dtype=w.dtype), np.empty(w.shape[1], dtype=w.dtype)
    one_step = (np.array([len(pre)]), np.zeros(1, dtype=np.int64), pre, membrane, w.dtype.type(1))
    advance(0, *one_step, w, membrane, impulse, math.inf, lanes, acc)
    return impulse


__all__ = ["advance", "row_sum", "scratch", "torch_lanes"]
