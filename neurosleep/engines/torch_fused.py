"""The torch engine's fused CPU loop: a block of steps in one compiled kernel (numba).

On the CPU an eager tensor loop pays a few microseconds per operation and ≈16 operations per
step, more than the arithmetic of a 4000-neuron network. This kernel runs the same step as
:func:`neurosleep.engines.torch.lif_step`, ``deliver`` and ``receive``, in the same order and
with the same floating-point operations (torch's CPU kernels fuse multiply-adds; so does this
one): bit for bit the same, but for the last bit of ``exp`` in conductance synapses. It works
directly on the memory of the engine's tensors (``.numpy()`` views, no copies), many steps per
call; compiled on first use and cached on disk by numba. ``tests/test_engine_fused.py``
checks it against the tensor loop.

Plasticity rules run inside the step too (:class:`KernelRule`, one per rule of the engine):
the rate rules' periodic update before integration, every rule's trace decay and spike
updates after delivery, in the tensor loop's order. Their arithmetic is the update functions
registered in :mod:`neurosleep.engines.torch_plasticity`, compiled here for one synapse at a
time, so the weights are the tensor loop's bit for bit (float64, and float32, where both
evaluate the updates in float64 and round once).

Where the time goes: the networks of a batch are independent, so each runs its whole block
alone, its state staying in the cache, and the engine spreads networks over threads (the
kernel releases the GIL). Within a step each population is one pass over its neurons with its
constants as numbers; a pass loads every element before using it (selects between loaded
values, no conditional loads), which is what lets LLVM vectorise it; a step's decay-plus-input
of the conductances is done in the next step's pass (one pass less). That pass is bound by its
stores, so it only reads the input cells: without delays the few that a step's spikes filled
are emptied afterwards from the spiking rows (:func:`_clear`), and a population's ``c0`` is one
number where no bias sets it neuron by neuron. Spikes are found 64 neurons at a time. The
delivery targets are 32-bit (``engines/torch.py``). The rules are inlined (a
call passing their arrays costs more than a step's updates); STDP reads a pre spike's
synapses with its row's delivery and a post spike's, scattered over the table, from packed
(slot, pre row) pairs whose weights it starts loading when the spikes are found.

Layout as in ``engines/torch.py``: neuron arrays are flat ``[B·N]``; presynaptic rows
``b·W + column`` with ``W = N + Ns`` (neurons, then sources); the input buffer is ``[D, M]``
with ``M = I + B·N + 1`` (g_e cells, g_i cells from ``I`` on, and a padding cell the kernel
never touches). The engine places the arrays that a pass streams together (the state's, the
input cells) at different offsets within a 4 KiB page: a load from an address 4 KiB (or a
multiple) away from a store just issued waits for it (10–20 % of a batch's plastic step).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir

from neurosleep.engines import torch_plasticity as rules_math
from neurosleep.imports import import_numba
from neurosleep.registry import Registry

numba = import_numba()
intrinsic = numba.core.extending.intrinsic
cgutils, types = numba.core.cgutils, numba.core.types

STATE_CODES = {"v": 0, "g_e": 1, "g_i": 2, "a": 3}


class KernelParams(NamedTuple):
    """Step constants per population as ``[P]`` arrays of the engine's dtype (``ref_steps``
    int32; every neuron of a population shares them) but ``c0`` and ``v_rest``, per neuron
    ``[N]`` (a bias shifts single neurons' resting potential), the ``conductance`` and
    ``uniform`` flags (uint8), the populations' neuron ranges ``start[q]`` …
    ``start[q + 1] − 1`` and the model's switches."""

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
    uniform: np.ndarray  # uint8 [P]: the population's c0 is one number (no bias)
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


@intrinsic
def prefetch(typingctx, array, index):
    """Start loading ``array[index]``'s cache line (``llvm.prefetch``: read, locality 2, x86's
    ``prefetcht1``: ≈3 % faster plastic CUBA steps than locality 3, ``prefetcht0``); changes
    nothing, only when the load that follows waits."""

    def codegen(context, builder, signature, args):
        kind = signature.args[0]
        view = context.make_array(kind)(context, builder, args[0])
        where = cgutils.get_item_pointer(context, builder, kind, view, [args[1]], wraparound=False)
        i8, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [i8, i32, i32, i32]),
            "llvm.prefetch.p0i8",
        )
        flags = [ir.Constant(i32, value) for value in (0, 2, 1)]  # read, locality 2, data
        builder.call(function, [builder.bitcast(where, i8), *flags])
        return context.get_dummy_value()

    return types.void(array, index), codegen


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
    """``x`` from the old state; ``c0`` per neuron (the resting potential takes a bias)."""
    for i in range(x.shape[0]):
        x[i] = _propagate(v[i], g_e[i], g_i[i], em, c0[i], k_e, k_i)


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
        y = _propagate(v[i], g_e[i], g_i[i], em, c0[i], k_e, k_i)
        v[i], ref_end[i], fired[i] = _fire(
            y, ref_end[i], v_reset, v_th, ref_steps, step, check_refractory
        )


@numba.njit(inline="always")
def _receive_fire(
    i, v, g_e, g_i, in_e, in_i, d_e, d_i, ref_end, em, c0, k_e, k_i, v_reset, v_th, ref_steps,
    fired, step, check_refractory,
):  # fmt: skip
    """Neuron ``i`` of :func:`_receive_integrate_threshold` with its ``c0`` (a number)."""
    ge, gi = fma(g_e[i], d_e, in_e[i]), fma(g_i[i], d_i, in_i[i])
    g_e[i], g_i[i] = ge, gi
    y = _propagate(v[i], ge, gi, em, c0, k_e, k_i)
    v[i], ref_end[i], fired[i] = _fire(y, ref_end[i], v_reset, v_th, ref_steps, step,
                                       check_refractory)  # fmt: skip


@numba.njit(inline="always", boundscheck=False)
def _receive_integrate_threshold(
    v, g_e, g_i, in_e, in_i, d_e, d_i, ref_end, em, c0, uniform, k_e, k_i, v_reset, v_th,
    ref_steps, fired, step, check_refractory,
):  # fmt: skip
    """The last step's :func:`_decay_add` of both channels, then
    :func:`_integrate_threshold`, in one pass (the same operations per neuron, one pass less
    over the conductances). ``c0`` per neuron, or, where ``uniform``, ``c0[0]`` for all (a
    load less per neuron). The input cells are read, not emptied: :func:`_clear` does that
    (stores are what this pass waits on)."""
    if uniform:
        c = c0[0]
        for i in range(v.shape[0]):
            _receive_fire(i, v, g_e, g_i, in_e, in_i, d_e, d_i, ref_end, em, c, k_e, k_i,
                          v_reset, v_th, ref_steps, fired, step, check_refractory)  # fmt: skip
    else:
        for i in range(v.shape[0]):
            _receive_fire(i, v, g_e, g_i, in_e, in_i, d_e, d_i, ref_end, em, c0[i], k_e, k_i,
                          v_reset, v_th, ref_steps, fired, step, check_refractory)  # fmt: skip


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
        v_inf = (v_rest[i] + g_e[i] * e_e + g_i[i] * e_i - a[i]) / total
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


@numba.njit(inline="always", boundscheck=False)
def _receive(p, g_e, g_i, flat, e0, i0):
    """Every population's :func:`_decay_add` of one network (``g_e``, ``g_i`` its [N] slices)
    with its input at ``flat[e0:]`` and ``flat[i0:]``."""
    for q in range(p.start.shape[0] - 1):
        lo, hi = p.start[q], p.start[q + 1]
        _decay_add(g_e[lo:hi], p.d_e[q], flat[e0 + lo : e0 + hi])
        _decay_add(g_i[lo:hi], p.d_i[q], flat[i0 + lo : i0 + hi])


@numba.njit(inline="always", boundscheck=False)
def _clear(flat, e0, i0, n, rows, target, row_len, depth):
    """Empty a network's input cells ``flat[e0:e0 + n]`` and ``flat[i0:i0 + n]`` after the
    step's pass has read them; without delays (``depth`` 1) only those that the spiking
    ``rows`` of the step before delivered to, the only ones that are not 0."""
    if depth > 1:
        flat[e0 : e0 + n] = 0
        flat[i0 : i0 + n] = 0
        return
    for r in rows:
        for c in range(row_len[r]):
            flat[target[r, c]] = 0


@numba.njit(inline="always")
def _sample(samples, j, b, variables, columns, v, g_e, g_i, a, p, flat, e0, i0, pending):
    """The sampled states of network ``b`` into ``samples[j, b]``. Where the step before's
    receive is ``pending`` (done in this step's pass), a conductance is sampled as that
    receive leaves it, the same multiply-add (:func:`_decay_add`) for this neuron only."""
    for c in range(columns.shape[0]):
        code, i = variables[c], columns[c]
        if code == 0:
            samples[j, b, c] = v[i]
        elif code == 3:
            samples[j, b, c] = a[i]
        elif not pending:
            samples[j, b, c] = g_e[i] if code == 1 else g_i[i]
        else:
            q = 0
            while p.start[q + 1] <= i:  # the neuron's population
                q += 1
            if code == 1:
                samples[j, b, c] = fma(g_e[i], p.d_e[q], flat[e0 + i])
            else:
                samples[j, b, c] = fma(g_i[i], p.d_i[q], flat[i0 + i])


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


# ---------------------------------------------------------------------- plasticity rules
class KernelRule(NamedTuple):
    """One plasticity rule as the kernel takes it: the rule object's tensors (``.numpy()``
    views: traces ``x`` [B·W], ``y`` [B·N]; the rate rules' slots with their rows and posts,
    network ``b``'s at ``slot_start[b]`` … ``slot_start[b + 1] − 1``; bounds [R·K + 1] when
    ``relative``, else [1]), STDP's synapses by pre row and by post neuron (:class:`STDPTables`)
    and its constants for the current phase."""

    kind: int  # 0 STDP, 1 rate rule
    form: int  # STDP: STDP_CODES; rate rule: RATE_CODES
    active: bool  # the phase's plasticity gain is not 0 (else only the traces move)
    relative: bool
    eta: float
    a_plus: float
    a_minus: float  # with the phase's depression factor
    decay_x: np.floating  # the traces' decay and jump in the engine's dtype (as the tensor
    decay_y: np.floating  # loop's in-place operations); the weight updates are float64
    jump: np.floating  # a trace's step per spike (STDP: 1; rate rules: Hz)
    rate: float  # a rate rule's factor per update (gain × eta × interval)
    param: float  # a rate rule's parameter (Oja: rate_ref; scaling: target; Hz)
    every: int  # a rate rule's update interval (steps)
    pre_lo: int  # the projection's pre columns [pre_lo, pre_hi) and post neurons: the traces
    pre_hi: int  # kept (decayed and moved by spikes)
    post_lo: int
    post_hi: int
    x: np.ndarray
    y: np.ndarray
    pre_first: np.ndarray  # STDPTables
    pre_count: np.ndarray
    post_start: np.ndarray
    post_synapses: np.ndarray
    slots: np.ndarray
    rows: np.ndarray
    posts: np.ndarray
    slot_start: np.ndarray
    w_min: np.ndarray  # float64 [1], or [R·K + 1] when relative
    w_max: np.ndarray


# the rule math of torch_plasticity's registries, compiled for one synapse at a time; the
# kernel's branches below take the codes in the registries' (sorted) order
STDP_CODES = {name: code for code, name in enumerate(rules_math.STDP_FORMS.names())}
RATE_CODES = {name: code for code, name in enumerate(rules_math.RATE_CHANGES.names())}
ADDITIVE = STDP_CODES["additive"]
_jit = numba.njit(inline="always")
_forms = [rules_math.STDP_FORMS.get(name) for name in STDP_CODES]
_depress_0, _depress_1, _depress_2 = (_jit(form.pre) for form in _forms)
_potentiate_0, _potentiate_1, _potentiate_2 = (_jit(form.post) for form in _forms)
_change_0, _change_1 = (_jit(rules_math.RATE_CHANGES.get(name).change) for name in RATE_CODES)


@numba.njit(inline="always")
def _clip(w, lo, hi):
    """``clamp(w, lo, hi)`` as torch: ``min(max(w, lo), hi)``."""
    return min(max(w, lo), hi)


@numba.njit(inline="always")
def _bound(w_min, w_max, relative, slot):
    """(lower, upper) bound of ``slot`` in float64: per synapse when ``relative``, else
    ``[0]``."""
    k = slot if relative else 0
    return np.float64(w_min[k]), np.float64(w_max[k])


@numba.njit(inline="always", boundscheck=False)
def _depress(form, first, count, target, cells, weight, y, eta, a_plus, a_minus, w_min, w_max,
             relative):  # fmt: skip
    """STDP at one pre spike: its synapses, the slots ``first`` … ``first + count − 1`` of its
    row (which delivery has just read), their post neurons from the delivery ``target`` cells
    (flat [R·K]; the inhibitory channel's cells from ``cells`` on)."""
    for slot in range(first, first + count):
        lo, hi = _bound(w_min, w_max, relative, slot)
        cell = target[slot]
        w, trace = np.float64(weight[slot]), np.float64(y[cell - cells if cell >= cells else cell])
        if form == 0:
            w = _depress_0(w, trace, lo, hi, eta, a_plus, a_minus)
        elif form == 1:
            w = _depress_1(w, trace, lo, hi, eta, a_plus, a_minus)
        else:
            w = _depress_2(w, trace, lo, hi, eta, a_plus, a_minus)
        weight[slot] = _clip(w, lo, hi)


@numba.njit(inline="always", boundscheck=False)
def _potentiate(form, synapses, start, end, weight, x, eta, a_plus, w_min, w_max, relative):
    """STDP at one post spike: its synapses ``synapses[start:end]`` (slot, pre row)."""
    for c in range(start, end):
        slot = synapses[c, 0]
        lo, hi = _bound(w_min, w_max, relative, slot)
        w, trace = np.float64(weight[slot]), np.float64(x[synapses[c, 1]])
        if form == 0:
            w = _potentiate_0(w, trace, lo, hi, eta, a_plus)
        elif form == 1:
            w = _potentiate_1(w, trace, lo, hi, eta, a_plus)
        else:
            w = _potentiate_2(w, trace, lo, hi, eta, a_plus)
        weight[slot] = _clip(w, lo, hi)


@numba.njit(inline="always", boundscheck=False)
def _rate_update(form, slots, rows, posts, weight, x, y, decay_x, decay_y, rate, param, w_min,
                 w_max, relative):  # fmt: skip
    """A rate rule's periodic update of the synapses ``slots``."""
    for j in range(slots.shape[0]):
        slot = slots[j]
        lo, hi = _bound(w_min, w_max, relative, slot)
        w = np.float64(weight[slot])
        r_pre, r_post = np.float64(x[rows[j]] * decay_x), np.float64(y[posts[j]] * decay_y)
        if form == 0:
            change = _change_0(w, r_pre, r_post, hi, param)
        else:
            change = _change_1(w, r_pre, r_post, hi, param)
        weight[slot] = _clip(w + rate * change, lo, hi)


@numba.njit(inline="always", boundscheck=False)
def _rules_before(rules, b, step, weight):
    """The rate rules' periodic update of network ``b``'s synapses, at the start of ``step``."""
    for r in numba.literal_unroll(rules):
        if r.kind == 1 and r.active and step % r.every == 0:
            lo, hi = r.slot_start[b], r.slot_start[b + 1]
            _rate_update(
                r.form, r.slots[lo:hi], r.rows[lo:hi], r.posts[lo:hi], weight, r.x, r.y,
                r.decay_x, r.decay_y, r.rate, r.param, r.w_min, r.w_max, r.relative,
            )  # fmt: skip


@numba.njit(inline="always", boundscheck=False)
def _prefetch_potentiation(rules, b, width, n, rows, weight):
    """Start loading the weights that STDP will potentiate at the spiking ``rows``' post
    spikes: a neuron's incoming synapses lie scattered over the table, and delivery and the
    traces' decay come first."""
    for r in numba.literal_unroll(rules):
        if r.kind == 0 and r.active:
            for row in rows:
                column = row - b * width
                if column < n:
                    post = b * n + column
                    for c in range(r.post_start[post], r.post_start[post + 1]):
                        prefetch(weight, r.post_synapses[c, 0])


@numba.njit(inline="always", boundscheck=False)
def _rules_after(rules, b, width, n, cells, rows, weight, target):
    """Every rule's step for network ``b`` after delivery: traces decay, then the spiking
    presynaptic ``rows`` (``b·W + column``; neurons are the columns below ``n``) update
    weights and traces, pre before post. Inlined, as the rules before: a call passing the
    rules' arrays costs more than a step's updates."""
    for r in numba.literal_unroll(rules):
        _rule_after(r, b, width, n, cells, rows, weight, target)


@numba.njit(inline="always", boundscheck=False)
def _rule_after(r, b, width, n, cells, rows, weight, target):
    """One rule's :func:`_rules_after`. Additive STDP with bounds that are numbers, the
    shipped models' rule, runs its own copy of the spike updates, form and bounds constants
    there (no branch and no bound loaded per synapse); a copy per form would double the
    kernel's compile time."""
    _scale(r.x[b * width + r.pre_lo : b * width + r.pre_hi], r.decay_x)
    _scale(r.y[b * n + r.post_lo : b * n + r.post_hi], r.decay_y)
    stdp = r.kind == 0 and r.active
    if stdp and r.form == ADDITIVE and not r.relative:
        _spike_updates(r, b, width, n, cells, rows, weight, target, True, ADDITIVE, False)
    else:
        _spike_updates(r, b, width, n, cells, rows, weight, target, stdp, r.form, r.relative)


@numba.njit(inline="always", boundscheck=False)
def _spike_updates(r, b, width, n, cells, rows, weight, target, stdp, form, relative):
    """The spiking ``rows``' weight updates (where ``stdp``) and trace jumps, pre before post."""
    x, y = r.x, r.y
    for row in rows:
        if stdp:
            _depress(form, r.pre_first[row], r.pre_count[row], target, cells, weight, y,
                     r.eta, r.a_plus, r.a_minus, r.w_min, r.w_max, relative)  # fmt: skip
        column = row - b * width
        if r.pre_lo <= column < r.pre_hi:
            x[row] += r.jump
    for row in rows:
        column = row - b * width
        if column < n:
            post = b * n + column
            if r.post_lo <= column < r.post_hi:
                y[post] += r.jump
            if stdp:
                _potentiate(form, r.post_synapses, r.post_start[post], r.post_start[post + 1],
                            weight, x, r.eta, r.a_plus, r.w_min, r.w_max, relative)  # fmt: skip


@numba.njit(cache=True, nogil=True, boundscheck=False, _nrt=False)
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
    weight,
    rules,
    sample_every,
    sample_var,
    sample_col,
    samples,
    spikes_out,
    written,
    done,
    counts,
    fired,
    x,
):
    """Advance networks ``first`` … ``last − 1``, each from its step ``done[b]`` to ``steps``
    (steps counted from ``step0``); arrays are modified in place.

    Networks are independent, so each runs its whole block alone (its state stays in cache) and
    disjoint ranges of networks can run in parallel threads. Network ``b``'s spiking presynaptic
    rows go to ``spikes_out[b, written[b]:]`` in step order, ``counts[k, b]`` per step; a network
    stops early when its row of ``spikes_out`` could overflow in the next step (``done[b]`` says
    where). Sampled states (before each sampled step) go to ``samples[j, b]`` ``[·, B, C]``,
    ``j`` counted from the first multiple of ``sample_every`` at or after ``step0``.
    ``rules`` (a tuple of :class:`KernelRule`) run each step in the tensor loop's order: the
    rate rules' periodic update first, the rules' spike updates after delivery; ``weight``
    [R·K + 1] is the flat weight table that ``weight_rows`` views. ``rules`` ``None`` (a static
    network) compiles a specialisation without the rules' code: numba's dead-branch pruning
    removes the ``rules is not None`` branches before the rules are inlined (it prunes only
    conditions on an argument itself, so the tests stay here, not in the helpers).
    ``fired`` (uint8 [64·⌈N/64⌉], zeros) and ``x`` ([N], the state's dtype) are one thread's
    scratch.

    Compiled without numba's reference counting (``_nrt=False``; it allocates nothing): every
    slice and every rule's array taken out of ``rules`` would otherwise cost an atomic
    increment and decrement each step (numba issue #2350), ≈0.8 µs of a plastic step.
    """
    n = v.shape[0] // batch
    n_src = sources.shape[2]
    fired_words = fired.view(np.uint64)
    first_sample = step0 + (-step0 % sample_every) if sample_every > 0 else 0
    adaptation, check_refractory = p.adaptation, not p.reset_below_threshold
    depth, cells = buffer.shape
    inhibitory = cells - 1 - batch * n  # the first g_i cell
    periodic = False  # a rate rule learns: its periodic update is checked each step
    if rules is not None:
        for r in numba.literal_unroll(rules):
            periodic |= r.kind == 1 and r.active
    flat, target_flat = buffer.reshape(-1), target.reshape(-1)
    for b in range(first, last):
        vb, ab, ref_b = v[b * n : (b + 1) * n], a[b * n : (b + 1) * n], ref_end[b * n : (b + 1) * n]
        ge_b, gi_b = g_e[b * n : (b + 1) * n], g_i[b * n : (b + 1) * n]
        out, m = spikes_out[b], written[b]
        k = done[b]
        # a step's receive (decay plus input) is left pending and done in the next step's pass
        # over the neurons (a sample takes its result for the sampled neurons); at the end,
        # on its own
        pending, e0, i0, start = False, 0, 0, m
        while k < steps and m + width <= out.shape[0]:
            s = step0 + k
            if sample_every > 0 and s % sample_every == 0:
                j = (s - first_sample) // sample_every
                _sample(samples, j, b, sample_var, sample_col, vb, ge_b, gi_b, ab, p, flat, e0,
                        i0, pending)  # fmt: skip
            if rules is not None and periodic:
                _rules_before(rules, b, s, weight)
            for q in range(p.start.shape[0] - 1):  # integrate, threshold and reset
                lo, hi = p.start[q], p.start[q + 1]
                vq, aq, firedq = vb[lo:hi], ab[lo:hi], fired[lo:hi]
                ge, gi, ends = ge_b[lo:hi], gi_b[lo:hi], ref_b[lo:hi]
                em, c0, k_e, k_i = p.em[q], p.c0[lo:hi], p.k_e[q], p.k_i[q]
                v_reset, v_th, ref_steps = p.v_reset[q], p.v_th[q], p.ref_steps[q]
                merged = not (adaptation or p.conductance[q])
                if pending and merged:
                    in_e, in_i = flat[e0 + lo : e0 + hi], flat[i0 + lo : i0 + hi]
                    d_e, d_i = p.d_e[q], p.d_i[q]
                    _receive_integrate_threshold(
                        vq, ge, gi, in_e, in_i, d_e, d_i, ends, em, c0, p.uniform[q], k_e, k_i,
                        v_reset, v_th, ref_steps, firedq, s, check_refractory,
                    )  # fmt: skip
                    continue
                if pending:
                    _decay_add(ge, p.d_e[q], flat[e0 + lo : e0 + hi])
                    _decay_add(gi, p.d_i[q], flat[i0 + lo : i0 + hi])
                if merged:
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
                    rest = p.v_rest[lo:hi]
                    _conductance(xq, vq, ge, gi, aq, p.one, rest, p.e_e[q], p.e_i[q], p.dt_tau_m[q])
                if adaptation:
                    _scale(aq, p.d_a[q])
                _threshold(xq, vq, ends, v_reset, v_th, ref_steps, firedq, s, check_refractory)
                if adaptation:
                    _add_where(aq, p.increment[q], firedq)
            if pending:
                _clear(flat, e0, i0, n, out[start:m], target, row_len, depth)
            pending = False
            start = m
            for line in range(0, fired_words.shape[0], 8):  # the spiking neurons, 64 at a time
                hit = fired_words[line]
                for w in range(line + 1, line + 8):
                    hit |= fired_words[w]
                if hit:
                    for i in range(8 * line, 8 * line + 64):
                        if fired[i]:
                            out[m] = b * width + i
                            m += 1
            for i in range(n_src):
                if sources[k, b, i]:
                    out[m] = b * width + n + i
                    m += 1
            counts[k, b] = m - start
            if rules is not None:
                _prefetch_potentiation(rules, b, width, n, out[start:m], weight)
            _deliver(out[start:m], s, target, delay, weight_rows, row_len, gain, use_gain, buffer)
            e0 = (s % depth) * cells + b * n  # this step's input (decay plus input; emptied)
            i0 = e0 + inhibitory
            pending = True
            if rules is not None:
                _rules_after(rules, b, width, n, inhibitory, out[start:m], weight, target_flat)
            k += 1
        if pending:
            _receive(p, ge_b, gi_b, flat, e0, i0)
        written[b], done[b] = m, k


PER_NEURON = ("c0", "v_rest")  # the constants a bias changes neuron by neuron


def kernel_params(params, start: np.ndarray, dtype: np.dtype) -> KernelParams:
    """``NeuronParams`` (tensors or numbers, constant within each population but ``c0`` and
    ``v_rest``) as the arrays of :func:`run_networks`; ``start`` [P + 1]: the populations'
    first neurons."""
    first = np.asarray(start[:-1])

    def per_neuron(x, kind=dtype) -> np.ndarray:
        value = x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)
        return np.ascontiguousarray(np.broadcast_to(value, (start[-1],)), dtype=kind)

    def per_population(x, kind=dtype) -> np.ndarray:
        return np.ascontiguousarray(per_neuron(x, kind)[first])

    constants = KernelParams._fields[: KernelParams._fields.index("conductance")]
    fields = {
        name: (per_neuron if name in PER_NEURON else per_population)(
            getattr(params, name), np.int32 if name == "ref_steps" else dtype
        )
        for name in constants
    }
    conductance = np.zeros(1) if params.conductance is None else params.conductance
    c0 = fields["c0"]  # one number where its bytes are (no bias; 0.0 and -0.0 differ)
    uniform = [c0[lo:hi].tobytes() == c0[lo:hi][:1].tobytes() * (hi - lo) for lo, hi in
               zip(start[:-1], start[1:], strict=True)]  # fmt: skip
    return KernelParams(
        **fields,
        conductance=per_population(conductance, np.uint8),
        uniform=np.array(uniform, dtype=np.uint8),
        start=np.asarray(start, dtype=np.int64),
        one=np.dtype(dtype).type(1),
        adaptation=params.adaptation,
        reset_below_threshold=params.reset_below_threshold,
    )


def _stdp_constants(rule) -> dict:
    r = rule.rule
    return {"kind": 0, "form": STDP_CODES[rule.form_name], "a_plus": r.a_plus,
            "a_minus": rule.depression * r.a_minus}  # fmt: skip


def _rate_constants(rule) -> dict:
    name = rule.rule.rule
    return {"kind": 1, "form": RATE_CODES[name], "jump": rule.jump, "rate": rule.rate(),
            "param": getattr(rule.rule, rules_math.RATE_CHANGES.get(name).parameter),
            "every": rule.every}  # fmt: skip


# spec rule name -> the kernel's constants of a torch rule object (unknown names raise)
KERNEL_RULES: Registry = Registry("fused-kernel plasticity rule")
KERNEL_RULES.register("stdp")(_stdp_constants)
KERNEL_RULES.register("oja")(_rate_constants)
KERNEL_RULES.register("scaling")(_rate_constants)


def kernel_rules(rules: list, batch: int, dtype: np.dtype) -> tuple[KernelRule, ...] | None:
    """The engine's rule objects (:mod:`torch_plasticity`) as :class:`KernelRule` s, with
    the current phase's gains; ``None`` when there are none (a static network: numba compiles
    :func:`run_networks` without the rules' code)."""
    if not rules:
        return None
    return tuple(_kernel_rule(rule, batch, dtype) for rule in rules)


_ARRAYS = dict.fromkeys(("slots", "rows", "posts"), (0,))  # the rate rules' index tensors


class STDPTables(NamedTuple):
    """STDP's synapses as the kernel walks them. By pre row ``r``: the slots ``pre_first[r]``
    … ``pre_first[r] + pre_count[r] − 1`` (a projection's synapses are one run of each row of
    the weight table), read with the row's delivery. By post neuron ``i`` (network ``b``'s
    ``b·N + i``): ``post_synapses[post_start[i]:post_start[i + 1]]``, (slot, pre row) pairs,
    packed (32-bit where the table allows): the table's column of ``i`` is scattered over its
    rows, so only the indices are made compact. Built from the tensor loop's padded tables
    (``by_pre``, ``by_post``)."""

    pre_first: np.ndarray
    pre_count: np.ndarray
    post_start: np.ndarray
    post_synapses: np.ndarray


def stdp_tables(rule) -> STDPTables:
    """The kernel's tables of an STDP rule object (built once, kept on the rule)."""
    if rule.kernel_tables is None:
        by_pre, by_post = rule.by_pre.cpu().numpy(), rule.by_post.cpu().numpy()
        pre_count = (by_pre != rule.pad).sum(axis=1)
        pre_first = np.where(pre_count > 0, by_pre[:, 0], 0)
        last = by_pre[np.arange(len(by_pre)), np.maximum(pre_count - 1, 0)]
        if np.any((pre_count > 0) & (last - pre_first + 1 != pre_count)):  # ascending runs
            raise RuntimeError(f"{rule.projection}: synapses are not one run of each row")
        keep = by_post != rule.pad
        pairs = (by_post[keep], rule.pre_by_post.cpu().numpy()[keep])
        rule.kernel_tables = STDPTables(
            pre_first=pre_first.astype(np.int64),
            pre_count=pre_count.astype(np.int64),
            post_start=np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int64),
            post_synapses=np.ascontiguousarray(np.stack(pairs, axis=1), dtype=_index(rule.pad)),
        )
    return rule.kernel_tables


def _index(pad: int) -> type:
    """The packed tables' integer type for a weight table whose last slot is ``pad``."""
    return np.int32 if pad < np.iinfo(np.int32).max else np.int64


def _no_tables(pad: int) -> STDPTables:
    """A rule without STDP's tables, of the same types (the kernel unrolls over the rules)."""
    return STDPTables(*(np.zeros(2, dtype=np.int64) for _ in range(3)),
                      np.zeros((0, 2), dtype=_index(pad)))  # fmt: skip


def _kernel_rule(rule, batch: int, dtype: np.dtype) -> KernelRule:
    fields = {
        "kind": 0, "form": 0, "active": rule.eta != 0, "eta": float(rule.eta), "a_plus": 0.0,
        "a_minus": 0.0, "decay_x": rule.decay_x, "decay_y": rule.decay_y, "jump": 1.0,
        "rate": 0.0, "param": 0.0, "every": 1, "x": rule.x.numpy(),
        "y": rule.y.numpy(), "pre_lo": rule.pre_columns[0], "pre_hi": rule.pre_columns[1],
        "post_lo": rule.post_columns[0], "post_hi": rule.post_columns[1],
    }  # fmt: skip
    fields.update(KERNEL_RULES.get(rule.rule.rule)(rule))
    kind = np.dtype(dtype).type
    fields.update({name: kind(fields[name]) for name in ("decay_x", "decay_y", "jump")})
    fields.update((stdp_tables(rule) if fields["kind"] == 0 else _no_tables(rule.pad))._asdict())
    for name, shape in _ARRAYS.items():
        value = getattr(rule, name, None)
        fields[name] = np.zeros(shape, dtype=np.int64) if value is None else value.numpy()
    sizes = [len(s) for s in rule.conn.slots[rule.projection]]
    fields["slot_start"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    relative = hasattr(rule.w_max, "numpy")  # tensors over the weight table
    fields["relative"] = relative
    for name, bound in (("w_min", rule.w_min), ("w_max", rule.w_max)):
        values = bound.numpy() if relative else np.full(1, bound)  # float64 in the kernel
        fields[name] = np.asarray(values, dtype=np.float64)
    return KernelRule(**fields)


__all__ = [
    "KERNEL_RULES",
    "STATE_CODES",
    "KernelParams",
    "KernelRule",
    "STDPTables",
    "kernel_params",
    "kernel_rules",
    "run_networks",
    "stdp_tables",
]
