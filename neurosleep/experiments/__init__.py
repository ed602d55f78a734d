"""Experiments: one module per model kind, saying what wake, sleep and test do for it.

Looked up by the model spec's ``kind`` in :data:`EXPERIMENTS`.
"""

from neurosleep.experiments.base import EXPERIMENTS, Evaluation, Experiment, PlannedPhase

__all__ = ["EXPERIMENTS", "Evaluation", "Experiment", "PlannedPhase", "load_experiments"]


def load_experiments() -> None:
    """Import the modules that register experiments and sleep algorithms."""
    import importlib
    import pkgutil

    import neurosleep.experiments as package
    import neurosleep.sleep as sleep_package

    for pkg in (package, sleep_package):
        for info in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"{pkg.__name__}.{info.name}")
