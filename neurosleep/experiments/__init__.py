"""Experiments: one module per model kind, saying what wake, sleep and test do for it.

Looked up by the model spec's ``kind`` in :data:`EXPERIMENTS` (which imports this package's
modules on first lookup).
"""

from neurosleep.catalogue import EXPERIMENTS
from neurosleep.experiments.base import Evaluation, Experiment
from neurosleep.protocol import PlannedPhase

__all__ = ["EXPERIMENTS", "Evaluation", "Experiment", "PlannedPhase"]
