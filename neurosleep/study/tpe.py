"""The ``tpe`` search: Optuna's TPE sampler, its storage in the study folder, resumable exactly.

A resumed search makes the same trials (parameters, in order) as one never interrupted, however
the driver was killed (before a trial finished, between two runs, between asking and telling):

- every draw is seeded from the study's ``search.seed``, the trial's number and the parameter's
  name (:class:`TrialSeeded`), so a draw depends only on the told history, never on how many
  draws the process made before;
- trials are asked in fixed batches of ``parallel`` trial numbers (``0 .. p-1``, ``p .. 2p-1``,
  ...); a batch is told only after all of it ran, so each trial is asked on the same history.
  The batch size is fixed by the study's first ``study run`` (kept in the ledger's meta table),
  so a resume with another ``--workers`` still makes the same trials;
- a trial asked but not told (its state ``RUNNING`` in the storage) is taken up again: the
  parameters it has are kept and any it lacks (the driver died between two suggestions) drawn
  as they would have been; its complete runs are reused.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from neurosleep.errors import MissingExtra
from neurosleep.study.search import Batches, best_configuration, objective_of, search_runs
from neurosleep.study.spec import Configuration, Study

BATCH_META = "tpe_parallel"  # ledger meta: the batch size of the study's first run


def draw_seed(seed: int, trial: int, name: str = "") -> int:
    """The seed of one draw: study seed, trial number and parameter name ('' for the joint,
    multivariate draw of a trial), mixed by NumPy's SeedSequence; 0 .. 2**32-1."""
    entropy = [seed, trial, zlib.crc32(name.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def sampler(seed: int, startup: int):
    """Optuna's TPESampler (its defaults: multivariate, constant liar) with every draw seeded
    by :func:`draw_seed`; ``startup`` trials are drawn at random before TPE takes over."""
    import optuna

    class TrialSeeded(optuna.samplers.BaseSampler):
        def _tpe(self, trial, name: str = ""):
            return optuna.samplers.TPESampler(
                seed=draw_seed(seed, trial.number, name), n_startup_trials=startup
            )

        def infer_relative_search_space(self, study, trial):
            return self._tpe(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._tpe(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            tpe = self._tpe(trial, param_name)
            return tpe.sample_independent(study, trial, param_name, param_distribution)

    return TrialSeeded()


def tpe_search(driver: Batches) -> Configuration | None:
    """Run (or resume) a TPE search with its storage in ``optuna.sqlite``; return the best
    configuration."""
    try:
        import optuna
    except ImportError:
        raise MissingExtra("tpe searches need optuna: pip install 'neurosleep[study]'") from None
    study = driver.study
    search = study.spec.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(driver.folder / 'optuna.sqlite').resolve()}"
    tpe = optuna.create_study(
        study_name=study.name,
        storage=storage,
        direction=study.spec.objective.goal,
        sampler=sampler(search.seed, search.startup),
        load_if_exists=True,
    )
    parallel = batch_size(driver)
    for first in range(0, search.n, parallel):
        batch = _batch(tpe, study, range(first, min(first + parallel, search.n)))
        if not batch:
            continue
        runs = [r for n, c in batch.items() for r in search_runs(study, [c], trial=n)]
        rows = driver.run_batch(runs)
        for number, config in batch.items():
            mine = [r for r in rows if r.label == config.label]
            value = objective_of(mine, study.spec.objective.column)
            if math.isfinite(value):
                tpe.tell(number, value)
            else:
                tpe.tell(number, state=optuna.trial.TrialState.FAIL)
    return best_configuration(study, driver.ledger.rows())


def batch_size(driver: Batches) -> int:
    """``search.parallel``, else the batch size of the study's first run, else the workers."""
    stored = driver.ledger.meta(BATCH_META)
    size = driver.study.spec.search.parallel or (int(stored) if stored else driver.workers)
    driver.ledger.set_meta(BATCH_META, str(size))
    return max(size, 1)


def _batch(tpe, study: Study, numbers: range) -> dict[int, Configuration]:
    """The configurations of the trials ``numbers`` not yet told: asked ones taken up again,
    the others asked now (in number order)."""
    import optuna

    out = {}
    for number in numbers:
        trials = tpe.get_trials(deepcopy=False)
        if number < len(trials):
            if trials[number].state.is_finished():
                continue
            trial = optuna.trial.Trial(tpe, trials[number]._trial_id)
        else:
            trial = tpe.ask()
        if trial.number != number:
            raise RuntimeError(f"optuna.sqlite: trial {trial.number} asked where {number} was due")
        out[number] = _trial_config(study, _suggest(trial, study))
    return out


def _suggest(trial, study: Study) -> dict[str, Any]:
    """A trial's parameters (listed values by index; ``condition`` when there are several)."""
    params = {}
    if study.searched > 1:
        params["condition"] = trial.suggest_categorical("condition", list(range(study.searched)))
    for axis, spec in study.spec.space.items():
        if spec.values is not None:
            params[axis] = trial.suggest_categorical(axis, list(range(len(spec.values))))
        elif spec.integer:
            params[axis] = trial.suggest_int(axis, int(spec.low), int(spec.high), log=spec.log)
        else:
            params[axis] = trial.suggest_float(axis, spec.low, spec.high, log=spec.log)
    return params


def _trial_config(study: Study, params: dict) -> Configuration:
    """Optuna parameters (listed values by index) → a configuration."""
    values = {}
    for axis, spec in study.spec.space.items():
        value = params[axis]
        values[axis] = spec.values[value] if spec.values is not None else value
    return study.configuration(int(params.get("condition", 0)), values)
