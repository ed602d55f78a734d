"""SRA sleep step: event-driven torch implementation against the dense literal translation.

The network is the paper's 784-1200-1200-10 trained on task 1 of split MNIST 5k (12 epochs,
as protocols/split_mnist_sra.yaml), so that sleep activity is the real one. Both
implementations get identical input spikes; the script prints

- the largest weight difference after ``--check-steps`` steps in float64 (same input spikes),
- the time per step of each in float32 (median of interleaved repeats) and their ratio,
- with ``--protocol``, the wall time of the whole split_mnist_sra protocol (5 tasks, wake and
  sleep) for one seed.

Run: ``.venv/bin/python benchmarks/sra_sleep_step.py [--protocol]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from neurosleep.experiments.ann import ANNData, ANNWake, build_stream, train
from neurosleep.experiments.ann_network import MLP, make_optimizer
from neurosleep.sleep.sra import (
    SRAParams,
    input_spikes,
    normalisation_factors,
    sleep_image,
    sra_sleep,
    sra_sleep_dense,
)
from neurosleep.spec import load_model

ROOT = Path(__file__).resolve().parents[1]


def trained_network(seed: int) -> tuple[list[torch.Tensor], torch.Tensor, list[float]]:
    torch.manual_seed(seed)  # dropout masks use the global generator, as in a run
    spec, _ = load_model(ROOT / "models/mlp_sra.yaml")
    stream = build_stream(ANNData(), seed)
    g = torch.Generator().manual_seed(seed)
    net = MLP(spec, g)
    x = torch.as_tensor(stream.tasks[0].x_train)
    y = torch.as_tensor(stream.tasks[0].y_train)
    train(
        net,
        make_optimizer(net.parameters(), "sgd", 0.1, 0.5, (0.9, 0.999)),
        x,
        y,
        ANNWake(epochs=12),
        g,
        lambda fraction: None,
    )
    with torch.no_grad():
        maxima = [float(a.max().clamp(min=0)) for a in net.activations(x)]
    return [w.detach().clone() for w in net.weights], x, maxima


def setup(weights, x, maxima, steps: int, dtype: torch.dtype, seed: int):
    params = SRAParams(steps=steps, block=steps)
    alphas = [params.alpha_scale * f for f in normalisation_factors(weights, maxima)]
    g = torch.Generator().manual_seed(seed)
    spikes = list(input_spikes(sleep_image(x.to(dtype), params, g), (28, 28), params, g))
    rule = {"inc": params.inc, "dec": params.dec, "decay": params.decay}
    return [w.to(dtype) for w in weights], alphas, list(params.beta), spikes, rule


def per_step(function, weights, alphas, beta, spikes, rule) -> float:
    start = time.perf_counter()
    function(weights, alphas, beta, iter(spikes), **rule)
    return (time.perf_counter() - start) / sum(b.shape[0] for b in spikes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check-steps", type=int, default=200)
    parser.add_argument("--dense-steps", type=int, default=40)
    parser.add_argument("--fast-steps", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--protocol", action="store_true", help="also time the whole protocol")
    args = parser.parse_args()

    weights, x, maxima = trained_network(seed=1)
    w64, alphas, beta, spikes, rule = setup(weights, x, maxima, args.check_steps, torch.float64, 2)
    fast, n_fast = sra_sleep(w64, alphas, beta, iter(spikes), **rule)
    dense, n_dense = sra_sleep_dense(w64, alphas, beta, iter(spikes), **rule)
    diff = max(float((a - b).abs().max()) for a, b in zip(fast, dense, strict=True))
    moved = max(float((a - b).abs().max()) for a, b in zip(fast, w64, strict=True))
    print(
        f"float64, {args.check_steps} steps, identical input spikes: spikes per layer "
        f"event-driven {n_fast.tolist()} dense {n_dense.tolist()}; "
        f"max |W_event - W_dense| = {diff:.2e} (largest weight change {moved:.2e})"
    )

    dense_times, fast_times = [], []
    for repeat in range(args.repeats):  # interleaved: load changes hit both alike
        case = setup(weights, x, maxima, args.dense_steps, torch.float32, 10 + repeat)
        dense_times.append(per_step(sra_sleep_dense, *case))
        case = setup(weights, x, maxima, args.fast_steps, torch.float32, 10 + repeat)
        fast_times.append(per_step(sra_sleep, *case))
    d, f = statistics.median(dense_times), statistics.median(fast_times)
    print(
        f"float32 step, median of {args.repeats}: dense {d * 1e3:.3f} ms, "
        f"event-driven {f * 1e3:.4f} ms, ratio {d / f:.0f}x  "
        f"(threads: {torch.get_num_threads()})"
    )

    if args.protocol:
        from neurosleep.protocol import load_protocol
        from neurosleep.runner import run

        protocol = load_protocol(ROOT / "protocols/split_mnist_sra.yaml")
        start = time.perf_counter()
        result = run(protocol, output=Path("/tmp/sra_benchmark.h5"), overwrite=True, progress=False)
        print(
            f"whole split_mnist_sra protocol (seed {protocol.seed}): "
            f"{time.perf_counter() - start:.1f} s wall; {result.headline}"
        )


if __name__ == "__main__":
    main()
