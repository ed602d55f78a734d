"""The Brian2 engine: the reference simulation of an ``snn`` spec, on an explicit ``Network``.

Translation (spec -> Brian2): one ``NeuronGroup`` per population (``method='exact'`` for
current synapses, ``'exponential_euler'`` for conductance synapses), ``PoissonGroup`` for
Poisson and pattern sources, ``SpikeGeneratorGroup`` for array sources, one ``Synapses`` per
projection built from the arrays of :func:`~neurosleep.engines.base.build` (``connect(i=, j=)``);
a rule's bounds are namespace constants, or with ``bounds: relative`` synaptic constants
(``w_min_k``, ``w_max_k : volt (constant)``, one per synapse); the clipping's lower end is a
synaptic variable ``w_low_k`` (the rule's lower bound, or a floor set by ``set_floors``).
Plasticity rules are translated through :data:`RULE_CODE` (spec rule name -> code), STDP
forms through :data:`STDP_FORMS` and rate rules through :data:`RATE_CHANGES`; unknown names
raise. Plasticity runs in a separate undelayed pre pathway ``plast`` (order 0, after
transmission, before the post pathway) and in ``run_regularly`` operations (rate rules).
Neuron parameters, gains and learning-rate factors live in each object's namespace, so a
phase's neuromodulation changes them between runs without rebuilding. Recording streams: each
block is one ``run()``; its monitors are read, handed to the sink, and emptied.

Brian2 is imported when an engine is built (``import brian2`` costs ≈1 s). The random number
generator of Brian2 is process-wide: the engine seeds it once, at construction.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurosleep.engines.base import (
    ENGINES,
    Engine,
    Recording,
    Sink,
    channel,
    population_params,
    projection_gain,
    rates_with_modulation,
    rule_bounds,
    rule_gain,
    source_rates,
    stdp_form,
    steps_of,
)
from neurosleep.registry import Registry
from neurosleep.spec.snn import STDP, Modulation, Oja, Scaling, SNNSpec, SpikeArray

CURRENT = """
dv/dt = (v_rest + bias - v + g_e + g_i - a)/tau_m : volt (unless refractory)
bias : volt (constant)
"""
CONDUCTANCE = """
dv/dt = (v_rest + bias - v + g_e*(e_e - v) + g_i*(e_i - v) - a)/tau_m : volt (unless refractory)
bias : volt (constant)
"""
SYNAPSES = """
dg_e/dt = -g_e/tau_e : {g}
dg_i/dt = -g_i/tau_i : {g}
"""
ADAPTATION = "da/dt = -a/tau_a : volt\n"
NO_ADAPTATION = "a : volt (constant)\n"

# spec parameter -> (Brian2 name, unit name); the translation table of neuron parameters
PARAMETERS = {
    "tau_m": ("tau_m", "ms"),
    "v_rest": ("v_rest", "mV"),
    "v_threshold": ("v_threshold", "mV"),
    "v_reset": ("v_reset", "mV"),
    "tau_e": ("tau_e", "ms"),
    "tau_i": ("tau_i", "ms"),
    "e_e": ("e_e", "mV"),
    "e_i": ("e_i", "mV"),
    "tau_a": ("tau_a", "ms"),
    "increment": ("increment", "mV"),
}


# Brian2 solves the current-based system symbolically; its solution divides by tau_m - tau_e,
# tau_m - tau_i (and tau_m - tau_a), so equal time constants give NaN. tau_m is then moved by
# this relative amount: the propagator changes by about as much (rounding of the near-singular
# terms adds about 1e-14 / SHIFT), far below the 1e-6 to which the engines are compared.
SINGULAR_SHIFT = 1e-7


def brian2_tau_m(values: dict[str, float], adaptation: bool) -> float:
    """A population's ``tau_m`` (ms) for Brian2's exact solver, moved off the time constants
    of the inputs it integrates (``tau_e``, ``tau_i``, and ``tau_a`` when it adapts)."""
    tau_m = values["tau_m"]
    inputs = ("tau_e", "tau_i", "tau_a") if adaptation else ("tau_e", "tau_i")
    if any(np.isclose(tau_m, values[k], rtol=SINGULAR_SHIFT, atol=0) for k in inputs):
        return tau_m * (1 + SINGULAR_SHIFT)
    return tau_m


def clip_bounds(k: int) -> str:
    """Rule ``k``'s clipping interval, widened by ``w_slack``: 0 while the projection learns,
    infinite while its plasticity is off, so that a weight outside the bounds (set from
    outside, or left by another rule's bounds) is not moved when nothing is learnt. The lower
    end is the synaptic ``w_low_k``: the rule's ``w_min_k``, or a floor above it
    (``set_floors``)."""
    return f"w_low_{k} - w_slack, w_max_{k} + w_slack"


@dataclass(frozen=True)
class RuleCode:
    """One plasticity rule in Brian2: its synaptic ``model`` lines, ``pre`` code (on the
    undelayed ``plast`` pathway), ``post`` code, ``periodic`` code run every ``interval`` ms
    (rate rules) and the constants of its ``namespace``; names carry the rule's suffix ``_k``."""

    model: str
    pre: str
    post: str
    namespace: dict[str, Any]
    periodic: str | None = None
    interval: float | None = None


# STDP form -> (weight after a pre spike, after a post spike), before clipping; ``{k}``: suffix
STDP_FORMS: Registry[tuple[str, str]] = Registry("Brian2 STDP form")
STDP_FORMS.register("additive")(
    ("w - eta*depression*a_minus_{k}*w_max_{k}*y_{k}", "w + eta*a_plus_{k}*w_max_{k}*x_{k}")
)
STDP_FORMS.register("multiplicative")(
    (
        "w - eta*depression*a_minus_{k}*(w - w_min_{k})*y_{k}",
        "w + eta*a_plus_{k}*(w_max_{k} - w)*x_{k}",
    )
)
STDP_FORMS.register("symmetric")(
    (
        "w + eta*w_max_{k}*(a_plus_{k}*y_{k} - depression*a_minus_{k})",
        "w + eta*a_plus_{k}*w_max_{k}*x_{k}",
    )
)

# rate rule -> (its change per unit of eta*interval, its reference rate parameter in Hz);
# ``{pre}``, ``{post}``: the rates (Hz) now
RATE_CHANGES: Registry[tuple[str, str]] = Registry("Brian2 rate rule")
RATE_CHANGES.register("oja")(
    (
        "w_max_{k}*(({pre}/rate_ref_{k})*({post}/rate_ref_{k})"
        " - ({post}/rate_ref_{k})**2*w/w_max_{k})",
        "rate_ref",
    )
)
RATE_CHANGES.register("scaling")(("w*(1 - {post}/target_{k})", "target"))

RULE_CODE: Registry[Callable[[int, Any, Any], RuleCode]] = Registry("Brian2 plasticity rule")
"""Spec rule name -> ``translate(k, rule, brian2) -> RuleCode`` (names of
:data:`neurosleep.spec.snn.PLASTICITY_RULES`)."""


@RULE_CODE.register("stdp")
def stdp_code(k: int, rule: STDP, b2) -> RuleCode:
    """Pair STDP rule number ``k``: event-driven traces, the form's updates, clipped."""
    depress, potentiate = (code.format(k=k) for code in STDP_FORMS.get(rule.form))
    clip = f"w = clip({{}}, {clip_bounds(k)})"
    return RuleCode(
        model=(
            f"dx_{k}/dt = -x_{k}/tau_plus_{k} : 1 (event-driven)\n"
            f"dy_{k}/dt = -y_{k}/tau_minus_{k} : 1 (event-driven)\n"
        ),
        pre=f"{clip.format(depress)}\nx_{k} += 1",
        post=f"y_{k} += 1\n{clip.format(potentiate)}",
        namespace={
            f"tau_plus_{k}": rule.tau_plus * b2.ms,
            f"tau_minus_{k}": rule.tau_minus * b2.ms,
            f"a_plus_{k}": rule.a_plus,
            f"a_minus_{k}": rule.a_minus,
        },
    )


def rate_code(k: int, rule: Oja | Scaling, b2) -> RuleCode:
    """A rate rule number ``k`` (Oja or scaling): rate traces, a periodic clipped update."""
    template, rate = RATE_CHANGES.get(rule.rule)
    decay = f"exp(-(t - lastupdate)/tau_rate_{k})"
    change = template.format(k=k, pre=f"(r_pre_{k}*{decay})", post=f"(r_post_{k}*{decay})")
    namespace = {
        f"tau_rate_{k}": rule.tau_rate * b2.ms,
        f"eta_{k}": rule.eta / b2.second,
        f"interval_{k}": rule.interval * b2.ms,
        f"{rate}_{k}": getattr(rule, rate) * b2.Hz,
    }
    return RuleCode(
        model=(
            f"dr_pre_{k}/dt = -r_pre_{k}/tau_rate_{k} : Hz (event-driven)\n"
            f"dr_post_{k}/dt = -r_post_{k}/tau_rate_{k} : Hz (event-driven)\n"
        ),
        pre=f"r_pre_{k} += 1/tau_rate_{k}",
        post=f"r_post_{k} += 1/tau_rate_{k}",
        namespace=namespace,
        periodic=f"w = clip(w + eta*eta_{k}*interval_{k}*{change}, {clip_bounds(k)})",
        interval=rule.interval,
    )


RULE_CODE.register("oja")(rate_code)
RULE_CODE.register("scaling")(rate_code)


@ENGINES.register("brian2")
class Brian2Engine(Engine):
    """Brian2 runtime simulation (``target`` 'numpy' or 'cython'); one network (no batch)."""

    name = "brian2"
    max_batch = 1
    devices = ("cpu",)

    def __init__(
        self,
        spec: SNNSpec,
        *,
        seeds,
        device: str = "cpu",
        dtype: str = "float64",
        target: str = "numpy",
    ) -> None:
        if device != "cpu" or dtype != "float64":
            raise ValueError("the brian2 engine runs on the CPU in float64")
        super().__init__(spec, seeds=seeds, device=device, dtype=dtype)
        import brian2 as b2

        self.b2 = b2
        self.target = target
        b2.prefs.codegen.target = target
        b2.seed(self.seeds[0])
        self.clock = b2.Clock(spec.dt * b2.ms, name="neurosleep_clock")
        self.groups: dict = {}
        self.synapses: dict = {}
        self.monitors: dict = {}
        self.base_rates = {name: source_rates(spec, name) for name in spec.sources}
        rules = {  # translated first: an unknown rule raises before any Brian2 object exists
            name: [RULE_CODE.get(rule.rule)(k, rule, b2) for k, rule in enumerate(proj.plasticity)]
            for name, proj in spec.projections.items()
        }
        net = self.networks[0]
        for name in spec.populations:
            self.groups[name] = self._population(name, net.initial[name])
        for name, src in spec.sources.items():
            self.groups[name] = self._source(name, src, net.sources[name])
        for name in spec.projections:
            self.synapses[name] = self._projection(name, net.synapses[name], rules[name])
        self.net = b2.Network(*self.groups.values(), *self.synapses.values())
        self.set_modulation(None)

    # ------------------------------------------------------------------ translation
    def _unit(self, name: str):
        return self.b2.mV if name == "mV" else (self.b2.ms if name == "ms" else 1.0)

    def _population(self, name: str, initial: dict[str, np.ndarray]):
        b2, pop = self.b2, self.spec.populations[name]
        current = pop.neuron.synapses == "current"
        eqs = (CURRENT if current else CONDUCTANCE) + SYNAPSES.format(g="volt" if current else "1")
        eqs += ADAPTATION if pop.neuron.adaptation else NO_ADAPTATION
        reset = "v = v_reset" + ("\na += increment" if pop.neuron.adaptation else "")
        group = b2.NeuronGroup(
            pop.size,
            eqs,
            threshold="v > v_threshold",
            reset=reset,
            refractory=pop.neuron.refractory * b2.ms,
            method="exact" if current else "exponential_euler",
            namespace={},
            name=f"pop_{name}",
            clock=self.clock,
        )
        g_unit = b2.mV if current else 1.0
        group.v = initial["v"] * b2.mV
        group.g_e = initial["g_e"] * g_unit
        group.g_i = initial["g_i"] * g_unit
        group.a = initial["a"] * b2.mV
        return group

    def _source(self, name: str, src, given):
        b2, dt = self.b2, self.spec.dt * self.b2.ms
        if isinstance(src, SpikeArray):
            return b2.SpikeGeneratorGroup(
                src.size, given.indices, given.steps * dt, clock=self.clock, name=f"src_{name}"
            )
        return b2.PoissonGroup(
            src.size, rates=self.base_rates[name] * b2.Hz, clock=self.clock, name=f"src_{name}"
        )

    def _projection(self, name: str, syn, rules: list[RuleCode]):
        b2, proj = self.b2, self.spec.projections[name]
        unit = self.spec.weight_unit(name)
        namespace = {"gain": 1.0, "eta": 1.0, "depression": 1.0}
        model = f"w : {'volt' if unit == 'mV' else '1'}\n"
        pre, post, periodic = [], [], []
        per_synapse = {}  # bounds: relative -> synaptic constants w_min_k, w_max_k
        for k, (rule, code) in enumerate(zip(proj.plasticity, rules, strict=True)):
            w_min, w_max = rule_bounds(self.spec, name, rule, syn.weight)
            bounds = {
                f"w_min_{k}": w_min * self._unit(unit),
                f"w_max_{k}": w_max * self._unit(unit),
            }
            if rule.bounds == "relative":
                per_synapse.update(bounds)
                model += "".join(
                    f"{b} : {'volt' if unit == 'mV' else '1'} (constant)\n" for b in bounds
                )
            else:
                namespace.update(bounds)
            model += f"w_low_{k} : {'volt' if unit == 'mV' else '1'}\n"
            namespace.update(code.namespace)
            if code.periodic is not None:
                periodic.append((code.periodic, code.interval))
            model += code.model
            pre.append(code.pre)
            post.append(code.post)
        transmit = f"g_{channel(self.spec, name)}_post += gain*w"
        on_pre = {"pre": transmit, "plast": "\n".join(pre)} if pre else transmit
        synapses = b2.Synapses(
            self.groups[proj.pre],
            self.groups[proj.post],
            model=model,
            on_pre=on_pre,
            on_post="\n".join(post) if post else None,
            namespace=namespace,
            name=f"proj_{name}",
            clock=self.clock,
        )
        synapses.connect(i=syn.pre, j=syn.post)
        synapses.w = syn.weight * self._unit(unit)
        for bound, values in per_synapse.items():
            setattr(synapses, bound, values)
        self._set_low(synapses, name, syn, None)
        if syn.delay.any():
            synapses.pre.delay = syn.delay * self.spec.dt * b2.ms
        if pre:
            synapses.plast.order = 0
        for k, (code, interval) in enumerate(periodic):
            synapses.run_regularly(
                code, dt=interval * b2.ms, when="start", name=f"proj_{name}_rate{k}"
            )
        return synapses

    # ------------------------------------------------------------------ phase-boundary controls
    @classmethod
    def form_problems(cls, spec: SNNSpec, modulation: Modulation | None) -> list[str]:
        """Each rule's code is compiled in its own form: a state's ``form`` may only name a
        projection's STDP rules' own form (or a projection without STDP)."""
        return [
            f"the brian2 engine runs {name!r}'s STDP in its own form ({rule.form}), not "
            f"{stdp_form(modulation, name, rule.form)!r}; another form needs the torch engine"
            for name, proj in spec.projections.items()
            for rule in proj.plasticity
            if getattr(rule, "form", None) and stdp_form(modulation, name, rule.form) != rule.form
        ]

    def set_modulation(self, modulation: Modulation | None) -> None:
        problems = self.form_problems(self.spec, modulation)
        if problems:
            raise ValueError(problems[0])
        self.modulation = modulation
        for name in self.spec.populations:
            values = population_params(self.spec, name, modulation)
            neuron = self.spec.populations[name].neuron
            if neuron.synapses == "current":
                values["tau_m"] = brian2_tau_m(values, neuron.adaptation is not None)
            namespace = self.groups[name].namespace
            for key, (b2_name, unit) in PARAMETERS.items():
                namespace[b2_name] = values[key] * self._unit(unit)
        for name, syn in self.synapses.items():
            syn.namespace["gain"] = projection_gain(modulation, name)
            syn.namespace["eta"] = rule_gain(modulation, "plasticity", name)
            slack = np.inf if syn.namespace["eta"] == 0 else 0.0
            syn.namespace["w_slack"] = slack * self._unit(self.spec.weight_unit(name))
            syn.namespace["depression"] = rule_gain(modulation, "depression", name)
        for name in self.spec.sources:
            if not isinstance(self.spec.sources[name], SpikeArray):
                self.groups[name].rates = (
                    rates_with_modulation(self.base_rates[name], modulation, name) * self.b2.Hz
                )

    def _set_low(self, synapses, name: str, syn, floor: np.ndarray | None) -> None:
        """Each rule's ``w_low_k`` of projection ``name``: its lower bound, raised to ``floor``
        (None: not raised) and at most its upper bound."""
        unit = self._unit(self.spec.weight_unit(name))
        for k, rule in enumerate(self.spec.projections[name].plasticity):
            low, high = rule_bounds(self.spec, name, rule, syn.weight)
            low = np.broadcast_to(np.asarray(low, dtype=float), syn.weight.shape)
            if floor is not None:
                low = np.minimum(np.maximum(low, floor), high)
            setattr(synapses, f"w_low_{k}", low * unit)

    def set_floors(self, projection: str, floors: list[np.ndarray] | None) -> None:
        floor = None if floors is None else np.asarray(floors[0], dtype=float)
        syn = self.networks[0].synapses[projection]
        self._set_low(self.synapses[projection], projection, syn, floor)

    def set_bias(self, population: str, values_mv: np.ndarray | None) -> None:
        values = 0.0 if values_mv is None else np.asarray(values_mv, dtype=float)
        self.groups[population].bias = values * self.b2.mV

    def set_rates(self, source: str, rates_hz: np.ndarray) -> None:
        if isinstance(self.spec.sources[source], SpikeArray):
            raise ValueError(f"source {source!r} plays given spike trains; it has no rates")
        rates = np.broadcast_to(
            np.asarray(rates_hz, dtype=float).reshape(-1), (self.spec.size(source),)
        )
        self.base_rates[source] = rates.copy()
        self.groups[source].rates = (
            rates_with_modulation(rates, self.modulation, source) * self.b2.Hz
        )

    def get_weights(self, projection: str) -> list[np.ndarray]:
        unit = self.spec.weight_unit(projection)
        values = np.array(self.synapses[projection].w_, dtype=float)
        return [values * 1e3 if unit == "mV" else values]

    def set_weights(self, projection: str, values) -> None:
        values = values[0] if isinstance(values, (list, tuple)) else values
        unit = self.spec.weight_unit(projection)
        self.synapses[projection].w = np.asarray(values, dtype=float) * self._unit(unit)

    def get_state(self, variable: str, population: str) -> np.ndarray:
        values = np.asarray(getattr(self.groups[population], variable + "_"))
        volts = variable in ("v", "a") or self.spec.populations[population].g_unit == "mV"
        return (values * 1e3 if volts else values)[None].astype(float)

    # ------------------------------------------------------------------ the loop
    def _monitors(self, recording: Recording) -> dict:
        b2, wanted = self.b2, {}
        for name in recording.spikes:
            key = ("spikes", name)
            if key not in self.monitors:
                self.monitors[key] = b2.SpikeMonitor(self.groups[name], record=True)
                self.net.add(self.monitors[key])
            wanted[key] = self.monitors[key]
        for (var, pop), index in recording.states.items():
            key = ("state", var, pop, tuple(np.asarray(index).tolist()), recording.interval)
            if key not in self.monitors:
                self.monitors[key] = b2.StateMonitor(
                    self.groups[pop], var, record=np.asarray(index), dt=recording.interval * b2.ms
                )
                self.net.add(self.monitors[key])
            wanted[key] = self.monitors[key]
        for key, monitor in self.monitors.items():
            monitor.active = key in wanted
        return wanted

    def _run_block(self, steps: int, recording: Recording, sink: Sink | None) -> None:
        monitors = self._monitors(recording)
        self.b2.prefs.codegen.target = self.target
        gc.freeze()  # Brian2 calls gc.collect() in every run(): scan only new objects
        try:
            self.net.run(steps * self.spec.dt * self.b2.ms, namespace={})
        finally:
            gc.unfreeze()
        for key, monitor in monitors.items():
            if key[0] == "spikes":
                if sink is not None:
                    sink.spikes(
                        key[1], np.asarray(monitor.t_) * 1e3, np.array(monitor.i, dtype=np.int64)
                    )
                monitor.resize(0)
                monitor.variables["N"].set_value(0)
            else:
                _, var, pop, _, _ = key
                if sink is not None:
                    rows = np.array(
                        getattr(monitor, var + "_"), dtype=float
                    ).T  # copy: resize reuses
                    volts = var in ("v", "a") or self.spec.populations[pop].g_unit == "mV"
                    sink.state(
                        var, pop, np.asarray(monitor.t_) * 1e3, rows * 1e3 if volts else rows
                    )
                monitor.resize(0)

    def run(self, duration_ms: float, recording: Recording | None = None, sink: Sink | None = None):
        """As :meth:`Engine.run`; without recording, the whole duration is one ``run()`` call."""
        recording = recording or Recording()
        if not recording.spikes and not recording.states:
            steps = steps_of(duration_ms, self.spec.dt)
            recording = Recording(block=steps * self.spec.dt)
        super().run(duration_ms, recording, sink)


__all__ = ["Brian2Engine"]
