"""The SRA sleep network as Brian2 objects: one ``NeuronGroup`` per layer, ``Synapses`` between.

The same network as :func:`neurosleep.engines.sra.sra_sleep` (:mod:`neurosleep.sleep.sra` has
the equations):

- input: a ``SpikeGeneratorGroup`` replaying the given input spikes (step s at time s·dt);
- layer l: ``NeuronGroup`` with ``v : 1``, threshold ``v >= beta_l``, reset ``v = 0``, and a
  ``run_regularly('v = decay*v')`` at the start of every step (the decay is a discrete map, not
  an ODE);
- projection l: all-to-all ``Synapses`` with ``w`` (the ANN weight W_ji) and ``tpre`` (time of
  the last pre spike); ``on_pre``: ``v_post += alpha_l*w; tpre = t``; ``on_post``: ``w`` moves by
  ``+inc·f(w)`` if ``tpre == t`` (pre spiked this step) else ``−dec·f(w)``.

Within one time step the objects run in the order the MATLAB loop has: input spikes, then for
each layer its incoming pathway, its threshold, its plasticity pathway; resets come last, so
plasticity precedes the reset, and a spike crosses every layer in the step it happens (zero
delays). Only the summation order of the inputs differs from the torch implementation, so with
the same input spikes the weights agree to rounding (float64).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from neurosleep.engines.sra import CORES, SpikeSink

PLASTICITY = (
    "f_w = 2*(1.0 - 1.0/(1 + exp(-w/0.001)))\n"
    "w = w + int(tpre == t)*inc*f_w - int(tpre != t)*dec*f_w"
)


def sra_sleep_brian2(
    weights: list[torch.Tensor],
    alphas: list[float],
    thresholds: list[float],
    spikes_in: Iterator[torch.Tensor],
    *,
    inc: float,
    dec: float,
    decay: float,
    on_spikes: SpikeSink | None = None,
    target: str = "numpy",
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Brian2 SRA sleep with the signature of :func:`~neurosleep.engines.sra.sra_sleep`."""
    import brian2 as b2

    b2.prefs.codegen.target = target
    spikes = torch.cat([b.cpu() for b in spikes_in])
    steps = spikes.shape[0]
    dt = 1 * b2.ms
    step_idx, neuron_idx = (a.numpy() for a in torch.nonzero(spikes, as_tuple=True))
    source = b2.SpikeGeneratorGroup(
        spikes.shape[1], neuron_idx.astype(int), step_idx * dt, dt=dt, name="sra_input"
    )
    objects: list = [source]
    layers, synapses, monitors = [], [], []
    pre_group = source
    for k, (w, alpha, beta) in enumerate(zip(weights, alphas, thresholds, strict=True), start=1):
        w_np = w.detach().cpu().double().numpy()
        group = b2.NeuronGroup(
            w_np.shape[0],
            "v : 1",
            threshold=f"v >= {float(beta)!r}",
            reset="v = 0",
            dt=dt,
            name=f"sra_layer{k}",
        )
        group.run_regularly(f"v = {float(decay)!r}*v", when="start", name=f"sra_decay{k}")
        group.thresholder["spike"].when = "synapses"
        group.thresholder["spike"].order = 3 * k + 1
        syn = b2.Synapses(
            pre_group,
            group,
            "w : 1\ntpre : second",
            on_pre=f"v_post += {float(alpha)!r}*w\ntpre = t",
            on_post=PLASTICITY,
            namespace={"inc": float(inc), "dec": float(dec)},
            dt=dt,
            name=f"sra_projection{k}",
        )
        post_idx, pre_idx = np.meshgrid(
            np.arange(w_np.shape[0]), np.arange(w_np.shape[1]), indexing="ij"
        )
        syn.connect(i=pre_idx.ravel(), j=post_idx.ravel())
        syn.w[:] = w_np.ravel()
        syn.tpre[:] = -1 * b2.second
        syn.pre.order = 3 * k
        syn.post.order = 3 * k + 2
        monitor = b2.SpikeMonitor(group, name=f"sra_spikes{k}")
        layers.append(group)
        synapses.append(syn)
        monitors.append(monitor)
        objects += [group, syn, monitor]
        pre_group = group
    network = b2.Network(*objects)
    network.run(steps * dt, namespace={})
    new = []
    counts = torch.zeros(len(weights), dtype=torch.long)
    for k, (w, syn, monitor) in enumerate(zip(weights, synapses, monitors, strict=True)):
        new.append(torch.as_tensor(np.asarray(syn.w[:]).reshape(w.shape), dtype=w.dtype))
        counts[k] = monitor.num_spikes
        if on_spikes is not None and monitor.num_spikes:
            when = np.round(np.asarray(monitor.t / dt)).astype(np.int64)
            on_spikes(k + 1, torch.as_tensor(when), torch.as_tensor(np.asarray(monitor.i)))
    return [x.to(weights[0].device) for x in new], counts


CORES.register("brian2")(sra_sleep_brian2)
