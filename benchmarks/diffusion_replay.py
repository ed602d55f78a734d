"""Diffusion dreams beside the VAE's generative replay: ACC, time, dream quality, nightmares.

    PYTHONPATH=. python benchmarks/diffusion_replay.py --seeds 11 12 13 14 15 --jobs 2
    PYTHONPATH=. python benchmarks/diffusion_replay.py --seeds 11 12 13 14 15 --reuse
    PYTHONPATH=. python benchmarks/diffusion_replay.py --nightmares --seeds 11 12 13 --jobs 2
    PYTHONPATH=. python benchmarks/diffusion_replay.py --seeds 11 --reuse \
        --figures docs/img/diffusion

Runs ``protocols/split_mnist_diffusion_replay.yaml`` and the baseline
``protocols/split_mnist_generative_replay.yaml`` (the VAE) on the same seeds, each in a fresh
process as a user runs it (``--threads 1``, ``OMP_NUM_THREADS=1``; ``--jobs`` at a time), and
prints:

- ACC (mean ± SEM over seeds, SEM = sample SD/√n) of each, and the time of each: wall seconds
  and processor seconds (user + system of the run's process, which a busy machine inflates
  less than wall time), with the diffusion/VAE ratios;
- dream quality per task, from the dreams the diffusion runs wrote to ``/replay/<phase>/``: the
  accuracy of a joint classifier (784-400-400-10, trained here on all five tasks of the seed's
  training set: Adam 1e-3, batch 128, 2500 steps) on the labelled dreams, and k-NN manifold
  precision/recall (k = 3, Kynkäänniemi et al. 2019) of the dreams against as many real
  training images of the classes seen so far, in that classifier's last hidden layer (400
  features);
- with ``--nightmares``: ACC of the diffusion protocol with corrupted dreams — Gaussian noise of
  std ``corrupt_noise`` on every replayed pixel, or a fraction ``corrupt_labels`` of wrong
  labels — one row per level (the degradation curve); the clean row is the comparison's runs
  of the same seeds, which must exist;
- with ``--figures DIR``: ``dreams.png`` (recorded dreams after each task, one row per task)
  and ``trajectory.png`` (one dream's DDIM states from noise to image) from the first seed.

``--reuse`` keeps run files (and their recorded times, ``times.json`` in ``--out``) that exist.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neurosleep.analysis.dreams import manifold_precision_recall  # noqa: E402
from neurosleep.analysis.stats import mean_sem  # noqa: E402
from neurosleep.experiments.ann import ANNData, ANNWake, build_stream, train  # noqa: E402
from neurosleep.experiments.ann_network import MLP  # noqa: E402
from neurosleep.io.runfile import open_run  # noqa: E402
from neurosleep.spec.mlp import MLPSpec  # noqa: E402

DIFFUSION, VAE = "split_mnist_diffusion_replay", "split_mnist_generative_replay"
REPLAY_KEY = "schedule.1.repeat.phases.0.wake.replay"
PROTOCOLS = {  # name -> (protocol, overrides): the VAE records dreams too (changing nothing else)
    "diffusion": (DIFFUSION, []),
    "vae": (VAE, [f"{REPLAY_KEY}.record_dreams=200"]),
}


def run(protocol: str, seed: int, sets: list[str], path: Path) -> tuple[float, float]:
    """(wall, processor) seconds of ``neurosleep run`` in a fresh process."""
    command = [sys.executable, "-m", "neurosleep.cli", "run", f"protocols/{protocol}.yaml"]
    command += ["--seed", str(seed), "--quiet", "--threads", "1", "--overwrite"]
    command += ["--output", str(path)]
    for item in sets:
        command += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    if status:
        raise RuntimeError(f"{' '.join(command)}\n{child.stderr.read()[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def run_all(jobs: list[tuple[str, str, int, list[str]]], out: Path, workers: int, reuse: bool):
    """Run (name, protocol, seed, overrides) jobs not already done (with ``reuse``: a run file
    and its times, ``NAME.json``, exist); returns {name: (wall, processor) seconds}."""
    out.mkdir(parents=True, exist_ok=True)

    def done(name: str) -> bool:
        return (out / f"{name}.h5").exists() and (out / f"{name}.json").exists()

    def one(job):
        name, protocol, seed, sets = job
        times = run(protocol, seed, sets, out / f"{name}.h5")
        (out / f"{name}.json").write_text(json.dumps(times))
        print(f"  {name}: {times[0]:.0f} s wall, {times[1]:.0f} s processor", flush=True)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, [j for j in jobs if not (reuse and done(j[0]))]))
    return {j[0]: tuple(json.loads((out / f"{j[0]}.json").read_text())) for j in jobs}


def final_acc(path: Path) -> float:
    with open_run(path) as r:
        return float(np.nanmean(r.evaluations().metrics["accuracy"][-1]))


# ------------------------------------------------------------------ dream quality
def joint_classifier(seed: int):
    """The seed's task stream and a 784-400-400-10 classifier trained on all of it."""
    stream = build_stream(ANNData(dataset="mnist5k"), seed)
    spec = MLPSpec(
        kind="mlp",
        name="joint",
        layers=[784, 400, 400, 10],
        activation="relu",
        output="linear",
        bias=True,
        init="kaiming_uniform",
    )
    g = torch.Generator().manual_seed(seed)
    net = MLP(spec, g)
    x = torch.as_tensor(np.concatenate([t.x_train for t in stream.tasks]), dtype=torch.float32)
    y = torch.as_tensor(np.concatenate([t.y_train for t in stream.tasks]), dtype=torch.long)
    wake = ANNWake(optimizer="adam", lr=1e-3, batch_size=128, iterations=2500, loss="cross_entropy")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    train(net, optimizer, x, y, wake, g, lambda fraction: None)
    return stream, net


def dream_quality(path: Path, stream, net) -> np.ndarray:
    """[task × (joint accuracy on dreams, precision, recall)] of one run's recorded dreams
    against as many real training images of the seen classes (drawn with the run's seed)."""
    with open_run(path) as r:
        seed = int(r.stored_protocol()["seed"])
    rng = np.random.default_rng(seed)
    rows = []
    with open_run(path) as r:
        wakes = [p.index for p in r.phases() if p.kind == "wake"]
        for k, phase in enumerate(wakes):
            arrays = r.arrays(f"replay/{phase}")
            dreams = torch.as_tensor(arrays["dreams"], dtype=torch.float32)
            labels = torch.as_tensor(arrays["dream_labels"])
            real = np.concatenate([t.x_train for t in stream.tasks[: k + 1]])
            real = torch.as_tensor(real[rng.choice(len(real), len(dreams), replace=False)])
            with torch.no_grad():
                hidden_dreams, out = net.activations(dreams)[-2:]
                hidden_real = net.activations(real.float())[-2]
            accuracy = float((out.argmax(1) == labels).double().mean())
            precision, recall = manifold_precision_recall(
                hidden_real.numpy(), hidden_dreams.numpy(), k=3
            )
            rows.append((accuracy, precision, recall))
    return np.array(rows)


# ------------------------------------------------------------------ figures
def figures(path: Path, folder: Path) -> None:
    from neurosleep.analysis import style

    folder.mkdir(parents=True, exist_ok=True)
    with open_run(path) as r:
        wakes = [p.index for p in r.phases() if p.kind == "wake"]
        recorded = [r.arrays(f"replay/{phase}") for phase in wakes]
    per_row = 12
    with style.context():
        fig = style.new_figure("two", height_in=0.62 * len(recorded) + 0.3)
        axes = fig.subplots(len(recorded), per_row, squeeze=False)
        for k, arrays in enumerate(recorded):
            order = np.argsort(arrays["dream_labels"][:per_row], kind="stable")
            for j, ax in enumerate(axes[k]):
                i = order[j]
                ax.imshow(arrays["dreams"][i].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                ax.set_title(str(int(arrays["dream_labels"][i])), pad=1)
            axes[k][0].set_ylabel(f"task {k + 1}", rotation=0, ha="right", va="center")
        fig.suptitle("diffusion dreams (label: the classifier's) after each task")
        fig.savefig(folder / "dreams.png", dpi=150)
        trajectory = recorded[-1]["trajectory"]
        fig = style.new_figure("two", height_in=1.0)
        axes = fig.subplots(1, len(trajectory), squeeze=False)[0]
        for i, ax in enumerate(axes):
            ax.imshow(np.clip(trajectory[i].reshape(28, 28), 0, 1), cmap="gray_r", vmin=0, vmax=1)
            ax.set_axis_off()
        axes[0].set_title("noise", loc="left")
        axes[-1].set_title("dream", loc="right")
        fig.suptitle(f"one dream's {len(trajectory) - 1} DDIM steps (after task {len(wakes)})")
        fig.savefig(folder / "trajectory.png", dpi=150)
    print(f"figures: {folder / 'dreams.png'}, {folder / 'trajectory.png'}")


# ------------------------------------------------------------------ main
def nightmare_levels(noise: list[float], flip: list[float]) -> list[tuple[str, list | None]]:
    """(label, overrides of the diffusion protocol) per level; "clean" is the plain run."""
    return [
        ("clean", None),
        *((f"noise {s}", [f"{REPLAY_KEY}.corrupt_noise={s}"]) for s in noise),
        *((f"labels {f}", [f"{REPLAY_KEY}.corrupt_labels={f}"]) for f in flip),
    ]


def nightmares(args) -> None:
    levels = nightmare_levels(args.noise, args.flip)
    names = {}
    for label, sets in levels:
        stem = DIFFUSION if sets is None else f"nightmare_{label.replace(' ', '_')}"
        names[label] = [f"{stem}_seed{s}" for s in args.seeds]
    jobs = [
        (name, DIFFUSION, s, sets)
        for label, sets in levels[1:]
        for name, s in zip(names[label], args.seeds, strict=True)
    ]
    run_all(jobs, args.out, args.jobs, args.reuse)
    missing = [n for n in names["clean"] if not (args.out / f"{n}.h5").exists()]
    if missing:  # the clean row is the main comparison's runs, never started here
        raise SystemExit(f"run the comparison first (no {', '.join(missing)} in {args.out})")
    print(f"\ncorrupted dreams, seeds {args.seeds}\n\n| dreams | ACC (mean ± SEM) | n |")
    print("|---|---|---|")
    for label, _ in levels:
        accs = [final_acc(args.out / f"{n}.h5") for n in names[label]]
        print(f"| {label} | {mean_sem(accs)} | {len(accs)} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "diffusion")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs")
    parser.add_argument("--protocols", nargs="+", choices=list(PROTOCOLS), default=list(PROTOCOLS))
    parser.add_argument("--nightmares", action="store_true", help="the degradation curve")
    parser.add_argument("--noise", type=float, nargs="*", default=[0.5, 1.0], help="its noise")
    parser.add_argument("--flip", type=float, nargs="*", default=[0.3, 0.6], help="its labels")
    parser.add_argument("--figures", type=Path, help="folder for the figures (first seed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 CPU cores)")
    if args.nightmares:
        nightmares(args)
        return 0
    jobs = [
        (f"{PROTOCOLS[p][0]}_seed{s}", *PROTOCOLS[p], s) for s in args.seeds for p in args.protocols
    ]
    jobs = [(name, protocol, s, sets) for name, protocol, sets, s in jobs]
    times = run_all(jobs, args.out, args.jobs, args.reuse)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print("\n| protocol | n | ACC (mean ± SEM) | wall s (mean) | processor s (mean) |")
    print("|---|---|---|---|---|")
    mean_time = {}
    for p in args.protocols:
        names = [f"{PROTOCOLS[p][0]}_seed{s}" for s in args.seeds]
        accs = [final_acc(args.out / f"{n}.h5") for n in names]
        wall, cpu = np.mean([times[n] for n in names], axis=0)
        mean_time[p] = (wall, cpu)
        print(f"| {PROTOCOLS[p][0]} | {len(accs)} | {mean_sem(accs)} | {wall:.0f} | {cpu:.0f} |")
    if len(mean_time) == 2:
        (w1, c1), (w0, c0) = mean_time["diffusion"], mean_time["vae"]
        print(f"\ndiffusion / VAE time: wall ×{w1 / w0:.2f}, processor ×{c1 / c0:.2f}")
    classifiers = {s: joint_classifier(s) for s in args.seeds}
    for p in args.protocols:
        quality = np.stack(
            [
                dream_quality(args.out / f"{PROTOCOLS[p][0]}_seed{s}.h5", *classifiers[s])
                for s in args.seeds
            ]
        )  # [seed × task × 3]
        print(f"\n{p} dreams after each task (mean ± SEM over seeds; joint classifier, k = 3):\n")
        print("| after task | joint accuracy on labelled dreams | precision | recall |")
        print("|---|---|---|---|")
        for k in range(quality.shape[1]):
            cells = " | ".join(mean_sem(quality[:, k, m]) for m in range(3))
            print(f"| {k + 1} | {cells} |")
        cells = " | ".join(mean_sem(quality[:, :, m].mean(1)) for m in range(3))
        print(f"| mean | {cells} |")
    if args.figures:
        figures(args.out / f"{DIFFUSION}_seed{args.seeds[0]}.h5", args.figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
