"""The torch engine's fused CPU loop: a block of steps in one compiled kernel (numba).

On the CPU an eager tensor loop pays a few microseconds per operation and ≈16 operations per
step, more than the arithmetic of a 4000-neuron network. This kernel runs the same step as
:func:`neurosleep.engines.torch.lif_step`, ``deliver`` and ``receive``, in the same order and
with the same floating-point operations (torch's CPU kernels fuse multiply-adds; so does this
one): bit for bit the same, but for the last bit of ``exp`` in conductance synapses. It works
directly on the memory of the engine's tensors (``.numpy()`` views, no copies), many steps per
call; compiled on first use and cached on disk by numba. ``tests/test_engine_fused.py``
checks it against the tensor loop.

Where the time goes: the networks of a batch are independent, so each runs its whole block
alone, its state staying in the cache, and the engine spreads networks over threads (the
kernel releases the GIL). Within a step each population is one pass over its neurons with its
constants as numbers; a pass loads every element before using it (selects between loaded
values, no conditional loads), which is what lets LLVM vectorise it.

Layout as in ``engines/torch.py``: neuron arrays are flat ``[B·N]``; presynaptic rows
``b·W + column`` with ``W = N + Ns`` (neurons, then sources); the input buffer is ``[D, M]``
with ``M = 2·B·N + 1`` (g_e cells, g_i cells, and a padding cell the kernel never touches).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba.core.extending import intrinsic

STATE_CODES = {"v": 0, "g_e": 1, "g_i": 2, "a": 3}


class KernelParams(NamedTuple):
    """Step constants per population as ``[P]`` arrays of the engine's dtype (``ref_steps``
    int32; every neuron of a population shares them), the ``conductance`` flags (uint8), the
    populations' neuron ranges ``start[q]`` … ``start[q + 1] − 1`` and the model's switches."""

    em: np.ndarray
    c0: np.ndarray
    k_e: np.ndarray
    k_i: np.ndarray
    k_a: np.ndarray
    d_e: np.ndarray
    d_i: np.ndarray
    d_a: np.ndarray
    v_th: np.ndarray
    v_reset: np.ndarray
    ref_steps: np.ndarray
    increment: np.ndarray
    dt_tau_m: np.ndarray
    v_rest: np.ndarray
    e_e: np.ndarray
    e_i: np.ndarray
    conductance: np.ndarray
    start: np.ndarray  # int64 [P + 1]
    one: np.generic  # 1 in the engine's dtype (keeps float32 arithmetic in float32)
    adaptation: bool
    reset_below_threshold: bool


@intrinsic
def fma(typingctx, x, y, z):
    """``x·y + z`` rounded once, as torch's CPU kernels compute ``addcmul`` and ``add(alpha=)``."""

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return x(x, y, z), codegen


# The passes of a step, each over one population of one network (its [n] slices; constants
# are numbers).
@numba.njit(inline="always")
def _propagate(v, g_e, g_i, em, c0, k_e, k_i):
    """``c0 + em·v + k_e·g_e + k_i·g_i`` (three fused multiply-adds, as torch's addcmul)."""
    return fma(g_i, k_i, fma(g_e, k_e, fma(v, em, c0)))


@numba.njit(inline="always")
def _fire(y, end, v_reset, v_th, ref_steps, step, check_refractory):
    """One neuron's integrated ``y`` and refractory end: back at reset while refractory, then
    threshold and reset; returns (v, refractory end, spiked)."""
    refractory = end > step
    y = v_reset if refractory else y
    spike = (y > v_th) & ((not check_refractory) | (not refractory))
    return (v_reset if spike else y), (ref_steps + step if spike else end), spike


@numba.njit(inline="always", boundscheck=False)
def _integrate(x, v, g_e, g_i, em, c0, k_e, k_i):
    for i in range(x.shape[0]):
        x[i] = _propagate(v[i], g_e[i], g_i[i], em, c0, k_e, k_i)


@numba.njit(inline="always", boundscheck=False)
def _threshold(x, v, ref_end, v_reset, v_th, ref_steps, fired, step, check_refractory):
    """``v`` from the integrated ``x``; ``fired[i]`` 1 where neuron ``i`` spiked."""
    for i in range(x.shape[0]):
        v[i], ref_end[i], fired[i] = _fire(
            x[i], ref_end[i], v_reset, v_th, ref_steps, step, check_refractory
        )


@numba.njit(inline="always", boundscheck=False)
def _integrate_threshold(
    v, g_e, g_i, ref_end, em, c0, k_e, k_i, v_reset, v_th, ref_steps, fired, step, check_refractory
):
    """:func:`_integrate` then :func:`_threshold` in one pass, for a population without
    adaptation and conductance synapses."""
    for i in range(v.shape[0]):
        y = _propagate(v[i], g_e[i], g_i[i], em, c0, k_e, k_i)
        v[i], ref_end[i], fired[i] = _fire(
            y, ref_end[i], v_reset, v_th, ref_steps, step, check_refractory
        )


@numba.njit(inline="always", boundscheck=False)
def _subtract_product(x, a, k):
    """``x = x − a·k`` (one fused multiply-add)."""
    for i in range(x.shape[0]):
        x[i] = fma(-a[i], k, x[i])


@numba.njit(inline="always", boundscheck=False)
def _conductance(x, v, g_e, g_i, a, one, v_rest, e_e, e_i, dt_tau_m):
    """``x`` by exponential Euler with the old v, conductances and adaptation (as Brian2)."""
    for i in range(x.shape[0]):
        total = one + g_e[i] + g_i[i]
        v_inf = (v_rest + g_e[i] * e_e + g_i[i] * e_i - a[i]) / total
        x[i] = v_inf + (v[i] - v_inf) * np.exp(-dt_tau_m * total)


@numba.njit(inline="always", boundscheck=False)
def _scale(a, d):
    for i in range(a.shape[0]):
        a[i] = a[i] * d


@numba.njit(inline="always", boundscheck=False)
def _add_where(a, increment, fired):
    for i in range(a.shape[0]):
        old, spiked = a[i], fired[i]
        a[i] = old + increment if spiked else old


@numba.njit(inline="always", boundscheck=False)
def _decay_add(g, d, arriving):
    """``g = g·d + arriving`` (one fused multiply-add, as torch's add(alpha=)); ``arriving``
    is emptied."""
    for i in range(g.shape[0]):
        old, new = g[i], arriving[i]
        g[i] = fma(old, d, new)
        arriving[i] = 0


@numba.njit(inline="always")
def _sample(samples, j, b, variables, columns, v, g_e, g_i, a):
    """The sampled states of network ``b`` into ``samples[j, b]``."""
    for c in range(columns.shape[0]):
        code, i = variables[c], columns[c]
        if code == 0:
            samples[j, b, c] = v[i]
        elif code == 1:
            samples[j, b, c] = g_e[i]
        elif code == 2:
            samples[j, b, c] = g_i[i]
        else:
            samples[j, b, c] = a[i]


@numba.njit(inline="always")
def _deliver(rows, step, target, delay, weight_rows, row_len, gain, use_gain, buffer):
    """Add the synapses of the spiking presynaptic ``rows`` into the ring buffer."""
    depth, cells = buffer.shape
    flat = buffer.reshape(-1)
    for r in rows:
        for c in range(row_len[r]):
            w = weight_rows[r, c]
            if use_gain:
                w = w * gain[r, c]
            cell = target[r, c]
            if depth > 1:
                cell += ((step + delay[r, c]) % depth) * cells
            flat[cell] += w


@numba.njit(cache=True, nogil=True, boundscheck=False)
def run_networks(
    first,
    last,
    steps,
    step0,
    batch,
    width,
    v,
    g_e,
    g_i,
    a,
    ref_end,
    p,
    sources,
    target,
    delay,
    weight_rows,
    row_len,
    gain,
    use_gain,
    buffer,
    sample_every,
    sample_var,
    sample_col,
    samples,
    spikes_out,
    written,
    done,
    counts,
):
    """Advance networks ``first`` … ``last − 1``, each from its step ``done[b]`` to ``steps``
    (steps counted from ``step0``); arrays are modified in place.

    Networks are independent, so each runs its whole block alone (its state stays in cache) and
    disjoint ranges of networks can run in parallel threads. Network ``b``'s spiking presynaptic
    rows go to ``spikes_out[b, written[b]:]`` in step order, ``counts[k, b]`` per step; a network
    stops early when its row of ``spikes_out`` could overflow in the next step (``done[b]`` says
    where). Sampled states (before each sampled step) go to ``samples[j, b]`` ``[·, B, C]``,
    ``j`` counted from the first multiple of ``sample_every`` at or after ``step0``.
    """
    n = v.shape[0] // batch
    n_src = sources.shape[2]
    fired = np.zeros(8 * ((n + 7) // 8), dtype=np.uint8)  # whole words: scanned 8 at a time
    fired_words = fired.view(np.uint64)
    x = np.empty(n, dtype=v.dtype)
    first_sample = step0 + (-step0 % sample_every) if sample_every > 0 else 0
    adaptation, check_refractory = p.adaptation, not p.reset_below_threshold
    depth, cells = buffer.shape
    for b in range(first, last):
        vb, ab, ref_b = v[b * n : (b + 1) * n], a[b * n : (b + 1) * n], ref_end[b * n : (b + 1) * n]
        ge_b, gi_b = g_e[b * n : (b + 1) * n], g_i[b * n : (b + 1) * n]
        out, m = spikes_out[b], written[b]
        k = done[b]
        while k < steps and m + width <= out.shape[0]:
            s = step0 + k
            if sample_every > 0 and s % sample_every == 0:
                j = (s - first_sample) // sample_every
                _sample(samples, j, b, sample_var, sample_col, vb, ge_b, gi_b, ab)
            for q in range(p.start.shape[0] - 1):  # integrate, threshold and reset
                lo, hi = p.start[q], p.start[q + 1]
                vq, aq, firedq = vb[lo:hi], ab[lo:hi], fired[lo:hi]
                ge, gi, ends = ge_b[lo:hi], gi_b[lo:hi], ref_b[lo:hi]
                em, c0, k_e, k_i = p.em[q], p.c0[q], p.k_e[q], p.k_i[q]
                v_reset, v_th, ref_steps = p.v_reset[q], p.v_th[q], p.ref_steps[q]
                if not (adaptation or p.conductance[q]):
                    _integrate_threshold(
                        vq,
                        ge,
                        gi,
                        ends,
                        em,
                        c0,
                        k_e,
                        k_i,
                        v_reset,
                        v_th,
                        ref_steps,
                        firedq,
                        s,
                        check_refractory,
                    )
                    continue
                xq = x[lo:hi]
                _integrate(xq, vq, ge, gi, em, c0, k_e, k_i)
                if adaptation:
                    _subtract_product(xq, aq, p.k_a[q])
                if p.conductance[q]:
                    _conductance(
                        xq, vq, ge, gi, aq, p.one, p.v_rest[q], p.e_e[q], p.e_i[q], p.dt_tau_m[q]
                    )
                if adaptation:
                    _scale(aq, p.d_a[q])
                _threshold(xq, vq, ends, v_reset, v_th, ref_steps, firedq, s, check_refractory)
                if adaptation:
                    _add_where(aq, p.increment[q], firedq)
            start = m
            for w in range(fired_words.shape[0]):  # the spiking neurons, eight at a time
                if fired_words[w]:
                    for i in range(8 * w, 8 * w + 8):
                        if fired[i]:
                            out[m] = b * width + i
                            m += 1
            for i in range(n_src):
                if sources[k, b, i]:
                    out[m] = b * width + n + i
                    m += 1
            counts[k, b] = m - start
            _deliver(out[start:m], s, target, delay, weight_rows, row_len, gain, use_gain, buffer)
            e0 = (s % depth) * cells + b * n  # decay plus this step's input; slot emptied
            i0 = e0 + batch * n
            flat = buffer.reshape(-1)
            for q in range(p.start.shape[0] - 1):
                lo, hi = p.start[q], p.start[q + 1]
                _decay_add(ge_b[lo:hi], p.d_e[q], flat[e0 + lo : e0 + hi])
                _decay_add(gi_b[lo:hi], p.d_i[q], flat[i0 + lo : i0 + hi])
            k += 1
        written[b], done[b] = m, k


def kernel_params(params, start: np.ndarray, dtype: np.dtype) -> KernelParams:
    """``NeuronParams`` (tensors or numbers, constant within each population) as the
    ``[P]`` arrays of :func:`run_networks`; ``start`` [P + 1]: the populations' first neurons."""
    first = np.asarray(start[:-1])

    def per_population(x, kind=dtype) -> np.ndarray:
        value = x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)
        return np.ascontiguousarray(np.broadcast_to(value, (start[-1],))[first], dtype=kind)

    constants = KernelParams._fields[: KernelParams._fields.index("conductance")]
    fields = {
        name: per_population(getattr(params, name), np.int32 if name == "ref_steps" else dtype)
        for name in constants
    }
    conductance = np.zeros(1) if params.conductance is None else params.conductance
    return KernelParams(
        **fields,
        conductance=per_population(conductance, np.uint8),
        start=np.asarray(start, dtype=np.int64),
        one=np.dtype(dtype).type(1),
        adaptation=params.adaptation,
        reset_below_threshold=params.reset_below_threshold,
    )


__all__ = ["STATE_CODES", "KernelParams", "kernel_params", "run_networks"]
