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

:func:`window_spikes` draws nothing: from torch's uniform draws and window corners it makes a
block's input spikes in one pass, the comparisons torch's mask, ``where`` and product make in
five (:func:`neurosleep.sleep.sra.input_spikes`); :func:`spike_lists` lists them as
``nonzero`` and ``bincount`` do (≈0.15 ms instead of ≈0.85 ms for a block of 1000 steps).
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
def _add_row(row, lo, hi, out):
    """``out[c] += row[c]`` for columns ``lo`` … ``hi − 1``."""
    for c in range(lo, hi):
        out[c] += row[c]


@numba.njit(inline="always", boundscheck=False)
def _cascade(w, pre, first, stride, size, lo, hi, levels, out):
    """torch's ``multi_row_sum`` of columns ``lo`` … ``hi − 1``: ``out[c]`` = the sum of
    ``w[pre[first + stride·i], c]`` for i < size; ``levels`` [3, columns] is scratch. Rows are
    added in chunks of ``2**level_power`` into level 0 (``out``), each chunk's sum carried into
    level 1, every 16 of those into level 2, and so on; the levels are added up at the end.
    Only the levels the rows reach are used: the others would add zeros (a level's sum, started
    at +0, is never −0, so adding +0 to it changes nothing)."""
    level_power = max(4, _ceil_log2(size) // 4)
    level_step = 1 << level_power
    level_mask = level_step - 1
    used = 1  # levels reached: level k once size ≥ level_step**k
    while used < 4 and size >> (level_power * used):
        used += 1
    out[lo:hi] = 0
    levels[: used - 1, lo:hi] = 0
    i = 0
    while i + level_step <= size:
        for _ in range(level_step):
            _add_row(w[pre[first + stride * i]], lo, hi, out)
            i += 1
        _add_row(out, lo, hi, levels[0])
        out[lo:hi] = 0
        for level in range(1, 3):
            if i & (level_mask << (level * level_power)):
                break
            _add_row(levels[level - 1], lo, hi, levels[level])
            levels[level - 1, lo:hi] = 0
    while i < size:
        _add_row(w[pre[first + stride * i]], lo, hi, out)
        i += 1
    for level in range(used - 1):
        _add_row(levels[level], lo, hi, out)


@numba.njit(boundscheck=False)
def row_sum(w, pre, out, lanes, acc):
    """``out = torch.sum(w[pre], 0)`` in torch's order, for vectors of ``lanes`` elements;
    ``acc`` [7, columns] is scratch. Columns in groups of four vectors take the cascade; the
    rest four interleaved partial sums (rows k, k + 4, …), the leftover rows added to the
    first, the four then added in turn."""
    n, columns = pre.shape[0], w.shape[1]
    group = 4 * lanes if columns >= lanes else 4
    cascaded = columns - columns % group
    levels, partial = acc[:3], acc[3:]
    _cascade(w, pre, 0, 1, n, 0, cascaded, levels, out)
    if cascaded == columns:
        return
    quarter = n // 4
    for k in range(4):
        _cascade(w, pre, k, 4, quarter, cascaded, columns, levels, partial[k])
    for i in range(4 * quarter, n):
        _add_row(w[pre[i]], cascaded, columns, partial[0])
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
        reached = False  # torch's max is NaN or ≥ threshold: some potential is
        for i in range(v.shape[0]):
            x = v[i] + impulse[i]
            v[i] = x
            reached |= not (x < threshold)
        if reached:
            return t
    return counts.shape[0]


@numba.njit(cache=True, nogil=True, boundscheck=False)
def window_spikes(draw, pixels, corners, sizes, windows, half, out):
    """The sleep's input spikes of a block: ``out[t, i] = draw[t, i]·half ≤ x`` with ``x`` pixel
    ``pixels[t, i]`` inside step t's window, else 0 (bool [steps × pixels]); the window spans
    ``corners[t, d]`` … ``+ windows[d] − 1`` along each dimension d of ``sizes`` (C order, the
    last the fastest). ``half`` has the draws' type: one multiplication and one comparison per
    pixel, as torch's ``draw * half <= torch.where(mask, pixels, 0)``."""
    steps, n = draw.shape
    last = sizes.shape[0] - 1
    for t in range(steps):
        lo, hi = corners[t, last], corners[t, last] + windows[last]
        for r in range(n // sizes[last]):
            rest, inside = r, True  # is row r (all but the last dimension) in the window?
            for d in range(last - 1, -1, -1):
                p = rest % sizes[d]
                rest //= sizes[d]
                inside &= corners[t, d] <= p < corners[t, d] + windows[d]
            first = r * sizes[last]
            for j in range(sizes[last]):
                x = pixels[t, first + j] if inside and lo <= j < hi else 0.0
                out[t, first + j] = draw[t, first + j] * half <= x


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _lists(block, words, cols, counts):
    """``cols``: the columns of ``block``'s true entries [steps × pixels], row by row (the order
    of ``nonzero``), ``counts[t]``: how many in row t; ``words``: ``block`` as uint64 [steps ×
    pixels / 8], so that 8 pixels without a spike are skipped at once; ``cols`` has room for
    8 more than the spikes (a word's pixels are written before they are counted)."""
    n = 0
    for t in range(block.shape[0]):
        start = n
        for c in range(words.shape[1]):
            if words[t, c]:
                for i in range(8 * c, 8 * c + 8):
                    cols[n] = i
                    n += block[t, i]
        counts[t] = n - start


def spike_lists(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The pixels that spiked in ``block`` [steps × pixels] (bool, CPU), step by step: their
    columns (those of ``block.nonzero()``, in its order) and their number per step (int64);
    ``None`` where the rows are not whole 8-byte words (pixels not a multiple of 8)."""
    if block.shape[1] % 8 or not block.is_contiguous():
        return None
    cols = torch.empty(int(block.sum()) + 8, dtype=torch.long)
    counts = torch.empty(block.shape[0], dtype=torch.long)
    flags = block.numpy()
    _lists(flags, flags.view(np.uint64), cols.numpy(), counts.numpy())
    return cols[: len(cols) - 8], counts


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
    return np.zeros((7, w_alpha.shape[1]), dtype=w_alpha.numpy().dtype)


def _sums(w: np.ndarray, pre: np.ndarray, lanes: int, acc: np.ndarray) -> np.ndarray:
    """:func:`row_sum` through :func:`advance` (one step, no decay, from zero potentials, no
    threshold), the only compiled function a process loads."""
    membrane, impulse = np.zeros(w.shape[1], dtype=w.dtype), np.empty(w.shape[1], dtype=w.dtype)
    one_step = (np.array([len(pre)]), np.zeros(1, dtype=np.int64), pre, membrane, w.dtype.type(1))
    advance(0, *one_step, w, membrane, impulse, math.inf, lanes, acc)
    return impulse


__all__ = ["advance", "row_sum", "scratch", "spike_lists", "torch_lanes", "window_spikes"]
