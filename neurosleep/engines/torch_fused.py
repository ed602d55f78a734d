"""The torch engine's fused CPU loop: a block of steps in one compiled kernel (numba).

On the CPU an eager tensor loop pays a few microseconds per operation and ≈16 operations per
step, more than the arithmetic of a 4000-neuron network. This kernel runs the same step as
:func:`neurosleep.engines.torch.lif_step`, ``deliver`` and ``receive``, in the same order and
with the same floating-point operations (torch's CPU kernels fuse multiply-adds; so does this
one): bit for bit the same, but for the last bit of ``exp`` in conductance synapses. It works
directly on the memory of the engine's tensors (``.numpy()`` views, no copies), many steps per
call; compiled on first use and cached on disk by numba. ``tests/test_engine_fused.py``
checks it against the tensor loop.

Layout as in ``engines/torch.py``: neuron arrays are flat ``[B·N]``; presynaptic rows
``b·W + column`` with ``W = N + Ns`` (neurons, then sources); the input buffer is ``[D, M]``
with ``M = 2·B·N + 1`` (g_e cells, g_i cells, one padding cell).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba.core.extending import intrinsic

STATE_CODES = {"v": 0, "g_e": 1, "g_i": 2, "a": 3}


class KernelParams(NamedTuple):
    """Per-neuron step constants as ``[N]`` arrays of the engine's dtype (``ref_steps``
    int32), the ``conductance`` flags (uint8) and the model's switches."""

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
    one: np.generic  # 1 in the engine's dtype (keeps float32 arithmetic in float32)
    any_conductance: bool
    adaptation: bool
    reset_below_threshold: bool


@intrinsic
def fma(typingctx, x, y, z):
    """``x·y + z`` rounded once, as torch's CPU kernels compute ``addcmul`` and ``add(alpha=)``."""

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return x(x, y, z), codegen


# The passes of a step: loops over one network's [N] arrays whose every element is loaded before
# it is used (a select between loaded values, not a conditional load), so that LLVM vectorises
# them.
@numba.njit(cache=True, nogil=True, boundscheck=False)
def _integrate(x, v, g_e, g_i, em, c0, k_e, k_i):
    """``x = c0 + em·v + k_e·g_e + k_i·g_i`` (three fused multiply-adds, as torch's addcmul)."""
    for i in range(x.shape[0]):
        x[i] = fma(g_i[i], k_i[i], fma(g_e[i], k_e[i], fma(v[i], em[i], c0[i])))


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _subtract_product(x, a, k):
    """``x = x − a·k`` (one fused multiply-add)."""
    for i in range(x.shape[0]):
        x[i] = fma(-a[i], k[i], x[i])


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _conductance(x, v, g_e, g_i, a, p):
    """Conductance-synapse neurons: ``x`` by exponential Euler with the old v, conductances
    and adaptation (as Brian2); the other neurons keep theirs."""
    for i in range(x.shape[0]):
        if p.conductance[i]:
            total = p.one + g_e[i] + g_i[i]
            v_inf = (p.v_rest[i] + g_e[i] * p.e_e[i] + g_i[i] * p.e_i[i] - a[i]) / total
            x[i] = v_inf + (v[i] - v_inf) * np.exp(-p.dt_tau_m[i] * total)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _scale(a, d):
    for i in range(a.shape[0]):
        a[i] = a[i] * d[i]


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _add_where(a, increment, fired):
    for i in range(a.shape[0]):
        old, inc, spiked = a[i], increment[i], fired[i]
        a[i] = old + inc if spiked else old


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _threshold(x, v, ref_end, v_reset, v_th, ref_steps, fired, step, check_refractory):
    """``v`` from the integrated ``x``: refractory neurons back at reset, then threshold and
    reset; ``fired[i]`` 1 where neuron ``i`` spiked, whose refractory period then starts."""
    for i in range(x.shape[0]):
        y, reset, threshold, end, length = x[i], v_reset[i], v_th[i], ref_end[i], ref_steps[i]
        refractory = end > step
        y = reset if refractory else y
        spike = (y > threshold) & ((not check_refractory) | (not refractory))
        v[i] = reset if spike else y
        ref_end[i] = length + step if spike else end
        fired[i] = spike


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _decay_add(g, d, arriving):
    """``g = g·d + arriving`` (one fused multiply-add, as torch's add(alpha=)); ``arriving``
    is emptied."""
    for i in range(g.shape[0]):
        old, decay, new = g[i], d[i], arriving[i]
        g[i] = fma(old, decay, new)
        arriving[i] = 0


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
    words = (n + 7) // 8
    fired = np.zeros(8 * words, dtype=np.uint8)
    fired_words = fired.view(np.uint64)
    x = np.empty(n, dtype=v.dtype)
    first_sample = step0 + (-step0 % sample_every) if sample_every > 0 else 0
    for b in range(first, last):
        written[b], done[b] = _advance(
            b,
            n,
            steps,
            step0,
            batch,
            width,
            v[b * n : (b + 1) * n],
            g_e[b * n : (b + 1) * n],
            g_i[b * n : (b + 1) * n],
            a[b * n : (b + 1) * n],
            ref_end[b * n : (b + 1) * n],
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
            first_sample,
            sample_var,
            sample_col,
            samples,
            spikes_out[b],
            written[b],
            done[b],
            counts,
            x,
            fired,
            fired_words,
        )


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _advance(
    b,
    n,
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
    first_sample,
    sample_var,
    sample_col,
    samples,
    out,
    m,
    k0,
    counts,
    x,
    fired,
    fired_words,
):
    """Network ``b`` (its ``[N]`` state slices) from step ``k0``; returns (rows written, steps
    done). Each pass is a loop without data-dependent branches, so that it vectorises."""
    em, c0, k_e, k_i, k_a, d_e, d_i, d_a = p.em, p.c0, p.k_e, p.k_i, p.k_a, p.d_e, p.d_i, p.d_a
    v_th, v_reset, ref_steps, increment = p.v_th, p.v_reset, p.ref_steps, p.increment
    adaptation, check_refractory = p.adaptation, not p.reset_below_threshold
    n_src = sources.shape[2]
    depth, cells = buffer.shape
    flat = buffer.reshape(-1)
    for k in range(k0, steps):
        if m + width > out.shape[0]:
            return m, k
        s = step0 + k
        if sample_every > 0 and s % sample_every == 0:
            j = (s - first_sample) // sample_every
            for c in range(sample_col.shape[0]):
                code, i = sample_var[c], sample_col[c]
                if code == 0:
                    samples[j, b, c] = v[i]
                elif code == 1:
                    samples[j, b, c] = g_e[i]
                elif code == 2:
                    samples[j, b, c] = g_i[i]
                else:
                    samples[j, b, c] = a[i]
        _integrate(x, v, g_e, g_i, em, c0, k_e, k_i)
        if adaptation:
            _subtract_product(x, a, k_a)
        if p.any_conductance:
            _conductance(x, v, g_e, g_i, a, p)
        if adaptation:
            _scale(a, d_a)
        _threshold(x, v, ref_end, v_reset, v_th, ref_steps, fired, s, check_refractory)
        if adaptation:
            _add_where(a, increment, fired)
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
        for q in range(start, m):  # delivery into the ring buffer
            r = out[q]
            for c in range(row_len[r]):
                w_ = weight_rows[r, c]
                if use_gain:
                    w_ = w_ * gain[r, c]
                cell = target[r, c]
                if depth > 1:
                    cell += ((s + delay[r, c]) % depth) * cells
                flat[cell] += w_
        e0 = (s % depth) * cells + b * n  # decay plus this step's input; the slot is emptied
        i0 = e0 + batch * n
        input_e, input_i = flat[e0 : e0 + n], flat[i0 : i0 + n]
        _decay_add(g_e, d_e, input_e)
        _decay_add(g_i, d_i, input_i)
    return m, steps


def kernel_params(params, n: int, dtype: np.dtype) -> KernelParams:
    """``NeuronParams`` (tensors or numbers) as ``[N]`` numpy arrays for :func:`run_networks`."""

    def arr(x, kind=dtype) -> np.ndarray:
        value = x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)
        return np.ascontiguousarray(np.broadcast_to(value, (n,)), dtype=kind)

    constants = KernelParams._fields[: KernelParams._fields.index("conductance")]
    fields = {
        name: arr(getattr(params, name), np.int32 if name == "ref_steps" else dtype)
        for name in constants
    }
    conductance = np.zeros(n) if params.conductance is None else params.conductance
    return KernelParams(
        **fields,
        conductance=arr(conductance, np.uint8),
        one=np.dtype(dtype).type(1),
        any_conductance=params.conductance is not None,
        adaptation=params.adaptation,
        reset_below_threshold=params.reset_below_threshold,
    )


__all__ = ["STATE_CODES", "KernelParams", "kernel_params", "run_networks"]
