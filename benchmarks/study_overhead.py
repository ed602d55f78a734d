"""Overhead of `neurosleep study run` against the same runs one by one, and the Dask speed-up.

Three ways to make the same CPU-bound runs (Hopfield networks, one torch thread each), each a
fresh process started by this script, so each pays its imports once, as a user's command does:

1. one by one: a Python process that resolves every run's protocol and runs it with
   ``neurosleep.runner.run``, one after another (a shell loop of ``neurosleep run`` without
   each command's import time);
2. ``neurosleep study run --workers 1``: the same runs through the study driver in its process
   (validation of the study, ledger, verification of every run file, metrics read back);
3. ``neurosleep study run --workers 2``: the same runs on a 2-process Dask LocalCluster (its
   start-up included).

The three are repeated ``--repeat`` times, interleaved (the order rotates every repetition)
so that a change in the machine's load falls on all three; each repetition's ratios come from
its own three timings, and the medians are printed with the target of issue #13 beside them.
The load average (1 min) is printed before each timing: on a shared machine the wall-time
ratios mean little (Linux shares the cores between sessions, so a command gets its session's
share however many processes it runs). The processor time of each arm (user + system, the
command and every process it started, the fork server and Dask workers included) is printed
too: it does not depend on the load as much, and says what the study machinery costs; for
``--workers 2`` it is split by process (the command — driver, Dask scheduler and nannies —,
the fork server, each worker; read from /proc every 0.1 s while they live).

The default study is 8 runs of about 10 s of processor time each (Hopfield N = 400, 750
dreaming steps), a small but real CPU-bound study: the start-up that only ``--workers 2`` pays
(the fork server's imports, the cluster's start) is then a few percent of it, as in a real
study of many ~10 s runs, not a third of it as with 4 s runs.

    python benchmarks/study_overhead.py [--runs 8] [--neurons 400] [--steps 750] [--repeat 2]

``--idle SECONDS`` measures instead what an idle 2-worker LocalCluster made as ``study run
--workers 2`` makes it costs in processor time over SECONDS (its driver process — scheduler,
nannies, client — and its two workers), with Dask's default periodic monitors and with the ones
``study run`` sets (``neurosleep.study.execute.QUIET_DASK``), each in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ARMS = ("one by one", "--workers 1", "--workers 2")


def write_study(folder: Path, runs: int, neurons: int, steps: int) -> Path:
    protocol = {
        "format_version": 1,
        "name": "bench",
        "seed": 1,
        "model": {"kind": "hopfield", "name": f"h{neurons}", "neurons": neurons},
        "engine": "torch",
        "device": "cpu",
        "data": {"patterns": int(0.3 * neurons)},
        "record": {"weights": False, "sleep_states": False},
        "schedule": [
            {"wake": {"name": "store"}},
            {"sleep": {"name": "dream", "kind": "dreaming", "t": 10, "steps": steps}},
            {"test": {"name": "after"}},
        ],
    }
    (folder / "p.yaml").write_text(yaml.safe_dump(protocol, sort_keys=False))
    study = {
        "format_version": 1,
        "name": "bench",
        "protocol": "p.yaml",
        "seeds": list(range(1, runs // 2 + 1)),
        "select_on": "test",
        "objective": {"metric": "overlap"},
        "space": {"schedule.dream.t": {"values": [5, 10]}},
        "folder": str(folder / "unused"),
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def one_by_one(study_file: str, folder: str) -> None:
    """The baseline arm, in its own process: every planned run with ``runner.run``."""
    import torch

    from neurosleep.protocol import load_protocol
    from neurosleep.runner import run
    from neurosleep.study.search import search_runs
    from neurosleep.study.spec import load_study

    torch.set_num_threads(1)
    study = load_study(study_file, folder)
    for i, planned in enumerate(search_runs(study, study.grid())):
        overrides = [*planned.overrides, f"output={Path(folder) / f'{i}.h5'}"]
        run(load_protocol(planned.protocol, overrides), progress=False)


def command(arm: str, study: Path, folder: Path) -> list[str]:
    if arm == "one by one":
        return [sys.executable, __file__, "--one-by-one", str(study), str(folder)]
    workers = arm.split()[-1]
    cli = [sys.executable, "-m", "neurosleep.cli", "--quiet", "study", "run", str(study)]
    return [*cli, "--folder", str(folder), "--workers", workers]


def reap_orphans() -> None:
    """Make this process the reaper of its orphaned descendants (Linux): the fork server of
    ``--workers 2`` and its workers outlive the command by a moment; reaped here, their
    processor time counts in this process's ``RUSAGE_CHILDREN``."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


class Processes:
    """Processor seconds of each process descending from this one, read from /proc/<pid>/stat
    every ``interval`` s while it lives (Linux; empty elsewhere): the last reading of each, so
    up to ``interval`` s of a process's end is missed. Roles: ``command`` (the arm's process:
    the driver, with Dask's scheduler and nannies in its threads), ``fork server`` and
    ``worker`` (forked from the fork server), ``other`` (e.g. multiprocessing's resource
    tracker)."""

    TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, command: int, interval: float = 0.1) -> None:
        self.command, self.interval = command, interval
        self.seconds: dict[int, float] = {}
        self.parent: dict[int, int] = {}
        self.server: set[int] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _read(self, pid: int) -> tuple[int, float] | None:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / self.TICK

    def _watch(self) -> None:
        if not Path("/proc/self/stat").exists():
            return
        while not self.done.wait(self.interval):
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                pid = int(entry)
                read = self._read(pid)
                if read is None:
                    continue
                parent, seconds = read
                if pid == self.command or parent in self.seconds:
                    self.parent.setdefault(pid, parent)
                    self.seconds[pid] = seconds
                    if pid not in self.server and "forkserver" in self._cmdline(pid):
                        self.server.add(pid)

    @staticmethod
    def _cmdline(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            return ""

    def stop(self) -> dict[str, list[float]]:
        """Processor seconds by role (workers: one entry each)."""
        self.done.set()
        self.thread.join()
        roles: dict[str, list[float]] = {}
        for pid, seconds in self.seconds.items():
            if pid == self.command:
                role = "command"
            elif self.parent[pid] in self.server:
                role = "worker"
            elif pid in self.server:
                role = "fork server"
            else:
                role = "other"
            roles.setdefault(role, []).append(seconds)
        return roles


def timed(cmd: list[str]) -> tuple[float, float, dict[str, list[float]]]:
    """Wall seconds of the command, processor seconds (user + system) of it and of every
    process it started, and those processor seconds by process (:class:`Processes`)."""

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    cpu, start = children(), time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    processes = Processes(process.pid)
    if process.wait() != 0:
        raise subprocess.CalledProcessError(process.returncode, cmd)
    wall = time.perf_counter() - start
    while True:  # the orphans (fork server, workers) that outlived it
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    return wall, children() - cpu, processes.stop()


def split(roles: dict[str, list[float]], total: float) -> str:
    """``command 4.61 s, fork server 3.38 s, workers 18.06 + 18.39 s, ...`` as sampled, and
    what the samples missed of ``total`` (the processor seconds of them all, from rusage)."""
    parts = [
        f"{role}{'s' if len(v) > 1 else ''} {' + '.join(f'{x:.2f}' for x in v)} s"
        for role in ("command", "fork server", "worker", "other")
        if (v := sorted(roles.get(role, [])))
    ]
    missed = total - sum(sum(v) for v in roles.values())
    return ", ".join(parts) + f"; not sampled (ends of processes) {missed:.2f} s"


def idle_arm(seconds: float, quiet: bool) -> None:
    """(Internal, in a fresh process) print the processor seconds an idle 2-worker cluster's
    driver process and workers use over ``seconds``, as JSON."""
    import json

    from dask.distributed import Client

    from neurosleep.study import execute

    def used() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    if not quiet:
        execute.QUIET_DASK = {}  # Dask's defaults
    cluster, config = execute._local_cluster(2)
    client = Client(cluster)
    try:
        before, driver = client.run(used), used()
        time.sleep(seconds)
        after, driver = client.run(used), used() - driver
    finally:
        client.close()
        cluster.close()
        config.__exit__(None, None, None)
    workers = sorted(after[w] - before[w] for w in after)
    print(json.dumps({"driver": driver, "workers": workers}))


def idle(seconds: float) -> None:
    """Processor use of an idle 2-worker cluster with Dask's defaults and with study run's."""
    import json

    print(f"an idle 2-worker LocalCluster as `study run --workers 2` makes it, for {seconds:g} s")
    total = {}
    for label, quiet in (("Dask's default monitors", "default"), ("study run's", "quiet")):
        cmd = [sys.executable, __file__, "--idle-arm", quiet, str(seconds)]
        used = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)
        total[quiet] = used["driver"] + sum(used["workers"])
        workers = " + ".join(f"{w:.2f}" for w in used["workers"])
        print(
            f"{label:>24}: driver process {used['driver']:.2f} s, workers {workers} s: "
            f"{total[quiet]:.2f} s = {total[quiet] / seconds:.1%} of a core"
        )
    print(f"study run's / Dask's defaults: {total['quiet'] / total['default']:.2f}")


def mean_wall(folder: Path) -> float:
    from neurosleep.study.ledger import Ledger

    ledger = Ledger(folder, readonly=True)
    try:
        walls = [row.attempt_s for row in ledger.rows()]
    finally:
        ledger.close()
    return sum(walls) / len(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="runs (even: 2 values × runs/2 seeds)")
    parser.add_argument("--neurons", type=int, default=400)
    parser.add_argument("--steps", type=int, default=750, help="dreaming steps per run")
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of the three arms")
    parser.add_argument("--idle", type=float, metavar="SECONDS", help="idle cluster's cost only")
    parser.add_argument("--one-by-one", nargs=2, metavar=("STUDY", "FOLDER"), help="(internal)")
    parser.add_argument("--idle-arm", nargs=2, metavar=("KIND", "SECONDS"), help="(internal)")
    args = parser.parse_args()
    if args.one_by_one:
        one_by_one(*args.one_by_one)
        return
    if args.idle_arm:
        idle_arm(float(args.idle_arm[1]), args.idle_arm[0] == "quiet")
        return
    if args.idle:
        idle(args.idle)
        return
    print(
        f"{args.runs} runs: Hopfield N = {args.neurons}, {args.steps} dreaming steps each; "
        f"each arm a fresh process (its imports included); {os.cpu_count()} cores"
    )
    print(f"{'':>3} " + "".join(f"{a:>24}" for a in ARMS) + "   overhead   speed-up")
    overheads, speedups, per_run = [], [], {a: [] for a in ARMS[1:]}
    cpu_overheads, cpu_ratios = [], []
    reap_orphans()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        study = write_study(tmp, args.runs, args.neurons, args.steps)
        for rep in range(args.repeat):
            order = ARMS[rep % 3 :] + ARMS[: rep % 3]
            wall, cpu, load, roles = {}, {}, {}, {}
            for arm in order:
                folder = tmp / f"{rep}-{ARMS.index(arm)}"
                load[arm] = os.getloadavg()[0]
                wall[arm], cpu[arm], roles[arm] = timed(command(arm, study, folder))
                if arm in per_run:
                    per_run[arm].append(mean_wall(folder))
            overheads.append(wall["--workers 1"] / wall["one by one"] - 1)
            speedups.append(wall["--workers 1"] / wall["--workers 2"])
            cpu_overheads.append(cpu["--workers 1"] / cpu["one by one"] - 1)
            cpu_ratios.append(cpu["--workers 2"] / cpu["--workers 1"])
            cells = "".join(f"{wall[a]:9.2f} s (load {load[a]:4.1f})" for a in ARMS)
            print(f"{rep + 1:>3} {cells} {overheads[-1]:+9.1%} {speedups[-1]:9.2f}x")
            cells = "".join(f"{cpu[a]:9.2f} s processor     " for a in ARMS)
            print(f"{'':>3} {cells} {cpu_overheads[-1]:+9.1%} {cpu_ratios[-1]:9.2f} (processor)")
            if roles["--workers 2"]:
                by_process = split(roles["--workers 2"], cpu["--workers 2"])
                print(f"{'':>3} --workers 2 by process: {by_process}")
    median = statistics.median
    print(
        f"median overhead of study run --workers 1 over one by one: {median(overheads):+.1%} "
        f"wall, {median(cpu_overheads):+.1%} processor (issue #13: <= +5 %)"
    )
    print(
        f"median speed-up of study run --workers 2 over --workers 1: {median(speedups):.2f}x "
        f"(issue #13: >= 1.7x on 2 idle cores); processor time of --workers 2 / --workers 1: "
        f"{median(cpu_ratios):.2f}"
    )
    print(
        "mean wall time of one run (ledger): "
        + ", ".join(f"{statistics.mean(v):.2f} s with {a}" for a, v in per_run.items())
        + f"; load average now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
