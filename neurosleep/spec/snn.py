"""Spiking network spec (``kind: snn``): LIF populations, spike sources, projections, plasticity.

Everything is a description with units; engines (``neurosleep.engines``) translate it. The
equations, per neuron of a population (``g`` in mV for current synapses, in units of the leak
conductance for conductance synapses):

.. code-block:: text

    current:      tau_m dv/dt = (v_rest - v) + g_e + g_i - a          (unless refractory)
    conductance:  tau_m dv/dt = (v_rest - v) + g_e (E_e - v) + g_i (E_i - v) - a
    dg_e/dt = -g_e / tau_e        dg_i/dt = -g_i / tau_i        da/dt = -a / tau_a
    v > v_threshold (and not refractory) -> spike; v <- v_reset; a <- a + increment
    spike of a presynaptic neuron j through synapse (j, i): g_<channel>_i += gain * w_ji after
    the synapse's delay; the channel is the presynaptic population's ``sign``.

Plasticity rules and their equations are in the docstrings of :class:`STDP`, :class:`Oja` and
:class:`Scaling`; docs/models.md is the reference with examples.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from neurosleep.registry import Registry
from neurosleep.spec import MODEL_KINDS, Spec
from neurosleep.units import Rate, Time, Voltage, quantity, to_unit

PerSecond = quantity("1/s")


class Part(BaseModel):
    """Base of the spec's sections: strict keys, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Distribution(Part):
    """A value or a distribution of values, written with units.

    ``"1.62 mV"`` (a constant), ``{uniform: ["-60 mV", "-50 mV"]}`` or
    ``{normal: ["1 mV", "0.1 mV"], min: "0 mV"}`` (mean, standard deviation; optional clipping
    bounds). The unit is checked against the quantity the field holds.
    """

    constant: str | float | None = None
    uniform: tuple[str | float, str | float] | None = None
    normal: tuple[str | float, str | float] | None = None
    min: str | float | None = None
    max: str | float | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return {"constant": value} if isinstance(value, (str, int, float)) else value

    @model_validator(mode="after")
    def _one_kind(self) -> Distribution:
        given = [k for k in ("constant", "uniform", "normal") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of a constant, 'uniform: [low, high]' or 'normal: [mean, std]'"
            )
        return self

    def check(self, unit: str) -> None:
        """Parse every quantity in ``unit``; raise ``ValueError`` naming the bad one."""
        for text in self._texts():
            _value(text, unit)
        if self.uniform and _value(self.uniform[1], unit) < _value(self.uniform[0], unit):
            raise ValueError("uniform: high is below low")
        if self.normal and _value(self.normal[1], unit) < 0:
            raise ValueError("normal: the standard deviation is negative")

    def _texts(self) -> list[str | float]:
        items = [self.constant, *(self.uniform or ()), *(self.normal or ()), self.min, self.max]
        return [t for t in items if t is not None]

    def sample(self, rng: np.random.Generator, n: int, unit: str) -> np.ndarray:
        """Draw ``n`` values (float64, in ``unit``)."""
        if self.constant is not None:
            values = np.full(n, _value(self.constant, unit))
        elif self.uniform is not None:
            low, high = (_value(t, unit) for t in self.uniform)
            values = rng.uniform(low, high, n)
        else:
            mean, std = (_value(t, unit) for t in self.normal)
            values = rng.normal(mean, std, n)
        low = -np.inf if self.min is None else _value(self.min, unit)
        high = np.inf if self.max is None else _value(self.max, unit)
        return np.clip(values, low, high)

    def bounds(self, unit: str) -> tuple[float, float]:
        """Smallest and largest value this distribution can give (in ``unit``)."""
        if self.constant is not None:
            value = _value(self.constant, unit)
            return value, value
        if self.uniform is not None:
            low, high = (_value(t, unit) for t in self.uniform)
        else:
            low, high = -np.inf, np.inf
        low = low if self.min is None else max(low, _value(self.min, unit))
        high = high if self.max is None else min(high, _value(self.max, unit))
        return low, high


def _value(value: str | float, unit: str) -> float:
    """A quantity in ``unit``; plain numbers only for unit-less quantities."""
    if unit == "1" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return to_unit(value, unit)


def _dist(default: str) -> Any:
    return Field(default_factory=lambda: Distribution(constant=default))


# ---------------------------------------------------------------------- neurons and populations
class Adaptation(Part):
    """Spike-triggered adaptation ``a`` (mV): decays with ``tau``, jumps by ``increment``."""

    tau: Time = Field(gt=0, description="decay time constant tau_a")
    increment: Voltage = Field(description="jump of a at each spike")


class LIF(Part):
    """Leaky integrate-and-fire neuron with exponential synapses (module docstring equations)."""

    tau_m: Time = Field("20 ms", gt=0)
    v_rest: Voltage = "-65 mV"
    v_threshold: Voltage = "-50 mV"
    v_reset: Voltage = "-65 mV"
    refractory: Time = Field("0 ms", ge=0)
    synapses: Literal["current", "conductance"] = "current"
    tau_e: Time = Field("5 ms", gt=0)
    tau_i: Time = Field("10 ms", gt=0)
    e_e: Voltage = Field("0 mV", description="excitatory reversal potential (conductance only)")
    e_i: Voltage = Field("-80 mV", description="inhibitory reversal potential (conductance only)")
    adaptation: Adaptation | None = None


STATE_UNITS = {"v": "mV", "g_e": None, "g_i": None, "a": "mV"}  # None: the population's g unit


class Population(Part):
    """``size`` LIF neurons; ``sign`` is the channel their outgoing synapses drive."""

    size: int = Field(gt=0)
    sign: Literal["excitatory", "inhibitory"] = "excitatory"
    neuron: LIF = Field(default_factory=LIF)
    initial: dict[Literal["v", "g_e", "g_i", "a"], Distribution] = Field(default_factory=dict)

    @property
    def g_unit(self) -> str:
        """Unit of g_e, g_i and of the weights of projections onto this population."""
        return "mV" if self.neuron.synapses == "current" else "1"


# ---------------------------------------------------------------------- spike sources
class Poisson(Part):
    """Independent Poisson spike trains; ``rate`` one value or one per neuron."""

    type: Literal["poisson"]
    size: int = Field(gt=0)
    rate: Rate | list[Rate]
    sign: Literal["excitatory", "inhibitory"] = "excitatory"

    @model_validator(mode="after")
    def _rates(self) -> Poisson:
        rates = self.rate if isinstance(self.rate, list) else [self.rate]
        if len(rates) not in (1, self.size) or min(rates) < 0:
            raise ValueError("rate: one non-negative rate, or one per neuron (size values)")
        return self


class RandomPatterns(Part):
    """``count`` random binary patterns, each with a fraction ``active`` of neurons on."""

    count: int = Field(gt=0)
    active: float = Field(gt=0, le=1)


class Patterns(Part):
    """A set of binary patterns; a presented pattern's neurons fire at ``rate_on``, others at
    ``rate_off`` (Poisson); each presentation lasts ``presentation``."""

    type: Literal["pattern"]
    size: int = Field(gt=0)
    patterns: list[list[Literal[0, 1]]] | RandomPatterns
    rate_on: Rate = Field(ge=0)
    rate_off: Rate = Field("0 Hz", ge=0)
    presentation: Time = Field("100 ms", gt=0)
    sign: Literal["excitatory", "inhibitory"] = "excitatory"

    @model_validator(mode="after")
    def _shapes(self) -> Patterns:
        if isinstance(self.patterns, list) and any(len(p) != self.size for p in self.patterns):
            raise ValueError(f"patterns: every pattern needs {self.size} entries (the size)")
        return self


class SpikeArray(Part):
    """Given spike trains: spike ``k`` is neuron ``indices[k]`` at ``times[k]``."""

    type: Literal["array"]
    size: int = Field(gt=0)
    indices: list[int]
    times: list[Time]
    sign: Literal["excitatory", "inhibitory"] = "excitatory"

    @model_validator(mode="after")
    def _lengths(self) -> SpikeArray:
        if len(self.indices) != len(self.times):
            raise ValueError("indices and times differ in length")
        if any(not 0 <= i < self.size for i in self.indices):
            raise ValueError(f"indices must lie in [0, {self.size})")
        if any(t < 0 for t in self.times):
            raise ValueError("spike times must be >= 0 ms")
        return self


Source = Annotated[Poisson | Patterns | SpikeArray, Field(discriminator="type")]


# ---------------------------------------------------------------------- connectivity
class FixedProbability(Part):
    """Each pair (j, i) connected independently with probability ``p``."""

    rule: Literal["fixed_probability"]
    p: float = Field(ge=0, le=1)
    autapses: bool = Field(True, description="allow j -> j when pre and post are one population")

    def expected(self, n_pre: int, n_post: int) -> float:
        """Expected number of synapses (for memory estimates)."""
        return self.p * n_pre * n_post


class OneToOne(Part):
    rule: Literal["one_to_one"]

    def expected(self, n_pre: int, n_post: int) -> float:
        return min(n_pre, n_post)


class AllToAll(Part):
    rule: Literal["all_to_all"]
    autapses: bool = True

    def expected(self, n_pre: int, n_post: int) -> float:
        return n_pre * n_post


class PairList(Part):
    """Explicit ``pairs: [[pre, post], ...]``."""

    rule: Literal["list"]
    pairs: list[tuple[int, int]]

    def expected(self, n_pre: int, n_post: int) -> float:
        return len(self.pairs)


class Local(Part):
    """Distance-limited connectivity on a line (or ring) of neurons.

    Neuron ``j`` of ``pre`` sits at position ``j · n_post / n_pre``, neuron ``i`` of ``post`` at
    ``i``; ``j -> i`` is connected, with probability ``p``, when their distance is at most
    ``radius`` (measured around the ring of ``n_post`` positions when ``ring``).
    """

    rule: Literal["local"]
    radius: float = Field(gt=0, description="largest pre-post distance, in post neurons")
    p: float = Field(1.0, ge=0, le=1)
    ring: bool = Field(True, description="wrap the line around (periodic distance)")
    autapses: bool = Field(True, description="allow j -> j when pre and post are one population")

    def expected(self, n_pre: int, n_post: int) -> float:
        return self.p * n_pre * min(n_post, 2 * self.radius + 1)


Connect = Annotated[
    FixedProbability | OneToOne | AllToAll | PairList | Local, Field(discriminator="rule")
]


# ---------------------------------------------------------------------- plasticity
PLASTICITY_RULES: Registry[type[Rule]] = Registry("plasticity rule")
"""Every plasticity rule by its ``rule:`` name: the one description (parameters with units,
equations in the docstring) that each engine translates through a registry of the same names
(``engines.brian2.RULE_CODE``, ``engines.torch_plasticity.RULE_STEPS``)."""


class Rule(Part):
    """Base of plasticity rules: weight bounds ``[w_min, w_max]``.

    ``bounds: absolute`` (default): ``w_min`` and ``w_max`` are weights in the weight unit of
    the projection, the same for every synapse. ``bounds: relative`` (González et al. 2020:
    w in [1e-5, 2]× the initial weight): they are plain numbers, factors of each synapse's
    initial weight (the one drawn when the network is built), so every synapse has its own
    bounds; a rule's steps that scale with ``w_max`` then scale with the synapse's own.
    """

    w_min: str | float = "0"
    w_max: str | float
    bounds: Literal["absolute", "relative"] = "absolute"
    unit_fields: ClassVar[tuple[str, ...]] = ("w_min", "w_max")

    @model_validator(mode="after")
    def _factors(self) -> Rule:
        if self.bounds == "relative":
            for name in ("w_min", "w_max"):
                value = getattr(self, name)
                if isinstance(value, str):
                    try:
                        value = float(value)
                    except ValueError:
                        raise ValueError(
                            f"bounds: relative takes {name} as a factor of the initial weight"
                            f" (a plain number), not {value!r}"
                        ) from None
                if value < 0:
                    raise ValueError(f"bounds: relative needs {name} >= 0")
            if float(self.w_min) > float(self.w_max):
                raise ValueError("bounds: relative needs w_min <= w_max")
        return self

    def limits(
        self, unit: str, initial: np.ndarray | None = None
    ) -> tuple[float | np.ndarray, float | np.ndarray]:
        """(lower, upper) bound in ``unit``: numbers, or with ``bounds: relative`` arrays over
        the synapses whose initial weights (``initial`` [S], in ``unit``) are given."""
        if self.bounds == "absolute":
            return _value(_with_unit(self.w_min, unit), unit), _value(self.w_max, unit)
        if initial is None:
            raise ValueError("bounds: relative needs the synapses' initial weights")
        a, b = float(self.w_min) * initial, float(self.w_max) * initial
        return np.minimum(a, b), np.maximum(a, b)


def _with_unit(text: str | float, unit: str) -> str | float:
    """``0`` is allowed as a unit-less zero for any unit."""
    return f"0 {unit}" if str(text).strip() in ("0", "0.0") and unit != "1" else text


STDPForm = Literal["additive", "multiplicative", "symmetric"]
STDP_FORMS: tuple[str, ...] = get_args(STDPForm)
"""The STDP forms (:class:`STDP`); every engine translates each through its own registry."""


@PLASTICITY_RULES.register("stdp")
class STDP(Rule):
    """Pair-based STDP with nearest-free (all-pairs) traces.

    Traces: ``dx/dt = -x/tau_plus`` (+1 per pre spike), ``dy/dt = -y/tau_minus`` (+1 per post
    spike). With plasticity gain ``eta`` (per phase), at a pre spike and at a post spike:

    - additive:        pre: w -= eta A_minus w_max y;         post: w += eta A_plus w_max x
    - multiplicative:  pre: w -= eta A_minus (w - w_min) y;   post: w += eta A_plus (w_max - w) x
    - symmetric:       pre: w += eta w_max (A_plus y - A_minus);  post: w += eta A_plus w_max x

    then w is clipped to [w_min, w_max]. Plasticity acts at the spike times (no delay); a pre
    and a post spike in one step count as pre-before-post.
    """

    rule: Literal["stdp"]
    form: STDPForm = "additive"
    tau_plus: Time = Field("20 ms", gt=0)
    tau_minus: Time = Field("20 ms", gt=0)
    a_plus: float = Field(0.01, ge=0)
    a_minus: float = Field(0.0105, ge=0)


@PLASTICITY_RULES.register("oja")
class Oja(Rule):
    """Rate-based Hebbian learning with Oja's normalisation.

    Rates are traces ``dr/dt = -r/tau_rate`` (+1/tau_rate per spike, Hz). Every ``interval``:
    ``w += eta_gain * eta * interval * w_max * (rho_pre rho_post - rho_post^2 w / w_max)`` with
    ``rho = r / rate_ref``; clipped to [w_min, w_max].
    """

    rule: Literal["oja"]
    eta: PerSecond = Field(gt=0)
    rate_ref: Rate = Field("10 Hz", gt=0)
    tau_rate: Time = Field("100 ms", gt=0)
    interval: Time = Field("1 ms", gt=0)


@PLASTICITY_RULES.register("scaling")
class Scaling(Rule):
    """Homeostatic synaptic scaling of each neuron's inputs toward a target rate.

    Every ``interval``: ``w += eta_gain * eta * interval * w * (1 - r_post / target)``, with
    ``r_post`` the post trace (as in :class:`Oja`); clipped to [w_min, w_max]. A neuron above
    target scales its inputs down, below target up.
    """

    rule: Literal["scaling"]
    target: Rate = Field(gt=0)
    eta: PerSecond = Field(gt=0)
    tau_rate: Time = Field("1000 ms", gt=0)
    interval: Time = Field("10 ms", gt=0)


PlasticityRule = Annotated[STDP | Oja | Scaling, Field(discriminator="rule")]


class Projection(Part):
    """Synapses from ``pre`` (population or source) onto population ``post``."""

    pre: str
    post: str
    connect: Connect
    weight: Distribution
    delay: Distribution = _dist("0 ms")
    plasticity: list[PlasticityRule] = Field(default_factory=list)


# ---------------------------------------------------------------------- neuromodulation
POPULATION_KNOBS = ("leak", "tau_e", "tau_i", "adaptation", "adaptation_tau")
"""Scalable population parameters: ``leak`` multiplies 1/tau_m; the others multiply the named
time constant (tau_e, tau_i), the adaptation increment or the adaptation's time constant."""
TIME_CONSTANT_KNOBS = ("tau_e", "tau_i", "adaptation_tau")


class Modulation(Part):
    """A named brain state: parameter scale factors and plasticity gains applied for a phase.

    ``scale`` keys: ``<population>.leak|tau_e|tau_i|adaptation|adaptation_tau``,
    ``<projection>.gain`` (weights delivered ×gain; plastic weights themselves unchanged),
    ``<source>.rate``. ``plasticity`` keys: a projection name or ``"*"``; values multiply every
    rule's learning rate (0: off).
    ``depression`` keys: the same; values multiply the depression amplitude ``a_minus`` of the
    projection's STDP rules only (a state-specific balance of potentiation and depression).
    ``form`` keys: the same; values replace the form of the projection's STDP rules (one of
    :data:`STDP_FORMS`, e.g. ``symmetric``: order-blind) while the state lasts.
    Restored when the phase ends.
    """

    scale: dict[str, float] = Field(default_factory=dict)
    plasticity: dict[str, float] = Field(default_factory=dict)
    depression: dict[str, float] = Field(default_factory=dict)
    form: dict[str, STDPForm] = Field(default_factory=dict)


class SNNSpec(Spec):
    """``kind: snn``: populations, sources, projections, named neuromodulatory states."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    kind: Literal["snn"] = "snn"
    dt: Time = Field("0.1 ms", gt=0)
    populations: dict[str, Population] = Field(min_length=1)
    sources: dict[str, Source] = Field(default_factory=dict)
    projections: dict[str, Projection] = Field(default_factory=dict)
    modulation: dict[str, Modulation] = Field(default_factory=dict)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> SNNSpec:
        """Validate fields, then cross-references; errors carry the key path of the bad key."""
        try:
            spec = super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise _without_union_tags(exc, cls.__name__) from None
        errors = spec._cross_check()
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return spec

    def size(self, name: str) -> int:
        """Number of neurons of a population or source."""
        return (self.populations.get(name) or self.sources[name]).size

    def weight_unit(self, projection: str) -> str:
        return self.populations[self.projections[projection].post].g_unit

    def _cross_check(self) -> list[InitErrorDetails]:
        errors: list[InitErrorDetails] = []

        def bad(loc: tuple, message: str, value: Any) -> None:
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError("value_error", message), loc=loc, input=value
                )
            )

        clash = set(self.populations) & set(self.sources)
        for name in sorted(clash):
            bad(("sources", name), f"{name!r} is both a population and a source", name)
        for name, proj in self.projections.items():
            self._check_projection(name, proj, bad)
        for state, mod in self.modulation.items():
            self._check_modulation(state, mod, bad)
        for name, src in self.sources.items():
            if isinstance(src, SpikeArray):
                steps = np.rint(np.asarray(src.times, dtype=float) / self.dt).astype(np.int64)
                pairs = set(zip(src.indices, steps.tolist(), strict=True))
                if len(pairs) < len(src.indices):
                    message = f"a neuron spikes twice within one step of dt = {self.dt:g} ms"
                    bad(("sources", name, "times"), message, None)
        for name, pop in self.populations.items():
            for var, dist in pop.initial.items():
                _try(
                    bad,
                    ("populations", name, "initial", var),
                    dist.check,
                    STATE_UNITS[var] or pop.g_unit,
                )
        return errors

    def _check_projection(self, name: str, proj: Projection, bad) -> None:
        loc = ("projections", name)
        known = sorted(self.populations) + sorted(self.sources)
        if proj.pre not in known:
            bad(
                loc + ("pre",),
                f"unknown population or source {proj.pre!r}; known: {known}",
                proj.pre,
            )
            return
        if proj.post not in self.populations:
            bad(
                loc + ("post",),
                f"unknown population {proj.post!r}; known: {sorted(self.populations)}",
                proj.post,
            )
            return
        unit = self.weight_unit(name)
        _try(bad, loc + ("weight",), proj.weight.check, unit)
        _try(bad, loc + ("delay",), proj.delay.check, "ms")
        if not _fails(proj.delay.check, "ms") and proj.delay.bounds("ms")[0] < 0:
            bad(loc + ("delay",), "delays must be >= 0 ms (give a normal distribution a min)", None)
        elif proj.plasticity and not _fails(proj.delay.check, "ms") and proj.delay.bounds("ms")[1]:
            bad(
                loc + ("delay",),
                "a plastic projection takes no delay (0 ms): the engines would read a changing"
                " weight at different times (torch at the spike, Brian2 at its arrival)",
                None,
            )
        if isinstance(proj.connect, OneToOne) and self.size(proj.pre) != self.size(proj.post):
            bad(
                loc + ("connect",), "one_to_one needs pre and post of equal size", proj.connect.rule
            )
        if isinstance(proj.connect, PairList):
            n_pre, n_post = self.size(proj.pre), self.size(proj.post)
            if any(not (0 <= j < n_pre and 0 <= i < n_post) for j, i in proj.connect.pairs):
                bad(
                    loc + ("connect", "pairs"),
                    f"pairs must lie in [0, {n_pre}) x [0, {n_post})",
                    None,
                )
        for k, rule in enumerate(proj.plasticity):
            if rule.bounds == "relative":
                if not float(rule.w_min) <= 1.0 <= float(rule.w_max):
                    bad(
                        loc + ("plasticity", k),
                        "bounds: relative needs w_min <= 1 <= w_max (factors of the initial"
                        " weight, which must lie within its own bounds)",
                        None,
                    )
                continue
            fields_ok = True
            for field in rule.unit_fields:
                text = _with_unit(getattr(rule, field), unit)
                _try(bad, loc + ("plasticity", k, field), _value, text, unit)
                fields_ok = fields_ok and not _fails(_value, text, unit)
            if fields_ok and not _fails(proj.weight.check, unit):
                _check_initial_weights(proj, k, unit, loc, bad)

    def _check_modulation(self, state: str, mod: Modulation, bad) -> None:
        for key, factor in mod.scale.items():
            loc = ("modulation", state, "scale", key)
            target, _, knob = key.partition(".")
            ok = (
                (target in self.populations and knob in POPULATION_KNOBS)
                or (target in self.projections and knob == "gain")
                or (target in self.sources and knob == "rate")
            )
            if not ok:
                bad(
                    loc,
                    f"unknown parameter {key!r}: use <population>.{{{','.join(POPULATION_KNOBS)}}},"
                    " "
                    "<projection>.gain or <source>.rate",
                    key,
                )
            elif factor < 0:
                bad(loc, "scale factors must be >= 0", factor)
            elif factor == 0 and knob in TIME_CONSTANT_KNOBS:
                bad(loc, f"a time constant's scale factor must be > 0 ({knob})", factor)
        for field in ("plasticity", "depression", "form"):
            for key, value in getattr(mod, field).items():
                if key != "*" and key not in self.projections:
                    bad(("modulation", state, field, key), f"unknown projection {key!r}", key)
                elif field != "form" and value < 0:
                    bad(("modulation", state, field, key), f"{field} gains must be >= 0", value)


UNION_TAGS = {
    "sources": {"poisson", "pattern", "array"},
    "connect": {"fixed_probability", "one_to_one", "all_to_all", "list", "local"},
    "plasticity": set(PLASTICITY_RULES),
}


def _without_union_tags(error: ValidationError, title: str) -> ValidationError:
    """Drop pydantic's union tags from error locations (``sources.drive.poisson.rate`` ->
    ``sources.drive.rate``), so that errors name the key as written in the file."""
    details = []
    for item in error.errors():
        loc, out = item["loc"], []
        for k, part in enumerate(loc):
            owner = loc[k - 2] if k >= 2 else None
            owner = loc[k - 1] if loc[k - 1 : k] == ("connect",) else owner
            if isinstance(part, str) and part in UNION_TAGS.get(owner, ()):
                continue
            out.append(part)
        detail = {"type": item["type"], "loc": tuple(out), "input": item.get("input")}
        if "ctx" in item:
            detail["ctx"] = item["ctx"]
        details.append(InitErrorDetails(**detail))
    return ValidationError.from_exception_data(title, details)


def _check_initial_weights(proj: Projection, k: int, unit: str, loc: tuple, bad) -> None:
    """The initial weights must lie within rule ``k``'s absolute bounds: outside them, the
    first update (or a clip) would move a weight whatever the learning rate."""
    low, high = proj.plasticity[k].limits(unit)
    w_low, w_high = proj.weight.bounds(unit)
    if w_low < low or w_high > high:
        shown = "" if unit == "1" else f" {unit}"
        bad(
            loc + ("weight",),
            f"initial weights can lie in [{w_low:g}, {w_high:g}]{shown}, outside the bounds"
            f" [{low:g}, {high:g}]{shown} of plasticity[{k}]: clip the distribution (min, max)"
            " or widen the bounds",
            None,
        )


def _try(bad, loc: tuple, check, *args) -> None:
    """Run a check; report its ``ValueError`` at ``loc`` (with the value, for quantities)."""
    try:
        check(*args)
    except ValueError as exc:
        owner = getattr(check, "__self__", None)
        value = owner.constant if isinstance(owner, Distribution) else args[0]
        bad(loc, str(exc), value)


def _fails(check, *args) -> bool:
    try:
        check(*args)
    except ValueError:
        return True
    return False


MODEL_KINDS.register("snn")(SNNSpec)
