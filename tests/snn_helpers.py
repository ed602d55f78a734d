"""Small snn specs and a sink that keeps what an engine hands over, for the engine tests."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from neurosleep.spec.snn import SNNSpec


class MemorySink:
    """Collects spikes and sampled states in memory (tests only)."""

    def __init__(self) -> None:
        self.spike_blocks: dict[str, list] = defaultdict(list)
        self.state_blocks: dict[tuple[str, str], list] = defaultdict(list)

    def spikes(self, population, times_ms, node_ids) -> None:
        self.spike_blocks[population].append((np.asarray(times_ms), np.asarray(node_ids)))

    def state(self, variable, population, times_ms, rows) -> None:
        self.state_blocks[(variable, population)].append((np.asarray(times_ms), np.asarray(rows)))

    def spike_array(self, population: str) -> tuple[np.ndarray, np.ndarray]:
        blocks = self.spike_blocks[population]
        times = np.concatenate([t for t, _ in blocks]) if blocks else np.zeros(0)
        ids = np.concatenate([i for _, i in blocks]) if blocks else np.zeros(0, dtype=int)
        order = np.lexsort((ids, np.round(times, 6)))
        return times[order], ids[order]

    def trace(self, variable: str, population: str) -> tuple[np.ndarray, np.ndarray]:
        blocks = self.state_blocks[(variable, population)]
        return np.concatenate([t for t, _ in blocks]), np.concatenate([r for _, r in blocks])


def small_network(plasticity: list | None = None, noise: bool = False) -> SNNSpec:
    """Two populations (current + adaptation, conductance), given input spikes, delays;
    ``noise`` adds a Poisson source onto ``cur``."""
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 95, 120)).round(1)
    indices = rng.integers(0, 8, 120)
    keep = np.unique(np.stack([np.rint(times * 10), indices]), axis=1, return_index=True)[1]
    spec = {
        "kind": "snn",
        "name": "small",
        "dt": "0.1 ms",
        "populations": {
            "cur": {
                "size": 6,
                "neuron": {
                    "tau_m": "15 ms",
                    "v_rest": "-65 mV",
                    "v_threshold": "-55 mV",
                    "v_reset": "-70 mV",
                    "refractory": "2 ms",
                    "synapses": "current",
                    "tau_e": "4 ms",
                    "tau_i": "8 ms",
                    "adaptation": {"tau": "50 ms", "increment": "1 mV"},
                },
                "initial": {"v": {"uniform": ["-70 mV", "-60 mV"]}},
            },
            "cond": {
                "size": 5,
                "sign": "inhibitory",
                "neuron": {
                    "tau_m": "10 ms",
                    "v_rest": "-60 mV",
                    "v_threshold": "-52 mV",
                    "v_reset": "-62 mV",
                    "refractory": "3 ms",
                    "synapses": "conductance",
                    "tau_e": "3 ms",
                    "tau_i": "6 ms",
                },
            },
        },
        "sources": {
            "drive": {
                "type": "array",
                "size": 8,
                "indices": indices[keep].tolist(),
                "times": [f"{t} ms" for t in times[keep]],
            }
        },
        "projections": {
            "in_cur": {
                "pre": "drive",
                "post": "cur",
                "connect": {"rule": "fixed_probability", "p": 0.6},
                "weight": {"uniform": ["6 mV", "12 mV"]},
                "delay": "0 ms",  # the projection that may be plastic: no delay (validation)
                "plasticity": plasticity or [],
            },
            "in_cond": {
                "pre": "drive",
                "post": "cond",
                "connect": {"rule": "all_to_all"},
                "weight": {"uniform": ["0.1", "0.4"]},
                "delay": "0.5 ms",
            },
            "cur_cond": {
                "pre": "cur",
                "post": "cond",
                "connect": {"rule": "all_to_all"},
                "weight": "0.3",
                "delay": {"uniform": ["0 ms", "1.5 ms"]},
            },
            "cond_cur": {
                "pre": "cond",
                "post": "cur",
                "connect": {"rule": "all_to_all"},
                "weight": "-2 mV",
                "delay": "1 ms",
            },
        },
    }
    if noise:
        spec["sources"]["noise"] = {"type": "poisson", "size": 8, "rate": "40 Hz"}
        spec["projections"]["noise_cur"] = {
            "pre": "noise",
            "post": "cur",
            "connect": {"rule": "fixed_probability", "p": 0.5},
            "weight": "3 mV",
        }
    return SNNSpec.model_validate(spec)
