"""Searches over a study's space: grid, random (and TPE, :mod:`neurosleep.study.tpe`), and what
they share: the runs of a configuration, the objective of its runs, the best configuration.

A search gets the driver as :class:`Batches`: it hands it batches of planned runs and reads
back their ledger rows; it never runs anything itself.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from neurosleep.study.ledger import Ledger, Row
from neurosleep.study.spec import Configuration, Run, Study


class Batches(Protocol):
    """What a search uses of the driver (:class:`neurosleep.study.driver.Driver`)."""

    study: Study
    folder: Path
    workers: int
    ledger: Ledger

    def run_batch(self, runs: Sequence[Run]) -> list[Row]:
        """Run each planned run unless complete; return their ledger rows."""
        ...


def objective_of(rows: Sequence[Row], column: str) -> float:
    """Mean objective over the complete runs of one configuration (NaN if none)."""
    values = [r.metrics.get(column, math.nan) for r in rows if r.state == "complete"]
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def best_configuration(study: Study, rows: Sequence[Row]) -> Configuration | None:
    """The search configuration with the best mean objective over its complete runs."""
    objective = study.spec.objective
    if objective is None:
        return None
    by_label: dict[str, list[Row]] = {}
    for row in rows:
        if row.stage == "search":
            by_label.setdefault(row.label, []).append(row)
    best, best_value = None, math.nan
    for group in by_label.values():
        value = objective_of(group, objective.column)
        if math.isfinite(value) and (math.isnan(best_value) or objective.better(value, best_value)):
            best, best_value = group[0], value
    if best is None:
        return None
    return (
        study.configuration(best.condition, best.params)
        if best.params
        else study.base(best.condition)
    )


def search_runs(study: Study, configs: Sequence[Configuration], trial=None) -> list[Run]:
    split = study.spec.select_on
    return [study.run(c, s, split, "search", trial) for c in configs for s in study.spec.seeds]


def control_runs(study: Study) -> list[Run]:
    """The controls on the development seeds and the search's split (stage ``control``)."""
    split = study.spec.select_on
    return [study.run(c, s, split, "control") for c in study.controls for s in study.spec.seeds]


def confirmation_runs(study: Study, best: Configuration) -> list[Run]:
    """The best configuration, the base (``against: base``) and each control on the held-out
    seeds and split."""
    confirm = study.spec.confirm
    configs = [best] + ([study.base(best.condition)] if confirm.against == "base" else [])
    configs += study.controls
    return [study.run(c, s, confirm.split, "confirm") for c in configs for s in confirm.seeds]


def grid_search(driver: Batches) -> Configuration | None:
    rows = driver.run_batch(search_runs(driver.study, driver.study.grid()))
    return best_configuration(driver.study, rows)


def random_search(driver: Batches) -> Configuration | None:
    study = driver.study
    rng = random.Random(study.spec.search.seed)
    configs = []
    for _ in range(study.spec.search.n):
        condition = rng.randrange(study.searched)
        params = {axis: _draw(rng, spec) for axis, spec in study.spec.space.items()}
        configs.append(study.configuration(condition, params))
    rows = driver.run_batch(search_runs(study, configs))
    return best_configuration(study, rows)


def _draw(rng: random.Random, axis):
    if axis.values is not None:
        return axis.values[rng.randrange(len(axis.values))]
    if axis.log:
        value = math.exp(rng.uniform(math.log(axis.low), math.log(axis.high)))
    else:
        value = rng.uniform(axis.low, axis.high)
    return round(value) if axis.integer else value
