"""Neo spike trains from run files, so Elephant's functions apply directly.

Neo, Elephant, pynwb and libsonata are the optional ``formats`` extra; :func:`require` turns a
missing one into a one-line message with the install command.

Examples
--------
>>> import neurosleep                                                  # doctest: +SKIP
>>> from elephant.statistics import mean_firing_rate                   # doctest: +SKIP
>>> with neurosleep.open_run("outputs/cuba_seed1.h5") as run:          # doctest: +SKIP
...     trains = spiketrains(run, "exc")
...     mean_firing_rate(trains[0]).rescale("Hz")
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurosleep.errors import MissingExtra
from neurosleep.io.blocks import population_size, read_window, run_stop

if TYPE_CHECKING:
    from neurosleep.io.runfile import RunFile

INSTALL = "pip install 'neurosleep[formats]'"


def require(package: str) -> Any:
    """Import an optional package, or raise :class:`MissingExtra` saying how to install it."""
    if importlib.util.find_spec(package) is None:
        raise MissingExtra(f"this needs the optional package {package!r}: {INSTALL}")
    return importlib.import_module(package)


def spike_train_list(
    times_ms: np.ndarray,
    node_ids: np.ndarray,
    n_nodes: int,
    t_start: float,
    t_stop: float,
    population: str | None = None,
) -> Any:
    """A Neo ``SpikeTrainList`` with one train per node id 0..n_nodes−1 (times in ms), each
    annotated with ``node_id`` (and ``channel_id``, the same) and ``population`` when given.

    Grouping is one stable sort, not a mask per neuron, so large populations stay fast.
    """
    neo = require("neo")
    from neo.core.spiketrainlist import SpikeTrainList

    order = np.argsort(node_ids, kind="stable")
    ids = np.asarray(node_ids)[order]
    bounds = np.searchsorted(ids, np.arange(n_nodes + 1))
    times = np.asarray(times_ms, dtype=float)[order]
    trains = [
        neo.SpikeTrain(times[bounds[k] : bounds[k + 1]], units="ms", t_start=t_start, t_stop=t_stop)
        for k in range(n_nodes)
    ]
    for k, train in enumerate(trains):
        train.annotate(channel_id=k, node_id=k)
        if population is not None:
            train.annotate(population=population)
            train.name = f"{population}:{k}"
    return SpikeTrainList(items=trains)


def spiketrains(
    run: RunFile, population: str, t_start: float | None = None, t_stop: float | None = None
) -> Any:
    """Neo spike trains (one per neuron, ms) of ``population`` within ``[t_start, t_stop)``.

    Defaults: from 0 to the end of the recorded time. Reads only the window from disk.
    """
    require("neo")
    group = run._group("spikes", population, "population")
    t_start = 0.0 if t_start is None else t_start
    t_stop = run_stop(run) if t_stop is None else t_stop
    times, ids = read_window(group, t_start, t_stop)
    n = population_size(run, population)
    return spike_train_list(times, ids, n, t_start, t_stop, population=population)


def read_nwb(path: str | Path) -> Any:
    """A Neo ``Block`` read from an NWB file that ``neurosleep export --nwb`` wrote, with each
    spike train annotated with its ``population`` and ``node_id`` again.

    Neo's ``NWBIO`` keeps only a unit's ``_name`` column (as ``SpikeTrain.name``,
    ``"<population>:<node id>"``) and drops the other columns; this parses the name back. It
    also reads files with list-valued ``keywords``/``experimenter``/``related_publications``
    (from the protocol's ``metadata``), on which Neo 0.14's own ``NWBIO`` fails ("Invalid
    annotation ... StrDataset").
    """
    neo = require("neo")

    class _NWBIO(neo.io.NWBIO):
        def _get_segment(self, block_name, segment_name):
            self.global_block_metadata = {
                key: [str(v) for v in value] if _is_dataset(value) else value
                for key, value in self.global_block_metadata.items()
            }
            return super()._get_segment(block_name, segment_name)

    block = _NWBIO(str(path), mode="r").read_block()
    for segment in block.segments:
        for train in segment.spiketrains:
            if train.name and ":" in train.name:
                population, node = train.name.rsplit(":", 1)
                train.annotate(population=population, node_id=int(node))
    return block


def _is_dataset(value: Any) -> bool:
    return hasattr(value, "shape") and not isinstance(value, (str, np.ndarray, np.generic))
