"""Plasticity rules of the torch engine: one class per spec rule, over the engine's slot table.

Spec rule names map to classes through :data:`RULE_STEPS`, STDP forms to their updates through
:data:`STDP_FORMS`, rate rules to their changes through :data:`RATE_CHANGES`; unknown names raise.

Traces live per neuron (presynaptic rows ``b·(N+Ns) + j``, postsynaptic neurons ``b·N + i``),
which equals Brian2's per-synapse event-driven traces because plasticity acts without delay.
Each step, in the engine's order: ``before(step)`` (periodic rules, at the start of a step, as
Brian2's ``run_regularly``), then after threshold and delivery ``after(step, pre_rows,
post_neurons)``: traces decay, pre spikes update weights and traces, then post spikes.
Weight updates touch only the synapses of neurons that spiked (STDP) or, every ``interval``,
the projection's synapses (rate rules). Updates are in place on the engine's weight tensor.
With ``bounds: relative`` the bounds are tensors over the weight table (one value per
synapse, from its built weight) and are indexed with the slots being updated; so are they
while an engine's ``set_floors`` holds lower bounds per synapse (:meth:`RuleState.set_floor`).

The update functions registered in ``STDP_FORMS`` and ``RATE_CHANGES`` are pure expressions of
numbers or tensors: the tensor loop calls them on tensors, the fused CPU kernel
(:mod:`neurosleep.engines.torch_fused`) compiles the same functions for one synapse at a time,
so both evaluate the same expression in the same order, bit for bit. A float32 engine keeps
weights and traces in float32 but evaluates the weight updates in float64 (the traces and
weights they read widened exactly, the result rounded once when written), as the kernel does
with its float64 constants; the traces decay and jump in float32 in both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from neurosleep.engines.base import rule_bounds, steps_of
from neurosleep.registry import Registry
from neurosleep.spec.snn import STDP, Oja, Scaling


def _table(keys: np.ndarray, slots: np.ndarray, n_rows: int, pad: int, device) -> torch.Tensor:
    """Padded table [n_rows, K]: the slots whose key is each row (``pad`` elsewhere)."""
    counts = np.bincount(keys, minlength=n_rows)
    k = max(1, int(counts.max(initial=0)))
    order = np.argsort(keys, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(keys)) - np.repeat(starts, counts)
    table = np.full((n_rows, k), pad, dtype=np.int64)
    table[keys[order], position] = slots[order]
    return torch.as_tensor(table, device=device)


class STDPForm(NamedTuple):
    """One STDP form's weight updates (tensors; bounds numbers or tensors like ``w``).

    ``pre(w, y, w_min, w_max, eta, a_plus, a_minus)`` at a pre spike (``y``: post traces);
    ``post(w, x, w_min, w_max, eta, a_plus)`` at a post spike (``x``: pre traces); both
    return the new weights before clipping. Equations: :class:`neurosleep.spec.snn.STDP`.
    """

    pre: Callable[..., torch.Tensor]
    post: Callable[..., torch.Tensor]


def _depress_additive(w, y, w_min, w_max, eta, a_plus, a_minus):
    return w - eta * a_minus * w_max * y


def _depress_multiplicative(w, y, w_min, w_max, eta, a_plus, a_minus):
    return w - eta * a_minus * (w - w_min) * y


def _depress_symmetric(w, y, w_min, w_max, eta, a_plus, a_minus):
    return w + eta * w_max * (a_plus * y - a_minus)


def _potentiate_additive(w, x, w_min, w_max, eta, a_plus):
    return w + eta * a_plus * w_max * x


def _potentiate_multiplicative(w, x, w_min, w_max, eta, a_plus):
    return w + eta * a_plus * (w_max - w) * x


STDP_FORMS: Registry[STDPForm] = Registry("torch STDP form")
STDP_FORMS.register("additive")(STDPForm(_depress_additive, _potentiate_additive))
STDP_FORMS.register("multiplicative")(STDPForm(_depress_multiplicative, _potentiate_multiplicative))
STDP_FORMS.register("symmetric")(STDPForm(_depress_symmetric, _potentiate_additive))


class RateChange(NamedTuple):
    """A rate rule's change per unit of ``eta · interval``: ``change(w, r_pre, r_post, w_max,
    value)`` with ``value`` the rule's field ``parameter`` (rates in Hz); equations in
    :class:`neurosleep.spec.snn.Oja` and :class:`~.Scaling`."""

    change: Callable[..., torch.Tensor]
    parameter: str


def _oja(w, r_pre, r_post, w_max, rate_ref):
    pre, post = r_pre / rate_ref, r_post / rate_ref
    return w_max * (pre * post - post * post * w / w_max)


def _scaling(w, r_pre, r_post, w_max, target):
    return w * (1.0 - r_post / target)


RATE_CHANGES: Registry[RateChange] = Registry("torch rate rule")
RATE_CHANGES.register("oja")(RateChange(_oja, "rate_ref"))
RATE_CHANGES.register("scaling")(RateChange(_scaling, "target"))


def _wide(values: torch.Tensor) -> torch.Tensor:
    """``values`` in float64 (exact; the same tensor when it is float64 already)."""
    return values.to(torch.float64)


class RuleState:
    """Shared set-up: the projection's slots, pre/post traces, bounds, gain ``eta``."""

    def __init__(self, engine, projection: str, rule, taus: tuple[float, float]) -> None:
        self.engine, self.projection, self.rule = engine, projection, rule
        self.conn = engine.conn
        self.eta = 1.0
        self.depression = 1.0  # factor on STDP's a_minus (a brain state's balance)
        self.slots = torch.cat(self.conn.slots[projection])
        dev, dtype = engine.device, engine.tdtype
        self.w_min, self.w_max = self._bounds(engine, projection, rule, dtype)
        self.own_bounds = (self.w_min, self.w_max)  # the rule's, while floors are set
        # one more entry each: the padding row / neuron of the tensor loop's spike lists
        self.x = torch.zeros(engine.batch * engine.width + 1, dtype=dtype, device=dev)
        self.y = torch.zeros(engine.batch * engine.n + 1, dtype=dtype, device=dev)
        self.decay_x = math.exp(-engine.spec.dt / taus[0])
        self.decay_y = math.exp(-engine.spec.dt / taus[1])
        self.pad = self.conn.weight.shape[0] - 1
        # only the traces of the projection's own pre and post neurons are kept (decayed, and
        # moved by spikes); columns [lo, hi) of a network's rows and neurons
        proj, size = engine.spec.projections[projection], engine.spec.size
        pre, post = engine.offsets[proj.pre], engine.offsets[proj.post]
        self.pre_columns = (pre, pre + size(proj.pre))
        self.post_columns = (post, post + size(proj.post))
        self.x_step = self._mask(self.pre_columns, engine.width, engine.batch)
        self.y_step = self._mask(self.post_columns, engine.n, engine.batch)

    def _mask(self, columns: tuple[int, int], width: int, batch: int) -> torch.Tensor:
        """[batch·width + 1]: 1 in the columns ``[lo, hi)`` of each network, else 0 (and 0
        for the padding entry)."""
        mask = torch.zeros((batch, width), dtype=self.x.dtype, device=self.x.device)
        mask[:, columns[0] : columns[1]] = 1.0
        return torch.cat((mask.view(-1), mask.new_zeros(1)))

    def _bounds(self, engine, projection: str, rule, dtype):
        """Numbers (absolute bounds), or tensors [R·K + 1] over the weight table (relative)."""
        if rule.bounds == "absolute":
            return rule_bounds(engine.spec, projection, rule, None)
        size = self.conn.weight.shape[0]
        low = torch.zeros(size, dtype=dtype, device=engine.device)
        high = torch.zeros(size, dtype=dtype, device=engine.device)
        for net, slots in zip(engine.networks, self.conn.slots[projection], strict=True):
            lo, hi = rule_bounds(engine.spec, projection, rule, net.synapses[projection].weight)
            low[slots] = torch.as_tensor(lo, dtype=dtype, device=engine.device)
            high[slots] = torch.as_tensor(hi, dtype=dtype, device=engine.device)
        return low, high

    def set_floor(self, floor: torch.Tensor | None) -> None:
        """Lower bounds [R·K + 1] over the weight table (float64; −inf where the rule's own
        bound holds): the bounds become float64 tensors, the lower one the larger of the rule's
        and ``floor``, at most the upper one. ``None``: the rule's own bounds again."""
        if floor is None:
            self.w_min, self.w_max = self.own_bounds
            return
        low, high = (
            _wide(b) if isinstance(b, torch.Tensor) else torch.full_like(floor, b)
            for b in self.own_bounds
        )
        self.w_min, self.w_max = torch.minimum(torch.maximum(low, floor), high), high

    def set_form(self, form: str) -> None:
        """A brain state's STDP form (rules without forms ignore it)."""

    def bound(self, slots: torch.Tensor) -> tuple:
        """(w_min, w_max) of the synapses in ``slots``: numbers or float64 tensors like
        ``slots``."""
        if isinstance(self.w_max, torch.Tensor):
            return _wide(self.w_min[slots]), _wide(self.w_max[slots])
        return self.w_min, self.w_max

    def decay(self) -> None:
        batch = self.engine.batch
        self.x[:-1].view(batch, -1)[:, slice(*self.pre_columns)].mul_(self.decay_x)
        self.y[:-1].view(batch, -1)[:, slice(*self.post_columns)].mul_(self.decay_y)

    def spiked(self, pre_rows: torch.Tensor, post_neurons: torch.Tensor, step: float) -> None:
        """Add ``step`` to the traces of the spiking rows and neurons (of this projection)."""
        self.x.index_add_(0, pre_rows, self.x_step[pre_rows], alpha=step)
        self.y.index_add_(0, post_neurons, self.y_step[post_neurons], alpha=step)

    def write(self, slots: torch.Tensor, values: torch.Tensor, bounds: tuple) -> None:
        """Clamp the float64 ``values`` and write them (rounded once to the engine's dtype)."""
        self.conn.weight[slots] = torch.clamp(values, *bounds).to(self.conn.weight.dtype)
        self.conn.weight[self.pad :].zero_()  # no Python scalar: on CUDA that is a host copy


class STDPRule(RuleState):
    """Pair STDP (additive, multiplicative, symmetric); equations in :class:`spec.snn.STDP`."""

    def __init__(self, engine, projection: str, rule: STDP) -> None:
        self.set_form(rule.form)
        super().__init__(engine, projection, rule, (rule.tau_plus, rule.tau_minus))
        slots = self.slots.cpu().numpy()
        rows = self.conn.row_of_slot[self.slots].cpu().numpy()
        posts = self.conn.post_of_slot[self.slots].cpu().numpy()
        self.by_pre = _table(rows, slots, self.x.shape[0], self.pad, engine.device)
        self.by_post = _table(posts, slots, self.y.shape[0], self.pad, engine.device)
        # the other end of each table entry's synapse (contiguous reads in the fused kernel)
        self.post_by_pre = self.conn.post_of_slot[self.by_pre]
        self.pre_by_post = self.conn.row_of_slot[self.by_post]
        self.kernel_tables = None  # the fused kernel's, built on first use (torch_fused)

    def set_form(self, form: str) -> None:
        self.form_name, self.form = form, STDP_FORMS.get(form)

    def before(self, step: int) -> None:
        pass

    def after(self, step: int, pre_rows: torch.Tensor, post_neurons: torch.Tensor) -> None:
        self.decay()
        r, w = self.rule, self.conn.weight
        if self.eta:
            s = self.by_pre.index_select(0, pre_rows).view(-1)
            y = _wide(self.y[self.post_by_pre.index_select(0, pre_rows).view(-1)])
            bounds = self.bound(s)
            a_minus = self.depression * r.a_minus
            new = self.form.pre(_wide(w[s]), y, *bounds, self.eta, r.a_plus, a_minus)
            self.write(s, new, bounds)
        self.spiked(pre_rows, post_neurons, 1.0)
        if self.eta:
            s = self.by_post.index_select(0, post_neurons).view(-1)
            x = _wide(self.x[self.pre_by_post.index_select(0, post_neurons).view(-1)])
            bounds = self.bound(s)
            self.write(s, self.form.post(_wide(w[s]), x, *bounds, self.eta, r.a_plus), bounds)


class RateRule(RuleState):
    """Rate traces (Hz) and a periodic update over all the projection's synapses."""

    def __init__(self, engine, projection: str, rule: Oja | Scaling) -> None:
        self.change = RATE_CHANGES.get(rule.rule)
        super().__init__(engine, projection, rule, (rule.tau_rate, rule.tau_rate))
        self.every = steps_of(rule.interval, engine.spec.dt)
        self.jump = 1000.0 / rule.tau_rate  # Hz per spike
        self.rows = self.conn.row_of_slot[self.slots]
        self.posts = self.conn.post_of_slot[self.slots]

    def before(self, step: int) -> None:
        if step % self.every or not self.eta:
            return
        w = _wide(self.conn.weight[self.slots])
        # the rates as the traces' decay computes them (the engine's dtype), then widened
        r_pre = _wide(self.x[self.rows] * self.decay_x)
        r_post = _wide(self.y[self.posts] * self.decay_y)
        bounds = self.bound(self.slots)
        value = getattr(self.rule, self.change.parameter)
        change = self.change.change(w, r_pre, r_post, bounds[1], value)
        self.write(self.slots, w + self.rate() * change, bounds)

    def rate(self) -> float:
        """The factor on the change per update: gain × eta (1/s) × interval (s)."""
        return self.eta * self.rule.eta * self.rule.interval * 1e-3

    def after(self, step: int, pre_rows: torch.Tensor, post_neurons: torch.Tensor) -> None:
        self.decay()
        self.spiked(pre_rows, post_neurons, self.jump)


RULE_STEPS: Registry[type[RuleState]] = Registry("torch plasticity rule")
RULE_STEPS.register("stdp")(STDPRule)
RULE_STEPS.register("oja")(RateRule)
RULE_STEPS.register("scaling")(RateRule)


def make_rule(engine, projection: str, index: int, rule) -> RuleState:
    return RULE_STEPS.get(rule.rule)(engine, projection, rule)
