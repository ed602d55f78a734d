"""Conventional-network experiment (``kind: mlp``): task streams, backprop wake, sleep, test.

- wake: SGD or Adam on the phase's task (all tasks jointly when the phase has no task), for
  ``epochs`` (shuffled passes, incomplete last batch dropped, as the SRA toolbox) or
  ``iterations``; optionally with a replay method (``replay: {kind: ...}``, see
  :mod:`neurosleep.replay`). The optimiser's state (momentum) carries over from task to task,
  as the toolbox's ``nn.vW`` does, unless ``reset_optimizer``.
- sleep: a registered algorithm for ``mlp`` models, called with an
  :class:`~neurosleep.sleep.MLPContext` (copies of the layer weights, the network's test-mode
  activations, the training samples of the tasks seen so far, the phase's engine, a spike sink,
  the recorder's sleep group); its :class:`~neurosleep.sleep.MLPOutcome` gives the new
  weights and the sleep's length. Spikes go to ``/spikes/layer<l>``; the L1 weight change of
  every layer to ``/sleep/<phase>/weight_change_l1`` and ``/metrics/scalars``.
- test: accuracy on every task (argmax over all outputs, or over the task's head in task-IL)
  on its test samples, or with ``data.validation`` on samples held out of its training set,
  one evaluation row ``accuracy`` [task] per test phase; the runner then rewrites the
  continual-learning metrics after each task in ``/metrics/continual/accuracy`` (FWT only in
  task- and domain-IL; intransigence when the test gives a ``reference``).

Time: only sleep advances the clock, by its steps × ``dt``; wake and test take 0 ms.
"""

from __future__ import annotations

import os
import stat
import zipfile
from typing import Annotated, Literal, Union

import numpy as np
import torch
from pydantic import Field, model_validator

from neurosleep.analysis.metrics import ContinualOptions
from neurosleep.catalogue import EXPERIMENTS
from neurosleep.data import (
    DATASETS,
    Stream,
    count_classes,
    hold_out_validation,
    load_dataset,
    permuted_stream,
    split_stream,
)
from neurosleep.errors import KeyPath
from neurosleep.experiments.ann_network import LOSSES, MLP, Optimizer, make_optimizer, predict
from neurosleep.experiments.base import (
    Evaluation,
    Experiment,
    Params,
    PlannedPhase,
    Progress,
)
from neurosleep.limits import memory_problem
from neurosleep.replay import REPLAY, Context, ReplayRecord, ReplayStrategy, load_methods
from neurosleep.sleep import SLEEP, MLPContext, SleepRecord
from neurosleep.spec.mlp import MLPSpec

load_methods()


class ANNData(Params):
    """``data:`` dataset and task stream."""

    dataset: str = Field("mnist5k", description=f"one of {', '.join(DATASETS.names())}")
    path: str | None = Field(None, description="idx: folder of *-ubyte[.gz]; npz: the file")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="test share where none ships")
    validation: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="hold out this share of each class's training samples (seeded) and test "
        "on it instead of the test set (for tuning)",
    )
    stream: Literal["split", "permuted"] = "split"
    scenario: Literal["class", "task", "domain"] = "class"
    classes_per_task: int = Field(2, ge=1, description="split streams")
    class_order: Literal["fixed", "seed"] | list[int] = Field(
        "fixed", description="split: 0..C−1, a permutation from the seed, or a given order"
    )
    tasks: int = Field(10, ge=1, description="permuted streams: number of permutations")
    first_unpermuted: bool = Field(False, description="permuted: task 1 is the original data")
    train_per_class: int | None = Field(None, ge=1, description="keep the first n per class")

    @model_validator(mode="after")
    def _known_dataset(self) -> ANNData:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; known: {DATASETS.names()}")
        needs = {"npz": ("a regular file", stat.S_ISREG), "idx": ("a folder", stat.S_ISDIR)}
        if self.dataset in needs:
            what, test = needs[self.dataset]
            if self.path is None:
                raise ValueError(f"dataset {self.dataset!r} needs a path: {what}")
            try:
                mode = os.stat(self.path).st_mode
            except OSError as exc:
                raise ValueError(f"path {self.path!r}: {exc.strerror}") from None
            if not test(mode):
                raise ValueError(f"path {self.path!r} is not {what} (dataset {self.dataset!r})")
            if self.dataset == "npz" and not zipfile.is_zipfile(self.path):
                raise ValueError(f"path {self.path!r} is not an .npz file (not a zip archive)")
        if self.stream == "split":
            try:
                n_classes = _n_classes(self)
                ordered = isinstance(self.class_order, list)
                in_data = count_classes(self.dataset, self.path) if ordered else n_classes
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                message = f"path {self.path!r}: not a readable {self.dataset} file ({exc})"
                raise ValueError(message) from None
            if ordered and sorted(self.class_order) != list(range(in_data)):
                raise ValueError(
                    f"class_order {self.class_order} is not a permutation of the data's"
                    f" classes 0..{in_data - 1}"
                )
            if n_classes % self.classes_per_task:
                raise ValueError(
                    f"the {n_classes} classes do not divide into tasks of {self.classes_per_task}"
                    " (classes_per_task)"
                )
        return self


def _n_classes(data: ANNData) -> int:
    """Classes a split stream divides into tasks: the given order's, else the dataset's."""
    if isinstance(data.class_order, list):
        return len(data.class_order)
    return count_classes(data.dataset, data.path)


class ANNRecord(Params):
    """``record:`` what goes into the run file."""

    weights: bool = Field(False, description="layer weights after every wake and sleep phase")
    sleep_spikes: bool = Field(True, description="spikes of every non-input layer during sleep")


# every registered replay method's parameters, told apart by their ``kind``
ReplayConfig = Annotated[
    Union[tuple(REPLAY.get(name).Params for name in REPLAY.names())],  # noqa: UP007
    Field(discriminator="kind"),
]


class ANNWake(Params):
    """``wake:`` keys."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0, description="learning rate")
    momentum: float = Field(0.5, ge=0, lt=1, description="SGD momentum")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas")
    batch_size: int = Field(100, ge=1)
    epochs: int | None = Field(None, ge=1, description="passes over the task's training set")
    iterations: int | None = Field(None, ge=1, description="optimisation steps (or epochs)")
    loss: Literal["squared_error", "cross_entropy"] = "squared_error"
    reset_optimizer: bool = Field(False, description="fresh optimiser state for this phase")
    replay: ReplayConfig | None = Field(None, description="a replay method: {kind: ..., ...}")

    @model_validator(mode="after")
    def _length(self) -> ANNWake:
        if (self.epochs is None) == (self.iterations is None):
            raise ValueError("give exactly one of 'epochs' and 'iterations'")
        return self


class ANNTest(Params):
    """``test:`` keys."""

    batch_size: int = Field(2000, ge=1)
    reference: list[float] | None = Field(
        None,
        description="a*_k per task: accuracy (fraction) on task k of a model trained jointly on "
        "tasks 1..k, for intransigence in /metrics/continual",
    )


@EXPERIMENTS.register("mlp")
class ANNExperiment(Experiment):
    """Data and network live on ``device``; the stream is built from the protocol seed."""

    model_kind = "mlp"
    engines = ("torch", "brian2")
    Data = ANNData
    Record = ANNRecord
    Wake = ANNWake
    Test = ANNTest
    model: MLPSpec
    data: ANNData
    record: ANNRecord

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stream = build_stream(self.data, self.seed)
        n_in = int(np.prod(self.stream.shape))
        if (self.model.n_inputs, self.model.n_outputs) != (n_in, self.stream.n_outputs):
            raise ValueError(
                f"model {self.model.name!r} maps {self.model.n_inputs} → {self.model.n_outputs} "
                f"units; the data need {n_in} inputs and {self.stream.n_outputs} outputs"
            )
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.net = MLP(self.model, self.generator, self.device)
        self.optimizer: Optimizer | None = None
        self.optimizer_key: tuple | None = None
        self.replay: ReplayStrategy | None = None
        self.seen: list[int] = []
        self.tensors = [self._to_device(task) for task in self.stream.tasks]
        self.recorder.write_arrays(
            "data",
            {
                "task_classes": np.stack([t.classes for t in self.stream.tasks]),
                "train_samples": np.array([len(t.y_train) for t in self.stream.tasks]),
                "test_samples": np.array([len(t.y_test) for t in self.stream.tasks]),
                "evaluated_on": np.bytes_(self.evaluated_on.encode()),
            }
            | (
                {"permutations": np.stack([t.permutation for t in self.stream.tasks])}
                if self.data.stream == "permuted"
                else {}
            ),
            units={},
        )

    @property
    def evaluated_on(self) -> str:
        """``validation`` when tests use the held-out training samples, else ``test``."""
        return "test" if self.data.validation is None else "validation"

    def _to_device(self, task) -> dict[str, torch.Tensor]:
        def put(a, dtype):
            return torch.as_tensor(a, dtype=dtype, device=self.device)

        return {
            "x_train": put(task.x_train, torch.float32),
            "y_train": put(task.y_train, torch.long),
            "x_test": put(task.x_test, torch.float32),
            "y_test": put(task.y_test, torch.long),
            "units": put(task.units, torch.long),
        }

    @classmethod
    def check(
        cls,
        model: MLPSpec,
        data: ANNData,
        record: Params,
        phases: list[PlannedPhase],
        engine: str,
        device: str,
    ) -> list[tuple[KeyPath, str]]:
        """Weights (with gradients, optimiser state and sleep copies) and one batch's
        activations must fit in memory."""
        sizes = model.layers
        weights = sum((a + 1) * b for a, b in zip(sizes, sizes[1:], strict=False))
        batch = max((getattr(p.params, "batch_size", 1) for p in phases), default=1)
        estimate = 4 * (6 * weights + 4 * batch * sum(sizes))
        what = (
            f"{weights} weights × 4 bytes × 6 copies + batch {batch} × {sum(sizes)} units × "
            "4 bytes × 4"
        )
        problem = memory_problem(estimate, what)
        return [(("model",), problem)] if problem else []

    @classmethod
    def n_tasks(cls, data: ANNData) -> int:
        if data.stream == "permuted":
            return data.tasks
        return _n_classes(data) // data.classes_per_task

    # ------------------------------------------------------------------ wake
    def wake(self, phase: PlannedPhase, progress: Progress) -> None:
        params: ANNWake = phase.params
        tasks = list(range(self.stream.n_tasks)) if phase.task < 0 else [phase.task]
        x = torch.cat([self.tensors[t]["x_train"] for t in tasks])
        y = torch.cat([self.tensors[t]["y_train"] for t in tasks])
        replay_params = params.replay
        if replay_params is not None and self.replay is None:
            context = Context(
                self.stream.n_outputs,
                torch.device(self.device),
                self.generator,
                ReplayRecord(self.recorder),
            )
            self.replay = REPLAY.get(replay_params.kind).Strategy(replay_params, context)
        task = max(tasks)
        if self.replay is not None:
            x, y = self.replay.training_set(x, y, task)
        optimizer = self._optimizer(params)
        head = self.stream.scenario == "task" and phase.task >= 0
        losses = train(
            self.net,
            optimizer,
            x,
            y,
            params,
            self.generator,
            progress,
            replay=self.replay,
            task=task,
            units=self.tensors[task]["units"] if head else None,
        )
        if self.replay is not None:
            self.replay.end_task(self.net, x, y, task)
        self.seen = sorted(set(self.seen) | set(tasks))
        self.recorder.add_scalar("loss_last_epoch", float(np.mean(losses[-8:])), "1")
        self.recorder.add_scalar("optimisation_steps", len(losses), "1")
        self._snapshot()

    def _optimizer(self, params: ANNWake) -> Optimizer:
        key = (params.optimizer, params.lr, params.momentum, params.betas)
        if self.optimizer is None or params.reset_optimizer or key != self.optimizer_key:
            self.optimizer = make_optimizer(
                self.net.parameters(), params.optimizer, params.lr, params.momentum, params.betas
            )
            self.optimizer_key = key
        return self.optimizer

    # ------------------------------------------------------------------ sleep
    def sleep(self, phase: PlannedPhase, progress: Progress) -> None:
        algorithm = SLEEP.get(phase.algorithm)
        inputs, labels = self._seen_samples()
        self.net.eval()
        before = [w.detach().clone() for w in self.net.weights]
        spikes: dict[int, list] = {}

        def on_spikes(layer: int, step: torch.Tensor, neuron: torch.Tensor) -> None:
            if self.record.sleep_spikes and step.numel():
                spikes.setdefault(layer, []).append((step.cpu(), neuron.cpu()))

        def activations(x: torch.Tensor) -> list[torch.Tensor]:
            with torch.no_grad():
                return self.net.activations(x)

        context = MLPContext(
            weights=tuple(w.clone() for w in before),
            biases=self.model.bias,
            activations=activations,
            forward=self.net.forward_with,
            inputs=inputs,
            labels=labels,
            shape=self.stream.shape,
            generator=self.generator,
            engine=phase.engine or self.engine,
            on_spikes=on_spikes,
            record=SleepRecord(self.recorder),
            progress=progress,
        )
        outcome = algorithm(phase.params, context)
        new = outcome.weights
        with torch.no_grad():
            for w, w_new in zip(self.net.weights, new, strict=True):
                w.copy_(w_new)
        for layer, blocks in sorted(spikes.items()):
            steps = torch.cat([b[0] for b in blocks]).numpy()
            order = np.argsort(steps, kind="stable")
            self.recorder.append_spikes(
                f"layer{layer}",
                self.time_ms + outcome.dt_ms * steps[order].astype(np.float64),
                torch.cat([b[1] for b in blocks]).numpy()[order],
                n_nodes=self.model.layers[layer],
            )
        change = np.array(
            [float((w1 - w0).abs().sum()) for w0, w1 in zip(before, new, strict=True)]
        )
        self.recorder.write_arrays(self.recorder.sleep_path, {"weight_change_l1": change}, units={})
        for layer, value in enumerate(change, start=1):
            self.recorder.add_scalar(f"sleep_weight_change_l1_layer{layer}", value, "1")
        self.time_ms += outcome.dt_ms * float(outcome.steps)
        progress(1.0)
        self._snapshot()

    def _seen_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training inputs and labels of the tasks trained on so far (none before any wake)."""
        tasks = [self.tensors[t] for t in self.seen] or [
            {k: v[:0] for k, v in self.tensors[0].items()}
        ]
        return torch.cat([t["x_train"] for t in tasks]), torch.cat([t["y_train"] for t in tasks])

    # ------------------------------------------------------------------ test
    def test(self, phase: PlannedPhase, progress: Progress) -> Evaluation:
        params: ANNTest = phase.params
        accuracy = np.full(self.stream.n_tasks, np.nan)
        for t, tensors in enumerate(self.tensors):
            readout = tensors["units"] if self.stream.scenario == "task" else None
            pred = predict(self.net, tensors["x_test"], readout, params.batch_size)
            accuracy[t] = float((pred == tensors["y_test"]).double().mean())
            progress((t + 1) / self.stream.n_tasks)
        if self.seen:
            self.recorder.add_scalar("accuracy_seen_tasks", float(accuracy[self.seen].mean()), "1")
        return Evaluation(
            metrics={"accuracy": accuracy},
            units={"accuracy": "1"},
            descriptions={
                "accuracy": f"{self.evaluated_on} accuracy per task ({self.stream.scenario}-IL)"
            },
            continual=ContinualOptions(
                "accuracy",
                fwt=self.stream.scenario != "class",
                reference=None if params.reference is None else tuple(params.reference),
            ),
        )

    def _snapshot(self) -> None:
        if self.record.weights:
            for i, w in enumerate(self.net.weights, start=1):
                self.recorder.add_weights(
                    f"W{i}", w.detach().cpu().numpy(), time_ms=self.time_ms, units="1"
                )

    def task_names(self) -> list[str]:
        """Class groups of a split stream ("0/1"), else "task k"."""
        if self.data.stream == "split":
            return ["/".join(str(int(c)) for c in task.classes) for task in self.stream.tasks]
        return super().task_names()

    @property
    def scenario(self) -> str | None:
        return self.stream.scenario

    @classmethod
    def headline(cls, phases, evaluations, task_names=None) -> str:
        accuracy = evaluations.metrics.get("accuracy")
        if accuracy is None or len(accuracy) == 0:
            return "no test phase ran"
        final = np.asarray(accuracy[-1])
        names = task_names or [f"task {k + 1}" for k in range(final.size)]
        per_task = "  ".join(f"{n} {v:.3f}" for n, v in zip(names, final, strict=True))
        return f"final accuracy per task: {per_task}; mean (ACC) {np.nanmean(final):.4f}"


def build_stream(data: ANNData, seed: int) -> Stream:
    """The task stream a data section describes, drawn from ``seed``."""
    dataset = load_dataset(
        data.dataset, seed=seed, test_fraction=data.test_fraction, path=data.path
    )
    if data.validation is not None:
        dataset = hold_out_validation(dataset, data.validation, seed)
    if data.stream == "split":
        return split_stream(
            dataset,
            classes_per_task=data.classes_per_task,
            scenario=data.scenario,
            order=data.class_order,
            seed=seed,
            train_per_class=data.train_per_class,
        )
    return permuted_stream(
        dataset,
        n_tasks=data.tasks,
        scenario=data.scenario,
        seed=seed,
        first_unpermuted=data.first_unpermuted,
        train_per_class=data.train_per_class,
    )


def train(
    net: MLP,
    optimizer: Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    params: ANNWake,
    generator: torch.Generator,
    progress: Progress,
    *,
    replay: ReplayStrategy | None = None,
    task: int = 0,
    units: torch.Tensor | None = None,
) -> list[float]:
    """Minibatch training; returns the reported loss of every step.

    With a replayed batch the loss is ``(1/k)·current + (1 − 1/k)·replay`` (k = task + 1).
    ``units`` (task-IL, sorted): the current batch's loss sees only the task's head.
    """
    loss_fn = LOSSES.get(params.loss)
    per_epoch = x.shape[0] // params.batch_size
    if per_epoch == 0:
        raise ValueError(f"{x.shape[0]} training samples < one batch of {params.batch_size}")
    total = params.iterations or params.epochs * per_epoch
    k = task + 1
    losses: list[torch.Tensor] = []  # kept on the device: no host sync per step
    net.train()
    order = torch.empty(0, dtype=torch.long)
    for step in range(total):
        if step % per_epoch == 0:
            order = torch.randperm(x.shape[0], generator=generator, device=x.device)
        idx = order[
            (step % per_epoch) * params.batch_size : (step % per_epoch + 1) * params.batch_size
        ]
        z, a = net.forward_pre(x.index_select(0, idx))
        target = y.index_select(0, idx)
        if units is not None:
            z, a, target = z[:, units], a[:, units], torch.searchsorted(units, target)
        loss, reported = loss_fn(z, a, target)
        batch = replay.replay_batch(params.batch_size, task) if replay is not None else None
        if batch is not None:
            zr, ar = net.forward_pre(batch[0])
            replay_loss, _ = replay.replay_loss(loss_fn, zr, ar, batch[1])
            loss = loss / k + (1 - 1 / k) * replay_loss
        penalty = replay.penalty(net) if replay is not None else None
        if penalty is not None:
            loss = loss + penalty
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(reported.detach())
        if (step + 1) % max(1, total // 20) == 0:
            progress((step + 1) / total)
    net.eval()
    return torch.stack(losses).tolist()
