"""Sweeps: variants validated up front, one complete run file each, serial or on Dask."""

from __future__ import annotations

import numpy as np
import pytest

from neurosleep.errors import SpecError
from neurosleep.io import open_run
from neurosleep.sweep import execute, plan


def test_plan_expands_seeds_and_values_with_distinct_files(
    write_protocol, hopfield_protocol, tmp_path
):
    path = write_protocol(hopfield_protocol)
    template = str(tmp_path / "{name}_seed{seed}.h5")
    variants = plan(path, [1, 2], ["schedule.dream.t=1,100"], ["data.patterns=5"], template)
    names = sorted(v.output.name for v in variants)
    assert names == ["hop_t100_seed1.h5", "hop_t100_seed2.h5", "hop_t1_seed1.h5", "hop_t1_seed2.h5"]
    assert all("data.patterns=5" in v.overrides for v in variants)
    with pytest.raises(SpecError, match="needs \\{seed\\}"):
        plan(path, [1, 2], [], [], str(tmp_path / "fixed.h5"))
    with pytest.raises(SpecError, match="less than or equal to 0.5"):  # every variant validated
        plan(path, [1], ["schedule.before.cue_noise=0.1,0.9"], [], template)


def test_serial_sweep_writes_one_complete_file_per_seed(
    write_protocol, hopfield_protocol, tmp_path
):
    path = write_protocol(hopfield_protocol)
    variants = plan(path, [3, 4], [], [], str(tmp_path / "{name}_seed{seed}.h5"))
    outcomes = execute(path, variants, workers=1, scheduler=None, overwrite=False)
    assert [o.status for o in outcomes] == ["complete", "complete"]
    with open_run(variants[0].output) as a, open_run(variants[1].output) as b:
        assert (a.attrs["seed"], b.attrs["seed"]) == (3, 4)
        assert not np.array_equal(a.weights("J").values, b.weights("J").values)
    again = execute(path, variants, workers=1, scheduler=None, overwrite=False)
    assert [o.status for o in again] == ["skipped", "skipped"]


@pytest.mark.slow
def test_dask_sweep_matches_serial_runs(write_protocol, hopfield_protocol, tmp_path):
    path = write_protocol(hopfield_protocol)
    parallel = plan(path, [5, 6], [], [], str(tmp_path / "dask_{name}_seed{seed}.h5"))
    serial = plan(path, [5, 6], [], [], str(tmp_path / "serial_{name}_seed{seed}.h5"))
    outcomes = execute(path, parallel, workers=2, scheduler=None, overwrite=False)
    assert [o.status for o in outcomes] == ["complete", "complete"]
    execute(path, serial, workers=1, scheduler=None, overwrite=False)
    for p, s in zip(parallel, serial, strict=True):
        with open_run(p.output) as rp, open_run(s.output) as rs:
            assert np.array_equal(rp.weights("J").values, rs.weights("J").values)
            assert np.array_equal(
                rp.evaluations().metrics["overlap"], rs.evaluations().metrics["overlap"]
            )
