"""CUBA benchmarks: the torch engine against Brian2, measured in the same script.

Every section prints a markdown table of medians and ratios (torch time / Brian2 time: below
1 means torch is faster). Repeats are interleaved (A, B, A, B, ...) because the machine is
shared. Run one section at a time::

    python benchmarks/cuba_bench.py loop --repeats 5          # CUBA 4000, 1 s
    python benchmarks/cuba_bench.py loop --cpp                # + Brian2 cpp_standalone (1 thread)
    python benchmarks/cuba_bench.py sweep --sizes 4000 16000 64000 256000
    python benchmarks/cuba_bench.py batch --networks 32
    python benchmarks/cuba_bench.py cold
    python benchmarks/cuba_bench.py record
    python benchmarks/cuba_bench.py memory --durations 1000 20000
    python benchmarks/cuba_bench.py loop --device cuda         # where a GPU is lent

"Loop" is the time of the engine's ``run()`` call for 1 s of biological time after the network
is built (Brian2: warm code cache, spike monitor on; torch: spikes handed over per block, as a
recorded run does). On the CPU the torch engine runs its fused step kernel (numba, compiled on
first use and cached, like Brian2's cython code); "tensor loop" rows are the same engine with
``fused=False`` (one torch operation at a time, the path it takes on CUDA).
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neurosleep.engines import Recording, make_engine  # noqa: E402
from neurosleep.spec.snn import SNNSpec  # noqa: E402


def cuba_spec(n: int = 4000) -> SNNSpec:
    """CUBA with ``n`` neurons (80 % excitatory) and p = 80/n (80 inputs per neuron)."""
    data = yaml.safe_load((ROOT / "models" / "cuba.yaml").read_text())
    data = copy.deepcopy(data)
    data["populations"]["exc"]["size"] = n * 4 // 5
    data["populations"]["inh"]["size"] = n - n * 4 // 5
    for proj in data["projections"].values():
        proj["connect"]["p"] = min(1.0, 80.0 / n)
    return SNNSpec.model_validate(data)


class Discard:
    def spikes(self, *args) -> None:
        pass

    def state(self, *args) -> None:
        pass


SPIKES = Recording(spikes=("exc", "inh"), block=1000.0)


def loop_time(engine, duration: float = 1000.0, recording=SPIKES, sink=None) -> float:
    start = time.perf_counter()
    engine.run(duration, recording, sink or Discard())
    return time.perf_counter() - start


def interleaved(runners: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each runner, called in turn ``repeats`` times."""
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            times[name].append(run())
    return {name: float(np.median(t)) for name, t in times.items()}


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------- sections
class ReferenceBrian2:
    """Brian2's own CUBA script (one NeuronGroup, two Synapses, SpikeMonitor), in-process."""

    def __init__(self, n: int, target: str) -> None:
        import brian2 as b2

        b2.prefs.codegen.target = target
        self.b2, self.target = b2, target
        eqs = """dv/dt = (ge+gi-(v-El))/taum : volt (unless refractory)
                 dge/dt = -ge/taue : volt
                 dgi/dt = -gi/taui : volt"""
        ns = {
            "taum": 20 * b2.ms,
            "taue": 5 * b2.ms,
            "taui": 10 * b2.ms,
            "Vt": -50 * b2.mV,
            "Vr": -60 * b2.mV,
            "El": -49 * b2.mV,
        }
        p = b2.NeuronGroup(
            n,
            eqs,
            threshold="v>Vt",
            reset="v = Vr",
            refractory=5 * b2.ms,
            method="exact",
            namespace=ns,
        )
        p.v = "Vr + rand() * (Vt - Vr)"
        ce = b2.Synapses(p[: n * 4 // 5], p, on_pre="ge += 1.62*mV")
        ce.connect(p=80.0 / n)
        ci = b2.Synapses(p[n * 4 // 5 :], p, on_pre="gi += -9*mV")
        ci.connect(p=80.0 / n)
        self.net = b2.Network(p, ce, ci, b2.SpikeMonitor(p))

    def __call__(self, duration: float = 1000.0) -> float:
        import gc

        self.b2.prefs.codegen.target = self.target
        gc.freeze()
        start = time.perf_counter()
        self.net.run(duration * self.b2.ms, namespace={})
        elapsed = time.perf_counter() - start
        gc.unfreeze()
        return elapsed


def loop(args) -> None:
    spec = cuba_spec(4000)
    engines = {
        "torch float64": make_engine("torch", spec, seeds=[1], device=args.device),
        "torch float32": make_engine("torch", spec, seeds=[1], device=args.device, dtype="float32"),
        "torch float64, tensor loop": make_engine(
            "torch", spec, seeds=[1], device=args.device, fused=False
        ),
        "neurosleep brian2 engine, cython": make_engine("brian2", spec, seeds=[1], target="cython"),
    }
    runners = {k: (lambda d=1000.0, e=e: loop_time(e, d)) for k, e in engines.items()}
    runners["brian2 cython"] = ReferenceBrian2(4000, "cython")
    runners["brian2 numpy"] = ReferenceBrian2(4000, "numpy")
    for run in runners.values():  # warm-up: code generation, compilation, caches
        run(10.0)
    medians = interleaved({k: (lambda r=r: r()) for k, r in runners.items()}, args.repeats)
    if args.cpp:
        medians["brian2 cpp_standalone (1 thread)"] = cpp_standalone_loop(4000)
    base = medians["brian2 cython"]
    rows = [[k, f"{v:.3f}", f"{v / base:.2f}"] for k, v in medians.items()]
    print(
        f"CUBA 4000, 1 s biological time, median of {args.repeats} (device {args.device}); "
        "'brian2 <target>' = Brian2's own CUBA script (gc frozen during run())"
    )
    print(table(["engine", "loop s", "× Brian2 cython"], rows))
    torch_t = medians["torch float64"]
    print(
        "\ntorch float64 / each Brian2 target: "
        + ", ".join(f"{k}: {torch_t / v:.2f}" for k, v in medians.items() if k.startswith("brian2"))
    )


CPP_SCRIPT = """
import time, numpy as np
from brian2 import *
set_device('cpp_standalone', directory={directory!r})
prefs.devices.cpp_standalone.openmp_threads = 0
N = {n}
taum, taue, taui = 20*ms, 5*ms, 10*ms
Vt, Vr, El = -50*mV, -60*mV, -49*mV
eqs = '''dv/dt = (ge+gi-(v-El))/taum : volt (unless refractory)
dge/dt = -ge/taue : volt
dgi/dt = -gi/taui : volt'''
P = NeuronGroup(N, eqs, threshold='v>Vt', reset='v = Vr', refractory=5*ms, method='exact')
P.v = 'Vr + rand() * (Vt - Vr)'
Ce = Synapses(P[:N*4//5], P, on_pre='ge += 1.62*mV'); Ce.connect(p=80.0/N)
Ci = Synapses(P[N*4//5:], P, on_pre='gi += -9*mV'); Ci.connect(p=80.0/N)
s = SpikeMonitor(P)
run(1*second)
print('LOOP', device._last_run_time, 'RATE', s.num_spikes / N)
"""


def cpp_standalone_loop(n: int) -> float:
    """Brian2 cpp_standalone (1 thread) loop time of CUBA n, the reference's script."""
    with tempfile.TemporaryDirectory() as directory:
        code = CPP_SCRIPT.format(directory=directory, n=n)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("LOOP")]
        if not line:
            raise RuntimeError(out.stderr[-2000:])
        return float(line[0].split()[1])


def sweep(args) -> None:
    rows = []
    for n in args.sizes:
        spec = cuba_spec(n)
        torch_engine = make_engine("torch", spec, seeds=[1], device=args.device)
        brian = ReferenceBrian2(n, "cython")
        loop_time(torch_engine, 10.0)
        brian(10.0)
        repeats = args.repeats if n <= 16000 else 1
        m = interleaved(
            {"torch": lambda e=torch_engine: loop_time(e), "brian2": lambda b=brian: b()},
            repeats,
        )
        row = [n, f"{m['brian2']:.2f}", f"{m['torch']:.2f}", f"{m['torch'] / m['brian2']:.2f}"]
        if args.cpp:
            cpp = cpp_standalone_loop(n)
            row += [f"{cpp:.2f}", f"{m['torch'] / cpp:.2f}"]
        rows.append(row)
        print(row, flush=True)
        del torch_engine, brian
    header = ["N", "Brian2 cython s (its CUBA script)", f"torch {args.device} s", "torch / cython"]
    header += ["Brian2 cpp s", "torch / cpp"] if args.cpp else []
    print(table(header, rows))


def batch(args) -> None:
    spec = cuba_spec(4000)
    opts = {"device": args.device, "dtype": args.dtype}
    batched = make_engine("torch", spec, seeds=list(range(1, args.networks + 1)), **opts)
    single = make_engine("torch", spec, seeds=[1], **opts)
    brian = ReferenceBrian2(4000, "cython")
    for engine in (batched, single):
        loop_time(engine, 10.0)
    brian(10.0)
    m = interleaved(
        {
            "batched": lambda: loop_time(batched),
            "single": lambda: loop_time(single),
            "brian2": lambda: brian(),
        },
        args.repeats,
    )
    per = m["batched"] / args.networks
    print(
        f"{args.networks} CUBA 4000 networks in one torch simulation ({args.dtype}, "
        f"{args.threads} torch threads), 1 s, median of {args.repeats}"
    )
    print(
        table(
            ["run", "loop s", "s per network", "per network / Brian2 cython"],
            [
                [
                    f"torch batch of {args.networks}",
                    f"{m['batched']:.2f}",
                    f"{per:.3f}",
                    f"{per / m['brian2']:.3f}",
                ],
                [
                    "torch single",
                    f"{m['single']:.2f}",
                    f"{m['single']:.3f}",
                    f"{m['single'] / m['brian2']:.3f}",
                ],
                ["Brian2 cython", f"{m['brian2']:.2f}", f"{m['brian2']:.3f}", "1.000"],
            ],
        )
    )


COLD = """
import time; t0 = time.perf_counter()
import sys; sys.path.insert(0, {root!r})
from benchmarks.cuba_bench import ReferenceBrian2, cuba_spec, loop_time
from neurosleep.engines import make_engine
{setup}
if {engine!r} == "torch":
    loop_time(make_engine("torch", cuba_spec(4000), seeds=[1]))
else:
    ReferenceBrian2(4000, "cython")()
print('WALL', time.perf_counter() - t0)
"""


def cold(args) -> None:
    """Fresh processes, empty caches: torch (numba's kernel cache in a new temp dir, so the
    fused kernel compiles) vs Brian2 cython (its cache in a new temp dir)."""
    walls = {}
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as numba_cache:
        setup_b2 = (
            "import brian2; brian2.prefs.codegen.runtime.cython.cache_dir = "
            f"{cache!r}; brian2.prefs.codegen.runtime.cython.multiprocess_safe = False"
        )
        for name, engine, setup in (
            ("torch (fresh process)", "torch", ""),
            ("Brian2 cython, its CUBA script (fresh process, empty cache)", "brian2", setup_b2),
        ):
            code = COLD.format(root=str(ROOT), engine=engine, setup=setup)
            env = {**os.environ, "NUMBA_CACHE_DIR": numba_cache}
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env
            )
            line = [x for x in out.stdout.splitlines() if x.startswith("WALL")]
            if not line:
                raise RuntimeError(out.stderr[-2000:])
            walls[name] = float(line[0].split()[1])
            print(name, walls[name], flush=True)
    torch_wall = walls["torch (fresh process)"]
    print(
        table(
            ["first run, CUBA 4000 1 s (import + build + run)", "wall s", "Brian2 / torch"],
            [[k, f"{v:.1f}", f"{v / torch_wall:.1f}"] for k, v in walls.items()],
        )
    )


def record(args) -> None:
    """Loop time with all spikes + 100 membrane traces at 1 ms streamed to a run file, against
    the same network running on without recording (one engine, so that both see the same
    memory layout): ``--duration`` ms in ``--block`` ms blocks; the recorded
    time ends when every block is written and the file flushed (creating and closing the run
    file, which a run without recording does too, are not timed)."""
    from neurosleep.experiments.snn import RecorderSink
    from neurosleep.io.recorder import Recorder

    spec = cuba_spec(4000)
    full = Recording(
        spikes=("exc", "inh"), states={("v", "exc"): np.arange(100)}, interval=1.0, block=args.block
    )
    none = Recording(block=args.block)
    rows = []

    def recorded_run(engine, path: Path) -> float:
        rec = Recorder.create(path, attrs={}, n_tasks=1)
        sink = RecorderSink(rec, spec, 1.0)
        sink.write_spikes = {"exc", "inh"}
        start = time.perf_counter()
        engine.run(args.duration, full, sink)
        rec.flush()
        elapsed = time.perf_counter() - start
        rec.close("complete")
        return elapsed

    for name in ("torch", "brian2"):
        options = {"target": "cython"} if name == "brian2" else {"device": args.device}
        engine = make_engine(name, spec, seeds=[1], **options)  # one network runs both ways
        with tempfile.TemporaryDirectory() as tmp:
            files = (Path(tmp) / f"run{i}.h5" for i in range(args.repeats + 1))
            loop_time(engine, 10.0, none)
            recorded_run(engine, next(files))
            m = interleaved(
                {
                    "plain": lambda e=engine: loop_time(e, args.duration, none),
                    "recorded": lambda e=engine, f=files: recorded_run(e, next(f)),
                },
                args.repeats,
            )
        rows.append(
            [
                name,
                f"{m['plain']:.3f}",
                f"{m['recorded']:.3f}",
                f"{100 * (m['recorded'] / m['plain'] - 1):+.1f} %",
            ]
        )
        print(rows[-1], flush=True)
    print(
        f"all spikes + 100 v at 1 ms to HDF5 in {args.block:g} ms blocks; CUBA 4000, "
        f"{args.duration / 1000:g} s, every block written and flushed in the recorded time"
    )
    print(table(["engine", "no recording s", "recording s", "overhead"], rows))


MEMORY = """
import resource, sys, tempfile
sys.path.insert(0, {root!r})
import numpy as np
from pathlib import Path
from benchmarks.cuba_bench import cuba_spec
from neurosleep.engines import Recording, make_engine
from neurosleep.experiments.snn import RecorderSink
from neurosleep.io.recorder import Recorder
spec = cuba_spec(4000)
engine = make_engine({engine!r}, spec, seeds=[1], **{options!r})
full = Recording(spikes=("exc", "inh"), states={{("v", "exc"): np.arange(100)}}, interval=1.0,
                 block={block})
if {monitors!r}:
    import brian2 as b2
    s = b2.SpikeMonitor(engine.groups["exc"]); m = b2.StateMonitor(engine.groups["exc"], "v",
        record=np.arange(100), dt=1 * b2.ms)
    engine.net.add(s, m)
    engine.run({duration})
else:
    rec = Recorder.create(Path(tempfile.mkdtemp()) / "run.h5", attrs={{}}, n_tasks=1)
    sink = RecorderSink(rec, spec, 1.0); sink.write_spikes = {{"exc", "inh"}}
    engine.run({duration}, full, sink)
    rec.close("complete")
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def memory(args) -> None:
    """Peak resident memory (MB) of a fresh process after d ms, streamed vs Brian2 monitors."""
    cases = [
        ("torch, streamed to run file", "torch", {}, False),
        ("brian2 cython, streamed to run file", "brian2", {"target": "cython"}, False),
        ("brian2 cython, plain Brian2 monitors", "brian2", {"target": "cython"}, True),
    ]
    rows = []
    for label, engine, options, monitors in cases:
        peaks = []
        for duration in args.durations:
            code = MEMORY.format(
                root=str(ROOT),
                engine=engine,
                options=options,
                monitors=monitors,
                duration=float(duration),
                block=args.block,
            )
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("PEAK")]
            if not line:
                raise RuntimeError(out.stderr[-2000:])
            peaks.append(float(line[0].split()[1]))
        rows.append(
            [label, *(f"{p:.0f}" for p in peaks), f"{100 * (peaks[-1] / peaks[0] - 1):+.1f} %"]
        )
        print(rows[-1], flush=True)
    header = [
        "CUBA 4000, all spikes + 100 v at 1 ms",
        *(f"peak MB, {d / 1000:g} s" for d in args.durations),
        "growth",
    ]
    print(table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=textwrap.dedent(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("section", choices=["loop", "sweep", "batch", "cold", "record", "memory"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cpp", action="store_true", help="also time Brian2 cpp_standalone")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 16000, 64000, 256000])
    parser.add_argument("--networks", type=int, default=32)
    parser.add_argument("--durations", type=float, nargs="+", default=[1000.0, 20000.0])
    parser.add_argument("--dtype", default="float64", help="torch dtype (batch section)")
    parser.add_argument("--block", type=float, default=1000.0, help="recording block (ms)")
    parser.add_argument("--duration", type=float, default=10000.0, help="record section (ms)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    {
        "loop": loop,
        "sweep": sweep,
        "batch": batch,
        "cold": cold,
        "record": record,
        "memory": memory,
    }[args.section](args)


if __name__ == "__main__":
    main()
