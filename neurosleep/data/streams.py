"""Task streams (split, permuted) and continual-learning scenarios (class-, task-, domain-IL).

A :class:`Task` holds its training and test arrays with targets already mapped to the
network's output units, and the output units that form its head. The scenario decides the
mapping (van de Ven & Tolias 2019):

================  ==========================  =================================  ==============
scenario          split: target of class c    permuted: target of digit d         test readout
================  ==========================  =================================  ==============
class             c (one head of n_classes)   d + n_classes·task                 all units
task              c, head = the task's units  d + n_classes·task, head per task  task's head
domain            position of c in its task   d                                  all units
================  ==========================  =================================  ==============

Examples
--------
>>> import numpy as np
>>> from neurosleep.data.datasets import Dataset
>>> x = np.zeros((8, 4), np.float32); y = np.array([0, 1, 2, 3] * 2)
>>> data = Dataset("toy", x, y, x, y, (4,))
>>> stream = split_stream(data, classes_per_task=2, scenario="domain")
>>> [t.classes.tolist() for t in stream.tasks], stream.n_outputs, stream.tasks[1].y_train[:4]
([[0, 1], [2, 3]], 2, array([0, 1, 0, 1]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from neurosleep.data.datasets import Dataset

Scenario = Literal["class", "task", "domain"]


@dataclass(frozen=True)
class Task:
    """One task: inputs float32 [sample × feature], targets int64 (output units)."""

    index: int
    classes: np.ndarray  # original class labels present in the task
    units: np.ndarray  # output units of this task's head
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    permutation: np.ndarray | None = None  # feature permutation (permuted streams)


@dataclass(frozen=True)
class Stream:
    """A sequence of tasks, the scenario and the output size it implies."""

    tasks: tuple[Task, ...]
    scenario: Scenario
    n_outputs: int
    shape: tuple[int, ...]  # one input sample's shape

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def readout(self, task: int) -> np.ndarray | None:
        """Output units to take the argmax over when testing ``task`` (None: all units)."""
        return self.tasks[task].units if self.scenario == "task" else None


def class_order(n_classes: int, order: str | list[int], seed: int) -> np.ndarray:
    """``"fixed"``: 0..C−1; ``"seed"``: a permutation drawn from the seed; or a given list."""
    if order == "fixed":
        return np.arange(n_classes)
    if order == "seed":
        return np.random.default_rng([seed, 1]).permutation(n_classes)
    given = np.asarray(order, dtype=np.int64)
    if sorted(given.tolist()) != list(range(n_classes)):
        raise ValueError(f"class order {order} is not a permutation of 0..{n_classes - 1}")
    return given


def limit_per_class(y: np.ndarray, per_class: int | None) -> np.ndarray:
    """Indices keeping the first ``per_class`` samples of each class (all when None), in order."""
    if per_class is None:
        return np.arange(y.size)
    keep = np.zeros(y.size, dtype=bool)
    for c in np.unique(y):
        keep[np.flatnonzero(y == c)[:per_class]] = True
    return np.flatnonzero(keep)


def split_stream(
    data: Dataset,
    *,
    classes_per_task: int = 2,
    scenario: Scenario = "class",
    order: str | list[int] = "fixed",
    seed: int = 0,
    train_per_class: int | None = None,
) -> Stream:
    """Split a dataset into tasks of ``classes_per_task`` classes, in ``order``."""
    classes = class_order(data.n_classes, order, seed)
    if classes.size % classes_per_task:
        raise ValueError(f"{classes.size} classes do not divide into tasks of {classes_per_task}")
    keep = limit_per_class(data.y_train, train_per_class)
    x_train, y_train = data.x_train[keep], data.y_train[keep]
    groups = classes.reshape(-1, classes_per_task)
    tasks = []
    for index, group in enumerate(groups):
        tr, te = np.isin(y_train, group), np.isin(data.y_test, group)
        units = np.arange(classes_per_task) if scenario == "domain" else np.sort(group)
        tasks.append(
            Task(
                index,
                group.copy(),
                units,
                x_train[tr],
                _split_targets(y_train[tr], group, scenario),
                data.x_test[te],
                _split_targets(data.y_test[te], group, scenario),
            )
        )
    n_outputs = classes_per_task if scenario == "domain" else data.n_classes
    return Stream(tuple(tasks), scenario, n_outputs, data.shape)


def _split_targets(y: np.ndarray, group: np.ndarray, scenario: Scenario) -> np.ndarray:
    """Class labels, or (domain-IL) each label's position within its task's class group."""
    if scenario != "domain":
        return y.astype(np.int64)
    return np.argmax(y[:, None] == group[None, :], axis=1).astype(np.int64)


def permuted_stream(
    data: Dataset,
    *,
    n_tasks: int = 10,
    scenario: Scenario = "domain",
    seed: int = 0,
    first_unpermuted: bool = False,
    train_per_class: int | None = None,
) -> Stream:
    """Tasks that share labels but apply a fixed random feature permutation each (seeded)."""
    rng = np.random.default_rng([seed, 2])
    n_features = data.x_train.shape[1]
    keep = limit_per_class(data.y_train, train_per_class)
    x_train, y_train = data.x_train[keep], data.y_train[keep]
    c = data.n_classes
    tasks = []
    for index in range(n_tasks):
        perm = (
            np.arange(n_features)
            if first_unpermuted and index == 0
            else rng.permutation(n_features)
        )
        offset = 0 if scenario == "domain" else c * index
        tasks.append(
            Task(
                index,
                np.arange(c),
                np.arange(c) + offset,
                x_train[:, perm],
                y_train + offset,
                data.x_test[:, perm],
                data.y_test + offset,
                perm,
            )
        )
    n_outputs = c if scenario == "domain" else c * n_tasks
    return Stream(tuple(tasks), scenario, n_outputs, data.shape)
