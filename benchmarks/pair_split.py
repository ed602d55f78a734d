"""Can memories A and B be recalled in full at once on the shared neurons? An oracle sleep.

González et al. 2020's sleep ends with the synapses between the two sequences' shared neurons
split: a neuron pair keeps one direction, some pairs A's, the others B's (S1 and S1*). This
script builds that end state by hand — no sleep dynamics — and tests recall on it, to ask
whether the state a sleep should reach recalls both memories in this network at all.

After learning A, B and S2 (the shipped ``consolidation_sleep`` protocol up to its test after
B), the sleep phase is replaced by ``pair_split`` (registered here, instantaneous). A *shared
pair* is a reciprocal pair of E→E synapses whose one direction is A's (both neurons in A's
groups, the pre neuron's group earlier in A) and whose other is B's (both neurons in B's groups,
the pre neuron's group earlier in B). Each shared pair is given to A with probability
``fraction`` (drawn once per pair from ``pair_seed`` and the network's seed, so a pair given to
A at 0.25 is given to A at 0.5 too): both its synapses go back to their weights at the end of
learning A (A's direction strong, B's weak); the other shared pairs keep their weights after
learning B. With ``one_way`` A's other synapses — A-direction synapses without a reverse
synapse in B's direction (≈ 40 % of them at p 0.6 when B covers A's neurons) — go back to
their weights after learning A too; no B synapse changes by those. Within-group synapses,
B's synapses outside shared pairs and every other synapse keep their weights (so ``fraction``
1 with ``one_way`` is not the whole network after learning A). Then the final test (27 trials
per memory).

    python benchmarks/pair_split.py --networks 20 --seed 1 --out outputs/pair_split

prints, per condition, full recall and graded score of A, B and S2 (mean ± SEM over the
networks and the lowest network), the no-sleep control being ``fraction`` 0 without
``one_way``. ``--set KEY=VALUE`` changes the protocol (model keys too) for every condition.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from consolidation_table import load_condition, memory_names, recall_rows, refuse_other
from pydantic import Field

from neurosleep.analysis.stats import mean_sem
from neurosleep.io.runfile import open_run
from neurosleep.params import Params
from neurosleep.runner import run
from neurosleep.sleep import SleepAlgorithm, SNNContext, SNNOutcome, register
from neurosleep.sleep.spontaneous import Protect
from neurosleep.yamlfile import load_yaml

ROOT = Path(__file__).resolve().parents[1]


class PairSplitParams(Params):
    """``sleep: {kind: pair_split, fraction: 0.5, one_way: false}``."""

    fraction: float = Field(ge=0, le=1, description="share of the shared pairs given to A")
    one_way: bool = Field(False, description="also restore A's synapses outside shared pairs")
    first: str = Field("A", description="the memory whose learned weights come back")
    second: str = Field("B", description="the interfering memory over the same neurons")
    projection: str = Field("ee", description="the plastic projection (weights in mV)")
    pair_seed: int = Field(0, description="with each network's seed, draws the pairs given back")
    # the experiment keeps each plastic projection's weights at the start of the wake phase a
    # sleep's `protect.since` names: here only to read them (no synapse is protected)
    protect: Protect = Field(
        Protect(since="learn_B"), description="since: the wake phase that follows learning first"
    )


def positions(groups: list[np.ndarray], size: int) -> np.ndarray:
    """Each neuron's group index in a memory's stored order (-1 outside it) [size]."""
    position = np.full(size, -1)
    for k, g in enumerate(groups):
        position[g] = k
    return position


def reverse_synapses(pre: np.ndarray, post: np.ndarray, size: int) -> np.ndarray:
    """Index of each synapse's reverse (post -> pre) synapse, -1 where there is none [S];
    ``pre``, ``post`` sorted by (pre, post) as every projection's synapses are."""
    keys = pre * size + post
    wanted = post * size + pre
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[at] == wanted, at, -1)


def split(params: PairSplitParams, context: SNNContext) -> SNNOutcome:
    """Give a share of the shared pairs (and with ``one_way`` A's other synapses) their weights
    at the start of wake phase ``protect.since`` back, in every network; no time passes."""
    size = context.model.size(context.memory_population)
    in_first = positions(context.memories[params.first], size)
    in_second = positions(context.memories[params.second], size)
    learned = context.wake_weights[params.protect.since][params.projection]  # [networks][S] mV
    seeds = context.engine.seeds
    new = []
    for b, (net, now) in enumerate(
        zip(context.engine.networks, context.engine.get_weights(params.projection), strict=True)
    ):
        syn = net.synapses[params.projection]
        pre, post = in_first[syn.pre], in_first[syn.post]
        first_direction = (pre >= 0) & (post >= 0) & (pre < post)
        pre, post = in_second[syn.pre], in_second[syn.post]
        second_direction = (pre >= 0) & (post >= 0) & (pre < post)
        reverse = reverse_synapses(syn.pre, syn.post, size)
        shared = first_direction & (reverse >= 0)
        shared[shared] = second_direction[reverse[shared]]
        w = now.copy()
        draw = np.random.default_rng((params.pair_seed, seeds[b])).random(len(w))
        given = np.flatnonzero(shared & (draw < params.fraction))
        w[given], w[reverse[given]] = learned[b][given], learned[b][reverse[given]]
        if params.one_way:
            own = first_direction & ~shared
            w[own] = learned[b][own]
        new.append(w)
    context.engine.set_weights(params.projection, new)
    context.progress(1.0)
    return SNNOutcome(changed=(params.projection,))


register(
    SleepAlgorithm(
        name="pair_split",
        Params=PairSplitParams,
        model_kind="snn",
        run=split,
        summary="oracle: A's learned weights back on a share of the shared pairs",
    )
)


def condition(args: argparse.Namespace, fraction: float, one_way: bool) -> Path:
    """Run (or, with ``--reuse``, find and check) the protocol with the oracle split in place of
    its sleep; returns the run file."""
    path = Path(args.out) / (
        f"{args.protocol}_f{fraction:g}{'_oneway' if one_way else ''}{args.tag}_s{args.seed}.h5"
    )
    schedule = load_yaml(ROOT / "protocols" / f"{args.protocol}.yaml")[0]["schedule"]
    schedule = [p for p in schedule if "sleep" not in p]
    split = {"name": "split", "kind": "pair_split", "fraction": fraction, "one_way": one_way}
    schedule.insert(-1, {"sleep": split})  # before the final test
    overrides = [
        f"seed={args.seed}",
        f"data.networks={args.networks}",
        'record={"spikes": "none", "weights": "none"}',  # nothing recorded, default block
        f"schedule={json.dumps(schedule)}",
        *args.set,
    ]
    protocol = load_condition(args.protocol, overrides, args.model and str(ROOT / args.model))
    if args.reuse and path.exists():
        with open_run(path) as rf:
            refuse_other(rf, protocol)
        return path
    run(protocol, output=path, overwrite=True, progress=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1])
    parser.add_argument("--protocol", default="consolidation_sleep", help="a shipped protocol")
    parser.add_argument("--model", help="model file (default: the protocol's)")
    parser.add_argument("--out", default="outputs/pair_split")
    parser.add_argument("--tag", default="")
    parser.add_argument("--set", action="append", default=[], help="protocol KEY=VALUE")
    parser.add_argument(
        "--one-way",
        choices=("no", "yes", "both"),
        default="both",
        help="restore A's one-way synapses",
    )
    parser.add_argument("--reuse", action="store_true", help="read existing run files (checked)")
    args = parser.parse_args()
    print(
        f"networks {args.seed}…{args.seed + args.networks - 1}; full recall (mean ± SEM, lowest)"
        " / graded, final test"
    )
    print("| A's pairs | A's one-way synapses | A | B | S2 |\n|---|---|---|---|---|")
    for one_way in {"no": (False,), "yes": (True,), "both": (False, True)}[args.one_way]:
        for fraction in args.fractions:
            path = condition(args, fraction, one_way)
            final = recall_rows([path])[-1]
            cells = []
            for m, _ in enumerate(memory_names(path)):
                full = final["full_recall"][:, m]
                full_ms = mean_sem(full)
                cells.append(
                    f"{full_ms.mean:.2f} ± {full_ms.sem:.2f} ({full.min():.2f}) / "
                    f"{final['sequence'][:, m].mean():.2f}"
                )
            restored = "restored" if one_way else "as after B"
            print(f"| {fraction:g} | {restored} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
