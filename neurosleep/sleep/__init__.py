"""Sleep algorithms: one module each, one typed contract per model kind.

An algorithm module declares its parameters (a :class:`~neurosleep.params.Params` subclass) and
one function ``run(params, context) -> outcome``, and registers both::

    register(SleepAlgorithm(name="mine", Params=MyParams, model_kind="snn", run=run,
                            summary="one line"))

The experiment of that model kind builds the context — everything the algorithm may use — calls
``run`` once per sleep phase, and applies the outcome — what the algorithm changed. The three
contracts (``SNN*``, ``MLP*``, ``Hopfield*`` below) are the only interface between the two: an
algorithm never sees the experiment, and an experiment never branches on an algorithm's name.
:data:`SLEEP` imports every module of this package on its first lookup, so a new algorithm is
one new file here (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import torch

from neurosleep.analysis.spikes import SpikeStats
from neurosleep.catalogue import SLEEP
from neurosleep.engines.base import Engine
from neurosleep.engines.sra import SpikeSink
from neurosleep.io.recorder import Recorder
from neurosleep.params import Params, Progress
from neurosleep.spec.snn import SNNSpec
from neurosleep.spec.states import PhaseState

__all__ = [
    "SLEEP",
    "HopfieldContext",
    "HopfieldOutcome",
    "Drive",
    "MLPContext",
    "MLPOutcome",
    "SNNContext",
    "SNNOutcome",
    "SleepAlgorithm",
    "SleepRecord",
    "SpikeSink",
    "StatesSink",
    "register",
]


@dataclass(frozen=True)
class SleepRecord:
    """The part of the run file a sleep algorithm writes: rows of ``/metrics/scalars`` and
    arrays in ``/sleep/<phase index>/`` of the phase that runs it (the recorder itself stays
    private: no algorithm writes elsewhere)."""

    _recorder: Recorder

    def scalar(self, name: str, value: float, units: str) -> None:
        """One per-phase scalar (``units`` as a string: ``"Hz"``, ``"1"``, ``"nS"``)."""
        self._recorder.add_scalar(name, value, units)

    def arrays(self, arrays: dict[str, Any], units: dict[str, str]) -> None:
        """Diagnostics arrays of this sleep phase (units per name; ``"1"`` where missing)."""
        self._recorder.write_arrays(self._recorder.sleep_path, arrays, units)


# ------------------------------------------------------------------------ snn
@dataclass(frozen=True)
class Drive:
    """A periodic cue during a sleep: the memories' source drives ``neurons`` (indices of the
    memory population) at ``rate_hz`` for ``duration_ms`` from each onset 0, ``every_ms``,
    2·``every_ms``, … of the simulated time (silent in between)."""

    neurons: tuple[int, ...]
    rate_hz: float
    every_ms: float
    duration_ms: float


class SimulateState(Protocol):
    """``simulate(duration_ms, state, plasticity, drive=None)`` of :class:`SNNContext`."""

    def __call__(
        self,
        duration_ms: float,
        state: PhaseState,
        plasticity: float,
        drive: Drive | None = None,
    ) -> dict[str, SpikeStats]: ...


PhaseSpikes = Callable[[str], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class SNNContext:
    """What an ``snn`` sleep algorithm may use.

    ``simulate(duration_ms, state, plasticity)`` runs the network for ``duration_ms`` without
    task input under ``state`` (its named modulation state — default ``sleep`` — inline
    modulation and source rates), every learning rate × ``plasticity``, streaming what the
    protocol records and reporting progress; it returns each population's spike statistics
    over that time (every network together) and restores the wake state; with ``drive`` (a
    :class:`Drive`, needs ``data.memories``) the memories' source cues it periodically.
    ``engine`` is the simulation itself: its weights (``get_weights``/``set_weights``, one
    array per network) and each network's initial synapses (``networks[b].synapses[name]``).
    ``memories``: the protocol's stored memories by name, each its groups of neuron indices (in
    stored order) in ``memory_population`` (empty without ``data.memories``).
    ``spikes(population)``: that population's spikes since the sleep phase began, every
    network — times (ms) and node ids ``b·size + i``; kept in memory only for the populations
    the algorithm's ``spikes`` names (and ``memory_population``), an error for any other.
    ``wake_weights[phase][projection]``: each plastic projection's weights (one array per
    network) at the start of the wake phase named ``phase``, kept for the phases that a sleep
    phase's ``protect.since`` names (and run so far).
    """

    model: SNNSpec
    engine: Engine
    simulate: SimulateState
    record: SleepRecord
    progress: Progress
    memories: dict[str, list[np.ndarray]] = field(default_factory=dict)
    memory_population: str | None = None
    spikes: PhaseSpikes | None = None
    wake_weights: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)


@dataclass(frozen=True)
class SNNOutcome:
    """The projections whose weights the algorithm rewrote or let plasticity change (the
    engine holds the new weights: changing them in place is this contract's job)."""

    changed: tuple[str, ...]


# ------------------------------------------------------------------------ mlp
@dataclass(frozen=True)
class MLPContext:
    """What an ``mlp`` sleep algorithm may use.

    ``weights``: copies of the layer weights [out × in] on the device (the algorithm may change
    them); ``biases``: whether the network has biases; ``activations(x)``: the network's
    test-mode activations of every non-input layer for inputs ``x`` [sample × feature] (no
    gradient); ``forward(weights, x)``: the network's output pre-activation ``z`` and output
    ``a`` [sample × output] for inputs ``x`` with the given layer weights in place of its own,
    differentiable with respect to them (test mode: no dropout sampling; biases as they are);
    ``inputs`` [sample × feature] and ``labels`` [sample]: the training samples of
    the tasks seen so far, and only those; ``shape``: one sample's shape; ``engine``: the
    engine this phase runs on (the phase's ``engine`` key, or the run's); ``on_spikes(layer,
    step, neuron)`` streams sleep spikes (layer 1 = first hidden layer) to ``/spikes/layer<l>``.
    """

    weights: tuple[torch.Tensor, ...]
    biases: bool
    activations: Callable[[torch.Tensor], list[torch.Tensor]]
    forward: Callable[[Sequence[torch.Tensor], torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    inputs: torch.Tensor
    labels: torch.Tensor
    shape: tuple[int, ...]
    generator: torch.Generator
    engine: str
    on_spikes: SpikeSink
    record: SleepRecord
    progress: Progress


@dataclass(frozen=True)
class MLPOutcome:
    """The new layer weights (same shapes), and the sleep's length: ``steps`` of ``dt_ms``
    (the run's clock advances by their product; spike steps become times with ``dt_ms``)."""

    weights: list[torch.Tensor]
    steps: int = 0
    dt_ms: float = 1.0


# ------------------------------------------------------------------------ hopfield
StatesSink = Callable[[torch.Tensor, float], None]  # a block of states [n × N] (±1), fraction done


@dataclass(frozen=True)
class HopfieldContext:
    """What a ``hopfield`` sleep algorithm may use.

    ``couplings``: J [N × N] (float64; the algorithm returns new ones rather than changing
    these); ``diagonal``: the retrieval convention of the model spec (``zero``/``keep``, see
    :func:`~neurosleep.engines.hopfield.retrieval_couplings`); ``on_states(block, done)``
    streams the free network's states during sleep [n × N] (±1) to the run file, each state one
    ``update_interval`` of the run's clock, and reports the fraction ``done``.
    """

    couplings: torch.Tensor
    diagonal: str
    generator: torch.Generator
    on_states: StatesSink
    record: SleepRecord
    progress: Progress


@dataclass(frozen=True)
class HopfieldOutcome:
    """The new couplings J [N × N]."""

    couplings: torch.Tensor


# ------------------------------------------------------------------------ registration
C = TypeVar("C", SNNContext, MLPContext, HopfieldContext)
O_co = TypeVar("O_co", SNNOutcome, MLPOutcome, HopfieldOutcome, covariant=True)


class SleepRun(Protocol[C, O_co]):
    """``run(params, context) -> outcome`` of one model kind's contract."""

    def __call__(self, params: Any, context: C, /) -> O_co: ...


CONTRACTS: dict[str, tuple[type, type]] = {
    "snn": (SNNContext, SNNOutcome),
    "mlp": (MLPContext, MLPOutcome),
    "hopfield": (HopfieldContext, HopfieldOutcome),
}


@dataclass(frozen=True)
class SleepAlgorithm(Generic[C, O_co]):
    """A registered sleep algorithm: its parameter schema, model kind and update."""

    name: str
    Params: type[Params]
    model_kind: str
    run: SleepRun[C, O_co]
    summary: str
    #: ``check(params, model, before) -> [(key in the phase, message)]``: what the parameters
    #: need of the model spec and of the phases ``before`` this one, checked at validation
    check: Callable[[Any, Any, list], list[tuple[tuple, str]]] | None = None
    #: ``spikes(params, model) -> {population}``: the populations whose spikes ``run`` reads
    #: through ``SNNContext.spikes`` (the experiment keeps only those in memory during sleep)
    spikes: Callable[[Any, Any], set[str]] | None = None

    def __post_init__(self) -> None:
        if self.model_kind not in CONTRACTS:
            raise ValueError(
                f"sleep algorithm {self.name!r}: unknown model kind {self.model_kind!r}; "
                f"known: {', '.join(CONTRACTS)}"
            )

    def __call__(self, params: Params, context: C) -> O_co:
        """Run the algorithm; refuses a context or an outcome of another model kind."""
        context_type, outcome_type = CONTRACTS[self.model_kind]
        if not isinstance(context, context_type):
            raise TypeError(f"sleep {self.name!r} takes a {context_type.__name__}")
        outcome = self.run(params, context)
        if not isinstance(outcome, outcome_type):
            raise TypeError(f"sleep {self.name!r} returned {type(outcome).__name__}")
        return outcome


def register(algorithm: SleepAlgorithm) -> SleepAlgorithm:
    """Add an algorithm to :data:`SLEEP` under its name."""
    return SLEEP.register(algorithm.name)(algorithm)


def unknown_projections(names: list[str] | None, model: SNNSpec) -> list[tuple[tuple, str]]:
    """A check: every named projection exists in the model (``None``: every plastic one)."""
    known = ", ".join(model.projections)
    return [
        (("projections", i), f"unknown projection {name!r}; the model has: {known}")
        for i, name in enumerate(names or [])
        if name not in model.projections
    ]
