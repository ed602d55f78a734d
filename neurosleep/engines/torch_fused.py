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


@numba.njit(cache=True, nogil=True, boundscheck=False)
def run_steps(
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
    n_sampled,
    spikes_out,
    counts,
):
    """Advance ``steps`` steps from ``step0``; arrays are modified in place.

    Spiking presynaptic rows go to ``spikes_out`` in step order (``counts[k]`` per step);
    the sampled states (before each sampled step) to ``samples[n_sampled + j]`` ``[B, C]``.
    Stops early when ``spikes_out`` could overflow in the next step. Returns
    ``(steps done, spikes written, samples written)``.
    """
    em, c0, k_e, k_i, k_a, d_e, d_i, d_a = p.em, p.c0, p.k_e, p.k_i, p.k_a, p.d_e, p.d_i, p.d_a
    v_th, v_reset, ref_steps, increment = p.v_th, p.v_reset, p.ref_steps, p.increment
    conductance, adaptation = p.conductance, p.adaptation
    check_refractory, any_conductance = not p.reset_below_threshold, p.any_conductance
    n = v.shape[0] // batch
    n_src = sources.shape[2]
    depth, cells = buffer.shape
    flat = buffer.reshape(-1)
    m = 0
    for k in range(steps):
        if m + batch * width > spikes_out.shape[0]:
            return k, m, n_sampled
        s = step0 + k
        if sample_every > 0 and s % sample_every == 0:
            for b in range(batch):
                for c in range(sample_col.shape[0]):
                    j = b * n + sample_col[c]
                    code = sample_var[c]
                    if code == 0:
                        samples[n_sampled, b, c] = v[j]
                    elif code == 1:
                        samples[n_sampled, b, c] = g_e[j]
                    elif code == 2:
                        samples[n_sampled, b, c] = g_i[j]
                    else:
                        samples[n_sampled, b, c] = a[j]
            n_sampled += 1
        start = m
        for b in range(batch):
            for i in range(n):  # integrate (no branches but the model's switches)
                j = b * n + i
                x = fma(v[j], em[i], c0[i])
                x = fma(g_e[j], k_e[i], x)
                x = fma(g_i[j], k_i[i], x)
                a_old = a[j]
                if adaptation:
                    x = fma(-a_old, k_a[i], x)
                    a[j] = a_old * d_a[i]
                if any_conductance and conductance[i]:
                    total = p.one + g_e[j] + g_i[j]
                    v_inf = (p.v_rest[i] + g_e[j] * p.e_e[i] + g_i[j] * p.e_i[i] - a_old) / total
                    x = v_inf + (v[j] - v_inf) * np.exp(-p.dt_tau_m[i] * total)
                v[j] = v_reset[i] if ref_end[j] > s else x
            for i in range(n):  # threshold and reset
                j = b * n + i
                if v[j] > v_th[i] and not (check_refractory and ref_end[j] > s):
                    v[j] = v_reset[i]
                    if adaptation:
                        a[j] = a[j] + increment[i]
                    ref_end[j] = ref_steps[i] + s
                    spikes_out[m] = b * width + i
                    m += 1
            for i in range(n_src):
                if sources[k, b, i]:
                    spikes_out[m] = b * width + n + i
                    m += 1
        counts[k] = m - start
        ring = s % depth
        for q in range(start, m):
            r = spikes_out[q]
            for c in range(row_len[r]):
                w = weight_rows[r, c]
                if use_gain:
                    w = w * gain[r, c]
                cell = target[r, c]
                if depth > 1:
                    cell += ((s + delay[r, c]) % depth) * cells
                flat[cell] += w
        base = ring * cells
        for b in range(batch):  # decay plus this step's input; the ring slot is emptied
            for i in range(n):
                j = b * n + i
                g_e[j] = fma(g_e[j], d_e[i], flat[base + j])
                g_i[j] = fma(g_i[j], d_i[i], flat[base + batch * n + j])
                flat[base + j] = 0
                flat[base + batch * n + j] = 0
        flat[base + cells - 1] = 0
    return steps, m, n_sampled


def kernel_params(params, n: int, dtype: np.dtype) -> KernelParams:
    """``NeuronParams`` (tensors or numbers) as ``[N]`` numpy arrays for :func:`run_steps`."""

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


__all__ = ["STATE_CODES", "KernelParams", "kernel_params", "run_steps"]
