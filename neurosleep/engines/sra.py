"""The SRA sleep network simulated with torch: layers of non-refractory integrate-and-fire
neurons with the weights of a no-bias MLP (Tadros et al. 2022; the equations are in
:mod:`neurosleep.sleep.sra`).

:func:`sra_sleep` is event-driven — it touches only the columns of pre neurons that spiked (input
to a layer) and the rows of post neurons that spiked (plasticity); :func:`sra_sleep_dense` is the
literal translation (full matrix products and outer-product updates every step), kept as the
reference both are tested and benchmarked against. With the same input spikes both give the
same weights up to summation order (≈1e−17 in float64). :data:`CORES` maps an engine name to its
loop (``torch`` here; ``brian2`` in :mod:`neurosleep.engines.sra_brian2`), all with the
signature of :func:`sra_sleep`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from neurosleep.registry import Registry

SpikeSink = Callable[[int, torch.Tensor, torch.Tensor], None]  # layer (1-based), steps, neurons
Core = Callable[..., tuple[list[torch.Tensor], torch.Tensor]]
CORES: Registry[Core] = Registry("SRA engine")  # engine name → sleep loop (same signature)


def weight_factor(w: torch.Tensor) -> torch.Tensor:
    """``f(w) = 2·(1 − 1/(1 + exp(−w/0.001)))``, the code's ``sigmoid`` (≈2 below 0, ≈0 above)."""
    return 2 * (1.0 - 1.0 / (1 + torch.exp(-w / 0.001)))


def sra_sleep(
    weights: list[torch.Tensor],
    alphas: list[float],
    thresholds: list[float],
    spikes_in: Iterator[torch.Tensor],
    *,
    inc: float,
    dec: float,
    decay: float,
    on_spikes: SpikeSink | None = None,
    fused: bool | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Event-driven SRA sleep; returns new weights and spike counts per non-input layer.

    Each layer keeps its weights ``W`` [out × in], whose rows (spiking post neurons) plasticity
    rewrites, and the impulses ``alpha·W`` transposed [in × out], so that a layer's input is a
    sum of contiguous rows (one per spiking pre neuron); plasticity refreshes the impulse columns
    it changed. A layer is searched for spiking neurons only when its largest potential reaches
    the threshold. The float operations on every value are those of the literal translation,
    in its order, except the order of summation of a step's input.

    ``fused`` (default: on the CPU, where the kernel reproduces torch's sums): the steps at
    which the first layer stays below threshold run in the compiled loop of
    :mod:`neurosleep.engines.sra_fused`, the same operations bit for bit
    (``tests/test_sra.py``); the others as below.
    """
    ws = [x.contiguous().clone() for x in weights]
    scaled = [(w * a).T.contiguous() for w, a in zip(ws, alphas, strict=True)]
    sizes = [x.shape[0] for x in ws]
    device, dtype = ws[0].device, ws[0].dtype
    membrane = torch.zeros(sum(sizes), dtype=dtype, device=device)
    mems = list(torch.split(membrane, sizes))
    impulses = [torch.empty(n, dtype=dtype, device=device) for n in sizes]
    rows: dict[tuple[int, int], torch.Tensor] = {}  # gather buffers by (layer, rows)
    decay_ = torch.tensor(decay, dtype=dtype, device=device)
    counts = torch.zeros(len(ws), dtype=torch.long)
    layers = list(zip(ws, scaled, mems, impulses, alphas, thresholds, strict=True))
    step0 = 0
    with _single_thread(device):
        kernel = _kernel(scaled[0], fused)
        for block in spikes_in:
            cols, per_step = _spike_lists(block, kernel is not None)
            fired: list[list[tuple[int, torch.Tensor]]] = [[] for _ in ws]
            loop = _steps if kernel is None else kernel
            loop(layers, rows, membrane, decay_, cols, per_step, (inc, dec), step0, fired)
            _report(fired, counts, on_spikes, device)
            step0 += block.shape[0]
    return ws, counts


Layer = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float, float]


def _spike_lists(block: torch.Tensor, fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The columns of ``block``'s spikes [steps × pixels], step by step, and their number per
    step: :func:`~neurosleep.engines.sra_fused.spike_lists` where ``fused`` (the compiled loop
    runs, so numba is loaded) and it takes the block, else ``nonzero`` and ``bincount``."""
    if fused:
        from neurosleep.engines import sra_fused

        lists = sra_fused.spike_lists(block)
        if lists is not None:
            return lists
    steps, cols = block.nonzero(as_tuple=True)
    return cols, torch.bincount(steps, minlength=block.shape[0])


def _steps(layers: list[Layer], rows, membrane, decay_, cols, per_step, rule, step0,
           fired) -> None:  # fmt: skip
    """A block's steps in torch operations: decay, then the step's input pixels (``cols``,
    ``per_step`` [steps] of them at each step) through the layers."""
    start = 0
    for t, n_pre in enumerate(per_step.tolist()):
        membrane.mul_(decay_)
        if not n_pre:
            continue
        _through(layers, rows, cols.narrow(0, start, n_pre), rule, step0 + t, fired)
        start += n_pre


def _through(layers: list[Layer], rows, pre, rule, step: int, fired, added: bool = False) -> None:
    """One step's input spikes ``pre`` through the layers: each adds its impulse and, at
    threshold, fires (plasticity with ``rule`` = (inc, dec), reset), its spikes the next
    layer's input. ``added``: the first layer's impulse is in its potentials already, which
    reached threshold."""
    for layer, (w, w_alpha, v, impulse, alpha, threshold) in enumerate(layers):
        if not (added and layer == 0):
            key = (layer, pre.shape[0])
            if key not in rows:
                rows[key] = torch.empty(key[1], w.shape[0], dtype=w.dtype, device=w.device)
            torch.sum(torch.index_select(w_alpha, 0, pre, out=rows[key]), 0, out=impulse)
            v.add_(impulse)
            if v.max().item() < threshold:
                break
        post = (v >= threshold).nonzero().squeeze(1)
        new = _plasticity(w, pre, post, *rule)
        w_alpha.index_copy_(1, post, (new * alpha).T)
        v.index_fill_(0, post, 0.0)
        fired[layer].append((step, post))
        pre = post


def _kernel(w_alpha: torch.Tensor, fused: bool | None):
    """The compiled loop over a block's steps (a function like :func:`_steps`), or None for
    the torch loop: ``fused`` False, not on the CPU, or no vector width reproduces torch's
    sums of ``w_alpha``'s rows (:func:`~neurosleep.engines.sra_fused.torch_lanes`)."""
    if fused is False or w_alpha.device.type != "cpu":
        return None
    from neurosleep.engines import sra_fused  # numba: imported where the loop runs

    lanes, acc = sra_fused.torch_lanes(w_alpha), sra_fused.scratch(w_alpha)
    if lanes is None:
        if fused:
            raise ValueError("the fused SRA loop does not reproduce torch's sums on this CPU")
        return None

    def run(layers, rows, membrane, decay_, cols, per_step, rule, step0, fired) -> None:
        v, impulse, threshold = layers[0][2], layers[0][3], layers[0][5]
        counts, starts = per_step.numpy(), (per_step.cumsum(0) - per_step).numpy()
        arrays = (cols.numpy(), membrane.numpy(), decay_.numpy()[()], w_alpha.numpy())
        t = 0
        while (t := sra_fused.advance(t, counts, starts, *arrays, v.numpy(), impulse.numpy(),
                                       threshold, lanes, acc)) < len(counts):  # fmt: skip
            pre = cols.narrow(0, int(starts[t]), int(counts[t]))
            _through(layers, rows, pre, rule, step0 + t, fired, added=True)
            t += 1

    return run


def _plasticity(
    w: torch.Tensor, pre: torch.Tensor, post: torch.Tensor, inc: float, dec: float
) -> torch.Tensor:
    """Rewrite the rows ``post`` of ``w`` [out × in] in place (inc where pre spiked, else dec);
    returns the new rows."""
    old = w.index_select(0, post)
    f = weight_factor(old)
    was_pre = torch.zeros((1, w.shape[1]), dtype=torch.bool, device=w.device)
    was_pre[0, pre] = True
    new = torch.where(was_pre, old + inc * f, old - dec * f)
    w.index_copy_(0, post, new)
    return new


def _report(fired, counts: torch.Tensor, on_spikes: SpikeSink | None, device) -> None:
    for layer, events in enumerate(fired):
        if events:
            ids = torch.cat([p for _, p in events])
            counts[layer] += ids.numel()
            if on_spikes is not None:
                when = torch.cat([torch.full((p.numel(),), s, device=device) for s, p in events])
                on_spikes(layer + 1, when, ids)


@contextmanager
def _single_thread(device: torch.device):
    """Run the step loop's small CPU ops on one thread (a loaded thread pool costs ms per op)."""
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def sra_sleep_dense(
    weights: list[torch.Tensor],
    alphas: list[float],
    thresholds: list[float],
    spikes_in: Iterator[torch.Tensor],
    *,
    inc: float,
    dec: float,
    decay: float,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The literal translation of ``sleepnn_old.m`` (every matrix, every step): the reference.

    Runs on one CPU thread, as :func:`sra_sleep` does, so that benchmarks compare like with like.
    """
    w = [x.clone() for x in weights]
    mems = [torch.zeros(x.shape[0], dtype=x.dtype, device=x.device) for x in w]
    counts = torch.zeros(len(w), dtype=torch.long)
    with _single_thread(w[0].device):
        for block in spikes_in:
            for s_in in block:
                s = s_in.to(w[0].dtype)
                for layer, wl in enumerate(w):
                    impulse = (alphas[layer] * s) @ wl.T
                    mems[layer] = decay * mems[layer] + impulse
                    post = (mems[layer] >= thresholds[layer]).to(wl.dtype)
                    f = weight_factor(wl)
                    pre = s[None, :]
                    wl += post[:, None] * (pre * inc * f - (1 - pre) * dec * f)
                    mems[layer] = mems[layer] * (1 - post)
                    counts[layer] += int(post.sum())
                    s = post
    return w, counts


CORES.register("torch")(sra_sleep)
