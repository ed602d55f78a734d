"""benchmarks/consolidation_table.py: the large size's memories and model, the named sets."""

from __future__ import annotations

import argparse
import importlib.util
import sys

import numpy as np
import pytest


@pytest.fixture
def table(root):
    sys.path.insert(0, str(root / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "consolidation_table", root / "benchmarks/consolidation_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(root / "benchmarks"))


def stored(protocol) -> dict[str, list[str]]:
    return {m.name: m.groups for m in protocol.data.memories.stored}


def test_large_size_scales_every_memory_and_runs_on_the_large_model(table):
    size = table.SIZES["large"]
    overrides = table.memories("consolidation_no_sleep", "ring", size.scale)
    model = str(table.ROOT / size.model)
    protocol = table.load_condition("consolidation_no_sleep", overrides, model)
    assert protocol.model.populations["exc"].size == 2000
    groups = stored(protocol)
    assert groups["A"] == ["0:200", "200:400", "400:600", "600:800", "800:1000"]
    assert groups["B"] == groups["A"][::-1]
    assert groups["S2"][0] == "1000:1200" and groups["S2"][-1] == "1800:2000"
    # the large protocol shipped for GPUs stores the same memories
    large = table.load_condition("consolidation_large", ["device=cpu"], None)
    assert stored(large) == groups


def test_permuted_placement_composes_with_the_scale(table):
    groups = stored(
        table.load_condition(
            "consolidation_sleep", table.memories("consolidation_sleep", "permuted", 10), None
        )
    )
    assert groups["A"] == ["200:400", "0:200", "400:600", "800:1000", "600:800"]
    assert groups["B"] == groups["A"][::-1]
    assert table.memories("consolidation_sleep", "ring", 1) == []


def test_named_sets_are_condition_labels(table):
    labels = {c.label for c in table.CONDITIONS}
    for name, members in table.SUITES.items():
        assert set(members) <= labels, name
    assert len(table.SUITES["controls"]) == 2 + len(table.CONTROLS)


def test_reuse_reads_a_finished_run_and_refuses_one_of_another_protocol(table, tmp_path):
    short = 'schedule=[{"test": {"name": "before", "duration": "100 ms"}}]'
    args = argparse.Namespace(
        engine="torch", networks=2, seed=101, out=str(tmp_path), tag="", reuse=True,
        set=[short], control_set=None, model=None, placement="ring", size="small",
    )  # fmt: skip
    condition = table.Condition("no sleep", "consolidation_no_sleep")
    (path,), wall = table.run_condition(condition, args)  # missing: run
    assert path == tmp_path / "consolidation_no_sleep_torch.h5" and wall > 0
    before = path.stat().st_mtime_ns
    (again,), _ = table.run_condition(condition, args)  # found, same model: read
    assert again == path and path.stat().st_mtime_ns == before
    refused = {  # what the command would run differently -> what the error names
        "model.populations.exc.neuron.tau_m='25 ms'": "model.populations.exc.neuron.tau_m: ",
        "seed": "seed: 101 in the file, 102 now",
        "networks": "data.networks: 2 in the file, 3 now",
        "data.memories.baseline=true": "data.memories.baseline: absent in the file, True now",
    }
    for change, named in refused.items():
        again = argparse.Namespace(**vars(args))
        if change == "seed":
            again.seed = 102
        elif change == "networks":
            again.networks = 3
        else:
            again.set = [*args.set, change]
        with pytest.raises(SystemExit) as refusal:
            table.run_condition(condition, again)
        message = str(refusal.value)
        assert message.startswith(f"{path}: made with another protocol") and named in message
        assert path.stat().st_mtime_ns == before  # left as it was


def test_control_set_gives_the_no_sleep_condition_its_own_overrides(table, tmp_path):
    """``--control-set``: the no-sleep condition runs with its own overrides, every other
    condition with ``--set``'s (a variant's schedule against its control's)."""
    from neurosleep.io import open_run

    def schedule(ms: int) -> str:
        return f'schedule=[{{"test": {{"name": "before", "duration": "{ms} ms"}}}}]'

    args = argparse.Namespace(
        engine="torch", networks=1, seed=101, out=str(tmp_path), tag="", reuse=False,
        set=[schedule(100)], control_set=[schedule(200)], model=None, placement="ring",
        size="small",
    )  # fmt: skip
    for label, protocol, ms in (
        ("no sleep", "consolidation_no_sleep", 200),
        ("sleep", "consolidation_sleep", 100),
    ):
        (path,), _ = table.run_condition(table.Condition(label, protocol), args)
        with open_run(path) as rf:
            assert rf.stored_protocol()["schedule"][0]["test"]["duration"] == f"{ms} ms"


def test_replay_correlation_and_its_interval(table):
    rng = np.random.default_rng(1)
    events = rng.integers(0, 20, 20).astype(float)
    r, low, high = table.bootstrap_r(events, 0.1 * events + 0.5)
    assert r == pytest.approx(1.0) and low == pytest.approx(1.0) and high == pytest.approx(1.0)
    noisy = 0.1 * events + rng.normal(0, 0.5, 20)
    r, low, high = table.bootstrap_r(events, noisy)
    assert r == pytest.approx(np.corrcoef(events, noisy)[0, 1]) and low < r < high
    flipped = table.bootstrap_r(-events, noisy)  # the sign follows the data, and the interval
    assert flipped == pytest.approx((-r, -high, -low), abs=0.02)
    # one network with one event (or two) carries no correlation
    one = np.zeros(20)
    one[3] = 1.0
    assert np.isnan(table.bootstrap_r(one, noisy)).all()
    one[7] = 2.0
    assert np.isnan(table.bootstrap_r(one, noisy)).all()
    one[9] = 1.0
    assert not np.isnan(table.bootstrap_r(one, noisy)[0])


def test_recovery_table_pairs_with_sleep_only_the_paired_table_has_no_sleep(table):
    """A's graded recovery against no sleep's is the paired table's sequence cell (the
    conditions share the test after B): printed there once, not again as a column."""
    after_b = np.array([[0.2, 0.5], [0.4, 0.3], [0.1, 0.6]])  # 3 networks x (A, B)
    finals = {"no sleep": [0.2, 0.3, 0.1], "sleep": [0.6, 0.5, 0.4], "sleep, A blocked": [0.3] * 3}
    results = {
        label: [
            {"phase": "after_B", "sequence": after_b, "full_recall": 0 * after_b},
            {
                "phase": "final",
                "sequence": np.column_stack([a, after_b[:, 1]]),
                "full_recall": 0 * after_b,
                "discrimination": 0 * after_b,
            },
        ]
        for label, a in finals.items()
    }
    recovery = table.controls_table(results).splitlines()
    assert recovery[0].count("|") == 6 and "no sleep" not in recovery[0]
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in recovery[2:]}
    assert rows["sleep"][-1] == "– |"
    # A recovered: no sleep 0, -0.1, 0; sleep 0.4, 0.1, 0.3; A blocked 0.1, -0.1, 0.2
    assert rows["no sleep"][-1].startswith("-0.30 ± 0.06 (higher in 0/3)")
    assert rows["sleep, A blocked"][-1].startswith("-0.20 ± 0.06 (higher in 0/3)")
    paired = table.paired(results, ["A", "B"])
    assert "| sleep − no sleep | sequence | 0.30 ± 0.06 (higher in 3/3) |" in paired
    assert "| sleep, A blocked − no sleep | sequence | 0.10 ± 0.06 (higher in 2/3) |" in paired
