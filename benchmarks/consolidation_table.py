"""The spiking consolidation table and figure (docs/results.md, "Spiking sleep consolidation").

Runs every ``protocols/consolidation_*.yaml`` condition with ``--networks`` independent networks
(seeds ``seed … seed+N−1``, one torch batch), reads the cued-recall scores of each network from
``/recall/<phase>/`` and prints, per condition and test phase, mean ± SEM over networks of the
graded sequence recall of A and B, full recall and no response (fractions of trials), pattern
completion and discrimination, the synaptic footprint of network 0, and each condition's wall
time; ``--baseline`` adds the same scores in windows without a cue. ``--engine brian2`` runs
one network per seed instead. Writes the figure (recall per memory across test phases, one panel
per condition).

    python benchmarks/consolidation_table.py --networks 5 --seed 11 \
        --figure docs/img/consolidation/recall.png

``--reuse`` reads existing run files in ``--out`` instead of running again. ``--set KEY=VALUE``
overrides a key of every condition's protocol, model keys included (``model.…``: the model is
written inline first), e.g. ``--set model.modulation.sleep.depression='{"*": 2}'``; ``--tag``
names such a variant's run files. ``--model FILE`` runs the conditions on another model file
(e.g. ``models/assemblies_random.yaml``, the random-connectivity model of the earlier results).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml

from neurosleep.analysis.recall import footprint
from neurosleep.experiments.snn import Memory
from neurosleep.io.runfile import open_run
from neurosleep.protocol import build_protocol
from neurosleep.runner import run
from neurosleep.yamlfile import load_yaml

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = [
    ("no sleep", "consolidation_no_sleep"),
    ("sleep", "consolidation_sleep"),
    ("downscaling only", "consolidation_downscaling"),
    ("nightmares", "consolidation_nightmares"),
    ("interleaved", "consolidation_interleaved"),
    ("sleep sweep", "consolidation_sleep_sweep"),
    ("balance: no sleep", "consolidation_balance_no_sleep"),
    ("balance: sleep", "consolidation_balance_sleep"),
    ("NREM + REM", "consolidation_nrem_rem"),
    ("REM only", "consolidation_rem_only"),
]


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


def placement(name: str, kind: str) -> list[str]:
    """The override placing every five-group memory of a condition's protocol by
    ``PLACEMENTS[kind]`` (B, the reverse of A, stays A's reverse); none for ``ring``."""
    order = PLACEMENTS[kind]
    if order is None:
        return []
    data, _ = load_yaml(ROOT / "protocols" / f"{name}.yaml")
    stored = data["data"]["memories"]["stored"]
    for memory in stored:  # B lists A's blocks in reverse: the same map keeps it A's reverse
        if len(memory["groups"]) == len(order):
            memory["groups"] = [memory["groups"][k] for k in order]
    return [f"data.memories.stored={json.dumps(stored)}"]


def run_condition(name: str, args: argparse.Namespace) -> tuple[list[Path], float]:
    """Run (or, with ``--reuse``, find) a condition's run files: one batched torch run of
    ``--networks`` networks, or one Brian2 run per seed (Brian2 runs one network)."""
    batched = args.engine == "torch"
    seeds = [args.seed] if batched else [args.seed + k for k in range(args.networks)]
    paths, wall = [], 0.0
    for seed in seeds:
        suffix = "" if batched else f"_seed{seed}"
        path = Path(args.out) / f"{name}_{args.engine}{args.tag}{suffix}.h5"
        paths.append(path)
        if args.reuse and path.exists():
            with open_run(path) as rf:  # the phases' wall time, as measured when it ran
                if rf.status != "complete":
                    raise SystemExit(f"{path}: status {rf.status!r}, not a finished run")
                wall += float(sum(p.wall_seconds for p in rf.phases()))
            continue
        overrides = [
            f"data.networks={args.networks if batched else 1}",
            f"engine={args.engine}",
            "record.spikes=none",
            f"seed={seed}",
            *placement(name, args.placement),
            *args.set,
        ]
        protocol = load_condition(name, overrides, args.model)
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


def mean_sem(values: np.ndarray) -> tuple[float, float]:
    n = len(values)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0


def cell(values: np.ndarray) -> str:
    if np.isnan(values).all():
        return "–"
    m, s = mean_sem(values)
    return f"{m:.2f} ± {s:.2f}"


def table(results: dict[str, list[dict]], key: str, names: list[str]) -> str:
    """One row per condition and test phase, one column per memory of ``names`` ("–" where a
    condition stores fewer memories)."""
    lines = [
        "| condition | test phase | " + " | ".join(f"{n} ({key})" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for label, rows in results.items():
        for row in rows:
            values = row[key]
            cells = [cell(values[:, j]) if j < values.shape[1] else "–" for j in range(len(names))]
            lines.append(f"| {label} | {row['phase']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# (condition, its control): final tests compared network by network (the conditions share
# their networks up to the end of learning B)
PAIRS = [
    ("sleep", "no sleep"),
    ("downscaling only", "no sleep"),
    ("nightmares", "no sleep"),
    ("nightmares", "sleep"),
    ("balance: sleep", "balance: no sleep"),
    ("NREM + REM", "sleep"),
    ("REM only", "sleep"),
    ("REM only", "no sleep"),
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
            stats = np.array([mean_sem(r["sequence"][:, j]) for r in rows])
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
    parser.add_argument("--only", nargs="*", help="protocol names to run (default: all)")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE protocol override")
    parser.add_argument("--tag", default="", help="suffix of the run files' names (variants)")
    parser.add_argument(
        "--placement",
        choices=list(PLACEMENTS),
        default="ring",
        help="permuted: the geometry-breaking null (stored order is not the ring order)",
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
    results, walls, files = {}, {}, {}
    for label, name in CONDITIONS:
        if args.only and name not in args.only:
            continue
        paths, wall = run_condition(name, args)
        results[label], walls[label] = recall_rows(paths), wall
        files[label] = paths[0]
    names = max((memory_names(path) for path in files.values()), key=len)
    over = f"mean ± SEM over {args.networks} networks"
    print(f"graded sequence recall, {over} ({args.engine})\n")
    print(table(results, "sequence", names))
    print(f"\nfull recall (fraction of trials: every group fired, in stored order), {over}\n")
    print(table(results, "full_recall", names))
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
