"""The spiking consolidation experiment on both engines: do torch and Brian2 agree over seeds?

Runs (or, with ``--reuse``, reads) each condition on torch (one batch of ``--networks``
networks, seeds ``seed … seed+N−1``) and on Brian2 (one run per seed, ``--brian2-networks`` of
them, default ``--networks``; the same seeds, so the same connectivity and initial weights,
different noise streams) and compares, for every test phase and stored memory, the networks'
sequence recall and discrimination (completion − intrusion) between the engines with Welch's
t-test. The tolerance (docs/results.md, "Engines"): the engines agree
when no comparison has p < 0.05 / K, K the number of comparisons (Bonferroni: a 5 % chance,
over all K together, of calling equal engines different). Also prints each engine's paired
difference of every condition's final test from no sleep, per memory and measure.

    python benchmarks/consolidation_engines.py --networks 10 --seed 11 --reuse
"""

from __future__ import annotations

import argparse
from itertools import product

import numpy as np
from consolidation_table import CONDITIONS, cell, memory_names, recall_rows, run_condition
from scipy.stats import ttest_ind

ENGINES = ("torch", "brian2")


def shared(condition: dict[str, list[dict]], first: dict[str, list[dict]], k: int) -> bool:
    """Whether test phase ``k`` of a condition is one the first condition already has: the
    conditions share their networks up to where they diverge, so such a phase has the same
    name and the same recall on both engines (compared once, not once per condition)."""
    for engine in ENGINES:
        mine = condition[engine][k]
        same = [r for r in first[engine] if r["phase"] == mine["phase"]]
        if not same or not np.array_equal(same[0]["sequence"], mine["sequence"]):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--brian2-networks", type=int, help="default: --networks")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default="outputs/consolidation")
    parser.add_argument(
        "--only",
        nargs="*",
        default=["consolidation_no_sleep", "consolidation_sleep", "consolidation_nightmares"],
        help="protocol names to compare",
    )
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    conditions = {c.protocol: c for c in CONDITIONS if not c.tag}
    labels = {name: c.label for name, c in conditions.items()}
    networks = {"torch": args.networks, "brian2": args.brian2_networks or args.networks}
    if min(networks.values()) < 2:
        raise SystemExit(f"Welch's t-test needs at least 2 networks per engine, got {networks}")
    rows: dict[str, dict[str, list[dict]]] = {}
    memories: dict[str, list[str]] = {}  # each condition's stored memories (balance: A, B)
    for name in args.only:
        rows[name] = {}
        for engine in ENGINES:
            run_args = argparse.Namespace(
                engine=engine, networks=networks[engine], seed=args.seed, out=args.out,
                tag="", reuse=args.reuse, set=[], model=None, placement="ring", size="small",
            )  # fmt: skip
            paths, _ = run_condition(conditions[name], run_args)
            rows[name][engine] = recall_rows(paths)
        memories[name] = memory_names(paths[0])
    first = args.only[0]
    pairs = [
        (name, k, j, measure)
        for measure in ("sequence", "discrimination")
        for name in rows
        for k in range(len(rows[name]["torch"]))
        if name == first or not shared(rows[name], rows[first], k)
        for j in range(len(memories[name]))
    ]
    alpha = 0.05 / len(pairs)
    seeds = {e: f"{args.seed}–{args.seed + n - 1}" for e, n in networks.items()}
    print(
        f"mean ± SEM over networks (torch: seeds {seeds['torch']}, Brian2: seeds "
        f"{seeds['brian2']}); Welch's t-test, K = {len(pairs)} comparisons, "
        f"agreement: p ≥ 0.05/K = {alpha:.4f}\n"
    )
    print("| measure | condition | test phase | memory | torch | Brian2 | difference | p |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 1.0
    for name, k, j, measure in pairs:
        t, b = (rows[name][e][k][measure][:, j] for e in ENGINES)
        p = float(ttest_ind(t, b, equal_var=False).pvalue) if np.ptp(np.r_[t, b]) > 0 else 1.0
        worst = min(worst, p)
        print(
            f"| {measure} | {labels[name]} | {rows[name]['torch'][k]['phase']} | "
            f"{memories[name][j]} | {cell(t)} | "
            f"{cell(b)} | {t.mean() - b.mean():+.2f} | {p:.3f}{' *' if p < alpha else ''} |"
        )
    verdict = "agree" if worst >= alpha else "DIFFER"
    print(f"\nsmallest p {worst:.4f} against {alpha:.4f}: the engines {verdict}")
    control = "consolidation_no_sleep"
    for name in rows:
        if name == control or control not in rows:
            continue
        shared_memories = min(len(memories[name]), len(memories[control]))  # A, B, (S2)
        for measure, j, engine in product(
            ("sequence", "discrimination"), range(shared_memories), ENGINES
        ):
            final, control_final = rows[name][engine][-1], rows[control][engine][-1]
            d = final[measure][:, j] - control_final[measure][:, j]
            print(
                f"{labels[name]} − no sleep, {memories[name][j]} {measure} final, {engine}: "
                f"{cell(d)} (higher in {(d > 0).sum()} of {len(d)})"
            )


if __name__ == "__main__":
    main()
