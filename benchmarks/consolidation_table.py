"""The spiking consolidation table and figure (docs/results.md, "Spiking sleep consolidation").

Runs every ``protocols/consolidation_*.yaml`` condition with ``--networks`` independent networks
(seeds ``seed … seed+N−1``, one torch batch), reads the cued-recall scores of each network from
``/recall/<phase>/`` and prints, per condition and test phase, mean ± SEM over networks of each
stored memory's (A, B, S2) graded sequence recall, full recall (fraction of trials, with the
lowest network's) and no response, pattern completion and discrimination; the final tests
paired by network against each condition's control; the synaptic footprint of network 0, and
each condition's wall time. ``--baseline`` adds the same scores in windows without a cue.
``--placement permuted`` runs the geometry-breaking null (every five-group memory placed off
the ring order; docs/consolidation.md). ``--engine brian2`` runs one network per seed instead.
Writes the figure (graded recall per memory across test phases, one panel per condition).

    python benchmarks/consolidation_table.py --networks 20 --seed 101 --baseline \
        --figure docs/img/consolidation/recall.png

``--only`` takes protocol names, condition labels and the named sets ``controls`` (no sleep,
sleep and every control), ``large``, ``joint`` (the joint configuration's sleep and no
sleep) and ``soft`` (the soft-bound sleep configuration: no sleep, sleep, nightmares and its
controls); ``--size large`` runs the conditions on the large configuration
(``models/assemblies_large.yaml``, every memory's groups ×10; run files named ``…_large``);
``benchmarks/consolidation_controls.sh`` runs the controls' tables in one command.
``--reuse`` reads existing run files in ``--out`` instead of running again (refusing one whose
resolved protocol or model differs from what the command would run, naming what differs).
``--set KEY=VALUE`` overrides a key of every condition's protocol, model keys included
(``model.…``: the model is written inline first), e.g.
``--set model.modulation.sleep.depression='{"*": 2}'``; ``--tag`` names such a variant's run
files; ``--control-set KEY=VALUE`` gives the no-sleep condition its own overrides instead (a
variant that changes the schedule, e.g. sleep bouts between blocks of learning, against the same
blocks without them), so that the paired table compares the two. ``--model FILE`` runs the
conditions on another model file (e.g. ``models/assemblies_random.yaml``, the
random-connectivity model of the earlier results).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml

from neurosleep.analysis.recall import footprint
from neurosleep.analysis.stats import mean_sem
from neurosleep.experiments.snn import Memory
from neurosleep.io.runfile import RunFile, open_run
from neurosleep.protocol import Protocol, build_protocol
from neurosleep.runner import run
from neurosleep.yamlfile import load_yaml, load_yaml_text

ROOT = Path(__file__).resolve().parents[1]


class Condition(NamedTuple):
    """A row of the table: a shipped protocol, with ``overrides`` (``--set`` items) and a
    ``tag`` naming its run files when it is a variant of another condition's protocol."""

    label: str
    protocol: str
    overrides: tuple[str, ...] = ()
    tag: str = ""


# the sleep's STDP gain (×3 in the model's sleep state) times these factors: the dose-response
DOSES = (0.25, 0.5, 2.0)
# controls of the sleep condition (docs/consolidation.md, "Controls")
CONTROLS = [
    Condition("sleep, plasticity off", "consolidation_sleep_no_plasticity"),
    Condition("awake rest, sleep's drive", "consolidation_awake_rest"),
    Condition("surrogate, shuffled in time", "consolidation_sleep_surrogate_time"),
    Condition("surrogate, neurons permuted", "consolidation_sleep_surrogate_neurons"),
    Condition("sleep, symmetric STDP", "consolidation_sleep_symmetric_stdp"),
    Condition("sleep, a_minus = a_plus", "consolidation_sleep_gonzalez_stdp"),
    Condition("sleep, A blocked", "consolidation_sleep_blocked"),
    *(
        Condition(
            f"sleep, STDP ×{3 * f:g}",
            "consolidation_sleep",
            (f"schedule.sleep.plasticity={f}",),
            f"_stdp{3 * f:g}",
        )
        for f in DOSES
    ),
]
# the soft-bound sleep configuration (models/assemblies_joint.yaml, B over all of A's neurons,
# soft-bound STDP in sleep; docs/results.md, "Soft-bound sleep"), its nightmares and controls
SOFT = [
    Condition("soft: no sleep", "consolidation_soft_no_sleep"),
    Condition("soft: sleep", "consolidation_soft_sleep"),
    Condition("soft: nightmares", "consolidation_soft_nightmares"),
    Condition(
        "soft: sleep, plasticity off",
        "consolidation_soft_sleep",
        ("schedule.sleep.plasticity=0",),
        "_no_plasticity",
    ),
    Condition(  # B lies on A's neurons and S2's are blocked anyway: every exc neuron is
        "soft: sleep, A blocked",
        "consolidation_soft_sleep",
        ("schedule.sleep.block=[A, S2]",),
        "_blocked",
    ),
    *(
        Condition(
            f"soft: surrogate, {what}",
            "consolidation_soft_sleep",
            (f"schedule.sleep.surrogate={how}",),
            f"_surrogate_{how}",
        )
        for what, how in (("shuffled in time", "time"), ("neurons permuted", "neurons"))
    ),
    Condition(
        "soft: sleep, additive STDP",
        "consolidation_soft_sleep",
        ('schedule.sleep.modulation={"form": {"*": "additive"}}',),
        "_additive",
    ),
    Condition(
        "soft: sleep, symmetric STDP",
        "consolidation_soft_sleep",
        ('schedule.sleep.modulation={"form": {"*": "symmetric"}}',),
        "_symmetric",
    ),
    Condition(
        "soft: sleep, a_minus = a_plus",
        "consolidation_soft_sleep",
        (
            'schedule.sleep.modulation={"form": {"*": "multiplicative"}, '
            '"depression": {"*": 1.4285714}}',
        ),
        "_gonzalez",
    ),
    Condition(  # the wake state with the sleep's background drive, the same STDP form
        "soft: awake rest, sleep's drive",
        "consolidation_soft_sleep",
        (
            "schedule.sleep.state=wake",
            'schedule.sleep.modulation={"form": {"*": "multiplicative"}, '
            '"scale": {"noise.rate": 4.0, "noise_i.rate": 4.0}}',
        ),
        "_awake_rest",
    ),
    *(  # the sleep state's STDP gain (×2 in models/assemblies_joint.yaml) times these factors
        Condition(
            f"soft: sleep, STDP ×{2 * f:g}",
            "consolidation_soft_sleep",
            (f"schedule.sleep.plasticity={f}",),
            f"_stdp{2 * f:g}",
        )
        for f in (0.375, 0.5, 2.0)
    ),
]
CONDITIONS = [
    Condition("no sleep", "consolidation_no_sleep"),
    Condition("sleep", "consolidation_sleep"),
    Condition("downscaling only", "consolidation_downscaling"),
    Condition("nightmares", "consolidation_nightmares"),
    Condition("interleaved", "consolidation_interleaved"),
    Condition("sleep sweep", "consolidation_sleep_sweep"),
    Condition("balance: no sleep", "consolidation_balance_no_sleep"),
    Condition("balance: sleep", "consolidation_balance_sleep"),
    Condition("joint: no sleep", "consolidation_joint_no_sleep"),
    Condition("joint: sleep", "consolidation_joint_sleep"),
    Condition("NREM + REM", "consolidation_nrem_rem"),
    Condition("REM only", "consolidation_rem_only"),
    *CONTROLS,
    *SOFT,
]

# named sets of conditions for --only: the controls table (docs/results.md, "Controls and the
# causal link to replay"), the large configuration's conditions and the joint configuration's
# pair (models/assemblies_joint.yaml; docs/results.md, "The joint configuration on held-out seeds")
SUITES = {
    "controls": ("no sleep", "sleep", *(c.label for c in CONTROLS)),
    "large": ("no sleep", "sleep", "sleep, plasticity off", "nightmares"),
    "joint": ("joint: no sleep", "joint: sleep"),
    "soft": tuple(c.label for c in SOFT),
}


def load_condition(name: str, overrides: list[str], model: str | None = None):
    """A condition's protocol with its model (or ``model``, a file) written inline (so
    ``model.…`` keys can be overridden too), then the overrides applied."""
    path = ROOT / "protocols" / f"{name}.yaml"
    data, locate = load_yaml(path)
    model_file = Path(model).resolve() if model else (path.parent / data["model"]).resolve()
    data["model"] = yaml.safe_load(json.dumps(yaml.safe_load(model_file.read_text())))
    data["model"].pop("format_version", None)
    return build_protocol(data, locate, overrides, base=path.parent, path=path)


# stored position -> ring block of a five-group memory: consecutive stored groups stay within
# the E->E radius (one or two blocks apart) but the stored order is not the ring order, so a
# wave spreading from the cue cannot score the order by itself (blocks 0 and 2 are equally
# far from block 1, the first stored group)
PLACEMENTS = {"ring": None, "permuted": (1, 0, 2, 4, 3)}


class Size(NamedTuple):
    """A network size: the model file every condition runs on (None: each protocol's own) and
    the factor its memories' neuron ranges are scaled by."""

    model: str | None
    scale: int


# the large configuration (models/assemblies_large.yaml, protocols/consolidation_large.yaml):
# 10x the neurons, groups of 200
SIZES = {"small": Size(None, 1), "large": Size("models/assemblies_large.yaml", 10)}


def memories(name: str, kind: str, scale: int = 1) -> list[str]:
    """The override placing every five-group memory of a condition's protocol by
    ``PLACEMENTS[kind]`` (B, the reverse of A, stays A's reverse) and multiplying its neuron
    ranges by ``scale``; none for ``ring`` at scale 1."""
    order = PLACEMENTS[kind]
    if order is None and scale == 1:
        return []
    data, _ = load_yaml(ROOT / "protocols" / f"{name}.yaml")
    stored = data["data"]["memories"]["stored"]
    for memory in stored:  # B lists A's blocks in reverse: the same map keeps it A's reverse
        groups = [":".join(str(int(b) * scale) for b in g.split(":")) for g in memory["groups"]]
        if order is not None and len(groups) == len(order):
            groups = [groups[k] for k in order]
        memory["groups"] = groups
    return [f"data.memories.stored={json.dumps(stored)}"]


class Absent:
    """A key one side of :func:`differences` lacks."""

    def __repr__(self) -> str:
        return "absent"


ABSENT = Absent()


def differences(stored: object, now: object, key: str = "") -> list[str]:
    """The dotted keys at which ``stored`` and ``now`` (nested mappings and lists) differ,
    each with both values: ``"seed: 11 in the file, 101 now"``."""
    if isinstance(stored, dict) and isinstance(now, dict):
        return [
            line
            for k in [*stored, *(k for k in now if k not in stored)]
            for line in differences(stored.get(k, ABSENT), now.get(k, ABSENT), f"{key}.{k}")
        ]
    if isinstance(stored, list) and isinstance(now, list) and len(stored) == len(now):
        return [
            line
            for j, (a, b) in enumerate(zip(stored, now, strict=True))
            for line in differences(a, b, f"{key}[{j}]")
        ]
    if stored == now:
        return []
    return [f"{key.lstrip('.') or 'the whole'}: {stored!r:.60} in the file, {now!r:.60} now"]


def refuse_other(rf: RunFile, protocol: Protocol) -> None:
    """Exit with an error naming the run file and what differs unless it is a complete run of
    ``protocol``: the same resolved protocol (seed, networks, overrides, the model inline; its
    ``output`` and ``name`` aside) and the same validated model (defaults included)."""
    if rf.status != "complete":
        raise SystemExit(f"{rf.path}: status {rf.status!r}, not a finished run")
    labels = ("output", "name")
    stored = {k: v for k, v in rf.stored_protocol().items() if k not in labels}
    now, _ = load_yaml_text(protocol.resolved_yaml(), "the protocol now")
    found = differences(stored, {k: v for k, v in now.items() if k not in labels})
    found += differences(
        rf.stored_model(), json.loads(protocol.model.model_dump_json()), "model (validated)"
    )
    if found:
        shown = "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
        raise SystemExit(
            f"{rf.path}: made with another protocol than this command runs ({shown}); "
            "remove it to re-run"
        )


def run_condition(condition: Condition, args: argparse.Namespace) -> tuple[list[Path], float]:
    """Run (or, with ``--reuse``, find) a condition's run files: one batched torch run of
    ``--networks`` networks, or one Brian2 run per seed (Brian2 runs one network). A file
    found with ``--reuse`` must hold the protocol the condition would run now (a file left
    from another seed, network count, override or model is an error, not a result)."""
    name = condition.protocol
    batched = args.engine == "torch"
    seeds = [args.seed] if batched else [args.seed + k for k in range(args.networks)]
    paths, wall = [], 0.0
    size = SIZES[args.size]
    for seed in seeds:
        suffix = ("" if batched else f"_seed{seed}") + ("" if size.scale == 1 else f"_{args.size}")
        path = Path(args.out) / f"{name}{condition.tag}_{args.engine}{args.tag}{suffix}.h5"
        paths.append(path)
        overrides = [
            f"data.networks={args.networks if batched else 1}",
            f"engine={args.engine}",
            "record.spikes=none",
            f"seed={seed}",
            *memories(name, args.placement, size.scale),
            *condition.overrides,
            *(args.set if condition.label != "no sleep" or args.control_set is None
              else args.control_set),
        ]  # fmt: skip
        model = args.model or (str(ROOT / size.model) if size.model else None)
        protocol = load_condition(name, overrides, model)
        if args.reuse and path.exists():
            with open_run(path) as rf:  # the phases' wall time, as measured when it ran
                refuse_other(rf, protocol)
                wall += rf.wall_seconds()
            continue
        start = time.perf_counter()
        run(protocol, output=path, overwrite=True, progress=False)
        wall += time.perf_counter() - start
    return paths, wall


MEASURES = (
    "sequence",
    "full_recall",
    "no_response",
    "completion",
    "discrimination",
    "spontaneous_sequence",
    "spontaneous_full_recall",
    "spontaneous_no_response",
)


def memory_names(path: Path) -> list[str]:
    """The stored memories' names, in the order of the recall arrays' columns."""
    with open_run(path) as rf:
        stored = yaml.safe_load(rf.provenance("protocol"))["data"]["memories"]["stored"]
    return [m["name"] for m in stored]


def recall_rows(paths: list[Path]) -> list[dict]:
    """Per test phase: name, and [networks × memories] graded sequence recall, full recall
    (fraction of trials with every group in order), no response (fraction of trials with no
    non-cued group firing), completion, discrimination (completion − intrusion: the memory's
    neurons recruited by its cue minus the other neurons recruited, a hit rate minus a
    false-alarm rate) and, from runs with ``baseline``, the same scores without a cue. A
    measure a run file lacks (written before it existed, or without ``baseline``) is NaN."""
    rows = []
    for path in paths:
        with open_run(path) as rf:
            names = {p.index: p.name for p in rf.phases()}
            for k, phase in enumerate(rf.evaluations().phases):
                arrays = rf.arrays(f"recall/{int(phase)}")
                arrays["discrimination"] = arrays["completion"] - arrays["intrusion"]
                missing = np.full_like(arrays["sequence"], np.nan)
                arrays = {m: arrays.get(m, missing) for m in MEASURES}
                if len(rows) <= k:
                    rows.append({"phase": names[int(phase)]} | {m: [] for m in MEASURES})
                for m in MEASURES:
                    rows[k][m].append(arrays[m])
    for row in rows:
        for m in MEASURES:
            row[m] = np.concatenate(row[m])
    return rows


def footprint_rows(path: Path) -> tuple[list[str], list[str]]:
    """Network 0's synaptic footprint (mean E->E weight, mV) after every wake and sleep phase."""
    with open_run(path) as rf:
        stored = yaml.safe_load(rf.provenance("protocol"))["data"]["memories"]["stored"]
        memories = {m["name"]: Memory.model_validate(m).indices() for m in stored}
        w = rf.weights("ee")
        names = {p.index: p.name for p in rf.phases()}
        stages = {  # snapshots after each stage run of a staged sleep: "sleep.nrem1", ...
            (st.phase, st.stop_time): f"{names[st.phase]}.{st.name}{st.cycle + 1}"
            for st in rf.stages()
        }
        fp = footprint(w.values, w.pre, w.post, memories)
        return [
            f"| {stages.get((int(phase), w.times[i]), names.get(int(phase), phase))} | "
            + " | ".join(f"{fp[k][i]:.2f}" for k in fp)
            + " |"
            for i, phase in enumerate(w.phases)
        ], list(fp)


def cell(values: np.ndarray, minimum: bool = False) -> str:
    """Mean ± SEM over networks (and, with ``minimum``, the lowest network's value)."""
    if np.isnan(values).all():
        return "–"
    m, s, _ = mean_sem(values)
    return f"{m:.2f} ± {s:.2f}" + (f" (min {values.min():.2f})" if minimum else "")


def table(results: dict[str, list[dict]], key: str, names: list[str], minimum: bool = False) -> str:
    """One row per condition and test phase, one column per memory of ``names`` ("–" where a
    condition stores fewer memories); ``minimum`` adds the lowest network's value."""
    lines = [
        "| condition | test phase | " + " | ".join(f"{n} ({key})" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for label, rows in results.items():
        for row in rows:
            values = row[key]
            cells = [
                cell(values[:, j], minimum) if j < values.shape[1] else "–"
                for j in range(len(names))
            ]
            lines.append(f"| {label} | {row['phase']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# (condition, its control): final tests compared network by network (the conditions share
# their networks up to the end of learning B)
PAIRS = [
    ("sleep", "no sleep"),
    ("downscaling only", "no sleep"),
    ("nightmares", "no sleep"),
    ("nightmares", "sleep"),
    ("interleaved", "no sleep"),
    ("sleep sweep", "no sleep"),
    ("balance: sleep", "balance: no sleep"),
    ("joint: sleep", "joint: no sleep"),
    ("NREM + REM", "sleep"),
    ("NREM + REM", "no sleep"),
    ("REM only", "sleep"),
    ("REM only", "no sleep"),
    *((c.label, "no sleep") for c in CONTROLS),
    ("soft: nightmares", "soft: sleep"),
    *((c.label, "soft: no sleep") for c in SOFT if c.label != "soft: no sleep"),
]


def paired(results: dict[str, list[dict]], names: list[str]) -> str:
    """Final test of each condition minus its control's, per network: mean ± SEM and how many
    networks are higher, for full recall, sequence recall and discrimination of each memory
    the two conditions share."""
    lines = [
        "| condition − control | measure | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for label, control in PAIRS:
        if label not in results or control not in results:
            continue
        for key in ("full_recall", "sequence", "discrimination"):
            a, b = results[label][-1][key], results[control][-1][key]
            shared = min(a.shape[1], b.shape[1])
            d = a[:, :shared] - b[:, :shared]
            parts = [
                f"{cell(d[:, j])} (higher in {(d[:, j] > 0).sum()}/{len(d)})"
                if j < d.shape[1] and not np.isnan(d[:, j]).all()
                else "–"
                for j in range(len(names))
            ]
            lines.append(f"| {label} − {control} | {key} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def recovery(rows: list[dict], key: str) -> np.ndarray | None:
    """Final test minus the test after learning B, per network [networks × memories] (None
    without a test named ``after_B``)."""
    after = [r for r in rows if r["phase"] == "after_B"]
    return rows[-1][key] - after[0][key] if after else None


def controls_table(results: dict[str, list[dict]]) -> str:
    """A's and B's recovery (final − after B) in every condition that has both tests: graded
    and full recall, mean ± SEM, and A's graded recovery paired against sleep's. (Against no
    sleep's it is the paired table's ``sequence`` row: the conditions share the test after B.)
    """
    lines = [
        "| condition | A recovery, graded | A recovery, full recall | B change, graded "
        "| A graded − sleep |",
        "|---|---|---|---|---|",
    ]
    sleep = recovery(results["sleep"], "sequence") if "sleep" in results else None
    for label, rows in results.items():
        graded, full = recovery(rows, "sequence"), recovery(rows, "full_recall")
        if graded is None:
            continue
        cells = [cell(graded[:, 0]), cell(full[:, 0]), cell(graded[:, 1]), "–"]
        if sleep is not None and label != "sleep":
            d = graded[:, 0] - sleep[:, 0]
            cells[-1] = f"{cell(d)} (higher in {(d > 0).sum()}/{len(d)})"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replay_counts(paths: list[Path]) -> dict[str, np.ndarray] | None:
    """Every network's replay events per memory in the run's sleep phases (summed over them):
    ``count`` and ``forward`` [networks × memories], ``memories`` (names); None when a run
    file has no per-network counts (written before they existed, or no sleep)."""
    out: dict[str, list] = {"count": [], "forward": []}
    for path in paths:
        with open_run(path) as rf:
            found = [
                rf.arrays(f"sleep/{p.index}")
                for p in rf.phases()
                if p.kind == "sleep" and f"sleep/{p.index}/network_replay_count" in rf.file
            ]
            if not found:
                return None
            out["count"].append(sum(a["network_replay_count"] for a in found))
            out["forward"].append(sum(a["network_replay_forward"] for a in found))
            names = [n.decode() for n in found[0]["replay_memories"]]
    return {k: np.concatenate(v) for k, v in out.items()} | {"memories": names}


MIN_VARYING = 3


def varying(values: np.ndarray) -> int:
    """How many of ``values`` differ from their most common value."""
    return len(values) - int(np.unique(values, return_counts=True)[1].max())


def bootstrap_r(x: np.ndarray, y: np.ndarray, resamples: int = 10000, seed: int = 0):
    """Pearson's r of ``x`` and ``y`` (one value per network) and its 95 % percentile
    bootstrap interval (networks resampled with replacement; resamples without variance in
    ``x`` or ``y`` left out); NaNs when fewer than ``MIN_VARYING`` networks differ from the most
    common value of ``x`` or of ``y`` (a correlation carried by one or two networks, e.g. one
    replay event in 20 networks, whose resamples mostly leave them out)."""
    if min(varying(x), varying(y)) < MIN_VARYING:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(x), (resamples, len(x)))
    xs, ys = x[pick], y[pick]
    xs, ys = xs - xs.mean(axis=1, keepdims=True), ys - ys.mean(axis=1, keepdims=True)
    denominator = np.sqrt((xs**2).sum(axis=1) * (ys**2).sum(axis=1))
    ok = denominator > 0
    rs = (xs * ys).sum(axis=1)[ok] / denominator[ok]
    low, high = np.percentile(rs, [2.5, 97.5])
    return float(np.corrcoef(x, y)[0, 1]), float(low), float(high)


def replay_table(results: dict[str, list[dict]], replays: dict[str, dict | None]) -> str:
    """Per condition with a spontaneous sleep: A's replay events per network and Pearson's r
    (95 % bootstrap interval) of A's recovery (graded, full recall) against them."""
    lines = [
        "| condition | networks | A events (mean ± SEM) | A forward | r(graded recovery, A events)"
        " | r(full-recall recovery, A events) |",
        "|---|---|---|---|---|---|",
    ]
    for label, counts in replays.items():
        graded = recovery(results[label], "sequence")
        if counts is None or graded is None or "A" not in counts["memories"]:
            continue
        a = counts["memories"].index("A")
        events, forward = counts["count"][:, a].astype(float), counts["forward"][:, a]
        cells = []
        for key in ("sequence", "full_recall"):
            r, low, high = bootstrap_r(events, recovery(results[label], key)[:, 0])
            cells.append("–" if np.isnan(r) else f"{r:.2f} [{low:.2f}, {high:.2f}]")
        lines.append(
            f"| {label} | {len(events)} | {cell(events)} | {cell(forward.astype(float))} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def figure(results: dict[str, list[dict]], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(results))
    nrows = -(-len(results) // cols)
    fig, axes = plt.subplots(
        nrows, cols, figsize=(3.2 * cols, 3.4 * nrows), sharey=True, squeeze=False
    )
    for ax in axes.flat[len(results) :]:
        ax.set_visible(False)
    for ax, (label, rows) in zip(axes.flat, results.items(), strict=False):
        x = np.arange(len(rows))
        for j, (memory, color) in enumerate(zip(names, ("C0", "C3", "C2"), strict=False)):
            if j >= rows[0]["sequence"].shape[1]:
                break
            stats = np.array([mean_sem(r["sequence"][:, j])[:2] for r in rows])
            ax.errorbar(x, stats[:, 0], yerr=stats[:, 1], color=color, marker="o", label=memory)
        ax.set_xticks(x, [r["phase"] for r in rows], rotation=60, ha="right", fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.axhline(0, color="0.7", lw=0.5)
    for row in axes:
        row[0].set_ylabel("sequence recall (mean ± SEM)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--engine", default="torch")
    parser.add_argument("--out", default="outputs/consolidation")
    parser.add_argument("--figure", default="docs/img/consolidation/recall.png")
    parser.add_argument(
        "--only",
        nargs="*",
        help=f"protocol names, condition labels or sets ({', '.join(SUITES)}) to run "
        "(default: all)",
    )
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE protocol override")
    parser.add_argument("--tag", default="", help="suffix of the run files' names (variants)")
    parser.add_argument(
        "--control-set",
        action="append",
        help="KEY=VALUE: the no-sleep condition's overrides instead of --set's (a variant whose "
        "control differs, e.g. the same blocks of learning without the sleep bouts)",
    )
    parser.add_argument(
        "--placement",
        choices=list(PLACEMENTS),
        default="ring",
        help="permuted: the geometry-breaking null (stored order is not the ring order)",
    )
    parser.add_argument(
        "--size",
        choices=list(SIZES),
        default="small",
        help="large: every condition on models/assemblies_large.yaml, memories' groups x10",
    )
    parser.add_argument("--model", help="model file to run every condition on (default: each's)")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="tests also score as many windows without a cue (data.memories.baseline=true)",
    )
    args = parser.parse_args()
    if args.baseline:
        args.set.append("data.memories.baseline=true")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    only = {n for name in args.only or () for n in SUITES.get(name, (name,))}
    results, walls, files, replays = {}, {}, {}, {}
    for condition in CONDITIONS:
        if args.only and not {condition.protocol, condition.label} & only:
            continue
        paths, wall = run_condition(condition, args)
        results[condition.label], walls[condition.label] = recall_rows(paths), wall
        files[condition.label] = paths[0]
        replays[condition.label] = replay_counts(paths)
    names = max((memory_names(path) for path in files.values()), key=len)
    over = f"mean ± SEM over {args.networks} networks"
    print(f"graded sequence recall, {over} ({args.engine})\n")
    print(table(results, "sequence", names))
    print(f"\nfull recall (fraction of trials: every group fired, in stored order), {over}\n")
    print(table(results, "full_recall", names, minimum=True))
    print(f"\nno response (fraction of trials: no group beyond the cue fired), {over}\n")
    print(table(results, "no_response", names))
    if args.baseline:
        for key in ("sequence", "full_recall", "no_response"):
            print(f"\nspontaneous baseline (the same windows, no cue): {key}, {over}\n")
            print(table(results, f"spontaneous_{key}", names))
    print(f"\npattern completion, {over}\n")
    print(table(results, "completion", names))
    print(f"\ndiscrimination (completion − intrusion), {over}\n")
    print(table(results, "discrimination", names))
    print("\nfinal test, paired by network\n")
    print(paired(results, names))
    print(f"\nrecovery (final test − test after B), {over}\n")
    print(controls_table(results))
    print("\nA's replay events in sleep per network, and their correlation with A's recovery\n")
    print(replay_table(results, replays))
    for label, path in files.items():
        rows, keys = footprint_rows(path)
        print(f"\nsynaptic footprint, {label} (network 0, mean weight in mV)\n")
        print("| after phase | " + " | ".join(keys) + " |")
        print("|---|" + "---|" * len(keys))
        print("\n".join(rows))
    print("\nwall time per run (s): " + ", ".join(f"{k} {v:.0f}" for k, v in walls.items()))
    if args.figure:
        figure(results, names, Path(args.figure))
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
