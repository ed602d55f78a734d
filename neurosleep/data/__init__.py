"""Datasets (no downloads) and continual-learning task streams; depends on nothing internal.

See :mod:`neurosleep.data.datasets` for the datasets and their normalisation and
:mod:`neurosleep.data.streams` for split / permuted streams and the three scenarios.
"""

from neurosleep.data.datasets import (
    DATASETS,
    Dataset,
    count_classes,
    hold_out_validation,
    load_dataset,
    read_idx,
    stratified_split,
)
from neurosleep.data.streams import Stream, Task, permuted_stream, split_stream

__all__ = [
    "DATASETS",
    "Dataset",
    "Stream",
    "Task",
    "count_classes",
    "hold_out_validation",
    "load_dataset",
    "permuted_stream",
    "read_idx",
    "split_stream",
    "stratified_split",
]
