"""The torch engine: the ``snn`` equations with tensors, batched, event-driven, CPU or CUDA.

Layout: all populations are concatenated into one neuron axis of size ``N`` and all sources
after them (``N + Ns`` presynaptic rows); state tensors are ``[B, N]`` for ``B`` networks (one per
seed). All projections of all networks form one padded row table (ELL: each presynaptic row's
synapses padded to the longest row ``K``): delivering a step's spikes touches only the rows of
neurons that spiked (``index_select`` of ``[n_spikes, K]``, one ``index_add_``). Delays go through
a ring buffer of synaptic input ``[D, M]``: each network's ``g_e`` cells, from ``I ≥ B·N`` on
their ``g_i`` cells (``I`` sets them apart from the ``g_e`` cells by 1 KiB modulo 4 KiB, see
:func:`_in_page`), and a last cell that takes padding (``M = I + B·N + 1``).

Integration matches the Brian2 engine's: exact for current synapses (the linear system's
propagator), exponential Euler for conductance synapses; threshold after the update, delivery
into ``g`` of the same step, then reset (Brian2's schedule).

On the CPU the step loop runs fused (``fused=True``, the default there): the same step compiled
by numba (:mod:`neurosleep.engines.torch_fused`) over the tensors' memory, plasticity rules
included, a whole block per call. The
tensor functions below (:func:`lif_step`, :func:`deliver`, :func:`receive`) are the loop on
other devices (CUDA) and with ``fused=False``; with ``graphs=True`` their step runs over fixed
tensors (:class:`StepGraph`), on CUDA as one captured CUDA graph replayed every step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from typing import NamedTuple

import numpy as np
import torch

from neurosleep.engines.base import (
    ENGINES,
    Engine,
    Recording,
    Sink,
    channel,
    population_params,
    projection_gain,
    rates_with_modulation,
    rule_gain,
    source_rates,
    stdp_form,
    steps_of,
)
from neurosleep.engines.torch_plasticity import make_rule
from neurosleep.spec.snn import Modulation, SNNSpec, SpikeArray


class NeuronParams(NamedTuple):
    """Per-neuron constants [N] of one step of length dt (ms, mV)."""

    em: torch.Tensor  # exp(-dt/tau_m)
    c0: torch.Tensor  # (v_rest + bias) (1 - em)
    k_e: torch.Tensor  # exact-propagator weight of g_e on v (current synapses)
    k_i: torch.Tensor
    k_a: torch.Tensor
    d_e: torch.Tensor | float  # exp(-dt/tau_e); a number when uniform
    d_i: torch.Tensor | float
    d_a: torch.Tensor
    v_th: torch.Tensor
    v_reset: torch.Tensor | float
    ref_steps: torch.Tensor | int  # int64
    increment: torch.Tensor
    dt_tau_m: torch.Tensor  # dt/tau_m (conductance synapses)
    v_rest: torch.Tensor  # v_rest + bias
    e_e: torch.Tensor
    e_i: torch.Tensor
    conductance: torch.Tensor | None  # bool [N]; None when every population is current-based
    adaptation: bool  # False: no population adapts (the a terms are skipped)
    reset_below_threshold: bool  # v_reset < v_threshold everywhere: refractory v never fires


class NeuronState(NamedTuple):
    v: torch.Tensor  # [B, N] mV
    g_e: torch.Tensor  # [B, N]
    g_i: torch.Tensor
    a: torch.Tensor
    ref_end: torch.Tensor  # int32 [B, N], first step at which the neuron integrates again


def _propagator_weight(tau: np.ndarray, tau_m: np.ndarray, dt: float) -> np.ndarray:
    """Weight of an exponentially decaying input (time constant tau) on v over one step."""
    same = np.isclose(tau, tau_m)
    safe = np.where(same, tau + 1.0, tau)
    general = safe * (np.exp(-dt / safe) - np.exp(-dt / tau_m)) / (safe - tau_m)
    return np.where(same, dt / tau_m * np.exp(-dt / tau_m), general)


def neuron_params(
    spec: SNNSpec, mod: Modulation | None, dtype, device, bias: np.ndarray | None = None
) -> NeuronParams:
    """Per-neuron step constants, computed in float64 then cast; ``bias`` [N] (mV) shifts each
    neuron's resting potential (a constant input current times the membrane resistance)."""
    columns: dict[str, list[np.ndarray]] = {}
    for name, pop in spec.populations.items():
        for key, value in population_params(spec, name, mod).items():
            columns.setdefault(key, []).append(np.full(pop.size, value, dtype=float))
    c = {key: np.concatenate(parts) for key, parts in columns.items()}
    if bias is not None:
        c["v_rest"] = c["v_rest"] + bias
    dt = spec.dt
    em = np.exp(-dt / c["tau_m"])
    kinds = np.concatenate(
        [np.full(p.size, p.neuron.synapses == "conductance") for p in spec.populations.values()]
    )

    def t(x, dt_=dtype):
        return torch.as_tensor(x, dtype=dt_, device=device)

    return NeuronParams(
        em=t(em),
        c0=t(c["v_rest"] * (1 - em)),
        k_e=t(_propagator_weight(c["tau_e"], c["tau_m"], dt)),
        k_i=t(_propagator_weight(c["tau_i"], c["tau_m"], dt)),
        k_a=t(_propagator_weight(c["tau_a"], c["tau_m"], dt)),
        d_e=_scalar_or(np.exp(-dt / c["tau_e"]), t),
        d_i=_scalar_or(np.exp(-dt / c["tau_i"]), t),
        d_a=t(np.exp(-dt / c["tau_a"])),
        v_th=t(c["v_threshold"]),
        v_reset=_scalar_or(c["v_reset"], t),
        ref_steps=_scalar_or(
            np.rint(c["refractory"] / dt).astype(np.int64), lambda x: t(x, torch.int32)
        ),
        increment=t(c["increment"]),
        dt_tau_m=t(dt / c["tau_m"]),
        v_rest=t(c["v_rest"]),
        e_e=t(c["e_e"]),
        e_i=t(c["e_i"]),
        conductance=t(kinds, torch.bool) if kinds.any() else None,
        adaptation=any(p.neuron.adaptation for p in spec.populations.values()),
        reset_below_threshold=bool(np.all(c["v_reset"] < c["v_threshold"])),
    )


def _scalar_or(values: np.ndarray, tensor) -> float | int | torch.Tensor:
    """A python number when every neuron shares the value (cheaper ops), else a tensor."""
    if len(values) and np.all(values == values[0]):
        return values[0].item()
    return tensor(values)


@contextmanager
def one_intra_op_thread() -> Iterator[int]:
    """Torch's intra-op threads set to one while the fused loop runs a block; yields their
    number before, the threads the loop advances networks on. Its own tensor operations (the
    sources' draws) gain nothing from more, and on a busy machine OpenMP's waiting threads spin
    (docs/performance.md); restored after the block."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


def lif_step(state: NeuronState, p: NeuronParams, step: int) -> tuple[torch.Tensor, NeuronState]:
    """One step of every neuron's v (and a): integrate, threshold, reset; returns
    (spikes [B, N], state). The synaptic variables advance in :func:`receive`, after delivery.

    Current synapses: the exact propagator ``v' = c0 + em·v + k_e·g_e + k_i·g_i − k_a·a``;
    conductance synapses: exponential Euler with the old conductances (as Brian2). A
    refractory neuron sits at ``v_reset`` since its spike, so it is put back there; when
    ``v_reset`` is below threshold everywhere the refractory mask need not enter the threshold
    test. Pure: the tensors of ``state`` are not modified (in-place ops touch new tensors only).
    """
    refractory = state.ref_end > step
    v = torch.addcmul(p.c0, state.v, p.em)
    v = v.addcmul_(state.g_e, p.k_e).addcmul_(state.g_i, p.k_i)
    a = state.a
    if p.adaptation:
        v = v.addcmul_(state.a, p.k_a, value=-1.0)
        a = state.a * p.d_a
    if p.conductance is not None:
        total = 1.0 + state.g_e + state.g_i
        v_inf = (p.v_rest + state.g_e * p.e_e + state.g_i * p.e_i - state.a) / total
        v_ee = v_inf + (state.v - v_inf) * torch.exp(-p.dt_tau_m * total)
        v = torch.where(p.conductance, v_ee, v)
    v = _put(v, refractory, p.v_reset)
    spikes = v > p.v_th
    if not p.reset_below_threshold:
        spikes = spikes & ~refractory
    v = _put(v, spikes, p.v_reset)
    if p.adaptation:
        a = a + p.increment * spikes
    ref_end = torch.where(spikes, p.ref_steps + step, state.ref_end)
    return spikes, NeuronState(v, state.g_e, state.g_i, a, ref_end)


def receive(state: NeuronState, p: NeuronParams, input_e, input_i) -> NeuronState:
    """The synaptic variables' step: decay, plus this step's arriving input (one op each)."""
    g_e = _decay_add(input_e, state.g_e, p.d_e)
    g_i = _decay_add(input_i, state.g_i, p.d_i)
    return NeuronState(state.v, g_e, g_i, state.a, state.ref_end)


def _decay_add(x: torch.Tensor, g: torch.Tensor, decay: float | torch.Tensor) -> torch.Tensor:
    """``x + decay·g``."""
    if isinstance(decay, float):
        return torch.add(x, g, alpha=decay)
    return torch.addcmul(x, g, decay)


def _put(x: torch.Tensor, mask: torch.Tensor, value: float | torch.Tensor) -> torch.Tensor:
    """``where(mask, value, x)``, in place on ``x`` (a new tensor) when value is a number."""
    if isinstance(value, (int, float)):
        return x.masked_fill_(mask, value)
    return torch.where(mask, value, x)


class Connectivity(NamedTuple):
    """All synapses of all networks as a padded row table over ``R = B·(N + Ns)`` rows."""

    target: torch.Tensor  # int32 [R, K] (int64 where M does not fit): index into the input
    # buffer's M cells; 32-bit, the fused kernel reads half the bytes
    delay: torch.Tensor  # int64 [R, K] (steps)
    weight: torch.Tensor  # [R·K + 1] (flat; the last entry is the padding slot)
    weight_rows: torch.Tensor  # [R, K] view of weight[:-1]
    gain: torch.Tensor  # [R, K] delivery gain (neuromodulation)
    slots: dict[str, list[torch.Tensor]]  # projection -> per network: int64 [S] flat slots
    row_len: torch.Tensor  # int64 [R]: synapses in each row (the rest is padding)
    row_of_slot: torch.Tensor  # int64 [R·K + 1]: presynaptic row (b·(N+Ns) + j)
    post_of_slot: torch.Tensor  # int64 [R·K + 1]: postsynaptic neuron (b·N + i)
    max_delay: int


PAGE = 4096  # bytes; see :func:`_in_page`


def _in_page(shape: tuple[int, ...], dtype: torch.dtype, device, offset: int) -> torch.Tensor:
    """A zeroed tensor whose data starts ``offset`` bytes into a 4 KiB page (on the CPU;
    elsewhere a plain one). The fused kernel's pass over the neurons streams several [B·N]
    arrays at the same index; where two of them lie a multiple of 4 KiB apart, a load looks
    like the store just issued to the other (the addresses' low 12 bits agree: "4K aliasing")
    and waits for it. Set apart by ``offset``, they cannot."""
    size = math.prod(shape)
    if torch.device(device).type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    item = torch.empty(0, dtype=dtype).element_size()
    raw = torch.zeros(size + PAGE // item, dtype=dtype)
    start = (offset - raw.data_ptr()) % PAGE // item
    return raw[start : start + size].view(shape)


def _inhibitory_start(cells: int, item: int) -> int:
    """The input buffer's first inhibitory cell: after the ``cells`` excitatory ones, the first
    that lies 1 KiB into a 4 KiB page from the excitatory cell of the same neuron (``item``
    bytes per cell), so that the two are not 4 KiB apart (see :func:`_in_page`)."""
    return cells + (PAGE // 4 - cells * item) % PAGE // item


def _index_type(size: int) -> torch.dtype:
    """The smallest of int32 and int64 that indexes ``size`` cells."""
    return torch.int32 if size <= torch.iinfo(torch.int32).max else torch.int64


def deliver(
    rows: torch.Tensor, conn: Connectivity, gain: bool, buffer: torch.Tensor, step: int
) -> None:
    """Add the weights of the spiking ``rows``' synapses into ``buffer`` [D, M] (in place);
    ``rows`` [S] may be padded with ``R`` (the number of rows: no row), which adds zeros;
    ``gain``: multiply by the per-synapse delivery gains (a phase's neuromodulation)."""
    n_rows = conn.target.shape[0]
    valid = (rows < n_rows).unsqueeze(1)
    rows = rows.clamp(max=n_rows - 1)
    values = conn.weight_rows.index_select(0, rows)
    if gain:
        values = values * conn.gain.index_select(0, rows)
    values = torch.where(valid, values, 0.0)
    target = conn.target.index_select(0, rows)
    if conn.max_delay > 0:
        slot = (step + conn.delay.index_select(0, rows)) % buffer.shape[0]
        target = target + slot * buffer.shape[1]
    buffer.view(-1).index_add_(0, target.view(-1), values.view(-1))


@ENGINES.register("torch")
class TorchEngine(Engine):
    """Batched torch simulation; ``device`` any torch device, ``dtype`` float64 or float32;
    ``fused``: run the step loop as the compiled CPU kernel (default: on the CPU);
    ``graphs``: run the tensor loop's step as one captured CUDA graph, replayed every step
    (:class:`StepGraph`; elsewhere the same step uncaptured)."""

    name = "torch"

    def __init__(
        self,
        spec: SNNSpec,
        *,
        seeds,
        device: str = "cpu",
        dtype: str = "float64",
        fused: bool | None = None,
        graphs: bool = False,
    ) -> None:
        super().__init__(spec, seeds=seeds, device=device, dtype=dtype)
        is_cpu = torch.device(device).type == "cpu"
        if fused and not is_cpu:
            raise ValueError(f"the fused step loop runs on the CPU only, not on {device!r}")
        self.fused = is_cpu and not graphs if fused is None else fused
        if graphs and self.fused:
            raise ValueError("graphs=True is a form of the tensor loop: it needs fused=False")
        self.graphs = graphs  # the tensor loop's step as a StepGraph (CUDA graphs on CUDA)
        # step graphs by spike room, for the modulation, bias and floors as they are set now
        self._graphs: dict[int, StepGraph] = {}
        if self.fused:  # numba (≈0.3 s to import) only where a fused engine is built
            from neurosleep.engines import torch_fused

            self.kernel = torch_fused
        self.tdtype = getattr(torch, dtype)
        self.n = sum(p.size for p in spec.populations.values())
        self.width = self.n + sum(s.size for s in spec.sources.values())  # presynaptic rows
        self.offsets = _offsets(spec)
        self.sizes = {name: spec.size(name) for name in self.offsets}
        self.bias = np.zeros(self.n)  # mV, per neuron (set_bias)
        self.params = neuron_params(spec, None, self.tdtype, device)
        # the input buffer's cells: g_e of each neuron, then from here g_i, then one padding
        item = torch.empty(0, dtype=self.tdtype).element_size()
        self.inhibitory = _inhibitory_start(self.batch * self.n, item)
        self.state = self._initial_state()
        self.conn = self._connectivity()
        depth, b_n, i0 = self.conn.max_delay + 1, self.batch * self.n, self.inhibitory
        self.buffer = _in_page((depth, i0 + b_n + 1), self.tdtype, device, 5 * PAGE // 8)
        self.inputs = [(*_channels(row, self), row) for row in self.buffer]  # views per slot
        self.base_rates = {  # [B, size] Hz (numpy: the input is drawn on the CPU)
            name: np.tile(source_rates(spec, name), (self.batch, 1)) for name in spec.sources
        }
        # Poisson input is drawn on the CPU on every device (the same spikes on CUDA as on
        # the CPU), a block at a time
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.spike_p: dict[str, list[torch.Tensor]] = {}  # per source and network
        self.rules = [
            make_rule(self, name, k, rule)
            for name, proj in spec.projections.items()
            for k, rule in enumerate(proj.plasticity)
        ]
        self._views: tuple | None = None  # the fused loop's numpy views of the state and tables
        self._out: np.ndarray | None = None  # the fused loop's spike rows per network
        self._plan: tuple[Recording, RecordingPlan] | None = None  # the last recording's
        # the tensor loop's spike entries per step (grows when a step has more)
        self.spike_cap = min(self.batch * self.width, 64)
        self.set_modulation(None)

    # ------------------------------------------------------------------ construction
    def _initial_state(self) -> NeuronState:
        shape = (self.batch, self.n)

        def stack(var: str, offset: int) -> torch.Tensor:
            rows = [
                np.concatenate([net.initial[p][var] for p in self.spec.populations])
                for net in self.networks
            ]
            # cache-line aligned, and each array an eighth of a page further into a page than
            # the one before (see _in_page): the fused kernel's speed no longer varies by instance
            x = _in_page(shape, self.tdtype, self.device, offset)
            return x.copy_(torch.as_tensor(np.stack(rows), dtype=self.tdtype))

        ref_end = _in_page(shape, torch.int32, self.device, PAGE // 2)
        v, g_e, g_i, a = (
            stack(var, k * PAGE // 8) for k, var in enumerate(("v", "g_e", "g_i", "a"))
        )
        return NeuronState(v, g_e, g_i, a, ref_end)

    def _connectivity(self) -> Connectivity:
        b_n, width = self.batch * self.n, self.width
        rows, posts, targets, delays, weights = [], [], [], [], []
        for b, net in enumerate(self.networks):
            for name, syn in net.synapses.items():
                proj = self.spec.projections[name]
                rows.append(b * width + self.offsets[proj.pre] + syn.pre)
                post = b * self.n + self.offsets[proj.post] + syn.post
                posts.append(post)
                targets.append(post + (self.inhibitory if channel(self.spec, name) == "i" else 0))
                delays.append(syn.delay)
                weights.append(syn.weight)
        n_rows = self.batch * width
        cat = (lambda xs: np.concatenate(xs)) if rows else (lambda xs: np.zeros(0, dtype=np.int64))
        row, post, target, delay, weight = (cat(x) for x in (rows, posts, targets, delays, weights))
        order = np.argsort(row, kind="stable")
        counts = np.bincount(row, minlength=n_rows)
        k = max(1, int(counts.max(initial=0)))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.arange(len(row)) - np.repeat(starts, counts)
        slot = np.empty(len(row), dtype=np.int64)
        slot[order] = row[order] * k + position
        pad = n_rows * k
        full = lambda fill, dtype: np.full(pad + 1, fill, dtype=dtype)  # noqa: E731
        cells = self.inhibitory + b_n + 1  # the last one takes the padding
        t_flat, d_flat, w_flat = full(cells - 1, np.int64), full(0, np.int64), full(0.0, float)
        r_flat, p_flat = full(0, np.int64), full(0, np.int64)
        t_flat[slot], d_flat[slot], w_flat[slot], r_flat[slot] = target, delay, weight, row
        p_flat[slot] = post
        slots, start = {}, 0
        for net in self.networks:
            for name, syn in net.synapses.items():
                slots.setdefault(name, []).append(slot[start : start + len(syn.pre)])
                start += len(syn.pre)
        dev = self.device

        def t(x, dtype=torch.int64):
            return torch.as_tensor(x, dtype=dtype, device=dev)

        weight = t(w_flat, self.tdtype)

        return Connectivity(
            target=t(t_flat[:-1].reshape(n_rows, k), _index_type(cells)),
            delay=t(d_flat[:-1].reshape(n_rows, k)),
            weight=weight,
            weight_rows=weight[:-1].view(n_rows, k),
            gain=torch.ones((n_rows, k), dtype=self.tdtype, device=dev),
            row_len=t(counts),
            slots={name: [t(part) for part in parts] for name, parts in slots.items()},
            row_of_slot=t(r_flat),
            post_of_slot=t(p_flat),
            max_delay=int(delay.max(initial=0)),
        )

    # ------------------------------------------------------------------ phase-boundary controls
    def set_modulation(self, modulation: Modulation | None) -> None:
        self.modulation = modulation
        self._neuron_params()
        gain = torch.ones_like(self.conn.gain).view(-1)
        for name, slots in self.conn.slots.items():
            gain[torch.cat(slots)] = projection_gain(modulation, name)
        self.conn.gain.copy_(gain.view_as(self.conn.gain))
        self.gain_active = any(projection_gain(modulation, n) != 1.0 for n in self.conn.slots)
        for rule in self.rules:
            rule.eta = rule_gain(modulation, "plasticity", rule.projection)
            rule.depression = rule_gain(modulation, "depression", rule.projection)
            rule.set_form(stdp_form(modulation, rule.projection, getattr(rule.rule, "form", "")))
        self._kernel_rules()
        for name in self.base_rates:
            self._set_spike_p(name)

    def _kernel_rules(self) -> None:
        """The fused kernel's rules from the rule objects' current gains and bounds."""
        if self.fused:
            self.kernel_rules = self.kernel.kernel_rules(
                self.rules, self.batch, np.dtype(self.dtype)
            )

    def set_floors(self, projection: str, floors: list[np.ndarray] | None) -> None:
        floor = None
        if floors is not None:
            size, wide = self.conn.weight.shape[0], torch.float64
            floor = torch.full((size,), -math.inf, dtype=wide, device=self.device)
            for s, f in zip(self.conn.slots[projection], floors, strict=True):
                floor[s] = torch.as_tensor(np.asarray(f, dtype=float), dtype=wide, device=s.device)
        for rule in self.rules:
            if rule.projection == projection:
                rule.set_floor(floor)
        self._graphs = {}  # captured with the old floors
        self._kernel_rules()

    def _neuron_params(self) -> None:
        """The step constants of the current modulation and bias (step graphs captured with
        the old ones are dropped)."""
        self._graphs = {}
        bias = self.bias if self.bias.any() else None
        self.params = neuron_params(self.spec, self.modulation, self.tdtype, self.device, bias)
        if self.fused:
            start = [self.offsets[name] for name in self.spec.populations] + [self.n]
            self.kernel_params = self.kernel.kernel_params(
                self.params, np.array(start), np.dtype(self.dtype)
            )

    def set_bias(self, population: str, values_mv: np.ndarray | None) -> None:
        start, size = self.offsets[population], self.spec.populations[population].size
        self.bias[start : start + size] = 0.0 if values_mv is None else values_mv
        self._neuron_params()

    def set_rates(self, source: str, rates_hz: np.ndarray) -> None:
        shape = (self.batch, self.spec.sources[source].size)
        self.base_rates[source] = np.broadcast_to(np.asarray(rates_hz, dtype=float), shape).copy()
        self._set_spike_p(source)

    def _set_spike_p(self, source: str) -> None:
        """Each network's spike probability per step of a Poisson ``source`` ([size] per
        network) under the current modulation."""
        rates = rates_with_modulation(self.base_rates[source], self.modulation, source)
        self.spike_p[source] = [torch.from_numpy(p) for p in rates * (self.spec.dt * 1e-3)]

    def get_weights(self, projection: str) -> list[np.ndarray]:
        return [
            self.conn.weight[s].cpu().numpy().astype(float) for s in self.conn.slots[projection]
        ]

    def set_weights(self, projection: str, values) -> None:
        slots = self.conn.slots[projection]
        per_network = values if isinstance(values, (list, tuple)) else [values] * len(slots)
        for s, v in zip(slots, per_network, strict=True):
            self.conn.weight[s] = torch.as_tensor(
                np.asarray(v, dtype=float), dtype=self.tdtype, device=self.device
            )

    def get_state(self, variable: str, population: str) -> np.ndarray:
        start = self.offsets[population]
        size = self.spec.populations[population].size
        return getattr(self.state, variable)[:, start : start + size].cpu().numpy().astype(float)

    # ------------------------------------------------------------------ the loop
    def _source_block(self, steps: int) -> torch.Tensor | None:
        """Source spikes of the next ``steps`` steps, [steps, B, Ns] (bool), drawn per network."""
        if not self.spec.sources:
            return None
        from neurosleep import uniform  # numba: imported where it draws

        block = torch.empty((steps, self.batch, self.width - self.n), dtype=torch.bool)
        for name, src in self.spec.sources.items():
            start = self.offsets[name] - self.n
            part = block[:, :, start : start + src.size]
            if isinstance(src, SpikeArray):
                part.zero_()
                for b, net in enumerate(self.networks):
                    given = net.sources[name]
                    inside = (given.steps >= self.step) & (given.steps < self.step + steps)
                    part[given.steps[inside] - self.step, b, given.indices[inside]] = True
            else:
                for b, (g, p) in enumerate(zip(self.generators, self.spike_p[name], strict=True)):
                    draw = uniform.rand((steps, src.size), g, torch.float64)
                    torch.lt(draw, p, out=part[:, b])
        return block.to(self.device)

    def _planned(self, recording: Recording) -> RecordingPlan:
        """What ``recording`` asks for, worked out once for the blocks of a run (which all get
        the same frozen recording), not per block."""
        if self._plan is not None and self._plan[0] is recording:
            return self._plan[1]
        every = max(1, steps_of(recording.interval, self.spec.dt)) if recording.states else 0
        columns = {key: self.offsets[key[1]] + idx for key, idx in recording.states.items()}
        sizes = [len(c) for c in columns.values()]
        codes = cols = _NONE
        if columns:
            cols = np.concatenate([*columns.values()], dtype=np.int64)
            if self.fused:
                codes = np.repeat([self.kernel.STATE_CODES[var] for var, _ in columns], sizes)
        spiking = recording.spikes
        plan = RecordingPlan(
            every,
            columns,
            codes,
            np.cumsum(sizes).tolist(),
            cols,
            np.array([self.offsets[name] for name in spiking], dtype=np.int64),
            np.array([self.sizes[name] for name in spiking], dtype=np.int64),
        )
        self._plan = (recording, plan)
        return plan

    def _run_block(self, steps: int, recording: Recording, sink: Sink | None) -> None:
        plan = self._planned(recording)
        if self.fused:
            with one_intra_op_thread() as threads:
                sources = self._source_block(steps)
                block = self._loop_fused(steps, sources, plan, threads)
        else:
            every, columns = plan.every, plan.columns
            block = self._loop_tensors(steps, self._source_block(steps), every, columns)
        rows, counts, samples, sample_steps = block
        if sink is not None:
            self._hand_over(sink, recording.spikes, plan, rows, counts, samples, sample_steps)

    def _loop_tensors(self, steps, sources, every, columns):
        """The step loop in tensor operations; returns what :meth:`_hand_over` takes.

        Nothing in a step waits for the device (GPU-fit): each step's spiking rows are a list
        of ``spike_cap`` entries padded with ``R = B·W`` (``nonzero_static``), read back once
        per block. When a step had more spikes than that, the block runs again from its start
        with twice the room (state, ring buffer, weights and traces are kept for that); after
        a block the room is set to about twice its busiest step.
        """
        kept = self._kept_for_rerun()
        while True:
            cap = self.spike_cap
            rows, overflow, samples, sample_steps = self._tensor_steps(
                steps, sources, every, columns, cap
            )
            if not overflow.item():  # the block's one wait for the device
                break
            self._rerun_from(kept)
            self.spike_cap = min(2 * cap, self.batch * self.width)
        log = rows.cpu().numpy()
        valid = log < self.batch * self.width
        counts = valid.sum(axis=1)
        # room for twice the block's busiest step next time (a padded entry costs as a spike)
        peak = int(counts.max(initial=0))
        self.spike_cap = min(self.batch * self.width, max(16, 1 << (2 * peak).bit_length()))
        return log[valid], counts, samples, sample_steps

    def _tensor_steps(self, steps, sources, every, columns, cap):
        """``steps`` steps with ``cap`` spike entries per step: the spiking rows [steps, cap]
        (padded with ``R``), whether a step had more (a device bool), the sampled states
        (numpy) and their steps. Each step is one call of :class:`EagerSteps` or, with
        ``graphs``, of the run's :class:`StepGraph`; sampling and periodic rules between."""
        if not self.graphs:
            stepper = EagerSteps(self, sources, cap)
        else:
            stepper = self._graphs.get(cap)
            if stepper is None or stepper.steps < steps:
                stepper = self._graphs[cap] = StepGraph(self, steps, cap)
            stepper.start(self.state, self.step, sources)
        index = {key: torch.as_tensor(c, device=self.device) for key, c in columns.items()}
        state_log: dict[tuple[str, str], list[torch.Tensor]] = {key: [] for key in index}
        sample_steps: list[int] = []
        for k in range(steps):
            step = self.step + k
            if every and step % every == 0:
                sample_steps.append(step)
                for key, cols in index.items():
                    state_log[key].append(getattr(stepper.state, key[0]).index_select(1, cols))
            for rule in self.rules:
                rule.before(step)
            stepper(step, k)
        self.state, rows, overflow = stepper.finish(steps)
        samples = {
            key: torch.stack(log).cpu().numpy() if log else None for key, log in state_log.items()
        }
        return rows, overflow, samples, sample_steps

    def _step(self, state: NeuronState, step, source_row, cap: int, slot) -> tuple:
        """One step of the tensor loop from ``state`` at ``step`` (an int, or a device int64
        tensor in a step graph): integrate, fire, deliver, receive, plasticity (weights,
        traces and the ring buffer changed in place). ``source_row``: the step's source spikes
        [B, Ns] (None: no sources); ``slot()``: (g_e input, g_i input) [B, N] of the ring
        buffer's slot of ``step``, read after delivery; the caller empties it. Returns the
        spiking rows [cap] (padded with ``R``), whether the step had more (a device bool) and
        the new state."""
        p = self.params
        spikes, state = lif_step(state, p, step)
        allspikes = spikes if source_row is None else torch.cat((spikes, source_row), dim=1)
        flat = allspikes.view(-1)
        spiking = torch.nonzero_static(flat, size=cap, fill_value=self.batch * self.width)
        spiking = spiking.view(-1)
        more = flat.sum() > cap
        deliver(spiking, self.conn, self.gain_active, self.buffer, step)
        state = receive(state, p, *slot())
        if self.rules:
            post = torch.nonzero_static(spikes.view(-1), size=cap, fill_value=self.batch * self.n)
            for rule in self.rules:
                rule.after(step, spiking, post.view(-1))
        return spiking, more, state

    def _kept_for_rerun(self) -> tuple:
        """What a block changes in place (the state tensors are replaced, not changed)."""
        traces = [(rule.x.clone(), rule.y.clone()) for rule in self.rules]
        weight = self.conn.weight.clone() if self.rules else None
        return self.state, self.buffer.clone(), weight, traces

    def _rerun_from(self, kept: tuple) -> None:
        state, buffer, weight, traces = kept
        self.state = state
        self.buffer.copy_(buffer)
        if weight is not None:
            self.conn.weight.copy_(weight)
        for rule, (x, y) in zip(self.rules, traces, strict=True):
            rule.x.copy_(x)
            rule.y.copy_(y)

    def _loop_fused(self, steps, sources, plan: RecordingPlan, threads: int):
        """The step loop as the compiled kernel: each network runs the whole block in one call,
        plasticity rules included, the networks spread over ``threads`` threads."""
        b, width, state, conn = self.batch, self.width, self.state, self.conn
        every, cols = plan.every, plan.cols
        n_samples = -(-steps // every) + 1 if every else 0
        samples = np.empty((n_samples, b, len(cols)), dtype=np.dtype(self.dtype))
        src = np.zeros((steps, b, 0), dtype=bool) if sources is None else sources.cpu().numpy()
        if self._out is None or len(self._out) != b:  # the kernel's spike rows, kept
            self._out = np.empty((b, max(16 * width, 1 << 15)), dtype=np.int64)
        out = self._out
        written, done = np.zeros(b, dtype=np.int64), np.zeros(b, dtype=np.int64)
        counts = np.zeros((steps, b), dtype=np.int64)
        if self._views is None or self._views[0] is not state:  # numpy views, made once
            self._views = (state, *(x.view(-1).numpy() for x in state))
            self._views += tuple(
                x.numpy()
                for x in (conn.target, conn.delay, conn.weight_rows, conn.row_len, conn.gain)
            ) + (self.buffer.numpy(), conn.weight.numpy())
        v, g_e, g_i, a, ref_end, target, delay, weight_rows, row_len, gain, buffer, weight = (
            self._views[1:]
        )
        arrays = (
            *(v, g_e, g_i, a, ref_end, self.kernel_params, src),
            *(target, delay, weight_rows, row_len, gain, self.gain_active, buffer, weight),
            self.kernel_rules,
            every,
            plan.codes,
            cols,
            samples,
            out,
            written,
            done,
            counts,
        )

        def advance(first: int, last: int) -> None:
            fired = np.zeros(64 * -(-self.n // 64), dtype=np.uint8)  # scanned 64 at a time
            integrated = np.empty(self.n, dtype=v.dtype)
            self.kernel.run_networks(
                first, last, steps, self.step, b, width, *arrays, fired, integrated
            )

        threads = min(threads, b)
        per_network: list[list[np.ndarray]] = [[] for _ in range(b)]
        while done.min() < steps:
            if threads > 1:  # the kernel releases the GIL; networks are independent
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(lambda j: advance(j, j + 1), range(b)))
            else:
                advance(0, b)
            for j in range(b):
                per_network[j].append(out[j, : written[j]].copy())
            written[:] = 0
        spikes = _in_step_order(per_network, counts)
        sample_steps = _NONE
        blocks = {}
        if every:
            first = self.step + (-self.step % every)
            sample_steps = np.arange(first, self.step + steps, every)
            n, start = len(sample_steps), 0
            for key, end in zip(plan.columns, plan.ends, strict=True):
                blocks[key], start = samples[:n, :, start:end], end
        return spikes, counts.sum(axis=1), blocks, sample_steps

    def _hand_over(self, sink, spiking, plan, rows, counts, samples, sample_steps) -> None:
        """Give the block's spikes (presynaptic rows per step) of the populations ``spiking``
        and its sampled states to ``sink``."""
        if spiking and len(rows):
            times, ids, bounds = _split_spikes()(
                rows, counts, self.step, self.spec.dt, self.width, self.batch,
                plan.spike_starts, plan.spike_sizes,
            )  # fmt: skip
            bounds = bounds.tolist()
            for p, name in enumerate(spiking):
                sink.spikes(name, times[bounds[p] : bounds[p + 1]], ids[bounds[p] : bounds[p + 1]])
        times = np.asarray(sample_steps) * self.spec.dt if samples else None
        for (var, pop), block in samples.items():
            if block is not None and len(block):
                sink.state(var, pop, times, block.reshape(len(block), -1))


_NONE = np.zeros(0, dtype=np.int64)  # no sampled columns


class RecordingPlan(NamedTuple):
    """What a recording asks for. States: sampled every ``every`` steps (0: none), the columns
    of each (variable, population); all of them one after the other (``cols``), where each
    (variable, population)'s run of them ends, and, for the fused kernel, each column's state
    code. Spikes: the first column and the size of each recorded population."""

    every: int
    columns: dict[tuple[str, str], np.ndarray]
    codes: np.ndarray
    ends: list[int]
    cols: np.ndarray
    spike_starts: np.ndarray
    spike_sizes: np.ndarray


class StepGraph:
    """One step of ``engine``'s tensor loop over fixed tensors (``graphs=True``, a CUDA graph
    on CUDA): blocks of at most ``steps`` steps with ``cap`` spike entries per step (padded with
    the number of rows ``R``).

    A CUDA graph replays the kernels it captured on the addresses it captured them with, so all
    that changes from one step to the next lives here in tensors allocated once and changed in
    place by the step itself: the state, the step number (refractory ends, the ring buffer's slot,
    delivery with delays), the step within the block (its row of the source spikes and of the
    spike log) and the overflow flag. What the tensor loop decides in Python per step stays
    outside the graph, between calls: sampling the state and the periodic plasticity rules'
    ``before(step)``. The modulation, bias and floors are captured as they stand, so the engine
    drops its step graphs when one of them is set (weights are changed in place, sources copied
    in per block); it keeps one per spike room, as the room follows each block's busiest step,
    and makes a new one for a longer block.

    On CUDA the first call of a step graph is a real step on a side stream (the warm-up a
    capture wants), the second is captured and replayed, the later ones replayed. Elsewhere every
    call runs :meth:`body` as it is: the same operations, which is what the CPU tests
    compare with the tensor loop bit for bit and count for waits on the device.
    """

    def __init__(self, engine, steps: int, cap: int) -> None:
        self.engine, self.steps, self.cap = engine, steps, cap
        device = engine.device
        self.state = NeuronState(*(x.clone() for x in engine.state))
        self.step = torch.zeros((), dtype=torch.int64, device=device)  # the engine's step
        self.k = torch.zeros((), dtype=torch.int64, device=device)  # the step within the block
        n_sources = engine.width - engine.n
        self.sources = (
            torch.zeros((steps, engine.batch, n_sources), dtype=torch.bool, device=device)
            if n_sources
            else None
        )
        self.log = torch.empty((steps, cap), dtype=torch.int64, device=device)  # spiking rows
        self.overflow = torch.zeros((), dtype=torch.bool, device=device)
        self.capture = torch.device(device).type == "cuda"
        self.warm = False
        self.graph: torch.cuda.CUDAGraph | None = None

    def start(self, state: NeuronState, step: int, sources: torch.Tensor | None) -> None:
        """A block from ``step`` with the state ``state`` and its source spikes [steps, B, Ns]."""
        for fixed, value in zip(self.state, state, strict=True):
            fixed.copy_(value)
        self.step.fill_(step)
        self.k.zero_()
        self.overflow.zero_()
        if sources is not None:
            self.sources[: len(sources)].copy_(sources)

    def finish(self, steps: int) -> tuple[NeuronState, torch.Tensor, torch.Tensor]:
        """The block's end: (state, spiking rows [steps, cap], whether a step had more)."""
        state = NeuronState(*(x.clone() for x in self.state))
        return state, self.log[:steps].clone(), self.overflow.clone()

    def __call__(self, step: int, k: int) -> None:
        """Advance one step (the step numbers live in the graph's own tensors; on CUDA see
        above)."""
        if not self.capture:
            self.body()
        elif self.graph is not None:
            self.graph.replay()
        else:
            with torch.cuda.device(self.engine.device):  # streams of the engine's device
                self._warm_up_or_capture()

    def _warm_up_or_capture(self) -> None:
        if not self.warm:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.body()
            torch.cuda.current_stream().wait_stream(side)
            self.warm = True
        else:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.body()
            self.graph.replay()  # a capture records the step without running it

    def body(self) -> None:
        """:meth:`TorchEngine._step` over the fixed tensors, in place."""
        e, buffer = self.engine, self.engine.buffer
        slot = torch.remainder(self.step, buffer.shape[0]).view(1)

        def arriving() -> tuple[torch.Tensor, torch.Tensor]:  # after delivery: a copy
            row = buffer.index_select(0, slot).view(-1)
            return _channels(row, e)

        source_row = (
            None if self.sources is None else self.sources.index_select(0, self.k.view(1))[0]
        )
        spiking, more, new = e._step(self.state, self.step, source_row, self.cap, arriving)
        buffer.index_fill_(0, slot, 0.0)
        self.overflow.logical_or_(more)
        self.log.index_copy_(0, self.k.view(1), spiking.view(1, -1))
        for fixed, value in zip(self.state, new, strict=True):
            if value is not fixed:
                fixed.copy_(value)
        self.k.add_(1)
        self.step.add_(1)


class EagerSteps:
    """The tensor loop's steps as they come (``graphs=False``): each step's state replaces
    the one before, its spiking rows are kept in a list; the interface of :class:`StepGraph`."""

    def __init__(self, engine: TorchEngine, sources: torch.Tensor | None, cap: int) -> None:
        self.engine, self.sources, self.cap = engine, sources, cap
        self.state = engine.state
        self.log: list[torch.Tensor] = []
        self.overflow = torch.zeros((), dtype=torch.bool, device=engine.device)

    def __call__(self, step: int, k: int) -> None:
        e = self.engine
        input_e, input_i, row = e.inputs[step % e.buffer.shape[0]]  # views: read when used
        source_row = None if self.sources is None else self.sources[k]
        spiking, more, self.state = e._step(
            self.state, step, source_row, self.cap, lambda: (input_e, input_i)
        )
        row.zero_()
        self.overflow |= more
        self.log.append(spiking)

    def finish(self, steps: int) -> tuple[NeuronState, torch.Tensor, torch.Tensor]:
        """The block's end: (state, spiking rows [steps, cap], whether a step had more)."""
        rows = torch.stack(self.log) if self.log else torch.zeros((0, self.cap), dtype=torch.int64)
        return self.state, rows, self.overflow


def _channels(row: torch.Tensor, engine: TorchEngine) -> tuple[torch.Tensor, torch.Tensor]:
    """A ring-buffer slot's [M] cells as its (g_e input, g_i input), views [B, N] each."""
    shape, b_n, i0 = (engine.batch, engine.n), engine.batch * engine.n, engine.inhibitory
    return row[:b_n].view(shape), row[i0 : i0 + b_n].view(shape)


@cache
def _split_spikes():
    """:func:`neurosleep.engines.torch_spikes.split_spikes` (numba: imported at a first
    hand-over of spikes, also by an engine that does not run the fused loop)."""
    from neurosleep.engines.torch_spikes import split_spikes

    return split_spikes


def _in_step_order(per_network: list[list[np.ndarray]], counts: np.ndarray) -> np.ndarray:
    """One array of the rows each network wrote (``per_network[b]``: its pieces, in step
    order), in step order and, within a step, in network order; ``counts`` [steps, B]."""
    if len(per_network) == 1:
        pieces = per_network[0]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    flat = counts.reshape(-1)
    start = (np.cumsum(flat) - flat).reshape(counts.shape)
    rows = np.empty(int(flat.sum()), dtype=np.int64)
    for b, pieces in enumerate(per_network):
        mine = np.concatenate(pieces)
        own_start = np.cumsum(counts[:, b]) - counts[:, b]
        rows[np.repeat(start[:, b] - own_start, counts[:, b]) + np.arange(len(mine))] = mine
    return rows


def _offsets(spec: SNNSpec) -> dict[str, int]:
    """Column of each population's first neuron, then of each source's first neuron."""
    offsets, start = {}, 0
    for name, group in [*spec.populations.items(), *spec.sources.items()]:
        offsets[name] = start
        start += group.size
    return offsets


__all__ = ["NeuronParams", "NeuronState", "TorchEngine", "deliver", "lif_step", "receive"]
