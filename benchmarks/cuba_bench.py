"""CUBA benchmarks: the torch engine against Brian2, measured in the same script.

Every section prints a markdown table of medians and ratios (torch time / Brian2 time: below
1 means torch is faster). Repeats are interleaved (A, B, A, B, ...) because the machine is
shared. Run one section at a time::

    python benchmarks/cuba_bench.py loop --repeats 5          # CUBA 4000, 1 s
    python benchmarks/cuba_bench.py loop --cpp                # + Brian2 cpp_standalone (1 thread)
    python benchmarks/cuba_bench.py plastic --cpp             # models/cuba_stdp.yaml (STDP on E→E)
    python benchmarks/cuba_bench.py plastic --threads 2       # its batch of 32 on 2 threads
    python benchmarks/cuba_bench.py plastic --dtype float32   # the torch runs in float32
    python benchmarks/cuba_bench.py fidelity --seeds 5        # rates: torch vs Brian2's script
    python benchmarks/cuba_bench.py sweep --sizes 4000 16000 64000 256000
    python benchmarks/cuba_bench.py batch --networks 32
    python benchmarks/cuba_bench.py batches --model cuba_stdp  # per network, batches of 8 … 32
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


def cuba_spec(n: int = 4000, model: str = "cuba") -> SNNSpec:
    """CUBA with ``n`` neurons (80 % excitatory) and p = 80/n (80 inputs per neuron);
    ``model``: ``cuba`` or ``cuba_stdp`` (plastic E→E) from models/."""
    data = yaml.safe_load((ROOT / "models" / f"{model}.yaml").read_text())
    data = copy.deepcopy(data)
    data["populations"]["exc"]["size"] = n * 4 // 5
    data["populations"]["inh"]["size"] = n - n * 4 // 5
    for proj in data["projections"].values():
        proj["connect"]["p"] = min(1.0, 80.0 / n)
    return SNNSpec.model_validate(data)


class Discard:
    """A sink that counts the spikes it is handed and keeps nothing else."""

    def __init__(self) -> None:
        self.count = 0

    def spikes(self, population, times, ids) -> None:
        self.count += len(ids)

    def state(self, *args) -> None:
        pass


SPIKES = Recording(spikes=("exc", "inh"), block=1000.0)


def load() -> str:
    """The machine's load average (1, 5, 15 min), to print beside every table."""
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


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
def brian2_cuba(b2, n: int, plastic: bool = False, drawn=None):
    """Brian2's own CUBA script on the module ``b2`` (runtime or standalone device): a
    ``Network`` of one ``NeuronGroup``, two ``Synapses`` (``plastic``: the E→E part of the
    excitatory pathway its own ``Synapses`` with additive pair STDP and event-driven traces,
    as ``models/cuba_stdp.yaml``), a ``SpikeMonitor``; returns (network, monitor, E→E synapses
    or None). ``drawn``: a neurosleep ``Network`` of ``models/cuba.yaml`` whose synapses and
    initial potentials replace the script's random ones (static only)."""
    eqs = """dv/dt = (ge+gi-(v-El))/taum : volt (unless refractory)
             dge/dt = -ge/taue : volt
             dgi/dt = -gi/taui : volt"""
    ms, mv = b2.ms, b2.mV
    ns = {
        "taum": 20 * ms, "taue": 5 * ms, "taui": 10 * ms,
        "Vt": -50 * mv, "Vr": -60 * mv, "El": -49 * mv,
        "w_max": 3.24 * mv, "a_plus": 0.01, "a_minus": 0.0105, "tau_plus": 20 * ms,
        "tau_minus": 20 * ms,
    }  # fmt: skip
    ne = n * 4 // 5
    p = b2.NeuronGroup(
        n, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms, method="exact", namespace=ns
    )
    p.v = "Vr + rand() * (Vt - Vr)"
    if drawn is not None:
        return _brian2_drawn(b2, p, drawn)
    groups = [p]
    ee = None
    if plastic:
        ee = b2.Synapses(
            p[:ne],
            p[:ne],
            """w : volt
               dx/dt = -x/tau_plus : 1 (event-driven)
               dy/dt = -y/tau_minus : 1 (event-driven)""",
            on_pre="""ge_post += w
                      w = clip(w - a_minus*w_max*y, 0*mV, w_max)
                      x += 1""",
            on_post="""y += 1
                       w = clip(w + a_plus*w_max*x, 0*mV, w_max)""",
            namespace=ns,
        )
        ee.connect(p=80.0 / n)
        ee.w = 1.62 * mv
        ce = b2.Synapses(p[:ne], p[ne:], on_pre="ge += 1.62*mV")
        groups.append(ee)
    else:
        ce = b2.Synapses(p[:ne], p, on_pre="ge += 1.62*mV")
    ce.connect(p=80.0 / n)
    ci = b2.Synapses(p[ne:], p, on_pre="gi += -9*mV")
    ci.connect(p=80.0 / n)
    monitor = b2.SpikeMonitor(p)
    return b2.Network(*groups, ce, ci, monitor), monitor, ee


def _brian2_drawn(b2, p, drawn):
    """Brian2's CUBA equations over the synapses and initial potentials of ``drawn``."""
    ne = len(drawn.initial["exc"]["v"])
    p.v = np.concatenate([drawn.initial["exc"]["v"], drawn.initial["inh"]["v"]]) * b2.mV
    offset = {"exc": 0, "inh": ne}
    pathways = []
    for name, syn in drawn.synapses.items():
        pre, post = drawn.spec.projections[name].pre, drawn.spec.projections[name].post
        var = "ge" if pre == "exc" else "gi"
        s = b2.Synapses(p, p, "w : volt", on_pre=f"{var}_post += w")
        s.connect(i=syn.pre + offset[pre], j=syn.post + offset[post])
        s.w = syn.weight * b2.mV
        pathways.append(s)
    monitor = b2.SpikeMonitor(p)
    return b2.Network(p, *pathways, monitor), monitor, None


class ReferenceBrian2:
    """Brian2's own CUBA script (:func:`brian2_cuba`), in-process; calling it runs
    ``duration`` ms and returns the seconds of ``run()``. ``last`` holds the rate (Hz) and
    mean |Δw| (mV, plastic only) of the last call."""

    def __init__(self, n: int, target: str, plastic: bool = False, drawn=None) -> None:
        import brian2 as b2

        b2.prefs.codegen.target = target
        self.b2, self.target, self.n = b2, target, n
        self.net, self.monitor, self.ee = brian2_cuba(b2, n, plastic, drawn)
        self.last: dict[str, float] = {}

    def __call__(self, duration: float = 1000.0) -> float:
        import gc

        self.b2.prefs.codegen.target = self.target
        spikes = self.monitor.num_spikes
        w0 = None if self.ee is None else np.asarray(self.ee.w[:] / self.b2.mV)
        gc.freeze()
        start, cpu = time.perf_counter(), time.process_time()
        self.net.run(duration * self.b2.ms, namespace={})
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        gc.unfreeze()
        self.last = {"rate": (self.monitor.num_spikes - spikes) / self.n / (duration * 1e-3)}
        self.last["cpu"] = cpu
        if w0 is not None:
            self.last["dw"] = float(np.abs(np.asarray(self.ee.w[:] / self.b2.mV) - w0).mean())
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
import sys; sys.path.insert(0, {root!r})
import numpy as np, brian2 as b2
from benchmarks.cuba_bench import brian2_cuba
b2.set_device('cpp_standalone', directory={directory!r})
b2.prefs.devices.cpp_standalone.openmp_threads = 0
net, monitor, ee = brian2_cuba(b2, {n}, {plastic})
net.run(1 * b2.second, namespace={{}})
dw = float(np.abs(np.asarray(ee.w[:] / b2.mV) - 1.62).mean()) if ee is not None else float("nan")
print('LOOP', b2.device._last_run_time, 'RATE', monitor.num_spikes / {n}, 'DW', dw)
"""


class CppStandalone:
    """Brian2 cpp_standalone (1 thread) CUBA ``n``, 1 s: built and run once in a subprocess
    (``first``: its loop seconds, rate in Hz, mean |Δw| in mV); calling it runs the compiled
    binary again (so that it can be interleaved with the other runners) and returns the loop
    seconds Brian2 records (``results/last_run_info.txt``). Without OpenMP Brian2 measures
    them with ``std::clock()``: processor time, not wall time (they differ on a busy
    machine), so ``last["cpu"]`` holds them and the wall time is not known (NaN)."""

    def __init__(self, n: int, plastic: bool = False) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.directory = Path(self.tmp.name)
        code = CPP_SCRIPT.format(root=str(ROOT), directory=self.tmp.name, n=n, plastic=plastic)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("LOOP")]
        if not line:
            raise RuntimeError(out.stderr[-2000:])
        words = line[0].split()
        self.first = {"loop": float(words[1]), "rate": float(words[3]), "dw": float(words[5])}
        self.last = {"rate": self.first["rate"], "dw": self.first["dw"]}

    def __call__(self, duration: float = 1000.0) -> float:
        self.last["cpu"] = self.cpu_seconds()
        return float("nan")

    def cpu_seconds(self) -> float:
        results = self.directory / "results"
        subprocess.run(
            ["./main", "--results_dir", f"{results}/"],
            cwd=self.directory,
            check=True,
            capture_output=True,
            env={**os.environ, "LD_BIND_NOW": "1"},
        )
        return float((results / "last_run_info.txt").read_text().split()[0])


def cpp_standalone_loop(n: int) -> float:
    """Brian2 cpp_standalone (1 thread) loop time of CUBA n, the reference's script."""
    return CppStandalone(n).first["loop"]


def sweep(args) -> None:
    rows, plastic = [], args.model == "cuba_stdp"
    for n in args.sizes:
        spec = cuba_spec(n, args.model)
        torch_engine = make_engine("torch", spec, seeds=[1], device=args.device)
        brian = ReferenceBrian2(n, "cython", plastic=plastic)
        loop_time(torch_engine, 10.0)
        brian(10.0)
        repeats = args.repeats if n <= 16000 else 1
        m = interleaved(
            {"torch": lambda e=torch_engine: loop_time(e), "brian2": lambda b=brian: b()},
            repeats,
        )
        row = [n, f"{m['brian2']:.2f}", f"{m['torch']:.2f}", f"{m['torch'] / m['brian2']:.2f}"]
        if args.cpp:
            cpp = CppStandalone(n, plastic).first["loop"]
            row += [f"{cpp:.2f}", f"{m['torch'] / cpp:.2f}"]
        rows.append(row)
        print(row, flush=True)
        del torch_engine, brian
    header = ["N", "Brian2 cython s (its CUBA script)", f"torch {args.device} s", "torch / cython"]
    header += ["Brian2 cpp s", "torch / cpp"] if args.cpp else []
    print(f"{args.model}, 1 s; {load()}")
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


class PlasticTorch:
    """A torch engine on ``models/cuba_stdp.yaml`` (or static CUBA); calling it runs
    ``duration`` ms and returns the loop seconds; ``last``: rate (Hz) and mean |Δw| (mV, E→E,
    over all networks) of that call."""

    def __init__(self, model: str, networks: int = 1, seeds=None, n: int = 4000, **options) -> None:
        self.spec = cuba_spec(n, model)
        self.networks = networks
        seeds = seeds or list(range(1, networks + 1))
        self.engine = make_engine("torch", self.spec, seeds=seeds, **options)
        self.last: dict[str, float] = {}

    def __call__(self, duration: float = 1000.0) -> float:
        w0 = np.concatenate(self.engine.get_weights("ee"))
        sink = Discard()
        cpu = time.process_time()
        elapsed = loop_time(self.engine, duration, sink=sink)
        cpu = time.process_time() - cpu
        w1 = np.concatenate(self.engine.get_weights("ee"))
        size = sum(p.size for p in self.spec.populations.values()) * self.networks
        self.last = {"rate": sink.count / size / (duration * 1e-3)}
        self.last["dw"] = float(np.abs(w1 - w0).mean())
        self.last["cpu"] = cpu
        return elapsed


def batches(args) -> None:
    """Processor time per network per simulated second of one torch engine per batch size
    (``--batches``; CUBA or plastic CUBA of ``--n`` neurons), interleaved: whether a network
    costs the same in a batch of any size, as it should (each runs its block alone). CPU only:
    processor time says nothing of a GPU's."""
    if args.device != "cpu":
        raise SystemExit(f"batches times processor time on the CPU, not on {args.device!r}")
    runners = {b: PlasticTorch(args.model, b, n=args.n, dtype=args.dtype) for b in args.batches}
    for run in runners.values():
        run(10.0)
    cpu = {b: [] for b in runners}
    for _ in range(args.repeats):
        for b, run in runners.items():
            run()
            cpu[b].append(run.last["cpu"] / b)
    print(
        f"{args.model}, {args.n} neurons, 1 s, {args.dtype}, {args.threads} torch thread(s), "
        f"median of {args.repeats}; {load()}"
    )
    rows = [
        [b, f"{1e3 * np.median(cpu[b]):.1f}", f"{runners[b].last['rate']:.2f}"] for b in runners
    ]
    print(table(["networks", "processor ms per network", "rate Hz"], rows))


def graphs(args) -> None:
    """The tensor loop against the same step captured as a CUDA graph (``graphs=True``), static
    and plastic CUBA of ``--n`` neurons, one network and ``--networks``, 1 s, interleaved
    (on the CPU the step runs uncaptured: no gain expected). Rates and mean |Δw| of both say
    they simulate the same networks."""
    opts = {"device": args.device, "dtype": args.dtype, "fused": False}
    rows = []
    for model in ("cuba", "cuba_stdp"):
        for networks in (1, args.networks):
            runners = {
                form: PlasticTorch(model, networks, n=args.n, graphs=form == "graph", **opts)
                for form in ("loop", "graph")
            }
            for run in runners.values():
                run(10.0)
            m = interleaved(runners, args.repeats)
            loop, graph = runners["loop"].last, runners["graph"].last
            rows.append(
                [model, networks, f"{m['loop']:.3f}", f"{m['graph']:.3f}",
                 f"{m['loop'] / m['graph']:.2f}", f"{loop['rate']:.2f} / {graph['rate']:.2f}",
                 f"{loop['dw']:.4f} / {graph['dw']:.4f}"]
            )  # fmt: skip
            print(rows[-1], flush=True)
    print(f"{args.n} neurons, 1 s, {args.device}, {args.dtype}, median of {args.repeats}; {load()}")
    header = ["model", "networks", "tensor loop s", "graphs=True s", "loop / graphs"]
    print(table(header + ["rate Hz (loop / graph)", "mean |Δw| mV"], rows))


def plastic(args) -> None:
    """Plastic CUBA 4000 (models/cuba_stdp.yaml), 1 s: torch against Brian2's own script
    with the same STDP, interleaved; rates and mean |Δw| say they simulate the same network.
    With ``--threads 2``: the single network, the batch (its networks over the threads) and
    Brian2 cython plastic only, and the batch's ratio in wall time. ``--dtype float32``: the
    torch runs in float32 (the fused kernel gives the tensor loop's weights bit for bit there
    too)."""
    opts = {"device": args.device, "dtype": args.dtype}
    runners = {
        "torch plastic": PlasticTorch("cuba_stdp", **opts),
        "torch static": PlasticTorch("cuba", **opts),
        f"torch plastic, batch of {args.networks}": PlasticTorch(
            "cuba_stdp", args.networks, **opts
        ),
        "torch plastic, tensor loop": PlasticTorch("cuba_stdp", fused=False, **opts),
        "Brian2 cython plastic": ReferenceBrian2(4000, "cython", plastic=True),
        "Brian2 cython static": ReferenceBrian2(4000, "cython"),
    }
    if args.threads > 1:  # threads serve the batch; the tensor loop's small operations only
        # slow down on several threads
        del runners["torch static"], runners["torch plastic, tensor loop"]
        del runners["Brian2 cython static"]
    for run in runners.values():  # warm-up: code generation, compilation, caches
        run(10.0)
    if args.cpp:  # built once; its binary runs 1 s in turn with the others
        runners["Brian2 cpp_standalone plastic (1 thread)"] = CppStandalone(4000, plastic=True)
    times = {name: [] for name in runners}
    stats = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            times[name].append(run())
            stats[name].append(dict(run.last))
    wall = {k: float(np.median(v)) for k, v in times.items()}
    sanity = {
        k: {key: float(np.median([s[key] for s in v])) for key in v[0]} for k, v in stats.items()
    }
    per = f"torch plastic, batch of {args.networks}"
    wall[per + ", per network"] = wall.pop(per) / args.networks
    sanity[per + ", per network"] = sanity.pop(per)
    sanity[per + ", per network"]["cpu"] /= args.networks
    base = sanity["torch plastic"]["cpu"]
    rows = [
        [
            k,
            "–" if np.isnan(v) else f"{v:.3f}",
            f"{sanity[k]['cpu']:.3f}",
            f"{base / sanity[k]['cpu']:.2f}",
            f"{sanity[k]['rate']:.2f}",
            f"{sanity[k]['dw']:.4f}" if "dw" in sanity[k] else "–",
        ]
        for k, v in wall.items()
    ]
    print(
        f"Plastic CUBA 4000 (models/cuba_stdp.yaml), 1 s, median of {args.repeats} "
        f"(device {args.device}, {args.dtype}, {args.threads} torch thread(s)); {load()}"
    )
    header = ["run", "loop wall s", "loop CPU s", "torch plastic / this (CPU)", "rate Hz"]
    print(table([*header, "mean |Δw| mV"], rows))
    cython = sanity["Brian2 cython plastic"]["cpu"]
    print(
        "\nratios of processor time (Brian2 cpp_standalone reports only that; on an idle "
        "machine it equals wall time):"
    )
    print(f"torch plastic / Brian2 cython plastic: {base / cython:.2f} (goal ≤ 0.3)")
    if args.cpp:
        cpp = sanity["Brian2 cpp_standalone plastic (1 thread)"]["cpu"]
        print(
            f"torch plastic / Brian2 cpp_standalone plastic (1 thread): {base / cpp:.2f} "
            "(goal ≤ 1.0)"
        )
    batch_cpu = sanity[per + ", per network"]["cpu"]
    batch_wall = wall[per + ", per network"] / wall["Brian2 cython plastic"]
    if args.threads == 1:
        print(
            f"torch plastic, batch of {args.networks}, per network / Brian2 cython plastic: "
            f"{batch_cpu / cython:.3f} (goal ≤ 0.1)"
        )
    else:  # the threads share the processor time; what they save is wall time
        print(
            f"torch plastic, batch of {args.networks} on {args.threads} threads, per network / "
            f"Brian2 cython plastic (1 thread), wall time: {batch_wall:.3f} (goal ≤ 0.1; an "
            f"idle machine's figure, as the threads need free cores); processor time "
            f"{batch_cpu / cython:.3f}"
        )
    print(
        "wall-time ratios: torch plastic / Brian2 cython plastic "
        f"{wall['torch plastic'] / wall['Brian2 cython plastic']:.2f}; batch per network "
        f"{wall[per + ', per network'] / wall['Brian2 cython plastic']:.3f}"
    )


def fidelity(args) -> None:
    """Rates of CUBA 4000: the torch engine (``models/cuba.yaml``, seeds 1…k) against Brian2's
    own script (k networks of its own random draws), 1 s each after 10 ms; then Brian2's script
    on the very network the torch engine drew (seed 1): the same spikes mean the same model."""
    from brian2 import seed as brian2_seed

    spec = cuba_spec(4000)
    rates: dict[str, list[float]] = {"torch engine": [], "Brian2's own script": []}
    for k in range(1, args.seeds + 1):
        engine = PlasticTorch("cuba", seeds=[k])
        engine(10.0)
        engine()
        rates["torch engine"].append(engine.last["rate"])
        brian2_seed(k)
        brian = ReferenceBrian2(4000, "cython")
        brian(10.0)
        brian()
        rates["Brian2's own script"].append(brian.last["rate"])
        print(k, {name: round(r[-1], 3) for name, r in rates.items()}, flush=True)
    rows = [
        [name, f"{np.mean(r):.2f} ± {np.std(r, ddof=1):.2f}", " ".join(f"{x:.2f}" for x in r)]
        for name, r in rates.items()
    ]
    print(f"CUBA 4000, mean rate (Hz) over 1 s after 10 ms, {args.seeds} networks each; {load()}")
    print(table(["simulator", "mean ± sd over networks", "per network"], rows))
    torch_engine = make_engine("torch", spec, seeds=[1])
    brian = ReferenceBrian2(4000, "cython", drawn=torch_engine.networks[0])
    sink = MemorySinkCount()
    torch_engine.run(1000.0, SPIKES, sink)
    brian()
    ours = sink.sorted()
    theirs = np.lexsort((np.asarray(brian.monitor.i), np.asarray(brian.monitor.t / brian.b2.ms)))
    theirs = np.stack(
        [
            np.round(np.asarray(brian.monitor.t / brian.b2.ms)[theirs], 6),
            np.asarray(brian.monitor.i)[theirs],
        ]
    )
    same = min(ours.shape[1], theirs.shape[1])
    differ = np.flatnonzero((ours[:, :same] != theirs[:, :same]).any(axis=0))
    first = f"first difference at {ours[0, differ[0]]:.1f} ms" if len(differ) else "none differ"
    print(
        f"\nthe torch engine's network (seed 1) in Brian2's own script, 1 s: torch "
        f"{ours.shape[1]} spikes, Brian2 {theirs.shape[1]}; {first}"
    )


class MemorySinkCount(Discard):
    """Keeps the spikes it is handed as (time ms, neuron) with neurons numbered as Brian2's
    one group (excitatory first)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[np.ndarray] = []

    def spikes(self, population, times, ids) -> None:
        offset = 0 if population == "exc" else 3200
        self.parts.append(np.stack([np.round(times, 6), np.asarray(ids) + offset]))

    def sorted(self) -> np.ndarray:
        both = np.concatenate(self.parts, axis=1)
        return both[:, np.lexsort((both[1], both[0]))]


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
    file, which a run without recording does too, are not timed). A run file's stream buffers
    are those the one before gave back (a process's later run files); ``--fresh-buffers``: new
    ones, whose pages the first blocks touch first (a process's first run file)."""
    from neurosleep.experiments.snn import RecorderSink
    from neurosleep.io import recorder
    from neurosleep.io.recorder import Recorder

    spec = cuba_spec(4000)
    full = Recording(
        spikes=("exc", "inh"), states={("v", "exc"): np.arange(100)}, interval=1.0, block=args.block
    )
    none = Recording(block=args.block)
    rows = []

    def recorded_run(engine, path: Path) -> tuple[float, float]:
        if args.fresh_buffers:  # none kept from the run file before
            recorder._BUFFERS = recorder._BufferPool()
        rec = Recorder.create(path, attrs={}, n_tasks=1)
        sink = RecorderSink(rec, spec, 1.0, networks=1)
        sink.write_spikes = {"exc", "inh"}
        start, cpu = time.perf_counter(), time.process_time()
        engine.run(args.duration, full, sink)
        rec.flush()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        rec.close("complete")
        return elapsed, cpu

    def plain_run(engine) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        engine.run(args.duration, none, Discard())
        return time.perf_counter() - start, time.process_time() - cpu

    for name in args.engines:
        options = {"target": "cython"} if name == "brian2" else {"device": args.device}
        engine = make_engine(name, spec, seeds=[1], **options)  # one network runs both ways
        times: dict[str, list[tuple[float, float]]] = {"plain": [], "recorded": []}
        with tempfile.TemporaryDirectory() as tmp:
            files = (Path(tmp) / f"run{i}.h5" for i in range(args.repeats + 1))
            loop_time(engine, 10.0, none)
            recorded_run(engine, next(files))
            for _ in range(args.repeats):  # interleaved
                times["plain"].append(plain_run(engine))
                times["recorded"].append(recorded_run(engine, next(files)))
        (wall_a, cpu_a), (wall_b, cpu_b) = (np.median(times[k], axis=0) for k in times)
        rows.append(
            [
                name,
                f"{wall_a:.3f}",
                f"{wall_b:.3f}",
                f"{100 * (wall_b / wall_a - 1):+.1f} %",
                f"{cpu_a:.3f}",
                f"{cpu_b:.3f}",
                f"{100 * (cpu_b / cpu_a - 1):+.1f} %",
            ]
        )
        print(rows[-1], flush=True)
    buffers = "new for each run file" if args.fresh_buffers else "kept from the run file before"
    print(
        f"all spikes + 100 v at 1 ms to HDF5 in {args.block:g} ms blocks; CUBA 4000, "
        f"{args.duration / 1000:g} s, every block written and flushed in the recorded time; "
        f"stream buffers {buffers}; "
        f"median of {args.repeats}; {load()}"
    )
    header = ["engine", "no recording s", "recording s", "overhead (wall)"]
    header += ["no recording CPU s", "recording CPU s", "overhead (processor time)"]
    print(table(header, rows))
    print(
        "goal (issues 3 and 17): overhead ≤ 10 % for the torch engine, in 1000 ms and in 100 ms "
        "blocks; on a busy machine read the processor-time column"
    )


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
    sink = RecorderSink(rec, spec, 1.0, 1); sink.write_spikes = {{"exc", "inh"}}
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
    parser.add_argument(
        "section",
        choices=[
            "loop",
            "plastic",
            "fidelity",
            "sweep",
            "batch",
            "batches",
            "graphs",
            "cold",
            "record",
            "memory",
        ],
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cpp", action="store_true", help="also time Brian2 cpp_standalone")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 16000, 64000, 256000])
    parser.add_argument("--networks", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 16, 24, 31, 32])
    parser.add_argument("--n", type=int, default=4000, help="neurons (batches, graphs)")
    parser.add_argument("--model", default="cuba", help="sweep, batches: cuba or cuba_stdp")
    parser.add_argument("--engines", nargs="+", default=["torch", "brian2"], help="record")
    parser.add_argument("--seeds", type=int, default=5, help="networks (fidelity section)")
    parser.add_argument("--durations", type=float, nargs="+", default=[1000.0, 20000.0])
    parser.add_argument("--dtype", default="float64", help="torch dtype (batch, plastic)")
    parser.add_argument("--block", type=float, default=1000.0, help="recording block (ms)")
    parser.add_argument("--duration", type=float, default=10000.0, help="record section (ms)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--fresh-buffers",
        action="store_true",
        help="record: each run file gets new stream buffers, as a process's first one does",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    {
        "loop": loop,
        "plastic": plastic,
        "fidelity": fidelity,
        "sweep": sweep,
        "batch": batch,
        "batches": batches,
        "graphs": graphs,
        "cold": cold,
        "record": record,
        "memory": memory,
    }[args.section](args)


if __name__ == "__main__":
    main()
