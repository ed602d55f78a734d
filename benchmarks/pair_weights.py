"""Per-pair E->E weights between two groups of a consolidation run (network 0), per snapshot.

Does the link between two groups carry both directions on different neuron pairs (a joint
representation, González et al. 2020)? For every reciprocally connected pair (i in ``--pre``,
j in ``--post``, synapses i→j and j→i both present) it counts the pairs with only i→j strong,
only j→i strong, and both strong ("strong": above ``--strong`` mV, more than any initial weight
of the shipped model, U(1, 2) mV; "weak": below ``--weak`` mV), and prints the mean weight of
every synapse from one group to the other, after each wake and sleep phase:

    python benchmarks/pair_weights.py outputs/consolidation/consolidation_sleep_torch.h5 \
        --pre 60:80 --post 80:100

``--pre`` and ``--post`` take ranges and single neurons separated by commas (``0,2,5:8``), e.g.
the neurons of one of B's groups in the joint protocols.
"""

from __future__ import annotations

import argparse

import numpy as np

from neurosleep.io.runfile import open_run


def neurons(text: str) -> list[int]:
    """``"60:80"`` -> 60 … 79; ``"0,2,5:8"`` -> 0, 2, 5, 6, 7 (ranges and single neurons)."""
    out = []
    for part in text.split(","):
        start, _, stop = part.partition(":")
        out.extend(range(int(start), int(stop)) if stop else [int(start)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_file")
    parser.add_argument("--pre", default="60:80", help="first group's neurons (A's group 3)")
    parser.add_argument("--post", default="80:100", help="second group's neurons (A's group 4)")
    parser.add_argument("--projection", default="ee")
    parser.add_argument("--strong", type=float, default=2.0, help="mV")
    parser.add_argument("--weak", type=float, default=1.0, help="mV")
    args = parser.parse_args()
    g, h = neurons(args.pre), neurons(args.post)
    with open_run(args.run_file) as rf:
        w = rf.weights(args.projection)
        names = {p.index: p.name for p in rf.phases()}
    if w.pre is None:
        raise SystemExit(f"{args.run_file}: /weights/{args.projection} is not a sparse projection")
    pre, post = w.pre.astype(int), w.post.astype(int)
    forward = np.isin(pre, g) & np.isin(post, h)
    backward = np.isin(pre, h) & np.isin(post, g)
    index = {(i, j): s for s, (i, j) in enumerate(zip(pre.tolist(), post.tolist(), strict=True))}
    pairs = np.array(
        [(s, index[(j, i)]) for (i, j), s in index.items() if i in g and j in h and (j, i) in index]
    )
    print(
        f"network 0, {args.pre} -> {args.post}: {forward.sum()} synapses forward, "
        f"{backward.sum()} backward, {len(pairs)} reciprocal pairs; strong > {args.strong:g} mV, "
        f"weak < {args.weak:g} mV\n"
    )
    print("| after phase | forward (mV) | backward (mV) | forward only | backward only | both |")
    print("|---|---|---|---|---|---|")
    for values, phase in zip(w.values, w.phases, strict=True):
        f, b = values[pairs[:, 0]], values[pairs[:, 1]]
        strong_f, strong_b = f > args.strong, b > args.strong
        print(
            f"| {names.get(int(phase), phase)} | {values[forward].mean():.2f} "
            f"| {values[backward].mean():.2f} "
            f"| {np.sum(strong_f & (b < args.weak))} | {np.sum(strong_b & (f < args.weak))} "
            f"| {np.sum(strong_f & strong_b)} |"
        )


if __name__ == "__main__":
    main()
