"""benchmarks/compare_runfiles.py: equal runs compare equal; a changed number is reported."""

from __future__ import annotations

import importlib.util

import h5py
import numpy as np
import pytest

from neurosleep.protocol import load_protocol
from neurosleep.runner import run


def compare_module(root):
    spec = importlib.util.spec_from_file_location(
        "compare_runfiles", root / "benchmarks/compare_runfiles.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def two_runs(root, tmp_path):
    sets = ["data.patterns=20", "schedule.dream.steps=20"]
    protocol = load_protocol(root / "protocols/hopfield_dreaming.yaml", sets)
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    for path in paths:
        run(protocol, output=path, progress=False)
    return paths


def test_same_protocol_twice_is_equal_and_one_changed_value_is_not(root, two_runs):
    compare = compare_module(root)
    a, b = two_runs
    assert compare.compare_runfiles(a, b) == []  # times, paths, environment ignored
    with h5py.File(b, "r+") as f:
        values = f["weights/J/values"]
        changed = values[0]
        changed[3, 4] = np.nextafter(changed[3, 4], np.inf)  # one ulp
        values[0] = changed
        f["metrics/evaluations/overlap"].attrs["units"] = "mV"
    diffs = compare.compare_runfiles(a, b)
    assert len(diffs) == 2, diffs
    assert diffs[0] == "/metrics/evaluations/overlap @units: '1' != 'mV'"
    assert diffs[1].startswith("/weights/J/values: 1 of "), diffs
    assert compare.main([str(a), str(b)]) == 1
    assert compare.main([str(a), str(a)]) == 0
