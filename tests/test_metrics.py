"""Continual-learning metrics against a hand-computed 3-task accuracy matrix."""

import numpy as np
import pytest

from neurosleep.analysis import metrics as M

# Row 0: "at start" (b̄); row i: after training on task i (1-based). Columns: tasks 1..3.
R = np.array(
    [
        [0.10, 0.20, 0.30],
        [0.90, 0.25, 0.35],
        [0.95, 0.95, 0.40],
        [0.50, 0.80, 0.85],
    ]
)


def test_acc():
    # (0.50 + 0.80 + 0.85) / 3
    assert M.acc(R) == pytest.approx(2.15 / 3)


def test_bwt_uses_t_minus_one():
    # ((0.50 - 0.90) + (0.80 - 0.95)) / 2; GEM's code would divide by 3 (-0.1833)
    assert M.bwt(R) == pytest.approx(-0.275)


def test_fwt():
    # ((0.25 - 0.20) + (0.40 - 0.30)) / 2
    assert M.fwt(R) == pytest.approx(0.075)


def test_forgetting_is_max_based_not_minus_bwt():
    # task 1: max(0.90, 0.95) - 0.50 = 0.45; task 2: max(0.25, 0.95) - 0.80 = 0.15
    np.testing.assert_allclose(M.forgetting_per_task(R), [0.45, 0.15])
    assert M.forgetting(R) == pytest.approx(0.30)
    assert M.forgetting(R) != pytest.approx(-M.bwt(R))
    # at k = 2: task 1 improved from 0.90 to 0.95, negative forgetting
    assert M.forgetting(R, k=2) == pytest.approx(-0.05)
    assert np.isnan(M.forgetting(R, k=1))


def test_intransigence():
    joint = np.array([0.92, 0.97, 0.90])
    np.testing.assert_allclose(M.intransigence(R, joint), [0.02, 0.02, 0.05], atol=1e-12)


def test_average_incremental_accuracy():
    # k=1: 0.90; k=2: (0.95 + 0.95)/2; k=3: 2.15/3
    expected = (0.90 + 0.95 + 2.15 / 3) / 3
    assert M.average_incremental_accuracy(R) == pytest.approx(expected)


def test_all_metrics_names():
    values = M.all_metrics(R)
    assert list(values) == ["ACC", "BWT", "FWT", "forgetting", "AIA"]
    assert values["BWT"] == pytest.approx(-0.275)


def test_single_task_metrics_are_nan_where_undefined():
    R1 = np.array([[0.2], [0.9]])
    assert M.acc(R1) == pytest.approx(0.9)
    assert np.isnan(M.bwt(R1)) and np.isnan(M.fwt(R1)) and np.isnan(M.forgetting(R1))
    assert M.average_incremental_accuracy(R1) == pytest.approx(0.9)


@pytest.mark.parametrize("shape", [(3, 3), (2,), (4, 2), (1, 0)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match="T \\+ 1, T"):
        M.acc(np.zeros(shape))


def test_after_each_task_is_each_metric_of_the_leading_matrix():
    joint = (0.92, 0.97, 0.90)
    values = M.after_each_task(R, M.ContinualOptions(fwt=True, reference=joint))
    assert list(values) == ["ACC", "BWT", "FWT", "forgetting", "AIA", "intransigence"]
    # hand-computed: after task 2, ACC (0.95 + 0.95)/2, BWT 0.95 − 0.90, FWT 0.25 − 0.20,
    # forgetting 0.90 − 0.95, AIA (0.90 + 0.95)/2, intransigence 0.97 − 0.95
    expected_2 = [0.95, 0.05, 0.05, -0.05, 0.925, 0.02]
    np.testing.assert_allclose([v[2] for v in values.values()], expected_2, atol=1e-12)
    np.testing.assert_allclose(values["ACC"], [np.nan, 0.90, 0.95, 2.15 / 3])
    assert np.isnan(values["BWT"][1]) and values["BWT"][3] == pytest.approx(M.bwt(R))
    assert values["forgetting"][3] == pytest.approx(0.30)
    np.testing.assert_allclose(values["intransigence"][1:], [0.02, 0.02, 0.05], atol=1e-12)
    class_il = M.after_each_task(R, M.ContinualOptions())
    assert list(class_il) == ["ACC", "BWT", "forgetting", "AIA"]  # no FWT, no reference
    partial = R.copy()
    partial[3] = np.nan  # task 3 not reached yet
    assert np.isnan(M.after_each_task(partial, M.ContinualOptions())["ACC"][3])
    with pytest.raises(ValueError, match="reference"):
        M.after_each_task(R, M.ContinualOptions(reference=(0.9, 0.9)))


def test_mean_sem_over_runs_leaves_out_missing_values():
    from neurosleep.analysis.stats import mean_sem

    m = mean_sem(np.array([1.0, 2.0, np.nan, 3.0, 4.0]))
    assert m.n == 4 and m.mean == 2.5
    assert m.sem == pytest.approx(np.sqrt(5 / 3) / 2)  # sample SD √(5/3), over √4
    assert str(m) == "2.500 ± 0.645"
    one = mean_sem([None, 0.25, float("inf")])
    assert (one.mean, one.n, str(one)) == (0.25, 1, "0.250") and np.isnan(one.sem)
    none = mean_sem([])
    assert none.n == 0 and np.isnan(none.mean) and str(none) == "-"
    mean, sem, n = mean_sem([0.1, 0.3])  # unpacks as (mean, sem, n)
    assert (round(mean, 6), round(sem, 6), n) == (0.2, 0.1, 2)
