"""Hopfield dreaming: the step-by-step flow matches the closed form; sleep restores retrieval."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from neurosleep.sleep.hopfield_dreaming import DreamingParams, closed_form, dream
from neurosleep.sleep.hopfield_unlearning import UnlearningParams, unlearn


def patterns(p: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand((p, n), generator=g) < 0.5, 1.0, -1.0).double()


@pytest.mark.parametrize("t", [0.5, 10.0, 1000.0])
def test_dreaming_flow_matches_closed_form(t):
    xi = patterns(30, 100)
    hebb = xi.T @ xi / 100
    states = []
    j = dream(
        hebb,
        DreamingParams(t=t, steps=400),
        torch.Generator().manual_seed(1),
        "keep",
        lambda block, done: states.append(block),
    )
    expected = closed_form(xi, t)
    assert torch.allclose(j, expected, rtol=0, atol=1e-9 * expected.abs().max())
    assert sum(b.shape[0] for b in states) == 400
    assert torch.allclose(closed_form(xi, 0.0), hebb)


def test_dreaming_is_a_semigroup_in_log_time():
    xi = patterns(20, 80)
    hebb = xi.T @ xi / 80
    noop = lambda *a: None  # noqa: E731
    g = torch.Generator().manual_seed(0)
    twice = dream(
        dream(hebb, DreamingParams(t=1.0, steps=200), g, "keep", noop),
        DreamingParams(t=2.0, steps=200),
        g,
        "keep",
        noop,
    )
    assert torch.allclose(twice, closed_form(xi, (1 + 1.0) * (1 + 2.0) - 1), atol=1e-9)


def test_unlearning_touches_only_off_diagonal_and_lowers_dream_energy():
    xi = patterns(40, 100)
    hebb = xi.T @ xi / 100
    fixed = []
    j = unlearn(
        hebb,
        UnlearningParams(dreams=50, epsilon=0.01),
        torch.Generator().manual_seed(2),
        "zero",
        lambda b, done: fixed.append(b),
    )
    assert torch.equal(torch.diagonal(j), torch.diagonal(hebb))
    sigma = torch.cat(fixed)
    assert sigma.shape == (50, 100) and set(sigma.unique().tolist()) == {-1.0, 1.0}
    expected = hebb - 0.01 / 100 * sum(torch.outer(s, s) for s in sigma) * (1 - torch.eye(100))
    assert torch.allclose(j, expected)


def test_retrieval_beyond_capacity_restored_by_sleep(root, tmp_path):
    """N = 400, alpha = 0.3: retrieval ≈ 0.5 after Hebbian storage, ≥ 0.99 after dreaming
    (reference: 0.514 → 1.000 with the closed-form couplings of Fachechi et al. 2019)."""
    protocol = load_protocol(
        root / "protocols" / "hopfield_dreaming.yaml",
        ["seed=1", "record.sleep_states=false", "schedule.dream.steps=150"],
    )
    assert protocol.model.neurons == 400 and protocol.data.patterns == 120
    from neurosleep.io import open_run

    result = run(protocol, output=tmp_path / "run.h5", progress=False)
    with open_run(result.path) as r:
        overlap = r.evaluations().metrics["overlap"][:, 0]
        fixed = r.evaluations().metrics["fixed_point_fraction"][:, 0]
    assert 0.40 <= overlap[0] <= 0.62
    assert overlap[1] >= 0.99 and fixed[1] >= 0.99 and fixed[0] <= 0.05


def test_retrieval_table_of_the_reference():
    """Rows of the reference table (N = 400, 5 % flipped bits, 10 synchronous updates)."""
    from neurosleep.engines.hopfield import relax
    from neurosleep.experiments.hopfield import flip_bits

    reference = {(0.5, 1.0): 0.870, (0.5, 10.0): 1.000, (0.7, 1.0): 0.720, (0.7, 1000.0): 0.075}
    for (alpha, t), value in reference.items():
        xi = patterns(int(alpha * 400), 400, seed=3)
        j = closed_form(xi, t)
        j = j - torch.diag(torch.diagonal(j))
        final, _ = relax(j, flip_bits(xi, 20, torch.Generator().manual_seed(4)), 10)
        m = float((final * xi).sum(1).mean() / 400)
        assert abs(m - value) < 0.06, (alpha, t, m, value)
    assert np.isfinite(m)


@pytest.mark.parametrize("diagonal", ["zero", "keep"])
def test_recorded_couplings_are_the_ones_retrieval_uses(
    hopfield_protocol, write_protocol, tmp_path, diagonal
):
    """J snapshots and ‖ΔJ‖ count only couplings that act: under ``diagonal: zero`` the recorded
    diagonal is 0 (the full J's is α = P/N after storage and moves during sleep)."""
    from neurosleep.io import open_run

    hopfield_protocol["model"]["diagonal"] = diagonal
    protocol = load_protocol(write_protocol(hopfield_protocol))
    result = run(protocol, output=tmp_path / "run.h5", progress=False)
    with open_run(result.path) as r:
        stored, slept = r.weights("J").values
        rms = {(p, n): v for p, n, v, _ in r.scalars()}[(2, "coupling_change_rms")]
    if diagonal == "zero":
        assert not np.diagonal(stored).any() and not np.diagonal(slept).any()
    else:
        np.testing.assert_allclose(np.diagonal(stored), 10 / 100, atol=1e-12)  # α = P/N
        assert np.abs(np.diagonal(slept) - 0.1).max() > 1e-3  # the flow moves the diagonal
    assert np.sqrt(((slept - stored) ** 2).mean()) == pytest.approx(rms, rel=1e-9)
