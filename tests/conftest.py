"""Shared fixtures: paths to the shipped files, and small protocol writers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


TINY_MLP = {  # a 64-32-10 mlp for split digits (scikit-learn's 8x8 images)
    "kind": "mlp",
    "name": "tiny",
    "layers": [64, 32, 10],
    "bias": False,
    "output": "relu",
    "init": "uniform",
    "init_scale": 0.1,
}


@pytest.fixture
def one_torch_thread():
    """Small networks: one torch thread is faster, and a busy OpenMP pool is far slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def write_protocol(tmp_path):
    """Write a protocol (a dict, or YAML text) into tmp_path; model paths point at models/."""

    def write(content, name: str = "p.yaml") -> Path:
        path = tmp_path / name
        if isinstance(content, dict):
            content = yaml.safe_dump(content, sort_keys=False)
        path.write_text(content)
        return path

    return write


def small_hopfield() -> dict:
    """A small Hopfield protocol (N = 100, 10 patterns, 50 dreaming steps; well under a second)
    as a fresh dict, without an output key."""
    return {
        "format_version": 1,
        "name": "hop",
        "seed": 1,
        "model": {"kind": "hopfield", "name": "h100", "neurons": 100},
        "engine": "torch",
        "device": "cpu",
        "data": {"patterns": 10},
        "record": {"weights": True, "sleep_states": True},
        "schedule": [
            {"wake": {"name": "store"}},
            {"test": {"name": "before"}},
            {"sleep": {"name": "dream", "kind": "dreaming", "t": 5, "steps": 50, "block": 10}},
            {"test": {"name": "after"}},
        ],
    }


@pytest.fixture
def hopfield_protocol(root) -> dict:
    """:func:`small_hopfield`, output in the test's tmp dir."""
    return {**small_hopfield(), "output": "{name}_seed{seed}.h5"}


@pytest.fixture(scope="session")
def consolidation_run(tmp_path_factory) -> Path:
    """The shipped spiking consolidation protocol (sleep), tests 100 ms and the other phases
    200 ms, on torch: a real run file with spikes of exc/inh, E→E snapshots, memories A, B, S2."""
    from neurosleep.protocol import load_protocol
    from neurosleep.runner import run

    path = ROOT / "protocols" / "consolidation_sleep.yaml"
    schedule = [next(iter(item.items())) for item in yaml.safe_load(path.read_text())["schedule"]]
    overrides = [
        f"schedule.{body['name']}.duration={100 if kind == 'test' else 200} ms"
        for kind, body in schedule
    ]
    out = tmp_path_factory.mktemp("consolidation") / "consolidation_sleep.h5"
    run(load_protocol(path, overrides), output=out, progress=False)
    return out
