"""Regression tests of the headline claims, on short fixed-seed protocols: they fail if the
effects vanish. Spiking (docs/results.md, "Spiking sleep consolidation"): after learning, A
is recalled in full (every group, in order) in most trials; sleep raises A's graded recall
above the same networks' recall before it (no sleep: the tests run with plasticity off, so the
test after learning B is the no-sleep control), and nightmares leave A's discrimination below
sleep's. MLP (docs/results.md, SRA): SRA's final ACC on split MNIST 5k is above fine-tuning's.

Sleep's effect is asserted on the graded score and discrimination, not on the per-trial
``full_recall``: after learning B, complete recall of A happens in no trial, before or after
sleep, so a success rate cannot show the effect (measured below). The joint configuration
(models/assemblies_joint.yaml, protocols/consolidation_joint_*.yaml: another recall state, B on
subsets, S2 inhibited in sleep) raises A's full recall above no sleep on average: asserted on
development seeds 1-20 (the average, not its reliability: on held-out seeds 101-120 +0.16 ± 0.10,
higher in 12 of 20 networks, lower in 8; docs/results.md). A 15 s sleep, higher in 16 of 20 fresh
networks (seeds 201-220, +0.21 ± 0.07), cost B -0.13 ± 0.03, beyond its pre-declared -0.10, and
is not shipped (docs/results.md, "A robustness search for the joint configuration"). The
soft-bound sleep configuration (protocols/consolidation_soft_*.yaml: the joint recall state with
B over all of A's neurons, soft-bound STDP in sleep) restores A's full recall in every network,
by rates, not by the order of reactivation: asserted with its rate-matched surrogate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = 8  # seeds 11-18, one torch batch
CONTROLS = {  # sleep phase keys of each run beside the sleep's (docs/consolidation.md)
    "nightmares": {"state": "nightmare"},
    "A blocked": {"block": ["A"]},
    "plasticity off": {"plasticity": 0.0},
    "surrogate": {"surrogate": "time"},
}


def consolidation(
    root, write_protocol, tmp_path, name: str, sleep: dict, control_test: bool
) -> list[dict]:
    """The shipped sleep protocol shortened: learn A 3 s, (test A 2 s), learn B 3 s, (test A
    2 s), 5 s of spontaneous sleep with the keys ``sleep`` (its state, a control's options),
    test A 2 s (18 trials), with the spontaneous baseline; per-network ``/recall/<phase>/``
    arrays of A, one dict per test phase (every run shares its networks up to the end of
    learning B)."""
    data = yaml.safe_load((root / "protocols" / "consolidation_sleep.yaml").read_text())
    data["model"] = str(root / "models" / "assemblies.yaml")
    data |= {"seed": 11, "output": str(tmp_path / f"{name}.h5")}
    data["data"]["networks"] = NETWORKS
    data["data"]["memories"]["baseline"] = True
    data["record"] = {"spikes": "none", "weights": "none"}
    test = {"task": 0, "duration": "2000 ms"}
    data["schedule"] = [
        {"wake": {"name": "learn_A", "task": 0, "duration": "3000 ms"}},
        *([{"test": {"name": "after_A", **test}}] if control_test else []),
        {"wake": {"name": "learn_B", "task": 1, "duration": "3000 ms"}},
        *([{"test": {"name": "after_B", **test}}] if control_test else []),
        {"sleep": {"name": "sleep", "kind": "spontaneous", "duration": "5000 ms", **sleep}},
        {"test": {"name": "final", **test}},
    ]
    result = run(load_protocol(write_protocol(data)), progress=False)
    with open_run(result.path) as rf:
        return [
            {k: v[:, 0] for k, v in rf.arrays(f"recall/{int(p)}").items()}
            for p in rf.evaluations().phases
        ]


@pytest.fixture(scope="module")
def spiking(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("headline")

    def write(data: dict):
        path = tmp / f"{data['name']}_{len(data['schedule'])}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread is faster (tests/conftest.py)
    try:
        sleep = consolidation(ROOT, write, tmp, "sleep", {"state": "sleep"}, True)
        runs = {
            name: consolidation(ROOT, write, tmp, name, {"state": "sleep", **keys}, False)[0]
            for name, keys in CONTROLS.items()
        }
    finally:
        torch.set_num_threads(previous)
    return {"after A": sleep[0], "no sleep": sleep[1], "sleep": sleep[2]} | runs


@pytest.mark.slow
@pytest.mark.torch
def test_a_is_recalled_in_full_after_learning(spiking):
    """Measured (seeds 11-18, 18 trials): full recall of A (every group, in stored order) in
    1.00 of the trials in every network after learning A (wake E->E x0.5; with x0.3 0.96, the
    worst network 0.83); #15's goal is 0.8 in every network."""
    full = spiking["after A"]["full_recall"]
    assert full.mean() >= 0.9 and full.min() >= 0.8, full


@pytest.mark.slow
@pytest.mark.torch
def test_sleep_raises_a_above_no_sleep(spiking):
    """Measured (seeds 11-18): A's graded score 0.23 before sleep, 0.66 after (gain 0.43,
    higher in 8 of 8); the spontaneous baseline after sleep 0.00. A's full recall is 0 in every
    network before and after sleep: sleep does not restore complete recall in this model, so
    no margin on it is asserted (docs/results.md, the open part of #15)."""
    gain = spiking["sleep"]["sequence"] - spiking["no sleep"]["sequence"]
    assert gain.mean() > 0.25, gain
    assert (gain > 0).sum() >= 7, gain
    # the spontaneous baseline was measured beside it and sits well below the cued score
    assert np.all(np.isfinite(spiking["sleep"]["spontaneous_sequence"]))
    assert (
        spiking["sleep"]["spontaneous_sequence"].mean() < spiking["sleep"]["sequence"].mean() - 0.3
    )
    assert spiking["no sleep"]["full_recall"].max() < 0.2  # learning B took A's full recall


@pytest.mark.slow
@pytest.mark.torch
def test_nightmares_stay_below_sleep(spiking):
    """A's discrimination (completion − intrusion) after nightmares minus after sleep, per
    network. Measured (seeds 11-18): −0.45, lower in 7 of 8 (one network, seed 16, scores 0.79
    after the nightmares)."""

    def discrimination(run: dict) -> np.ndarray:
        return run["completion"] - run["intrusion"]

    drop = discrimination(spiking["nightmares"]) - discrimination(spiking["sleep"])
    assert drop.mean() < -0.2, drop
    assert (drop < 0).sum() >= 6, drop


# Sleep's recovery of A above each control's (A's graded score after sleep minus after the
# control, per network), seeds 11-18; measured: A's neurons inhibited all sleep long (``block:
# [A]``) 0.44 (0.24 … 0.65), 8 of 8, blocked − no sleep −0.00; the same sleep with every
# learning rate ×0 0.47, 8 of 8; the sleep's STDP applied to its own spikes shuffled in time
# (``surrogate: time``) 0.11 (−0.01 … 0.31), 7 of 8, surrogate − no sleep 0.32 (with wake E→E
# ×0.3 0.30, 8 of 8, and 0.13: the surrogate's margin is smaller since learning at ×0.5).
@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.parametrize(
    ("control", "margin"), [("A blocked", 0.25), ("plasticity off", 0.25), ("surrogate", 0.05)]
)
def test_sleep_recovers_more_than_its_control(spiking, control, margin):
    loss = spiking["sleep"]["sequence"] - spiking[control]["sequence"]
    assert loss.mean() > margin, loss
    assert (loss > 0).sum() >= 7, loss


@pytest.mark.slow
@pytest.mark.torch
def test_plasticity_off_sleep_recovers_nothing_beyond_no_sleep(spiking):
    """The same sleep with every learning rate ×0: A's graded score minus no sleep's stays
    within 0.15 (measured −0.03; per network −0.33 … 0.32, the test–retest noise of 18
    trials)."""
    gain = spiking["plasticity off"]["sequence"] - spiking["no sleep"]["sequence"]
    assert abs(gain.mean()) < 0.15, gain


@pytest.mark.slow
@pytest.mark.torch
def test_sra_acc_above_fine_tuning(tmp_path, one_torch_thread):
    """Split MNIST 5k, class-incremental, the shipped protocols with 4 epochs per task instead
    of 12 (seed 1, one torch thread). Measured: fine-tuning ACC 0.186 (only the last task),
    SRA 0.379 (seed 2: 0.188, 0.356); with the shipped 12 epochs 0.191 and 0.479 (seed 1,
    torch's default threads)."""
    acc = {}
    for name in ("split_mnist_finetune", "split_mnist_sra"):
        overrides = ["schedule.1.repeat.phases.0.wake.epochs=4"]
        if name == "split_mnist_sra":
            overrides.append("record.sleep_spikes=false")
        protocol = load_protocol(ROOT / "protocols" / f"{name}.yaml", overrides)
        result = run(protocol, output=tmp_path / f"{name}.h5", progress=False)
        with open_run(result.path) as rf:
            acc[name] = float(rf.evaluations().metrics["accuracy"][-1].mean())
    assert acc["split_mnist_finetune"] < 0.25  # forgets every task but the last
    assert acc["split_mnist_sra"] > acc["split_mnist_finetune"] + 0.1, acc


def joint_final(name: str, tmp_path: Path, overrides: dict | None = None, tag: str = "") -> dict:
    """Full recall per network and memory [20 × (A, B, S2)] in the final test of a shipped
    protocol on models/assemblies_joint.yaml (joint or soft-bound sleep configuration) run on 20
    networks, seeds 1-20 (development seeds), nothing recorded; ``overrides``: its sleep phase's
    keys changed (the run file named with ``tag``)."""
    data = yaml.safe_load((ROOT / "protocols" / f"{name}.yaml").read_text())
    data["model"] = str(ROOT / "models" / "assemblies_joint.yaml")
    data |= {"seed": 1, "output": str(tmp_path / f"{name}{tag}.h5")}
    data["data"]["networks"] = 20
    data["record"] |= {"spikes": "none", "weights": "none"}  # the same numbers as recorded
    for phase in data["schedule"]:
        if "sleep" in phase:
            phase["sleep"] |= overrides or {}
    path = tmp_path / f"{name}{tag}.yaml"
    path.write_text(yaml.safe_dump(data))
    result = run(load_protocol(path), progress=False)
    with open_run(result.path) as rf:
        final = rf.evaluations().phases[-1]
        return rf.arrays(f"recall/{int(final)}")["full_recall"]


@pytest.mark.slow
@pytest.mark.torch
def test_joint_sleep_raises_a_full_recall_on_average(tmp_path, one_torch_thread):
    """The joint configuration (docs/results.md): sleep raises A's per-trial full recall above
    the same networks without sleep on average, at a cost to B. Measured on development seeds
    1-20 (the shipped joint protocols, 20 networks, one torch batch each, one thread): A +0.19 ±
    0.10, higher in 14 of 20; B −0.08 ± 0.04; S2 0.00 (held-out seeds 101-120: A +0.16 ± 0.10,
    12 of 20; B −0.12). With the sleep's plasticity ×0 the gain is gone (A +0.02 ± 0.02, higher
    in 8 of 20; B +0.01), and this test fails."""
    no_sleep = joint_final("consolidation_joint_no_sleep", tmp_path)
    sleep = joint_final("consolidation_joint_sleep", tmp_path)
    gain = sleep - no_sleep  # [networks × (A, B, S2)]
    assert gain[:, 0].mean() > 0.08 and (gain[:, 0] > 0).sum() >= 11, gain[:, 0]
    assert gain[:, 1].mean() > -0.2, gain[:, 1]  # B pays, within the bound measured
    assert abs(gain[:, 2].mean()) < 0.05, gain[:, 2]


@pytest.mark.slow
@pytest.mark.torch
def test_soft_bound_sleep_restores_a_in_full_by_rates_not_order(tmp_path, one_torch_thread):
    """The soft-bound sleep configuration (docs/results.md, "Soft-bound sleep"): its sleep raises
    A's full recall above the same networks without sleep (in 18 or more of 20 networks; 20
    measured), B keeps most of its
    own, nightmares stay below the sleep on every memory — and the same sleep's spikes shuffled
    in time (the rate-matched surrogate) do as much: the recovery comes from how much A's
    neurons fire in sleep, not from the order of their reactivation, which is what the docs
    say of it. Measured (development seeds 1-20, 20 networks, one thread): A 0.00 -> 0.71 ± 0.03
    (higher in 20 of 20), B 1.00 -> 0.70 ± 0.05, S2 0.98; nightmares - sleep: A -0.56, B -0.61,
    S2 -0.87 (0 of 20 higher); surrogate A +0.76, B -0.52; neurons permuted A +0.00. Held-out
    seeds 301-320 and 101-120 (once each): A +0.64 ± 0.02 and +0.50 ± 0.03 (20 of 20 each), B
    -0.24 and -0.18, surrogate A +0.63 and +0.48."""
    no_sleep = joint_final("consolidation_soft_no_sleep", tmp_path)
    sleep = joint_final("consolidation_soft_sleep", tmp_path)
    nightmares = joint_final("consolidation_soft_nightmares", tmp_path)
    surrogate = joint_final("consolidation_soft_sleep", tmp_path, {"surrogate": "time"}, "_s")
    permuted = joint_final("consolidation_soft_sleep", tmp_path, {"surrogate": "neurons"}, "_p")
    gain = sleep - no_sleep  # [networks × (A, B, S2)]
    assert gain[:, 0].mean() > 0.5 and (gain[:, 0] > 0).sum() >= 18, gain[:, 0]
    assert sleep[:, 1].mean() > 0.5 and sleep[:, 2].mean() > 0.9, sleep.mean(0)
    worse = nightmares - sleep
    assert (worse.mean(0) < -0.3).all() and ((worse < 0).sum(0) >= 18).all(), worse.mean(0)
    # the rate-matched surrogate restores A as much (within 0.15): a rate effect
    assert abs((surrogate - sleep)[:, 0].mean()) < 0.15, (surrogate - sleep)[:, 0]
    assert (surrogate - no_sleep)[:, 0].mean() > 0.5, surrogate[:, 0]
    # ... and needs A's neurons' own activity: their spike trains given to others restore little
    assert (permuted - no_sleep)[:, 0].mean() < 0.2, permuted[:, 0]
