"""Imported by the fork server that a LocalCluster's workers are forked from
(:func:`neurosleep.study.execute.start_fork_server`): loads what a run uses — the runner, the
analysis a worker reads its metrics back with, and every module of the experiment and sleep
registries (otherwise imported at a worker's first run) — so each worker starts with them.
"""

from neurosleep import runner  # noqa: F401
from neurosleep.analysis import compare  # noqa: F401
from neurosleep.catalogue import EXPERIMENTS, SLEEP
from neurosleep.study import execute  # noqa: F401

EXPERIMENTS.names()
SLEEP.names()
